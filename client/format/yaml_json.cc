#include "format/yaml_json.h"

#include <cctype>

#include <yaml-cpp/yaml.h>

namespace stormbroker {
namespace {

// What an unquoted scalar means: null, a boolean, a number, or else a string.
nlohmann::json PlainScalar(const std::string& text) {
  if (text == "~" || text == "null" || text == "Null" || text == "NULL" || text.empty()) return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  nlohmann::json number = nlohmann::json::parse(text, nullptr, false);
  if (!number.is_discarded() && number.is_number()) return number;
  return text;
}

nlohmann::json ScalarToJson(const YAML::Node& node) {
  if (node.Tag() == "!") return node.Scalar();  // quoted: a string whatever it looks like
  return PlainScalar(node.Scalar());
}

// Whether a string can be written unquoted and read back as the same string.
bool SafeUnquoted(const std::string& text) {
  if (text.empty() || !PlainScalar(text).is_string()) return false;
  if (std::isspace(static_cast<unsigned char>(text.front())) || std::isspace(static_cast<unsigned char>(text.back()))) {
    return false;
  }
  if (std::string("-?:,[]{}#&*!|>'\"%@`").find(text.front()) != std::string::npos) return false;
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f || c == ':' || c == '#') return false;
  }
  return true;
}

nlohmann::json NodeToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& item : node) list.push_back(NodeToJson(item));
      return list;
    }
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = NodeToJson(entry.second);
      return object;
    }
    default:
      return nullptr;
  }
}

void Emit(YAML::Emitter& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::string:
      if (SafeUnquoted(value.get<std::string>())) {
        out << value.get<std::string>();
      } else {
        out << YAML::DoubleQuoted << value.get<std::string>();
      }
      break;
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << value.dump();
  }
}

}  // namespace

std::optional<nlohmann::json> ParseYaml(const std::string& text) {
  try {
    return NodeToJson(YAML::Load(text));
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
}

std::string RenderYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace stormbroker
