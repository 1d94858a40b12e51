#include "encoding/document_bounds.h"

#include <gtest/gtest.h>

#include "encoding/yaml_json.h"
#include "encoding/yaml_prescan.h"

namespace stormbroker {
namespace {

constexpr DocumentBounds kSmall{3, 10};

TEST(DocumentBoundsTest, JsonWithinTheBoundsIsParsedAsNlohmannWould) {
  std::string text = R"({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})";
  auto parsed = ParseBoundedJson(text, kSmall);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, nlohmann::json::parse(text));
  EXPECT_EQ(*ParseBoundedJson("17", kSmall), 17);
}

TEST(DocumentBoundsTest, JsonDeeperOrLargerThanTheBoundsIsRefused) {
  auto deep = ParseBoundedJson("[[[[1]]]]", kSmall);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than 3"), std::string::npos) << deep.status().message();
  EXPECT_TRUE(ParseBoundedJson("[[[1]]]", kSmall).ok());
  auto many = ParseBoundedJson("[1,2,3,4,5,6,7,8,9,10]", kSmall);  // 11 values with the array
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("more than 10 values"), std::string::npos);
  // A million levels: refused at the fourth, without recursion.
  std::string huge = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  EXPECT_FALSE(ParseBoundedJson(huge, kRequestBounds).ok());
}

TEST(DocumentBoundsTest, ASyntaxErrorNamesThePositionNotTheText) {
  auto bad = ParseBoundedJson(R"({"password": "hunter2" oops})", kRequestBounds);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("byte"), std::string::npos) << bad.status().message();
}

TEST(DocumentBoundsTest, YamlIsBoundedTheSameWay) {
  auto parsed = ParseYaml("a:\n  - 1\n  - 'x'\n  - {b: ~}\nc: \"007\"\n", kSmall);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, nlohmann::json::parse(R"({"a": [1, "x", {"b": null}], "c": "007"})"));
  auto deep = ParseYaml("a: [[[1]]]", kSmall);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than 3"), std::string::npos) << deep.status().message();
  EXPECT_FALSE(ParseYaml("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", kSmall).ok());
  EXPECT_FALSE(ParseYaml(std::string(100'000, '[') + std::string(100'000, ']'), kRequestBounds).ok());
}

TEST(DocumentBoundsTest, YamlAliasesAndComplexKeysAreRefused) {
  // A billion laughs grows from aliases: none are taken.
  auto laughs = ParseYaml("a: &a [x, x]\nb: [*a, *a]\n", kRequestBounds);
  ASSERT_FALSE(laughs.ok());
  EXPECT_NE(laughs.status().message().find("anchor"), std::string::npos) << laughs.status().message();
  EXPECT_FALSE(ParseYaml("? [a, b]\n: 1\n", kRequestBounds).ok());
  EXPECT_FALSE(ParseYaml("a: [1, 2\n", kRequestBounds).ok());
  EXPECT_EQ(*ParseYaml("", kRequestBounds), nullptr);
}

TEST(DocumentBoundsTest, CheckBoundsWalksAValueBuiltElsewhere) {
  nlohmann::json value = {{"a", {{"b", {1, 2}}}}};
  EXPECT_TRUE(CheckBounds(value, kSmall).ok());
  EXPECT_FALSE(CheckBounds({{"a", {{"b", {{"c", {1}}}}}}}, kSmall).ok());
  EXPECT_FALSE(CheckBounds(nlohmann::json(std::vector<int>(20, 1)), kSmall).ok());
}

// The pre-scan measures YAML before yaml-cpp queues a token per '[': it
// refuses what is too deep or too large, and nothing the parser accepts
// within the bounds.
TEST(DocumentBoundsTest, YamlIsMeasuredBeforeTheParserSeesIt) {
  EXPECT_TRUE(PrescanYaml("params: {a: [1, [2, [3]]], b: 'x[[[[', c: \"{{{\"} # [[[[\n", kRequestBounds).ok());
  EXPECT_TRUE(PrescanYaml("a: |\n  [[[[[[[[[[\n      [[[[[[\nb: x[y\n", {3, 100}).ok()) << "a block scalar is text";
  auto flow = PrescanYaml("params: {a: " + std::string(1 << 20, '[') + "\n", kRequestBounds);
  ASSERT_FALSE(flow.ok());
  EXPECT_NE(flow.message().find("nested deeper than 64"), std::string::npos) << flow.message();
  std::string compact = "a:\n";
  for (int i = 0; i < 200; ++i) compact += "- ";
  EXPECT_FALSE(PrescanYaml(compact + "x\n", kRequestBounds).ok());
  std::string indented = "a:\n";
  for (int i = 1; i < 100; ++i) indented += std::string(i, ' ') + "b:\n";
  EXPECT_FALSE(PrescanYaml(indented, kRequestBounds).ok());
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "- 1\n";
  auto values = PrescanYaml(many, kRequestBounds);
  ASSERT_FALSE(values.ok());
  EXPECT_NE(values.message().find("more than 10000 values"), std::string::npos);
  // What the parser takes within the bounds, the pre-scan takes too.
  for (const char* ok : {"a:\n  - 1\n  - 'x'\n  - {b: ~}\nc: \"007\"\n", "- - - x\n", "- [x]\n", "a: [[1]]\n",
                         "{a: [1, 2], b: {c: d}}\n", "k: 'it''s'\n", "k: \"a\\\"[\"\n"}) {
    EXPECT_TRUE(PrescanYaml(ok, {3, 10}).ok()) << ok;
    EXPECT_TRUE(ParseYaml(ok, {3, 10}).ok()) << ok;
  }
}

// Rendering YAML never fails on a string that is not UTF-8 (an answer may
// quote what a caller sent): such bytes become U+FFFD.
TEST(DocumentBoundsTest, YamlRendersBytesThatAreNotUtf8) {
  std::string rendered = RenderYaml({{"message", "not '\xff\xfe'"}, {"key\xc3", 1}});
  EXPECT_NE(rendered.find("\xef\xbf\xbd"), std::string::npos) << rendered;
  auto back = ParseYaml(rendered, kRequestBounds);
  ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << rendered;
}

}  // namespace
}  // namespace stormbroker
