// Fleet mode: etcd's watch on the fleet's prefix, and what each key that
// changes means for this machine (see fleet.h).
#include <spdlog/spdlog.h>

#include "fleet/etcd_client.h"
#include "fleet/fleet.h"
#include "fleet/fleet_records.h"

namespace stormbroker {
namespace {

// Between attempts to watch while etcd is away.
constexpr std::chrono::milliseconds kRetry(500);

}  // namespace

void Fleet::WatchLoop() {
  const std::string all = keys_.All();
  while (true) {
    etcdserverpb::RangeRequest everything;
    everything.set_key(all);
    everything.set_range_end(PrefixEnd(all));
    auto now = etcd_->Range(everything);
    if (!now.ok()) {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(kRetry));
      if (stopping_) return;
      continue;
    }
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) return;
      members_.clear();
    }
    for (const auto& kv : now->kvs()) OnKey(kv, false);
    grpc::ClientContext context;
    // A member cut off from the cluster's quorum ends the watch instead of
    // going quiet.
    context.AddMetadata("hasleader", "true");
    etcd_->Authorize(context);
    {
      absl::MutexLock lock(&mutex_);
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
    absl::MutexLock lock(&mutex_);
    watch_context_ = nullptr;
    mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(kRetry / 5));
    if (stopping_) return;
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
    std::string name(key);
    if (!deleted) {
      auto record = OpenRecord(key_, kv.key(), kv.value());
      if (!record.ok() || record->body.Reveal() != name) return WarnForged("a member key");
    }
    absl::MutexLock lock(&mutex_);
    if (deleted) members_.erase(name);
    else members_.insert(name);
  } else if (take("leader/")) {
    // A new or vanished candidacy (ours too): the election looks again.
    std::string name = first_part();
    Post([this, name] { Elect(name); });
  } else if (take("token/")) {
    // A deleted record would leave every follower that starts from now on
    // without a token until the next renewal: the leader puts it back.
    if (deleted) return RepublishIfLeading(std::string(key));
    TakeToken(std::string(key), kv.value());
  } else if (take("login/") && !deleted) {
    std::string name = first_part();
    {
      absl::MutexLock lock(&mutex_);
      auto it = accounts_.find(name);
      if (it == accounts_.end() || !it->second.leading) return;
    }
    Post([this, name, key = kv.key(), revision = kv.mod_revision(), lease = kv.lease(), value = kv.value()] {
      TakeLogin(name, key, revision, lease, value);
    });
  } else if (take("rejected/") && !deleted) {
    TakeRejectedReport(std::string(key), kv.value());
  } else if (take("login-result/") && !deleted) {
    TakeLoginResult(std::string(key), kv.value());
  }
}

}  // namespace stormbroker
