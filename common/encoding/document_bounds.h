// How much structure a document from someone else may have before anything
// recursive (a copy, a conversion, a destructor) walks it: its nesting depth
// and its number of values. The parsers here build the value with no
// recursion of their own and stop at the first bound crossed, so a 200 KB
// document nested 100,000 deep, or a megabyte of tiny values, costs no more
// than its bound.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace stormbroker {

struct DocumentBounds {
  int max_depth = 64;         // arrays and objects (maps, sequences) inside each other
  size_t max_values = 10000;  // every scalar, array and object counts one
};

// What a caller may send the broker as an API call's params (every door),
// and what the broker accepts from the API in an answer (depth only: an
// answer's size is bounded by upstream.max_response_size).
inline constexpr DocumentBounds kRequestBounds{};

// Parses JSON text. INVALID_ARGUMENT when it is not JSON or crosses
// `bounds`, saying which.
Result<nlohmann::json> ParseBoundedJson(std::string_view text, const DocumentBounds& bounds);

// Whether `value` (built elsewhere, e.g. from a protobuf Struct) is within
// `bounds`; walks it without recursion.
Status CheckBounds(const nlohmann::json& value, const DocumentBounds& bounds);

}  // namespace stormbroker
