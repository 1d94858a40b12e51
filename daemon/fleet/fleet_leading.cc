// Fleet mode: elections, publishing the leader's token, taking a published
// one, and reports of a rejected token (see fleet.h).
#include <spdlog/spdlog.h>

#include "fleet/etcd_client.h"
#include "fleet/fleet.h"
#include "fleet/fleet_records.h"
#include "observe/logging.h"

namespace stormbroker {
namespace {

etcdserverpb::RangeRequest PrefixRange(const std::string& prefix) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(PrefixEnd(prefix));
  return request;
}

}  // namespace

bool Fleet::Campaign(const std::string& name, int64_t lease) {
  std::string key = keys_.Candidacy(name, lease);
  auto put = etcd_->Put(key, Sealed(key, name_), lease);
  if (!put.ok()) {
    LoseLease(put.status().message());
    return false;
  }
  absl::MutexLock lock(&mutex_);
  Account& account = accounts_[name];
  account.candidacy = key;
  account.candidacy_revision = put->header().revision();  // a new key's create revision
  return true;
}

void Fleet::Elect(const std::string& name) {
  auto request = PrefixRange(keys_.Candidates(name));
  request.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  request.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  auto found = etcd_->Range(request);
  if (!found.ok()) return;  // etcd is away: the lease's keep-alive finds out and says so
  // The oldest candidacy the fleet wrote, held by the lease its key names
  // (a dead machine's value put back without its lease does not count).
  std::string leader_key, leader;
  bool ours_stands = false;
  std::string ours;
  int64_t lease = 0;
  {
    absl::MutexLock lock(&mutex_);
    ours = accounts_[name].candidacy;
    lease = lease_;
  }
  for (const auto& kv : found->kvs()) {
    auto record = OpenRecord(key_, kv.key(), kv.value());
    if (!record.ok() || LeaseOfCandidacy(kv.key()) != kv.lease()) {
      WarnForged("a candidacy to lead account " + name);
      continue;
    }
    ours_stands = ours_stands || kv.key() == ours;
    if (leader_key.empty()) {
      leader_key = kv.key();
      leader = std::string(record->body.Reveal());
    }
  }
  if (!ours.empty() && !ours_stands && lease != 0) {
    spdlog::warn("fleet: this machine's candidacy to lead account {} is gone while its lease lives (deleted by "
                 "someone who can write to etcd?); campaigning again",
                 name);
    if (Campaign(name, lease)) Post([this, name] { Elect(name); });
    return;
  }
  std::shared_ptr<AccountSession> session;
  bool leads = false, took_over = false;
  {
    absl::MutexLock lock(&mutex_);
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
    if (published.ok() && published->kvs_size()) TakeToken(name, published->kvs(0).value());
    spdlog::info("fleet: this machine ({}) now leads account {}", name_, name);
  }
  session->SetRole(leads ? TokenRole::kLead : TokenRole::kFollow, leader);
}

void Fleet::Publish(const std::string& name, const FleetToken& token) {
  // Each record newer than every one before it: followers refuse an older one.
  WallClock::time_point issued;
  {
    absl::MutexLock lock(&mutex_);
    Account& account = accounts_[name];
    WallClock::time_point now = std::chrono::time_point_cast<std::chrono::milliseconds>(WallClock::now());
    issued = std::max(now, account.newest_token + std::chrono::milliseconds(1));
    account.newest_token = issued;
  }
  std::string key = keys_.Token(name);
  auto sealed = SealRecord(key_, key, issued, EncodeTokenBody(token).Reveal());
  if (!sealed.ok()) {
    spdlog::error("fleet: cannot seal the token of account {}: {}", name, sealed.status().message());
    return;
  }
  {
    absl::MutexLock lock(&mutex_);
    accounts_[name].published = std::move(sealed).value();
  }
  Post([this, name] { PublishSealed(name); });
}

