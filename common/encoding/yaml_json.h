// Converts between YAML text and JSON values: the API's .yaml encoding, and
// stormctl's YAML params and output.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "encoding/document_bounds.h"
#include "util/status.h"

namespace stormbroker {

// Parses the first YAML document in `text`, within `bounds` (checked as the
// parser goes, so a deep or huge document stops at its bound). Plain
// scalars become numbers, booleans or null where they read as such, quoted
// ones stay strings. Anchors and aliases are refused: an alias is a copy,
// and copies are how a small document grows large. INVALID_ARGUMENT says
// what is wrong (never quoting the text).
Result<nlohmann::json> ParseYaml(std::string_view text, const DocumentBounds& bounds = kRequestBounds);
std::string RenderYaml(const nlohmann::json& value);

}  // namespace stormbroker
