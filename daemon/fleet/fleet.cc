#include "fleet/fleet.h"

#include <openssl/rand.h>

#include <charconv>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "fleet/sealed_box.h"

namespace stormbroker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// How long an operator's login waits for the leader, and lives in etcd.
constexpr seconds kLoginTtl(60);
// Between attempts to reach etcd while cut off from it.
constexpr milliseconds kRetry(500);

std::string Hex(int64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string RandomId() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Hex(std::chrono::steady_clock::now().time_since_epoch().count());
  std::string id;
  for (unsigned char b : bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    id += kDigits[b >> 4];
    id += kDigits[b & 15];
  }
  return id;
}

etcdserverpb::RangeRequest PrefixRange(const std::string& prefix) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(PrefixEnd(prefix));
  return request;
}

std::string EncodeAnswer(const Status& status) {
  return std::to_string(static_cast<int>(status.code())) + " " + status.message();
}

Status DecodeAnswer(const std::string& text) {
  int code = 0;
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), code);
  if (parsed.ec != std::errc() || code < 0 || code > static_cast<int>(StatusCode::kInternal)) {
    return Internal("the fleet's leader answered the login with something unreadable");
  }
  std::string message = parsed.ptr < text.data() + text.size() ? std::string(parsed.ptr + 1) : std::string();
  return Status(static_cast<StatusCode>(code), message);
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
      key_(config.key.Clone()),
      lease_ttl_(std::chrono::duration_cast<seconds>(config.lease_ttl)),
      retire_grace_(config.retire_grace),
      etcd_(std::move(etcd)) {}

Fleet::~Fleet() { Stop(); }

void Fleet::Attach(const std::string& account, std::shared_ptr<AccountSession> session, bool may_lead) {
  std::lock_guard lock(mutex_);
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
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    if (watch_context_) watch_context_->TryCancel();
    pending.swap(pending_logins_);
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (watcher_.joinable()) watcher_.join();
  for (auto& [id, login] : pending) login.done(Unavailable("the broker is shutting down"));
  if (lease_ != 0 && etcd_->Revoke(lease_).ok()) {
    spdlog::info("fleet: gave up this machine's candidacies; the next machine leads at once");
  }
  lease_ = 0;
}

FleetStatus Fleet::Status() const {
  std::lock_guard lock(mutex_);
  FleetStatus status;
  status.name = name_;
  status.connected = connected_;
  status.detail = detail_;
  status.members.assign(members_.begin(), members_.end());
  for (const auto& [name, account] : accounts_) status.leaders[name] = account.leader;
  return status;
}

void Fleet::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_all();
}

// ---------------------------------------------------------------- the lease