void Fleet::PublishSealed(const std::string& name) {
  std::string candidacy, sealed;
  int64_t revision = 0;
  {
    absl::MutexLock lock(&mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end() || !it->second.leading || it->second.published.empty()) return;
    candidacy = it->second.candidacy;
    revision = it->second.candidacy_revision;
    sealed = it->second.published;
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
    spdlog::warn("fleet: could not publish the token of account {} ({}); trying again", name, done.status().message());
    absl::MutexLock lock(&mutex_);
    accounts_[name].unpublished = true;
    return;
  }
  if (!done->succeeded()) {
    spdlog::warn("fleet: account {}: this machine's candidacy is gone; not publishing", name);
    Post([this, name] { Elect(name); });
  }
}

void Fleet::TakeToken(const std::string& name, const std::string& sealed) {
  auto record = OpenRecord(key_, keys_.Token(name), sealed);
  auto token = record.ok() ? DecodeTokenBody(record->body) : Result<FleetToken>(record.status());
  if (!token.ok()) {
    WarnForged("a token record of account " + name);
    return RepublishIfLeading(name);  // nobody could use it: the leader's goes back
  }
  std::shared_ptr<AccountSession> session;
  bool put_ours_back = false;
  {
    absl::MutexLock lock(&mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end()) return;
    Account& account = it->second;
    if (record->issued <= account.newest_token) {
      // Ours coming back (equal), or an older record put back over it.
      put_ours_back = record->issued < account.newest_token && account.leading;
      if (record->issued < account.newest_token && !put_ours_back) {
        spdlog::warn("fleet: account {}: ignoring a token record older than the one this machine holds (put back "
                     "by someone who can write to etcd?)",
                     name);
      }
    } else {
      account.newest_token = record->issued;
      session = account.session;
    }
  }
  if (put_ours_back) {
    spdlog::warn("fleet: account {}: an older token record was put back in etcd; publishing the current one again",
                 name);
    Post([this, name] { PublishSealed(name); });
  }
  if (session) session->Adopt(std::move(token).value());
}

void Fleet::RepublishIfLeading(const std::string& name) {
  {
    absl::MutexLock lock(&mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end() || !it->second.leading || it->second.published.empty()) return;
  }
  spdlog::warn("fleet: account {}: its token record was deleted or made unreadable in etcd; publishing it again",
               name);
  Post([this, name] { PublishSealed(name); });
}

void Fleet::ReportRejected(const std::string& account) {
  Post([this, account] {
    int64_t lease;
    {
      absl::MutexLock lock(&mutex_);
      lease = lease_;
    }
    if (lease == 0) return;
    std::string key = keys_.Rejected(account);
    if (auto put = etcd_->Put(key, Sealed(key, name_), lease); !put.ok()) {
      spdlog::warn("fleet: could not tell the leader of account {} that its token was rejected: {}", account,
                   put.status().message());
    }
  });
}

void Fleet::TakeRejectedReport(const std::string& name, const std::string& sealed) {
  auto record = OpenRecord(key_, keys_.Rejected(name), sealed);
  if (!record.ok() || !IsFresh(record->issued, WallClock::now())) {
    WarnForged("a report of a rejected token of account " + name);
    return;
  }
  std::shared_ptr<AccountSession> session;
  {
    absl::MutexLock lock(&mutex_);
    auto it = accounts_.find(name);
    if (it == accounts_.end() || !it->second.leading) return;
    // However many reports come, the leader's own keep-alive checks the
    // token at most this often: a report cannot make it hammer the API.
    if (Clock::now() < it->second.next_rejected_check) return;
    it->second.next_rejected_check = Clock::now() + kRejectedCheckEvery;
    session = it->second.session;
  }
  spdlog::warn("fleet: {} says the API rejected the token of account {}; checking it", Printable(record->body.Reveal()),
               name);
  session->CheckToken();
}

}  // namespace stormbroker
