// Renders an API result for a person to read.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace stormbroker {

// A list result (an object with an "items" array of objects) becomes one row
// per item with a column per key (in key order, as JSON objects keep them here);
// anything
// else becomes KEY  VALUE lines. Nested values show as compact JSON; a cell
// longer than 40 characters is cut with "...".
std::string RenderTable(const nlohmann::json& result);

}  // namespace stormbroker
