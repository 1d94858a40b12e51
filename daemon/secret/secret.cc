#include "secret/secret.h"

#include "secret/locked_memory.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace stormbroker {

Secret::Secret(const char* data, size_t size) : size_(size) {
  if (size_ == 0) return;
  data_ = static_cast<char*>(AllocateLocked(size_ + 1));
  memcpy(data_, data, size_);
  data_[size_] = '\0';
}

Secret::Secret(std::string value) : Secret(value.data(), value.size()) {
  explicit_bzero(value.data(), value.capacity());
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

bool Secret::operator==(const Secret& other) const {
  // No early exit: a token comparison must not leak where they differ.
  if (size_ != other.size_) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < size_; ++i) diff |= data_[i] ^ other.data_[i];
  return diff == 0;
}

void Secret::Reset() {
  if (data_) ReleaseLocked(data_, size_ + 1);
  data_ = nullptr;
  size_ = 0;
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
