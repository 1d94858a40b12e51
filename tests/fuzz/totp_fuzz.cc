// Fuzzes passcode handling: base32 secrets of any shape, and codes for any
// step. A code is always 6 digits.
#include <cstring>
#include <string>

#include "secret/base32.h"
#include "tokens/totp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  int64_t step;
  std::memcpy(&step, data, sizeof step);
  std::string text(reinterpret_cast<const char*>(data + 8), size - 8);
  auto key = stormbroker::DecodeBase32(text);
  std::string code = stormbroker::TotpCode(key.ok() ? *key : text, step);
  if (code.size() != 6 || code.find_first_not_of("0123456789") != std::string::npos) __builtin_trap();
  return 0;
}
