// Fuzzes the duration parser: any text gives a non-negative duration of at
// most a year, or an error.
#include <chrono>
#include <string>

#include "units/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = stormbroker::ParseDuration(text);
  if (parsed.ok() && (parsed->count() < 0 || *parsed > std::chrono::hours(24 * 366))) __builtin_trap();
  return 0;
}
