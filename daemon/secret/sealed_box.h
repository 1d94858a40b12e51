// What a fleet's brokers write to etcd is sealed: AES-256-GCM under the key
// the fleet's machines share, so that etcd (its members, its backups, anyone
// who can read its keys) never sees a token or a passcode. The `context`
// (fleet prefix, kind of value, account) is bound in as associated data: a
// sealed value copied under another key, account or fleet does not open.
//
// Format: "sb1" | 12-byte random nonce | ciphertext | 16-byte tag.
#pragma once

#include <string>
#include <string_view>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

inline constexpr size_t kFleetKeyBytes = 32;

// Reads the fleet key: a file (checked as any secret file) holding 32 bytes,
// raw or as 64 hexadecimal digits (`openssl rand -hex 32`).
Result<Secret> ReadFleetKey(const std::string& path);

// `key` must hold kFleetKeyBytes bytes.
Result<std::string> Seal(const Secret& key, std::string_view context, std::string_view plaintext);
// INVALID_ARGUMENT when `sealed` is malformed, was sealed under another key
// or context, or was altered.
Result<Secret> Unseal(const Secret& key, std::string_view context, std::string_view sealed);

}  // namespace stormbroker
