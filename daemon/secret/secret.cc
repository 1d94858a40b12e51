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

Result<Secret> ReadSecretFrom(int fd, const std::string& path) {
  std::string content;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      explicit_bzero(buffer, sizeof buffer);
      Secret wipe_partial(std::move(content));
      return InvalidArgument("cannot read secret file " + path + ": " + strerror(err));
    }
    if (n == 0) break;
    if (content.size() + n > 64 * 1024) {
      explicit_bzero(buffer, sizeof buffer);
      Secret wipe_partial(std::move(content));
      return InvalidArgument("secret file " + path + " is larger than 64 KiB; is it the right file?");
    }
    content.append(buffer, n);
  }
  explicit_bzero(buffer, sizeof buffer);
  if (!content.empty() && content.back() == '\n') content.pop_back();
  if (!content.empty() && content.back() == '\r') content.pop_back();
  Secret secret(std::move(content));
  if (secret.empty()) return InvalidArgument("secret file " + path + " is empty");
  return secret;
}

Result<Secret> ReadSecretFile(const std::string& path, std::string* warning) {
  // O_NONBLOCK: opening a FIFO nobody writes to must not hang the daemon.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return InvalidArgument("cannot read secret file " + path + ": " + strerror(errno));
  }
  struct stat st {};
  Status refused;
  if (fstat(fd, &st) != 0) {
    refused = InvalidArgument("cannot inspect secret file " + path + ": " + strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    refused = InvalidArgument("secret file " + path + " is not a regular file");
  } else if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
    refused = InvalidArgument("secret file " + path + " is " +
                              ((st.st_mode & S_IROTH) ? "readable" : "writable") +
                              " by other users: run chmod go-w,o-r " + path);
  }
  if (!refused.ok()) {
    close(fd);
    return refused;
  }
  if ((st.st_mode & S_IRGRP) && warning) {
    *warning = "secret file " + path + " is readable by its group; chmod g-r " + path + " unless that is meant";
  }
  Result<Secret> secret = ReadSecretFrom(fd, path);
  close(fd);
  return secret;
}

}  // namespace stormbroker
