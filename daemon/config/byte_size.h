// Sizes as people write them in the config: a whole number of bytes ("65536")
// or a whole number with a binary unit: "64KiB", "1MiB", "2GiB".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

// Parses a size in bytes. The error message says what was expected.
Result<size_t> ParseByteSize(std::string_view text);

// The size as the config would write it, largest whole unit first:
// 65536 -> "64 KiB", 1536 -> "1536 bytes"; for messages that name a limit.
std::string FormatByteSize(size_t bytes);

}  // namespace stormbroker
