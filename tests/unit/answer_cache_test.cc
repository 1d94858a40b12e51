// The answer cache: which calls are the same question, who waits for whose
// answer, and which answers may be kept.
#include "broker/answer_cache.h"

#include <gtest/gtest.h>

#include <thread>

namespace stormbroker {
namespace {

using namespace std::chrono_literals;

ApiOutcome Servers(int count) { return {false, {{"item_count", count}}, {}}; }

// What one caller was answered, and how.
struct Answered {
  std::optional<Result<ApiOutcome>> outcome;
  CacheUse use = CacheUse::kNone;
  AnswerCache::Answer Sink() {
    return [this](Result<ApiOutcome> got, CacheUse how) {
      outcome = std::move(got);
      use = how;
    };
  }
};

CacheRule ListRule(std::chrono::milliseconds ttl) { return {1, {"Storm/Server/list", "Storm/Server/details"}, {}, ttl}; }

TEST(AnswerCacheTest, TheSameQuestionHasOneKeyHoweverItIsWritten) {
  nlohmann::json a = nlohmann::json::parse(R"({"page_size": 10, "page_num": 1})");
  nlohmann::json b = nlohmann::json::parse(R"({ "page_num":1,"page_size":10 })");
  EXPECT_EQ(CacheKey("prod", "v1", "Storm/Server/list", a), CacheKey("prod", "V1", "storm/server/LIST.json", b));
  EXPECT_EQ(CacheKey("prod", "v1", "Storm/Server/list", a), CacheKey("prod", "v1", "/Storm/Server/list.YAML", b));
  EXPECT_NE(CacheKey("prod", "v1", "Storm/Server/list", a), CacheKey("prod", "bleed", "Storm/Server/list", a))
      << "v1 and bleed are different APIs";
  EXPECT_NE(CacheKey("prod", "v1", "Storm/Server/list", a), CacheKey("staging", "v1", "Storm/Server/list", a));
  EXPECT_NE(CacheKey("prod", "v1", "Storm/Server/list", a),
            CacheKey("prod", "v1", "Storm/Server/list", nlohmann::json{{"page_size", 11}, {"page_num", 1}}));
  EXPECT_NE(CacheKey("prod", "v1", "Storm/Server/list", {{"n", 1}}), CacheKey("prod", "v1", "Storm/Server/list", {{"n", "1"}}))
      << "a number and a string are different params";
}

TEST(AnswerCacheTest, ACallNamingNoVersionAsksTheUpstreamsOwn) {
  AnswerCache cache({}, 1 << 20, "v1");
  EXPECT_EQ(cache.KeyOf("prod", "", "Storm/Server/list", {}), cache.KeyOf("prod", "v1", "storm/server/list", {}));
  EXPECT_NE(cache.KeyOf("prod", "", "Storm/Server/list", {}), cache.KeyOf("prod", "bleed", "Storm/Server/list", {}));
}

TEST(AnswerCacheTest, OnlyTheRulesMethodsAndAccountsAreCovered) {
  AnswerCache cache({{1, {"Storm/Server/list"}, {"prod"}, 5s}, {2, {"Utilities/Info/*"}, {}, 0s}}, 1 << 20);
  EXPECT_EQ(cache.Covers("prod", "storm/server/List.json"), std::optional(std::chrono::milliseconds(5s)));
  EXPECT_FALSE(cache.Covers("staging", "Storm/Server/list")) << "the rule names prod alone";
  EXPECT_EQ(cache.Covers("staging", "Utilities/Info/ping"), std::optional(std::chrono::milliseconds(0)));
  EXPECT_FALSE(cache.Covers("prod", "Storm/Server/update"));
}

TEST(AnswerCacheTest, CallersOfTheSameQuestionWaitForOneCallAndTheAnswerIsKept) {
  AnswerCache cache({ListRule(10s)}, 1 << 20);
  std::string key = CacheKey("prod", "", "Storm/Server/list", nlohmann::json::object());
  Answered first, second;
  auto lead = cache.Join(key, "prod", 10s, false, first.Sink(), nullptr);
  ASSERT_EQ(lead.use, CacheUse::kMiss);
  ASSERT_TRUE(lead.lead);
  auto joined = cache.Join(key, "prod", 10s, false, second.Sink(), nullptr);
  EXPECT_EQ(joined.use, CacheUse::kCoalesced);
  EXPECT_FALSE(joined.lead) << "a second call went upstream";
  cache.Complete(lead.lead, Servers(3));
  ASSERT_TRUE(first.outcome && second.outcome);
  EXPECT_EQ((*second.outcome)->result["item_count"], 3);
  EXPECT_EQ(first.use, CacheUse::kMiss);
  EXPECT_EQ(second.use, CacheUse::kCoalesced);
  Answered third;
  auto hit = cache.Join(key, "prod", 10s, false, third.Sink(), nullptr);
  EXPECT_EQ(hit.use, CacheUse::kHit);
  ASSERT_TRUE(hit.stored);
  EXPECT_EQ(hit.stored->result["item_count"], 3);
  EXPECT_EQ(hit.stored->age, std::optional(std::chrono::seconds(0)));
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(AnswerCacheTest, AReadThatBeganBeforeAWriteCompletedIsNotKept) {
  AnswerCache cache({ListRule(10s)}, 1 << 20);
  std::string key = CacheKey("prod", "", "Storm/Server/list", nlohmann::json::object());
  Answered before, after;
  auto read = cache.Join(key, "prod", 10s, false, before.Sink(), nullptr);
  cache.WriteDone("prod");  // e.g. Storm/Server/update, sent while the read was out
  // A caller after the write does not wait for the read that began before it.
  auto fresh_read = cache.Join(key, "prod", 10s, false, after.Sink(), nullptr);
  EXPECT_EQ(fresh_read.use, CacheUse::kMiss);
  cache.Complete(read.lead, Servers(3));
  EXPECT_EQ((*before.outcome)->result["item_count"], 3) << "its own caller is still answered";
  Answered probe;
  EXPECT_EQ(cache.Join(key, "prod", 10s, false, probe.Sink(), nullptr).use, CacheUse::kCoalesced)
      << "the old answer was stored, or the new call was not joined";
  cache.Complete(fresh_read.lead, Servers(4));
  Answered later;
  auto hit = cache.Join(key, "prod", 10s, false, later.Sink(), nullptr);
  ASSERT_EQ(hit.use, CacheUse::kHit);
  EXPECT_EQ(hit.stored->result["item_count"], 4);
}

TEST(AnswerCacheTest, AWriteDropsOnlyItsOwnAccountsAnswers) {
  AnswerCache cache({ListRule(10s)}, 1 << 20);
  auto store = [&](const std::string& account, int count) {
    Answered sink;
    auto lead = cache.Join(CacheKey(account, "", "Storm/Server/list", {}), account, 10s, false, sink.Sink(), nullptr);
    cache.Complete(lead.lead, Servers(count));
  };
  store("prod", 1);
  store("prod2", 2);
  cache.WriteDone("prod");
  Answered a, b;
  EXPECT_EQ(cache.Join(CacheKey("prod", "", "Storm/Server/list", {}), "prod", 10s, false, a.Sink(), nullptr).use,
            CacheUse::kMiss);
  EXPECT_EQ(cache.Join(CacheKey("prod2", "", "Storm/Server/list", {}), "prod2", 10s, false, b.Sink(), nullptr).use,
            CacheUse::kHit)
      << "an account whose name begins like the written one lost its answers";
}

TEST(AnswerCacheTest, ErrorsAndExceptionsAreSharedButNeverKept) {
  AnswerCache cache({ListRule(10s)}, 1 << 20);
  std::string key = CacheKey("prod", "", "Storm/Server/list", {});
  for (Result<ApiOutcome> bad : {Result<ApiOutcome>(Unavailable("reset")),
                                 Result<ApiOutcome>(ApiOutcome{true, {}, {"LW::Exception::RecordNotFound", "no", {}, 200}})}) {
    Answered one, two;
    auto lead = cache.Join(key, "prod", 10s, false, one.Sink(), nullptr);
    ASSERT_EQ(lead.use, CacheUse::kMiss);
    cache.Join(key, "prod", 10s, false, two.Sink(), nullptr);
    cache.Complete(lead.lead, bad);
    ASSERT_TRUE(two.outcome);
    EXPECT_EQ(two.outcome->ok(), bad.ok());
  }
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AnswerCacheTest, AFreshCallNeitherReadsNorJoinsButRefreshesTheStoredAnswer) {
  AnswerCache cache({ListRule(10s)}, 1 << 20);
  std::string key = CacheKey("prod", "", "Storm/Server/list", {});
  Answered sink;
  cache.Complete(cache.Join(key, "prod", 10s, false, sink.Sink(), nullptr).lead, Servers(1));
  Answered fresh;
  auto bypass = cache.Join(key, "prod", 10s, true, fresh.Sink(), nullptr);
  ASSERT_EQ(bypass.use, CacheUse::kBypass);
  ASSERT_TRUE(bypass.lead);
  cache.Complete(bypass.lead, Servers(2));
  EXPECT_EQ(fresh.use, CacheUse::kBypass);
  Answered later;
  EXPECT_EQ(cache.Join(key, "prod", 10s, false, later.Sink(), nullptr).stored->result["item_count"], 2);
}

TEST(AnswerCacheTest, ASharedCallIsGivenUpOnlyWhenEveryoneWaitingForItHas) {
  AnswerCache cache({ListRule(0s)}, 1 << 20);
  std::string key = CacheKey("prod", "", "Storm/Server/list", {});
  bool first_gone = false, second_gone = false;
  Answered one, two;
  auto lead = cache.Join(key, "prod", 0s, false, one.Sink(), [&] { return first_gone; });
  cache.Join(key, "prod", 0s, false, two.Sink(), [&] { return second_gone; });
  first_gone = true;  // the caller that started it left (its deadline)
  EXPECT_FALSE(lead.lead->Abandoned());
  second_gone = true;
  EXPECT_TRUE(lead.lead->Abandoned());
  cache.Complete(lead.lead, Servers(1));
  Answered three;
  EXPECT_EQ(cache.Join(key, "prod", 0s, false, three.Sink(), nullptr).use, CacheUse::kMiss) << "ttl 0s stored it";
}

TEST(AnswerCacheTest, AnswersExpireAndTheLeastRecentlyUsedLeaveFirst) {
  std::string big(300, 'x');
  // Room for three answers of about 330 bytes; one over 400 is never kept.
  AnswerCache::Clock::time_point now = AnswerCache::Clock::now();
  AnswerCache cache({ListRule(10s), {2, {"Utilities/Info/ping"}, {}, 50ms}}, 4000, "v1", [&] { return now; });
  auto key = [](int n) { return CacheKey("prod", "", "Storm/Server/details", {{"uniq_id", n}}); };
  auto store = [&](const std::string& k, nlohmann::json result, std::chrono::milliseconds ttl) {
    Answered sink;
    auto lead = cache.Join(k, "prod", ttl, false, sink.Sink(), nullptr);
    if (lead.lead) cache.Complete(lead.lead, ApiOutcome{false, std::move(result), {}});
  };
  for (int n = 0; n < 12; ++n) store(key(n), {{"notes", big}}, 10s);
  EXPECT_LE(cache.bytes(), 4000u);
  Answered probe;
  EXPECT_EQ(cache.Join(key(0), "prod", 10s, false, probe.Sink(), nullptr).use, CacheUse::kMiss) << "the oldest stayed";
  Answered newest;
  EXPECT_EQ(cache.Join(key(11), "prod", 10s, false, newest.Sink(), nullptr).use, CacheUse::kHit);

  std::string huge_key = key(99);
  store(huge_key, {{"notes", std::string(500, 'y')}}, 10s);
  Answered huge;
  EXPECT_EQ(cache.Join(huge_key, "prod", 10s, false, huge.Sink(), nullptr).use, CacheUse::kMiss)
      << "an answer over a tenth of the bound was kept";

  std::string ping = CacheKey("prod", "", "Utilities/Info/ping", {});
  store(ping, {{"ping", "success"}}, 50ms);
  now += 50ms;
  Answered stale;
  EXPECT_EQ(cache.Join(ping, "prod", 50ms, false, stale.Sink(), nullptr).use, CacheUse::kMiss) << "past its ttl";
}

TEST(AnswerCacheTest, FreshIsAskedByNoCacheNoStoreOrMaxAgeZero) {
  EXPECT_TRUE(AsksForFresh("no-cache"));
  EXPECT_TRUE(AsksForFresh("No-Cache"));
  EXPECT_TRUE(AsksForFresh("max-age=0, no-store"));
  EXPECT_FALSE(AsksForFresh(""));
  EXPECT_FALSE(AsksForFresh("max-age=60"));
  EXPECT_TRUE(AsksForFresh(" max-age=00"));
  EXPECT_FALSE(AsksForFresh("max-age=05")) << "five seconds old is fine";
  EXPECT_FALSE(AsksForFresh("max-stale=0, private")) << "other directives";
}

}  // namespace
}  // namespace stormbroker
