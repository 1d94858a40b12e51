// A secret value (password, token, TOTP secret, passcode) that lives in
// locked memory kept out of core dumps, wipes itself when it dies, and cannot
// be printed: it has no stream or fmt operator, so passing one to a logger
// fails to compile. Reveal() is the one way to read it; its call sites are
// the places to audit.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace stormbroker {

class Secret {
 public:
  Secret() = default;
  // Takes the value and wipes the string it came in.
  explicit Secret(std::string value);
  ~Secret() { Reset(); }

  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  Secret& operator=(Secret&& other) noexcept;

  // The secret itself. The view's data() is NUL-terminated, for C APIs.
  std::string_view Reveal() const { return data_ ? std::string_view(data_, size_) : std::string_view(""); }
  bool empty() const { return size_ == 0; }
  // A copy for another owner (e.g. handing the current token to a request).
  Secret Clone() const { return Secret(data_, size_); }
  // Constant time in the length of the shorter value.
  bool operator==(const Secret& other) const;

 private:
  Secret(const char* data, size_t size);
  void Reset();

  char* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a secret from a file: the whole content with one trailing newline (or
// CRLF) removed. The file is opened without blocking (a FIFO or device cannot
// stall the daemon) and must be a regular file that other users can neither
// read nor write, and the group cannot write (the message gives the chmod to
// run). A group-readable file is accepted with `*warning` set, when given.
// Fails when the file cannot be read or is empty, naming the path and never
// the content.
Result<Secret> ReadSecretFile(const std::string& path, std::string* warning = nullptr);

// Reads the rest of an open regular file as a secret (the same trimming and
// size bound as ReadSecretFile); `path` is only for messages.
Result<Secret> ReadSecretFrom(int fd, const std::string& path);

}  // namespace stormbroker
