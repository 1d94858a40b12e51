#include "fleet/fleet.h"

#include <spdlog/spdlog.h>

#include "fleet/etcd_client.h"
#include "fleet/fleet_records.h"

namespace stormbroker {
namespace {

// Between attempts to reach etcd while cut off from it.
constexpr std::chrono::milliseconds kRetry(500);

std::string Hex(int64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

Result<std::unique_ptr<Fleet>> Fleet::Create(const FleetConfig& config) {
  auto etcd = EtcdClient::Connect(config);
  if (!etcd.ok()) return etcd.status();
  return std::unique_ptr<Fleet>(new Fleet(config, std::move(etcd).value()));
}

Fleet::Fleet(const FleetConfig& config, std::unique_ptr<EtcdClient> etcd)
    : name_(config.name),
      keys_{config.prefix},
      key_(config.sealing_key.Clone()),
      lease_ttl_(std::chrono::duration_cast<std::chrono::seconds>(config.lease_ttl)),
      retire_grace_(config.retire_grace),
      etcd_(std::move(etcd)) {}

Fleet::~Fleet() { Stop(); }

void Fleet::Attach(const std::string& account, std::shared_ptr<AccountSession> session, bool may_lead) {
  absl::MutexLock lock(&mutex_);
  Account& entry = accounts_[account];
  entry.session = std::move(session);
  entry.may_lead = may_lead;
}

void Fleet::Start() {
  worker_ = std::thread([this] { WorkLoop(); });
  watcher_ = std::thread([this] { WatchLoop(); });
}

void Fleet::Stop() {
  std::map<std::string, PendingLogin> pending;
  int64_t lease;
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    if (watch_context_) watch_context_->TryCancel();
    pending.swap(pending_logins_);
  }
  if (worker_.joinable()) worker_.join();
  if (watcher_.joinable()) watcher_.join();
  for (auto& [id, login] : pending) login.done(Unavailable("the broker is shutting down"));
  {
    absl::MutexLock lock(&mutex_);
    lease = std::exchange(lease_, 0);
  }
  if (lease != 0 && etcd_->Revoke(lease).ok()) {
    spdlog::info("fleet: gave up this machine's candidacies; the next machine leads at once");
  }
}

FleetStatus Fleet::Status() const {
  absl::MutexLock lock(&mutex_);
  FleetStatus status;
  status.name = name_;
  status.connected = connected_;
  status.detail = detail_;
  status.members.assign(members_.begin(), members_.end());
  for (const auto& [name, account] : accounts_) status.leaders[name] = account.leader;
  return status;
}

uint64_t Fleet::etcd_errors() const { return etcd_->errors(); }

void Fleet::Post(std::function<void()> task) {
  absl::MutexLock lock(&mutex_);
  if (!stopping_) tasks_.push_back(std::move(task));
}

std::string Fleet::Sealed(const std::string& key, std::string_view body) const {
  auto sealed = SealRecord(key_, key, WallClock::now(), body);
  // Sealing fails only when OpenSSL cannot get random bytes: etcd then
  // refuses the empty value's reader, as it would a forged one.
  if (!sealed.ok()) spdlog::error("fleet: cannot seal a value for etcd: {}", sealed.status().message());
  return sealed.ok() ? std::move(sealed).value() : std::string();
}

void Fleet::WarnForged(const std::string& what) {
  {
    absl::MutexLock lock(&mutex_);
    auto now = Clock::now();
    Clock::time_point& next = forged_warned_[what];
    if (now < next) return;
    next = now + std::chrono::minutes(1);
  }
  spdlog::warn("fleet: ignoring {} that this fleet did not write as it stands (forged, moved or played back by "
               "someone who can write to etcd?)",
               what);
}

// ---------------------------------------------------------------- the lease

void Fleet::WorkLoop() {
  const auto keep_every = std::chrono::duration_cast<Clock::duration>(lease_ttl_) / 3;
  auto next_keep_alive = Clock::now();
  auto last_kept = Clock::now();
  // A lease taken away (revoked by whoever can write to etcd) is replaced at
  // most once per lease period: each new lease is a campaign, and a
  // campaign can move the lead, whose new holder checks the token upstream.
  // Stranded meanwhile, the machine serves with the token at hand.
  Clock::time_point last_joined;
  while (true) {
    std::deque<std::function<void()>> tasks;
    int64_t lease;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(this, &Fleet::HasWorkLocked),
                              absl::FromChrono(next_keep_alive - Clock::now()));
      if (stopping_) return;
      tasks.swap(tasks_);
      lease = lease_;
    }
    for (auto& task : tasks) task();
    ExpirePendingLogins();
    auto now = Clock::now();
    if (now < next_keep_alive) continue;
    if (lease == 0) {
      if (now < last_joined + lease_ttl_) {
        next_keep_alive = last_joined + lease_ttl_;
        continue;
      }
      if (Join()) {
        last_joined = last_kept = Clock::now();
        next_keep_alive = last_kept + keep_every;
      } else {
        next_keep_alive = Clock::now() + kRetry;
      }
      continue;
    }
    stormbroker::Status kept = etcd_->KeepAlive(lease);
    now = Clock::now();
    if (kept.ok()) {
      last_kept = now;
      next_keep_alive = now + keep_every;
      std::vector<std::string> unpublished;
      {
        absl::MutexLock lock(&mutex_);
        for (auto& [name, account] : accounts_) {
          if (std::exchange(account.unpublished, false)) unpublished.push_back(name);
        }
      }
      for (const auto& name : unpublished) PublishSealed(name);
    } else if (kept.code() == StatusCode::kNotFound || now - last_kept >= lease_ttl_) {
      LoseLease(kept.message());
      next_keep_alive = now + kRetry;
    } else {
      spdlog::warn("fleet: keep-alive of this machine's lease failed: {}; trying again", kept.message());
      next_keep_alive = now + kRetry;
    }
  }
}

