// Fleet mode: the brokers of a build farm share one token per account through
// etcd, so that the fleet logs in once per account (and an operator types one
// passcode per 12 hours for all of it).
//
// - Each broker holds an etcd lease (fleet.lease_ttl, kept alive every third
//   of it) and, for each account it holds the credentials of, a candidacy
//   key on that lease. The oldest candidacy leads (etcd's election recipe,
//   by create revision). When a leader dies its lease runs out, its key goes,
//   and the next oldest leads. A candidacy that vanishes while its lease
//   lives (someone deleted it) is put back: the machine campaigns again.
// - The leader's session logs in, keeps the token alive and renews it; each
//   change is published in a transaction that checks the leader's candidacy
//   still exists: a leader whose lease ran out cannot overwrite its
//   successor's token.
// - Every other broker watches the fleet's keys and its sessions follow the
//   published token: calls go straight to the API, no extra hop.
// - A new leader takes over the token it was following after one keep-alive:
//   no login, no passcode.
// - An operator's login on any machine reaches the leader on a 60-second
//   lease and is spent once (deleted in the transaction that takes it, and
//   its ID remembered); the answer comes back the same way.
// - Cut off from etcd (the lease could not be kept alive for its TTL), every
//   session is stranded: it keeps the token it has alive until its hard limit
//   and never logs in, since another machine may lead meanwhile. Back in
//   touch, the broker campaigns again.
// - Nothing is taken from etcd on its word: every value is a sealed record
//   bound to its key (fleet_records.h); a token record older than the one a
//   machine holds is refused (and the leader publishes its own again), stale
//   login requests and reports are refused, and reports of a rejected token
//   make the leader check it at most once per kRejectedCheckEvery.
//
// Keys: fleet_keys.h. Thread-safe; runs two threads of its own (the lease and
// the fleet's work; the watch). The implementation is in four files:
// fleet.cc (the lease, joining, stranding), fleet_leading.cc (elections,
// publishing, rejected tokens), fleet_logins.cc (forwarded logins) and
// fleet_watch.cc (the watch).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "fleet/fleet_keys.h"
#include "tokens/account_session.h"
#include "tokens/fleet_link.h"

namespace grpc {
class ClientContext;
}
namespace mvccpb {
class KeyValue;
}

namespace stormbroker {

class EtcdClient;

struct FleetStatus {
  std::string name;    // this machine
  bool connected = false;
  std::string detail;  // why not, when not
  std::vector<std::string> members;                 // brokers holding a lease now
  std::map<std::string, std::string> leaders;       // account -> machine ("" none)
};

class Fleet : public FleetLink {
 public:
  // At most one check of the token for reports of a rejected token, per account.
  static constexpr std::chrono::seconds kRejectedCheckEvery{10};

  static Result<std::unique_ptr<Fleet>> Create(const FleetConfig& config);
  ~Fleet() override;

  // Before Start: the session of each account, and whether this machine
  // holds its credentials (and so may lead it).
  void Attach(const std::string& account, std::shared_ptr<AccountSession> session, bool may_lead)
      ABSL_LOCKS_EXCLUDED(mutex_);
  void Start();
  // Gives up this machine's leases (a successor leads at once) and stops.
  void Stop() ABSL_LOCKS_EXCLUDED(mutex_);
  FleetStatus Status() const ABSL_LOCKS_EXCLUDED(mutex_);
  // Requests to etcd that failed since the start.
  uint64_t etcd_errors() const;

  void Publish(const std::string& account, const FleetToken& token) override ABSL_LOCKS_EXCLUDED(mutex_);
  void ForwardLogin(const std::string& account, Secret passcode, std::function<void(stormbroker::Status)> done) override
      ABSL_LOCKS_EXCLUDED(mutex_);
  void ReportRejected(const std::string& account) override ABSL_LOCKS_EXCLUDED(mutex_);
  std::chrono::milliseconds RetireGrace() const override { return retire_grace_; }

 private:
  using Clock = std::chrono::steady_clock;
  using WallClock = std::chrono::system_clock;
  struct Account {
    std::shared_ptr<AccountSession> session;
    bool may_lead = false;
    std::string candidacy;           // our candidacy key (empty: none now)
    int64_t candidacy_revision = 0;  // its create revision
    bool leading = false;
    std::string leader;              // the machine that leads, as last seen
    WallClock::time_point newest_token{};  // issued-at of the newest token record taken or published
    std::string published;           // the sealed record we published last (leading)
    bool unpublished = false;        // `published` waits for etcd to answer again
    Clock::time_point next_rejected_check{};
  };
  struct PendingLogin {
    std::function<void(stormbroker::Status)> done;
    Clock::time_point deadline;
  };

