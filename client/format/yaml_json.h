// Converts between YAML text and JSON values: the API's .yaml encoding, and
// stormctl's YAML params and output.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace stormbroker {

// Parses YAML text; plain scalars become numbers, booleans or null where
// they read as such, quoted ones stay strings. Nothing on a parse error.
std::optional<nlohmann::json> ParseYaml(const std::string& text);
std::string RenderYaml(const nlohmann::json& value);

}  // namespace stormbroker
