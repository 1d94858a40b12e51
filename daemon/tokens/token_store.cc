#include "tokens/token_store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <random>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno("cannot write " + path));
    written += n;
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<FileTokenStore>> FileTokenStore::Open(const std::string& directory) {
  if (mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(Errno("cannot create the state directory " + directory));
  }
  struct stat st {};
  if (lstat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return FailedPrecondition("state_dir " + directory + " is not a directory");
  }
  if (st.st_uid != geteuid()) {
    return FailedPrecondition("state_dir " + directory + " belongs to uid " + std::to_string(st.st_uid) +
                              ", not to the daemon's user (uid " + std::to_string(geteuid()) + "): run chown " +
                              std::to_string(geteuid()) + " " + directory);
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return FailedPrecondition("state_dir " + directory +
                              " is writable by other users, who could swap its tokens: run chmod 700 " + directory);
  }
  return std::unique_ptr<FileTokenStore>(new FileTokenStore(directory));
}

Status FileTokenStore::Save(const std::string& account, const PersistedToken& state) {
  nlohmann::json doc = {{"version", 1},
                        {"username", state.username},
                        {"token", std::string(state.token.Reveal())},
                        {"hard_deadline", state.hard_deadline},
                        {"inactivity_deadline", state.inactivity_deadline},
                        {"last_totp_step", state.last_totp_step}};
  std::string text = doc.dump();
  doc["token"] = "";
  std::string path = PathOf(account);
  // A fresh name, created exclusively: nothing planted beforehand is used.
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    char suffix[24];
    snprintf(suffix, sizeof suffix, ".%016llx.tmp", static_cast<unsigned long long>(random()));
    temp = path + suffix;
    fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    explicit_bzero(text.data(), text.size());
    return Unavailable(Errno("cannot write " + temp));
  }
  Status status = WriteAll(fd, text, temp);
  explicit_bzero(text.data(), text.size());
  if (status.ok() && fsync(fd) != 0) status = Unavailable(Errno("cannot sync " + temp));
  close(fd);
  if (status.ok() && rename(temp.c_str(), path.c_str()) != 0) status = Unavailable(Errno("cannot replace " + path));
  if (!status.ok()) {
    unlink(temp.c_str());
    return status;
  }
  int dir = open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);  // make the rename itself durable
    close(dir);
  }
  return Status::Ok();
}

std::optional<PersistedToken> FileTokenStore::Load(const std::string& account) {
  std::string path = PathOf(account);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno != ENOENT) spdlog::warn("account {}: not using the state file {}: {}", account, path, strerror(errno));
    return std::nullopt;
  }
  struct stat st {};
  std::string refused;
  if (fstat(fd, &st) != 0) refused = strerror(errno);
  else if (!S_ISREG(st.st_mode)) refused = "it is not a regular file";
  else if (st.st_uid != geteuid()) refused = "it belongs to uid " + std::to_string(st.st_uid);
  else if (st.st_nlink != 1) refused = "it has " + std::to_string(st.st_nlink) + " links";
  else if (st.st_mode & 077) refused = "other users have access to it";
  if (!refused.empty()) {
    close(fd);
    spdlog::warn("account {}: not using the state file {}: {}", account, path, refused);
    return std::nullopt;
  }
  auto content = ReadSecretFrom(fd, path);
  close(fd);
  if (!content.ok()) {
    spdlog::warn("account {}: {}", account, content.status().message());
    return std::nullopt;
  }
  nlohmann::json doc = nlohmann::json::parse(content->Reveal(), nullptr, false);
  try {
    if (doc.is_discarded() || doc.value("version", 0) != 1) throw std::runtime_error("unknown format");
    PersistedToken state;
    state.username = doc.at("username").get<std::string>();
    state.token = Secret(doc.at("token").get<std::string>());
    state.hard_deadline = doc.at("hard_deadline").get<int64_t>();
    state.inactivity_deadline = doc.at("inactivity_deadline").get<int64_t>();
    state.last_totp_step = doc.at("last_totp_step").get<int64_t>();
    if (doc.contains("token")) doc["token"] = "";
    return state;
  } catch (const std::exception&) {
    spdlog::warn("account {}: ignoring unreadable state file {}", account, path);
    if (doc.is_object() && doc.contains("token")) doc["token"] = "";
    return std::nullopt;
  }
}

Status FileTokenStore::Remove(const std::string& account) {
  if (unlink(PathOf(account).c_str()) != 0 && errno != ENOENT) {
    return Unavailable(Errno("cannot remove " + PathOf(account)));
  }
  return Status::Ok();
}

}  // namespace stormbroker
