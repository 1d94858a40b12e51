// A secret value (password, token, TOTP secret) that wipes its memory when it
// dies and cannot be printed: it has no stream or fmt operator, so passing one
// to a logger fails to compile. Reveal() is the one way to read it; call sites
// of Reveal() are the places to audit.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  ~Secret() { Wipe(); }

  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.Wipe(); }
  Secret& operator=(Secret&& other) noexcept;

  // The secret itself. The view's data() is NUL-terminated, for C APIs.
  std::string_view Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  // A copy for another owner (e.g. handing the current token to a request).
  Secret Clone() const { return Secret(value_); }
  bool operator==(const Secret& other) const;

 private:
  void Wipe();
  std::string value_;
};

// Reads a secret from a file: the whole content with one trailing newline (or
// CRLF) removed. Fails when the file cannot be read or is empty, naming the
// path and never the content.
Result<Secret> ReadSecretFile(const std::string& path);

}  // namespace stormbroker