bool Fleet::Join() {
  auto lease = etcd_->Grant(lease_ttl_);
  if (!lease.ok()) {
    // Also at start: a machine that never reached etcd serves with what it
    // kept from its last run, and logs in for nobody.
    Strand("cannot reach etcd: " + lease.status().message());
    absl::MutexLock lock(&mutex_);
    if (Clock::now() >= next_complaint_) {  // not every half second
      spdlog::warn("fleet: {}; trying again every {} ms", detail_, kRetry.count());
      next_complaint_ = Clock::now() + std::chrono::seconds(30);
    }
    return false;
  }
  std::vector<std::string> candidates, all;
  {
    absl::MutexLock lock(&mutex_);
    lease_ = *lease;
    for (const auto& [name, account] : accounts_) {
      all.push_back(name);
      if (account.may_lead) candidates.push_back(name);
    }
  }
  std::string member = keys_.Member(name_);
  if (auto put = etcd_->Put(member, Sealed(member, name_), *lease); !put.ok()) {
    LoseLease(put.status().message());
    return false;
  }
  for (const auto& name : candidates) {
    if (!Campaign(name, *lease)) return false;
  }
  {
    absl::MutexLock lock(&mutex_);
    connected_ = true;
    stranded_ = false;
    detail_.clear();
    next_complaint_ = Clock::time_point();
    members_.insert(name_);  // ahead of the watch, which reports it too
  }
  spdlog::info("fleet {}: joined as {} (lease {}, {} s), candidate to lead {} of {} account(s)", keys_.prefix, name_,
               Hex(*lease), lease_ttl_.count(), candidates.size(), all.size());
  for (const auto& name : all) Elect(name);
  return true;
}

void Fleet::LoseLease(const std::string& why) {
  {
    absl::MutexLock lock(&mutex_);
    lease_ = 0;
    connected_ = false;
    for (auto& [name, account] : accounts_) {
      account.candidacy.clear();
      account.leading = false;
    }
  }
  Strand("cut off from etcd (" + why + ")");
}

void Fleet::Strand(const std::string& why) {
  std::vector<std::pair<std::shared_ptr<AccountSession>, std::string>> sessions;
  std::string detail = why + ": serving with the tokens at hand until their deadlines, no logins";
  {
    absl::MutexLock lock(&mutex_);
    detail_ = detail;
    if (stranded_) return;
    stranded_ = true;
    for (auto& [name, account] : accounts_) sessions.emplace_back(account.session, account.leader);
  }
  spdlog::error("fleet: {}", detail);
  for (auto& [session, leader] : sessions) session->SetRole(TokenRole::kStranded, leader);
}

}  // namespace stormbroker
