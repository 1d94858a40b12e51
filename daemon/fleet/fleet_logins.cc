// Fleet mode: an operator's login typed on a machine that does not lead the
// account, carried to the leader through etcd and answered the same way
// (see fleet.h).
#include <openssl/rand.h>

#include <charconv>

#include <spdlog/spdlog.h>

#include "fleet/etcd_client.h"
#include "fleet/fleet.h"
#include "fleet/fleet_records.h"

namespace stormbroker {
namespace {

std::string RandomId() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "";
  std::string id;
  for (unsigned char b : bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    id += kDigits[b >> 4];
    id += kDigits[b & 15];
  }
  return id;
}

std::string EncodeAnswer(const Status& status) {
  return std::to_string(static_cast<int>(status.code())) + " " + status.message();
}

Status DecodeAnswer(std::string_view text) {
  int code = 0;
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), code);
  if (parsed.ec != std::errc() || code < 0 || code > static_cast<int>(StatusCode::kInternal)) {
    return Internal("the fleet's leader answered the login with something unreadable");
  }
  std::string message = parsed.ptr < text.data() + text.size() ? std::string(parsed.ptr + 1) : std::string();
  return Status(static_cast<StatusCode>(code), message);
}

}  // namespace

void Fleet::ForwardLogin(const std::string& account, Secret passcode, std::function<void(stormbroker::Status)> done) {
  auto task = [this, account, done, passcode = std::make_shared<Secret>(std::move(passcode))] {
    std::string leader;
    bool connected;
    {
      absl::MutexLock lock(&mutex_);
      connected = connected_;
      leader = accounts_[account].leader;
    }
    if (!connected) return done(Unavailable("this machine is cut off from the fleet's etcd; run stormctl login on "
                                            "another machine, or wait for etcd"));
    if (leader.empty()) {
      return done(Unavailable("no machine of the fleet leads account " + account +
                              " now (none that holds its credentials is running)"));
    }
    std::string id = RandomId();
    if (id.empty()) return done(Internal("no random bytes for a login's ID"));
    // The ID inside the seal as well as in the key: a request copied under
    // another ID does not open.
    std::string key = keys_.LoginRequests(account) + id;
    std::string body = id + "\n";
    body.append(passcode->Reveal());
    auto sealed = SealRecord(key_, key, WallClock::now(), body);
    Secret wiped(std::move(body));
    if (!sealed.ok()) return done(Internal("cannot seal the passcode: " + sealed.status().message()));
    auto lease = etcd_->Grant(kRecordLifetime);
    if (!lease.ok()) return done(Unavailable(lease.status().message()));
    {
      absl::MutexLock lock(&mutex_);
      pending_logins_[id] = {done, Clock::now() + kRecordLifetime};
    }
    if (auto put = etcd_->Put(key, *sealed, *lease); !put.ok()) {
      {
        absl::MutexLock lock(&mutex_);
        pending_logins_.erase(id);
      }
      return done(Unavailable(put.status().message()));
    }
    spdlog::info("fleet: account {}: an operator's login goes to the leader, {}", account, leader);
  };
  Post(std::move(task));
}

void Fleet::TakeLogin(const std::string& name, const std::string& key, int64_t mod_revision, int64_t lease,
                      std::string sealed) {
  // Spent once: only the transaction that deletes the request may act on it.
  etcdserverpb::TxnRequest txn;
  auto* unchanged = txn.add_compare();
  unchanged->set_key(key);
  unchanged->set_target(etcdserverpb::Compare::MOD);
  unchanged->set_result(etcdserverpb::Compare::EQUAL);
  unchanged->set_mod_revision(mod_revision);
  txn.add_success()->mutable_request_delete_range()->set_key(key);
  auto taken = etcd_->Txn(txn);
  if (!taken.ok() || !taken->succeeded()) return;
  std::string id = key.substr(keys_.LoginRequests(name).size());
  auto record = OpenRecord(key_, key, sealed);
  std::string_view body = record.ok() ? record->body.Reveal() : std::string_view();
  size_t newline = body.find('\n');
  bool genuine = record.ok() && newline != std::string_view::npos && body.substr(0, newline) == id &&
                 IsFresh(record->issued, WallClock::now());
  std::shared_ptr<AccountSession> session;
  {
    absl::MutexLock lock(&mutex_);
    // A request played back under its own ID after it was spent.
    auto now = Clock::now();
    for (auto it = spent_logins_.begin(); it != spent_logins_.end();) {
      it = it->second < now ? spent_logins_.erase(it) : std::next(it);
    }
    if (genuine && !spent_logins_.emplace(id, now + 2 * kRecordLifetime).second) genuine = false;
    session = accounts_[name].session;
  }
  if (!genuine || !session) {
    WarnForged("a login request for account " + name);
    return;  // no answer: a forger has nothing to wait for, and the real requester times out
  }
  spdlog::info("fleet: account {}: logging in for an operator on another machine", name);
  session->Login(Secret(std::string(body.substr(newline + 1))), [this, id, lease](stormbroker::Status status) {
    Post([this, id, lease, status] { AnswerLogin(id, lease, status); });
  });
}

void Fleet::AnswerLogin(const std::string& id, int64_t lease, const stormbroker::Status& status) {
  std::string key = keys_.LoginResult(id);
  if (auto put = etcd_->Put(key, Sealed(key, EncodeAnswer(status)), lease); !put.ok()) {
    spdlog::warn("fleet: could not answer a forwarded login: {}", put.status().message());
  }
}

void Fleet::TakeLoginResult(const std::string& id, const std::string& sealed) {
  auto record = OpenRecord(key_, keys_.LoginResult(id), sealed);
  std::function<void(stormbroker::Status)> done;
  {
    absl::MutexLock lock(&mutex_);
    auto it = pending_logins_.find(id);
    if (it == pending_logins_.end()) return;
    if (!record.ok() || !IsFresh(record->issued, WallClock::now())) {
      // Not the leader's: keep waiting for the real answer (or the deadline).
    } else {
      done = std::move(it->second.done);
      pending_logins_.erase(it);
    }
  }
  if (!done) return WarnForged("an answer to a forwarded login");
  done(DecodeAnswer(record->body.Reveal()));
}

void Fleet::ExpirePendingLogins() {
  std::vector<std::function<void(stormbroker::Status)>> expired;
  {
    absl::MutexLock lock(&mutex_);
    auto now = Clock::now();
    for (auto it = pending_logins_.begin(); it != pending_logins_.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      expired.push_back(std::move(it->second.done));
      it = pending_logins_.erase(it);
    }
  }
  for (auto& done : expired) {
    done(Unavailable("the fleet's leader did not answer the login within " + std::to_string(kRecordLifetime.count()) +
                     " s"));
  }
}

}  // namespace stormbroker
