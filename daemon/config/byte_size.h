// Sizes as people write them in the config: a whole number of bytes ("65536")
// or a whole number with a binary unit: "64KiB", "1MiB", "2GiB".
#pragma once

#include <cstddef>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

// Parses a size in bytes. The error message says what was expected.
Result<size_t> ParseByteSize(std::string_view text);

}  // namespace stormbroker
