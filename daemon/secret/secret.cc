#include "secret/secret.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace stormbroker {

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_ = std::move(other.value_);
    other.Wipe();
  }
  return *this;
}

bool Secret::operator==(const Secret& other) const {
  // Constant-time over the common length: a token comparison must not leak
  // where the first difference is.
  if (value_.size() != other.value_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < value_.size(); ++i) diff |= value_[i] ^ other.value_[i];
  return diff == 0;
}

void Secret::Wipe() {
  // Wipe the whole buffer, not just the live characters: a shorter value
  // assigned earlier may have left a longer one's tail behind.
  if (value_.capacity() > 0) explicit_bzero(value_.data(), value_.capacity());
  value_.clear();
}

Result<Secret> ReadSecretFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return InvalidArgument("cannot read secret file " + path + ": " + strerror(errno));
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      explicit_bzero(buffer, sizeof buffer);
      Secret wipe_partial(std::move(content));
      return InvalidArgument("cannot read secret file " + path + ": " + strerror(err));
    }
    if (n == 0) break;
    if (content.size() + n > 64 * 1024) {
      close(fd);
      explicit_bzero(buffer, sizeof buffer);
      Secret wipe_partial(std::move(content));
      return InvalidArgument("secret file " + path + " is larger than 64 KiB; is it the right file?");
    }
    content.append(buffer, n);
  }
  close(fd);
  explicit_bzero(buffer, sizeof buffer);
  if (!content.empty() && content.back() == '\n') content.pop_back();
  if (!content.empty() && content.back() == '\r') content.pop_back();
  Secret secret(std::move(content));
  if (secret.empty()) return InvalidArgument("secret file " + path + " is empty");
  return secret;
}

}  // namespace stormbroker