void Fleet::WorkLoop() {
  const auto keep_every = std::chrono::duration_cast<Clock::duration>(lease_ttl_) / 3;
  auto next_keep_alive = Clock::now();
  auto last_kept = Clock::now();
  while (true) {
    std::deque<std::function<void()>> tasks;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_until(lock, next_keep_alive, [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
    ExpirePendingLogins();
    auto now = Clock::now();
    if (now < next_keep_alive) continue;
    int64_t lease;
    {
      std::lock_guard lock(mutex_);
      lease = lease_;
    }
    if (lease == 0) {
      if (Join()) {
        last_kept = Clock::now();
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
      std::vector<std::pair<std::string, std::string>> unpublished;
      {
        std::lock_guard lock(mutex_);
        for (auto& [name, account] : accounts_) {
          if (!account.unpublished.empty()) unpublished.emplace_back(name, std::move(account.unpublished));
        }
      }
      for (auto& [name, sealed] : unpublished) PublishSealed(name, std::move(sealed));
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
    std::lock_guard lock(mutex_);
    if (Clock::now() >= next_complaint_) {  // not every half second
      spdlog::warn("fleet: {}; trying again every {} ms", detail_, kRetry.count());
      next_complaint_ = Clock::now() + std::chrono::seconds(30);
    }
    return false;
  }
  std::vector<std::string> candidates, all;
  {
    std::lock_guard lock(mutex_);
    lease_ = *lease;
    for (const auto& [name, account] : accounts_) {
      all.push_back(name);
      if (account.may_lead) candidates.push_back(name);
    }
  }
  auto fail = [&](const stormbroker::Status& status) {
    LoseLease(status.message());
    return false;
  };
  if (auto member = etcd_->Put(keys_.Member(name_), name_, *lease); !member.ok()) return fail(member.status());
  for (const auto& name : candidates) {
    std::string key = keys_.Candidates(name) + Hex(*lease);
    auto put = etcd_->Put(key, name_, *lease);
    if (!put.ok()) return fail(put.status());
    std::lock_guard lock(mutex_);
    Account& account = accounts_[name];
    account.candidacy = key;
    account.candidacy_revision = put->header().revision();  // a new key's create revision
  }
  {
    std::lock_guard lock(mutex_);
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
    std::lock_guard lock(mutex_);
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
    std::lock_guard lock(mutex_);
    detail_ = detail;
    if (stranded_) return;
    stranded_ = true;
    for (auto& [name, account] : accounts_) sessions.emplace_back(account.session, account.leader);
  }
  spdlog::error("fleet: {}", detail);
  for (auto& [session, leader] : sessions) session->SetRole(TokenRole::kStranded, leader);
}

// ---------------------------------------------------------------- leading

void Fleet::Elect(const std::string& name) {
  auto request = PrefixRange(keys_.Candidates(name));
  request.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  request.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  request.set_limit(1);
  auto found = etcd_->Range(request);
  if (!found.ok()) return;  // etcd is away: the lease's keep-alive finds out and says so
  std::string leader_key = found->kvs_size() ? found->kvs(0).key() : "";
  std::string leader = found->kvs_size() ? found->kvs(0).value() : "";
  std::shared_ptr<AccountSession> session;
  bool leads = false, took_over = false;
  {
    std::lock_guard lock(mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end() || !connected_) return;
    Account& account = it->second;
    leads = !account.candidacy.empty() && leader_key == account.candidacy;
    took_over = leads && !account.leading;
    account.leading = leads;
    account.leader = leader;
    session = account.session;
  }
  if (took_over) {
    // Whatever the watch has delivered so far, take the token the fleet uses now.
    etcdserverpb::RangeRequest exact;
    exact.set_key(keys_.Token(name));
    auto published = etcd_->Range(exact);
    if (published.ok() && published->kvs_size()) {
      auto record = Unseal(key_, keys_.SealContext("token", name), published->kvs(0).value());
      auto token = record.ok() ? DecodeTokenRecord(*record) : Result<FleetToken>(record.status());
      if (token.ok()) session->Adopt(std::move(token).value());
    }
    spdlog::info("fleet: this machine ({}) now leads account {}", name_, name);
  }
  session->SetRole(leads ? TokenRole::kLead : TokenRole::kFollow, leader);
}

void Fleet::Publish(const std::string& account, const FleetToken& token) {
  auto sealed = Seal(key_, keys_.SealContext("token", account), EncodeTokenRecord(token).Reveal());
  if (!sealed.ok()) {
    spdlog::error("fleet: cannot seal the token of account {}: {}", account, sealed.status().message());
    return;
  }
  Post([this, account, sealed = std::move(sealed).value()]() mutable { PublishSealed(account, std::move(sealed)); });
}

void Fleet::PublishSealed(const std::string& name, std::string sealed) {
  std::string candidacy;
  int64_t revision = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end() || !it->second.leading) return;
    candidacy = it->second.candidacy;
    revision = it->second.candidacy_revision;
  }
  // Only while our candidacy stands: a leader whose lease ran out must not
  // overwrite its successor's token.
  etcdserverpb::TxnRequest txn;
  auto* still_leading = txn.add_compare();
  still_leading->set_key(candidacy);
  still_leading->set_target(etcdserverpb::Compare::CREATE);
  still_leading->set_result(etcdserverpb::Compare::EQUAL);
  still_leading->set_create_revision(revision);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(keys_.Token(name));
  put->set_value(sealed);
  auto done = etcd_->Txn(txn);
  if (!done.ok()) {
    spdlog::warn("fleet: could not publish the token of account {} ({}); trying again", name,
                 done.status().message());
    std::lock_guard lock(mutex_);
    accounts_[name].unpublished = std::move(sealed);
    return;
  }
  if (!done->succeeded()) {
    spdlog::warn("fleet: account {}: this machine's candidacy is gone; not publishing", name);
    Post([this, name] { Elect(name); });
  }
}

// ---------------------------------------------------------------- logins

void Fleet::ForwardLogin(const std::string& account, Secret passcode, std::function<void(stormbroker::Status)> done) {
  auto sealed = Seal(key_, keys_.SealContext("login", account), passcode.Reveal());
  if (!sealed.ok()) return done(Internal("cannot seal the passcode: " + sealed.status().message()));
  auto task = [this, account, done, sealed = std::move(sealed).value()] {
    std::string leader;
    bool connected;
    {
      std::lock_guard lock(mutex_);
      connected = connected_;
      leader = accounts_[account].leader;
    }
    if (!connected) return done(Unavailable("this machine is cut off from the fleet's etcd; run stormctl login on "
                                            "another machine, or wait for etcd"));
    if (leader.empty()) {
      return done(Unavailable("no machine of the fleet leads account " + account +
                              " now (none that holds its credentials is running)"));
    }
    auto lease = etcd_->Grant(kLoginTtl);
    if (!lease.ok()) return done(Unavailable(lease.status().message()));
    std::string id = RandomId();
    {
      std::lock_guard lock(mutex_);
      pending_logins_[id] = {done, Clock::now() + kLoginTtl};
    }
    auto put = etcd_->Put(keys_.LoginRequests(account) + id, sealed, *lease);
    if (!put.ok()) {
      {
        std::lock_guard lock(mutex_);
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
  std::shared_ptr<AccountSession> session;
  {
    std::lock_guard lock(mutex_);
    session = accounts_[name].session;
  }
  auto passcode = Unseal(key_, keys_.SealContext("login", name), sealed);
  if (!passcode.ok() || !session) return AnswerLogin(id, lease, InvalidArgument(passcode.status().message()));
  spdlog::info("fleet: account {}: logging in for an operator on another machine", name);
  session->Login(std::move(passcode).value(), [this, id, lease](stormbroker::Status status) {
    Post([this, id, lease, status] { AnswerLogin(id, lease, status); });
  });
}

void Fleet::AnswerLogin(const std::string& id, int64_t lease, const stormbroker::Status& status) {
  if (auto put = etcd_->Put(keys_.LoginResult(id), EncodeAnswer(status), lease); !put.ok()) {
    spdlog::warn("fleet: could not answer a forwarded login: {}", put.status().message());
  }
}

void Fleet::ExpirePendingLogins() {
  std::vector<std::function<void(stormbroker::Status)>> expired;
  {
    std::lock_guard lock(mutex_);
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
    done(Unavailable("the fleet's leader did not answer the login within " + std::to_string(kLoginTtl.count()) + " s"));
  }
}

void Fleet::ReportRejected(const std::string& account) {
  Post([this, account] {
    int64_t lease;
    {
      std::lock_guard lock(mutex_);
      lease = lease_;
    }
    if (lease == 0) return;
    if (auto put = etcd_->Put(keys_.Rejected(account), name_, lease); !put.ok()) {
      spdlog::warn("fleet: could not tell the leader of account {} that its token was rejected: {}", account,
                   put.status().message());
    }
  });
}

// ---------------------------------------------------------------- the watch

void Fleet::WatchLoop() {
  const std::string all = keys_.All();
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (stopping_) return;
    }
    auto now = etcd_->Range(PrefixRange(all));
    if (!now.ok()) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kRetry, [&] { return stopping_; });
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      members_.clear();
    }
    for (const auto& kv : now->kvs()) OnKey(kv, false);
    grpc::ClientContext context;
    // A member cut off from the cluster's quorum ends the watch instead of
    // going quiet.
    context.AddMetadata("hasleader", "true");
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      watch_context_ = &context;
    }
    auto stream = etcd_->WatchStub().Watch(&context);
    etcdserverpb::WatchRequest request;
    auto* create = request.mutable_create_request();
    create->set_key(all);
    create->set_range_end(PrefixEnd(all));
    create->set_start_revision(now->header().revision() + 1);
    etcdserverpb::WatchResponse response;
    if (stream->Write(request)) {
      while (stream->Read(&response)) {
        if (response.canceled() || response.compact_revision() != 0) break;
        for (const auto& event : response.events()) OnKey(event.kv(), event.type() == mvccpb::Event::DELETE);
      }
    }
    context.TryCancel();
    (void)stream->Finish();
    std::unique_lock lock(mutex_);
    watch_context_ = nullptr;
    wake_.wait_for(lock, kRetry / 5, [&] { return stopping_; });
  }
}

