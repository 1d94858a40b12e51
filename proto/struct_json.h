// Conversions between protobuf's JSON-like types and nlohmann::json.
// Numbers in protobuf are doubles: integral values come back as JSON integers,
// and integers beyond 2^53 lose precision (a limit of google.protobuf.Value).
#pragma once

#include <google/protobuf/struct.pb.h>

#include <nlohmann/json.hpp>

namespace stormbroker {

nlohmann::json ValueToJson(const google::protobuf::Value& value);
nlohmann::json StructToJson(const google::protobuf::Struct& fields);
void JsonToValue(const nlohmann::json& json, google::protobuf::Value* value);
// `json` must be an object; anything else leaves `fields` empty.
void JsonToStruct(const nlohmann::json& json, google::protobuf::Struct* fields);

}  // namespace stormbroker
