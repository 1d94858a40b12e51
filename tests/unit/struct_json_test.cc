#include "struct_json.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(StructJsonTest, RoundTripsEveryKind) {
  nlohmann::json original = {{"s", "text"}, {"i", 42},      {"neg", -7},
                             {"f", 1.5},    {"b", true},    {"n", nullptr},
                             {"list", {1, "two", false}},   {"nested", {{"deep", {{"x", 1}}}}}};
  google::protobuf::Struct fields;
  JsonToStruct(original, &fields);
  EXPECT_EQ(StructToJson(fields), original);
}

TEST(StructJsonTest, IntegersStayIntegers) {
  google::protobuf::Value value;
  JsonToValue(1'700'000'000, &value);
  EXPECT_TRUE(ValueToJson(value).is_number_integer());
  EXPECT_EQ(ValueToJson(value), 1'700'000'000);
}

TEST(StructJsonTest, NonObjectLeavesStructEmpty) {
  google::protobuf::Struct fields;
  JsonToStruct(nlohmann::json::array({1, 2}), &fields);
  EXPECT_EQ(fields.fields_size(), 0);
}

}  // namespace
}  // namespace stormbroker
