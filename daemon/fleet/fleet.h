// Fleet mode: the brokers of a build farm share one token per account through
// etcd, so that the fleet logs in once per account (and an operator types one
// passcode per 12 hours for all of it).
//
// - Each broker holds an etcd lease (fleet.lease_ttl, kept alive every third
//   of it) and, for each account it holds the credentials of, a candidacy
//   key on that lease. The oldest candidacy leads (etcd's election recipe,
//   by create revision). When a leader dies its lease runs out, its key goes,
//   and the next oldest leads.
// - The leader's session logs in, keeps the token alive and renews it; each
//   change is published sealed (sealed_box.h) in a transaction that checks
//   the leader's candidacy still exists: a leader whose lease ran out cannot
//   overwrite its successor's token.
// - Every other broker watches the fleet's keys and its sessions follow the
//   published token: calls go straight to the API, no extra hop.
// - A new leader takes over the token it was following after one keep-alive:
//   no login, no passcode.
// - An operator's login on any machine reaches the leader sealed, on a
//   60-second lease, and is spent once (deleted in the transaction that takes
//   it); the answer comes back the same way.
// - Cut off from etcd (the lease could not be kept alive for its TTL), every
//   session is stranded: it keeps the token it has alive until its hard limit
//   and never logs in, since another machine may lead meanwhile. Back in
//   touch, the broker campaigns again.
//
// Keys: fleet_keys.h. Thread-safe; runs two threads of its own (the lease and
// the fleet's work; the watch).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "config/config.h"
#include "fleet/etcd_client.h"
#include "fleet/fleet_keys.h"
#include "tokens/account_session.h"
#include "tokens/fleet_link.h"

namespace stormbroker {

struct FleetStatus {
  std::string name;    // this machine
  bool connected = false;
  std::string detail;  // why not, when not
  std::vector<std::string> members;                 // brokers holding a lease now
  std::map<std::string, std::string> leaders;       // account -> machine ("" none)
};

class Fleet : public FleetLink {
 public:
  static Result<std::unique_ptr<Fleet>> Create(const FleetConfig& config);
  ~Fleet() override;

  // Before Start: the session of each account, and whether this machine
  // holds its credentials (and so may lead it).
  void Attach(const std::string& account, std::shared_ptr<AccountSession> session, bool may_lead);
  void Start();
  // Gives up this machine's leases (a successor leads at once) and stops.
  void Stop();
  FleetStatus Status() const;

  void Publish(const std::string& account, const FleetToken& token) override;
  void ForwardLogin(const std::string& account, Secret passcode, std::function<void(stormbroker::Status)> done) override;
  void ReportRejected(const std::string& account) override;
  std::chrono::milliseconds RetireGrace() const override { return retire_grace_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Account {
    std::shared_ptr<AccountSession> session;
    bool may_lead = false;
    std::string candidacy;          // our candidacy key (empty: none now)
    int64_t candidacy_revision = 0;  // its create revision
    bool leading = false;
    std::string leader;             // the machine that leads, as last seen
    std::string unpublished;        // sealed; to publish once etcd answers again
  };
  struct PendingLogin {
    std::function<void(stormbroker::Status)> done;
    Clock::time_point deadline;
  };

  Fleet(const FleetConfig& config, std::unique_ptr<EtcdClient> etcd);

  // --- the work thread
  void WorkLoop();
  void Post(std::function<void()> task);
  bool Join();         // a lease, our member key and candidacies
  void LoseLease(const std::string& why);
  // Every session stranded (once), and `why` in the status.
  void Strand(const std::string& why);
  void Elect(const std::string& account);  // who leads `account` now, and our role
  void PublishSealed(const std::string& account, std::string sealed);
  // `lease` is the request's: the answer lives as long as the request could.
  void TakeLogin(const std::string& account, const std::string& key, int64_t mod_revision, int64_t lease,
                 std::string sealed);
  void AnswerLogin(const std::string& id, int64_t lease, const stormbroker::Status& status);
  void ExpirePendingLogins();

  // --- the watch thread
  void WatchLoop();
  void OnKey(const mvccpb::KeyValue& kv, bool deleted);

  const std::string name_;
  const FleetKeys keys_;
  const Secret key_;
  const std::chrono::seconds lease_ttl_;
  const std::chrono::milliseconds retire_grace_;
  const std::unique_ptr<EtcdClient> etcd_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<std::function<void()>> tasks_;
  std::map<std::string, Account> accounts_;
  int64_t lease_ = 0;
  bool connected_ = false;
  bool stranded_ = false;  // the sessions were told they are cut off
  std::string detail_ = "not connected to etcd yet";
  Clock::time_point next_complaint_{};  // when a failure to join is worth a log line again
  std::set<std::string> members_;
  std::map<std::string, PendingLogin> pending_logins_;
  grpc::ClientContext* watch_context_ = nullptr;

  std::thread worker_;
  std::thread watcher_;
};

}  // namespace stormbroker
