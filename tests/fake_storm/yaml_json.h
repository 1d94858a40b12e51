// Converts between YAML text and JSON values, for the API's .yaml encoding.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace fake_storm {

// Parses YAML text; plain scalars become numbers, booleans or null where
// they read as such, quoted ones stay strings. Nothing on a parse error.
std::optional<nlohmann::json> ParseYaml(const std::string& text);
std::string RenderYaml(const nlohmann::json& value);

}  // namespace fake_storm
