#include "struct_json.h"

#include <cmath>

namespace stormbroker {

nlohmann::json ValueToJson(const google::protobuf::Value& value) {
  using google::protobuf::Value;
  switch (value.kind_case()) {
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      return nullptr;
    case Value::kBoolValue:
      return value.bool_value();
    case Value::kStringValue:
      return value.string_value();
    case Value::kNumberValue: {
      double number = value.number_value();
      if (std::isfinite(number) && std::trunc(number) == number && std::fabs(number) < 9.007199254740992e15) {
        return static_cast<long long>(number);
      }
      return number;
    }
    case Value::kStructValue:
      return StructToJson(value.struct_value());
    case Value::kListValue: {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& item : value.list_value().values()) list.push_back(ValueToJson(item));
      return list;
    }
  }
  return nullptr;
}

nlohmann::json StructToJson(const google::protobuf::Struct& fields) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [key, value] : fields.fields()) object[key] = ValueToJson(value);
  return object;
}

void JsonToValue(const nlohmann::json& json, google::protobuf::Value* value) {
  switch (json.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      value->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case nlohmann::json::value_t::boolean:
      value->set_bool_value(json.get<bool>());
      break;
    case nlohmann::json::value_t::string:
      value->set_string_value(json.get<std::string>());
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      value->set_number_value(json.get<double>());
      break;
    case nlohmann::json::value_t::object:
      JsonToStruct(json, value->mutable_struct_value());
      break;
    case nlohmann::json::value_t::array: {
      auto* list = value->mutable_list_value();
      for (const auto& item : json) JsonToValue(item, list->add_values());
      break;
    }
    case nlohmann::json::value_t::binary:
      value->set_null_value(google::protobuf::NULL_VALUE);
      break;
  }
}

void JsonToStruct(const nlohmann::json& json, google::protobuf::Struct* fields) {
  if (!json.is_object()) return;
  for (const auto& [key, item] : json.items()) JsonToValue(item, &(*fields->mutable_fields())[key]);
}

}  // namespace stormbroker
