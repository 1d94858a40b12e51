// The broker's counters and histograms, and the gauges read when metrics are
// asked for, exposed in Prometheus' text format (observe/exposition.h).
//
// Label values are bounded whatever callers do: `account` is a configured
// account or empty; `method` is set only for calls the upstream answered,
// lower-cased; a method gets a series of its own once the API has answered
// it without an exception (a made-up method is an InvalidMethod exception,
// so callers cannot crowd real methods out), up to kMaxMethodLabels of them
// (the rest share method="other"); outcomes and reasons are fixed words. Counting takes one short lock; reading (a scrape) builds the
// exposition under it.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "observe/exposition.h"
#include "tokens/account_meter.h"
#include "upstream/http_engine.h"

namespace stormbroker {

// How a call through either door ended, as the calls_total metric names it.
enum class CallOutcome {
  kOk,           // the API answered
  kApiError,     // the API answered with an exception
  kDenied,       // policy or a reserved method
  kInvalid,      // a malformed request, or no such account
  kNeedsLogin,   // the account has no token until someone logs in
  kUnavailable,  // the upstream could not be reached, or the broker is stopping
  kDeadline,     // the caller's deadline passed
  kLimited,      // over one of the caller's limits
};
const char* CallOutcomeName(CallOutcome outcome);

class Metrics final : public AccountMeter, public HttpEngine::LineMeter {
 public:
  static constexpr size_t kMaxMethodLabels = 256;
  // Upper bounds of the duration histograms, in seconds.
  static const std::vector<double>& DurationBounds();

  // `accounts`: the configured accounts (each gets its histograms at once).
  explicit Metrics(const std::vector<std::string>& accounts);

  // A call that ended: `account` configured (or empty), `method` as the
  // caller wrote it (used only for kOk and kApiError), `took` measured at the
  // door (counted in the duration histogram only for calls policy allowed).
  void Call(const std::string& account, const std::string& method, CallOutcome outcome, bool allowed,
            std::chrono::duration<double> took) ABSL_LOCKS_EXCLUDED(mutex_);
  // A caller refused (a connection or a request) at `door` (its name), by a
  // fixed reason word: policy, invalid, limit, unidentified.
  void Refusal(const std::string& door, const std::string& reason) ABSL_LOCKS_EXCLUDED(mutex_);
  // A call a cache rule covers, by how it was answered: hit, coalesced, miss, bypass.
  void CacheRequest(const std::string& account, const char* result) ABSL_LOCKS_EXCLUDED(mutex_);

  // AccountMeter
  void Login(const std::string& account, Credential credential, bool renewal, Reply reply) override
      ABSL_LOCKS_EXCLUDED(mutex_);
  void KeepAlive(const std::string& account, Reply reply) override ABSL_LOCKS_EXCLUDED(mutex_);
  void Upstream(const std::string& account, std::chrono::steady_clock::duration took) override
      ABSL_LOCKS_EXCLUDED(mutex_);
  // HttpEngine::LineMeter
  void Waited(const std::string& account, std::chrono::steady_clock::duration waited) override
      ABSL_LOCKS_EXCLUDED(mutex_);
  void Paused(const std::string& account, std::chrono::steady_clock::duration wait) override
      ABSL_LOCKS_EXCLUDED(mutex_);

  // Adds gauges (or other families) read at scrape time. Call before the
  // first scrape; `collect` runs on the scraping thread.
  void AddCollector(std::function<void(Exposition&)> collect);

  // Everything, or (with `may_see`) every family but the series of accounts
  // `may_see` refuses.
  Exposition Collect(const std::function<bool(const std::string& account)>& may_see = nullptr) const
      ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Histogram {
    std::vector<uint64_t> counts = std::vector<uint64_t>(DurationBounds().size() + 1);  // per bucket, +Inf last
    double sum = 0;
    void Observe(double seconds);
  };
  using Key = std::vector<std::string>;  // label values, in the family's label order

  mutable absl::Mutex mutex_;
  std::map<Key, uint64_t> calls_ ABSL_GUARDED_BY(mutex_);  // account, method, outcome
  std::set<std::string> method_labels_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, Histogram> call_seconds_ ABSL_GUARDED_BY(mutex_);      // by account
  std::map<std::string, Histogram> upstream_seconds_ ABSL_GUARDED_BY(mutex_);  // by account
  std::map<std::string, Histogram> wait_seconds_ ABSL_GUARDED_BY(mutex_);      // by account
  std::map<Key, uint64_t> pauses_ ABSL_GUARDED_BY(mutex_);                     // account
  std::map<std::string, double> last_pause_seconds_ ABSL_GUARDED_BY(mutex_);   // by account
  std::map<Key, uint64_t> cache_requests_ ABSL_GUARDED_BY(mutex_);             // account, result
  std::map<Key, uint64_t> logins_ ABSL_GUARDED_BY(mutex_);      // account, credential, result
  std::map<Key, uint64_t> renewals_ ABSL_GUARDED_BY(mutex_);    // account, result
  std::map<Key, uint64_t> keepalives_ ABSL_GUARDED_BY(mutex_);  // account, result
  std::map<Key, uint64_t> refusals_ ABSL_GUARDED_BY(mutex_);  // door, reason
  std::vector<std::function<void(Exposition&)>> collectors_;
};

}  // namespace stormbroker
