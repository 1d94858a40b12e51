#include "observe/json_line.h"

#include <gtest/gtest.h>

#include <random>

#include <nlohmann/json.hpp>

namespace stormbroker {
namespace {

nlohmann::json Parse(const std::string& text) { return nlohmann::json::parse(text); }  // throws on bad JSON or UTF-8

std::string RoundTrip(const std::string& value) {
  JsonLine line;
  return Parse(line.Add("v", value).Finish())["v"].get<std::string>();
}

TEST(JsonLineTest, WritesMembersOfEachKindInOrder) {
  JsonLine line;
  std::string text = line.Add("name", "prod")
                         .Add("uid", 1000LL)
                         .Add("params", std::vector<std::string>{"a", "b"})
                         .Add("none", std::vector<std::string>{})
                         .AddThousandths("ms", 1.23456)
                         .Finish();
  EXPECT_EQ(text, R"({"name":"prod","uid":1000,"params":["a","b"],"none":[],"ms":1.234})");
  EXPECT_EQ(line.Finish(), "{}") << "Finish leaves an empty object behind";
}

TEST(JsonLineTest, ThousandthsAreCutNotRounded) {
  auto ms = [](double value) {
    JsonLine line;
    return Parse(line.AddThousandths("ms", value).Finish())["ms"].get<double>();
  };
  EXPECT_EQ(ms(0.5), 0.5);
  EXPECT_EQ(ms(12), 12);
  EXPECT_EQ(ms(0.0009), 0);
  EXPECT_EQ(ms(2.9999), 2.999);
}

TEST(JsonLineTest, EscapedStringsComeBackUnchanged) {
  for (std::string value : {std::string("plain"), std::string("quote \" and back\\slash"),
                            std::string("lines\nand\ttabs\r"), std::string("bell \x07 and nul ") + '\0' + "!",
                            std::string("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"), std::string("\x7F")}) {
    EXPECT_EQ(RoundTrip(value), value);
  }
}

TEST(JsonLineTest, InvalidUtf8BecomesTheReplacementCharacter) {
  const std::string replacement = "\xEF\xBF\xBD";
  for (std::string bad : {"\xFF", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80"}) {
    std::string back = RoundTrip("a" + bad + "z");
    EXPECT_EQ(back.front(), 'a');
    EXPECT_EQ(back.back(), 'z');
    EXPECT_NE(back.find(replacement), std::string::npos) << "for bytes of length " << bad.size();
  }
}

TEST(JsonLineTest, AnyBytesMakeALineThatParses) {
  std::mt19937 random(42);
  for (int i = 0; i < 20000; ++i) {
    std::string value(random() % 12, '\0');
    for (char& c : value) c = static_cast<char>(random());
    JsonLine line;
    std::string text = line.Add(value, value).Finish();
    EXPECT_NO_THROW(Parse(text)) << ::testing::PrintToString(value);
  }
}

}  // namespace
}  // namespace stormbroker