void Fleet::OnKey(const mvccpb::KeyValue& kv, bool deleted) {
  std::string_view key = kv.key();
  key.remove_prefix(keys_.All().size());
  auto take = [&](std::string_view head) {
    if (key.substr(0, head.size()) != head) return false;
    key.remove_prefix(head.size());
    return true;
  };
  auto first_part = [&] { return std::string(key.substr(0, key.find('/'))); };
  if (take("member/")) {
    std::lock_guard lock(mutex_);
    if (deleted) members_.erase(std::string(key));
    else members_.insert(std::string(key));
  } else if (take("leader/")) {
    std::string name = first_part();
    Post([this, name] { Elect(name); });
  } else if (take("token/") && !deleted) {
    std::string name(key);
    std::shared_ptr<AccountSession> session;
    {
      std::lock_guard lock(mutex_);
      auto it = accounts_.find(name);
      if (it == accounts_.end()) return;
      session = it->second.session;
    }
    auto record = Unseal(key_, keys_.SealContext("token", name), kv.value());
    auto token = record.ok() ? DecodeTokenRecord(*record) : Result<FleetToken>(record.status());
    if (!token.ok()) {
      spdlog::error("fleet: the published token of account {} cannot be used: {}", name, token.status().message());
      return;
    }
    session->Adopt(std::move(token).value());
  } else if (take("login/") && !deleted) {
    std::string name = first_part();
    {
      std::lock_guard lock(mutex_);
      auto it = accounts_.find(name);
      if (it == accounts_.end() || !it->second.leading) return;
    }
    Post([this, name, key = kv.key(), revision = kv.mod_revision(), lease = kv.lease(), value = kv.value()] {
      TakeLogin(name, key, revision, lease, value);
    });
  } else if (take("rejected/") && !deleted) {
    std::shared_ptr<AccountSession> session;
    {
      std::lock_guard lock(mutex_);
      auto it = accounts_.find(std::string(key));
      if (it == accounts_.end() || !it->second.leading) return;
      session = it->second.session;
    }
    spdlog::warn("fleet: {} says the API rejected the token of account {}; checking it", kv.value(), std::string(key));
    session->CheckToken();
  } else if (take("login-result/") && !deleted) {
    std::function<void(stormbroker::Status)> done;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_logins_.find(std::string(key));
      if (it == pending_logins_.end()) return;
      done = std::move(it->second.done);
      pending_logins_.erase(it);
    }
    done(DecodeAnswer(kv.value()));
  }
}

}  // namespace stormbroker
