#include "tokens/totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

namespace stormbroker {

std::string TotpCode(std::string_view key, int64_t step, int digits) {
  unsigned char counter[8];
  for (int i = 7; i >= 0; --i) {
    counter[i] = static_cast<unsigned char>(step & 0xff);
    step >>= 8;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), counter, sizeof counter, mac, &mac_length);
  // Dynamic truncation (RFC 4226 section 5.3).
  int offset = mac[mac_length - 1] & 0x0f;
  uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) | (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                    (static_cast<uint32_t>(mac[offset + 2]) << 8) | static_cast<uint32_t>(mac[offset + 3]);
  explicit_bzero(mac, sizeof mac);
  uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  std::string code = std::to_string(binary % modulus);
  return std::string(digits - code.size(), '0') + code;
}

}  // namespace stormbroker
