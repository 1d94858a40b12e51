#include "access/policy.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(MethodPatternTest, MatchesLikeTheApiCaseInsensitively) {
  EXPECT_TRUE(MethodPatternMatches("*", "Utilities/Info/ping"));
  EXPECT_TRUE(MethodPatternMatches("Utilities/Info/ping", "utilities/info/PING"));
  EXPECT_TRUE(MethodPatternMatches("Storm/Server/*", "Storm/Server/list"));
  EXPECT_TRUE(MethodPatternMatches("storm/*/list", "Storm/Server/list"));
  EXPECT_TRUE(MethodPatternMatches("*/ping", "Utilities/Info/ping"));
  EXPECT_FALSE(MethodPatternMatches("Storm/Server/*", "Storm/Serverx/list"));
  EXPECT_FALSE(MethodPatternMatches("Utilities/Info/ping", "Utilities/Info/pingx"));
  EXPECT_FALSE(MethodPatternMatches("Storm/*", "Utilities/Info/ping"));
  EXPECT_FALSE(MethodPatternMatches("", "Utilities/Info/ping"));
}

Caller MakeCaller(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Caller caller;
  caller.uid = uid;
  caller.gid = gid;
  caller.groups = std::move(groups);
  return caller;
}

TEST(PolicyTest, NoRuleNoAccess) {
  Policy empty({});
  EXPECT_EQ(empty.Admits(MakeCaller(0, 0), "prod", "Utilities/Info/ping"), 0);
  EXPECT_FALSE(empty.AdmitsAccount(MakeCaller(0, 0), "prod"));
}

TEST(PolicyTest, AdmitsByUidGroupAccountAndMethod) {
  PolicyRule by_uid{.line = 3, .uids = {1000}, .gids = {}, .accounts = {"prod"}, .methods = {"Utilities/*"}};
  PolicyRule by_group{.line = 7, .uids = {}, .gids = {500}, .accounts = {"*"}, .methods = {"*"}};
  Policy policy({by_uid, by_group});
  EXPECT_EQ(policy.Admits(MakeCaller(1000, 1000), "prod", "Utilities/Info/ping"), 3);
  EXPECT_EQ(policy.Admits(MakeCaller(1000, 1000), "prod", "Storm/Server/list"), 0);
  EXPECT_EQ(policy.Admits(MakeCaller(1000, 1000), "staging", "Utilities/Info/ping"), 0);
  EXPECT_EQ(policy.Admits(MakeCaller(2000, 500), "staging", "Storm/Server/list"), 7);
  EXPECT_EQ(policy.Admits(MakeCaller(2000, 2000, {10, 500}), "prod", "x/y"), 7) << "supplementary group";
  EXPECT_EQ(policy.Admits(MakeCaller(2000, 2000, {10}), "prod", "x/y"), 0);
  EXPECT_TRUE(policy.AdmitsAccount(MakeCaller(1000, 1000), "prod"));
  EXPECT_FALSE(policy.AdmitsAccount(MakeCaller(1000, 1000), "staging"));
}

}  // namespace
}  // namespace stormbroker
