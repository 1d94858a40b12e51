// Keeps each account's token across restarts, so a restart costs neither a
// login nor (with two-factor) a passcode. One file per account in the state
// directory, mode 0600, replaced atomically (write, fsync, rename, fsync dir):
// a crash leaves the old file or the new one, never half of one.
//
// The directory is not trusted blindly: it must belong to the daemon's user
// and be writable by nobody else. Each new file is created exclusively under
// a fresh random name (a file planted in advance is never written to or
// read back), and a file is loaded only when it is a regular file of the
// daemon's user with one link and no access for anyone else, opened without
// following a symbolic link.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

struct PersistedToken {
  std::string username;         // a token is kept only for the user it was made for
  Secret token;                 // empty: no token, only the passcode bookkeeping
  int64_t hard_deadline = 0;    // unix seconds
  int64_t inactivity_deadline = 0;
  int64_t last_totp_step = -1;  // never reuse a passcode step, even across restarts
};

class TokenStore {
 public:
  virtual ~TokenStore() = default;
  virtual Status Save(const std::string& account, const PersistedToken& state) = 0;
  virtual std::optional<PersistedToken> Load(const std::string& account) = 0;
  virtual Status Remove(const std::string& account) = 0;
};

class FileTokenStore : public TokenStore {
 public:
  // Creates `directory` (0700) if missing; refuses one that another user owns
  // or may write to, saying what to run.
  static Result<std::unique_ptr<FileTokenStore>> Open(const std::string& directory);

  Status Save(const std::string& account, const PersistedToken& state) override;
  // Nothing when there is no file, or it cannot be read, fails the checks
  // above or cannot be parsed (logged).
  std::optional<PersistedToken> Load(const std::string& account) override;
  Status Remove(const std::string& account) override;

 private:
  explicit FileTokenStore(std::string directory) : directory_(std::move(directory)) {}
  std::string PathOf(const std::string& account) const { return directory_ + "/" + account + ".token"; }

  std::string directory_;
};

}  // namespace stormbroker