  Fleet(const FleetConfig& config, std::unique_ptr<EtcdClient> etcd);

  // --- the work thread (fleet.cc)
  void WorkLoop() ABSL_LOCKS_EXCLUDED(mutex_);
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mutex_);
  bool Join() ABSL_LOCKS_EXCLUDED(mutex_);  // a lease, our member key and candidacies
  void LoseLease(const std::string& why) ABSL_LOCKS_EXCLUDED(mutex_);
  // Every session stranded (once), and `why` in the status.
  void Strand(const std::string& why) ABSL_LOCKS_EXCLUDED(mutex_);
  // A value for `key`, sealed and issued now.
  std::string Sealed(const std::string& key, std::string_view body) const;

  // --- leading (fleet_leading.cc)
  // Puts this machine's candidacy for `account` on `lease`; false when etcd failed.
  bool Campaign(const std::string& account, int64_t lease) ABSL_LOCKS_EXCLUDED(mutex_);
  void Elect(const std::string& account) ABSL_LOCKS_EXCLUDED(mutex_);  // who leads now, and our role
  void PublishSealed(const std::string& account) ABSL_LOCKS_EXCLUDED(mutex_);
  // The account's token record is gone or unreadable: when this machine
  // leads it, its current record goes back at once.
  void RepublishIfLeading(const std::string& account) ABSL_LOCKS_EXCLUDED(mutex_);
  // A token record seen in etcd: adopted when it is newer than what this
  // machine holds; the leader puts its own back over an older one.
  void TakeToken(const std::string& account, const std::string& sealed) ABSL_LOCKS_EXCLUDED(mutex_);
  void TakeRejectedReport(const std::string& account, const std::string& sealed) ABSL_LOCKS_EXCLUDED(mutex_);

  // --- logins (fleet_logins.cc)
  // `lease` is the request's: the answer lives as long as the request could.
  void TakeLogin(const std::string& account, const std::string& key, int64_t mod_revision, int64_t lease,
                 std::string sealed) ABSL_LOCKS_EXCLUDED(mutex_);
  void AnswerLogin(const std::string& id, int64_t lease, const stormbroker::Status& status);
  void TakeLoginResult(const std::string& id, const std::string& sealed) ABSL_LOCKS_EXCLUDED(mutex_);
  void ExpirePendingLogins() ABSL_LOCKS_EXCLUDED(mutex_);

  // --- the watch thread (fleet_watch.cc)
  void WatchLoop() ABSL_LOCKS_EXCLUDED(mutex_);
  void OnKey(const mvccpb::KeyValue& kv, bool deleted) ABSL_LOCKS_EXCLUDED(mutex_);

  // A warning about what someone wrote to etcd, at most once a minute per
  // kind: an attacker with write access must not flood the log either.
  void WarnForged(const std::string& what) ABSL_LOCKS_EXCLUDED(mutex_);

  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stopping_ || !tasks_.empty(); }

  const std::string name_;
  const FleetKeys keys_;
  const Secret key_;
  const std::chrono::seconds lease_ttl_;
  const std::chrono::milliseconds retire_grace_;
  const std::unique_ptr<EtcdClient> etcd_;

  mutable absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Account> accounts_ ABSL_GUARDED_BY(mutex_);
  int64_t lease_ ABSL_GUARDED_BY(mutex_) = 0;
  bool connected_ ABSL_GUARDED_BY(mutex_) = false;
  bool stranded_ ABSL_GUARDED_BY(mutex_) = false;  // the sessions were told they are cut off
  std::string detail_ ABSL_GUARDED_BY(mutex_) = "not connected to etcd yet";
  Clock::time_point next_complaint_ ABSL_GUARDED_BY(mutex_){};  // when a failure to join is worth a log line again
  std::set<std::string> members_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, PendingLogin> pending_logins_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Clock::time_point> spent_logins_ ABSL_GUARDED_BY(mutex_);  // login ID -> when forgotten
  std::map<std::string, Clock::time_point> forged_warned_ ABSL_GUARDED_BY(mutex_);  // kind -> next warning
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(mutex_) = nullptr;

  std::thread worker_;
  std::thread watcher_;
};

}  // namespace stormbroker
