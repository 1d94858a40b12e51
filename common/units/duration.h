// Durations as people write them in the config: an integer number of seconds
// ("90") or a number with a unit: "500ms", "30s", "15m", "1h", "1.5h".
#pragma once

#include <chrono>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

// Parses a non-negative duration. The error message says what was expected.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace stormbroker
