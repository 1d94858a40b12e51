#include "observe/metrics.h"

#include <algorithm>
#include <cctype>

#include "util/ascii.h"

namespace stormbroker {
namespace {

const char* CredentialName(AccountMeter::Credential credential) {
  switch (credential) {
    case AccountMeter::Credential::kPasscode:
      return "passcode";
    case AccountMeter::Credential::kTotp:
      return "totp";
    case AccountMeter::Credential::kPassword:
      break;
  }
  return "password";
}

const char* ReplyName(AccountMeter::Reply reply) {
  switch (reply) {
    case AccountMeter::Reply::kOk:
      return "ok";
    case AccountMeter::Reply::kRefused:
      return "refused";
    case AccountMeter::Reply::kFailed:
      break;
  }
  return "failed";
}

// One counter family from `values`, whose keys hold the values of `labels`.
void AddCounters(Exposition& out, const std::string& name, const std::string& help,
                 const std::vector<std::string>& labels, const std::map<std::vector<std::string>, uint64_t>& values) {
  MetricFamily& family = out.Family(name, "counter", help);
  for (const auto& [key, count] : values) {
    Labels pairs;
    for (size_t i = 0; i < labels.size(); ++i) pairs.emplace_back(labels[i], key[i]);
    family.samples.push_back({"", std::move(pairs), static_cast<double>(count)});
  }
}

}  // namespace

const char* CallOutcomeName(CallOutcome outcome) {
  switch (outcome) {
    case CallOutcome::kOk:
      return "ok";
    case CallOutcome::kApiError:
      return "api_error";
    case CallOutcome::kDenied:
      return "denied";
    case CallOutcome::kInvalid:
      return "invalid";
    case CallOutcome::kNeedsLogin:
      return "needs_login";
    case CallOutcome::kUnavailable:
      return "unavailable";
    case CallOutcome::kDeadline:
      return "deadline";
    case CallOutcome::kLimited:
      return "limited";
  }
  return "unavailable";
}

const std::vector<double>& Metrics::DurationBounds() {
  // Fine below 3 ms, where the broker's own share of a call shows.
  static const std::vector<double> bounds = {0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
                                             0.003,  0.005,   0.0075, 0.01,    0.025, 0.05,   0.1,
                                             0.25,   0.5,     1,      2.5,     5,     10,     30};
  return bounds;
}

void Metrics::Histogram::Observe(double seconds) {
  const auto& bounds = DurationBounds();
  size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  ++counts[bucket];
  sum += seconds;
}

Metrics::Metrics(const std::vector<std::string>& accounts) {
  absl::MutexLock lock(&mutex_);
  for (const std::string& account : accounts) {
    call_seconds_[account];
    upstream_seconds_[account];
    wait_seconds_[account];
    pauses_[{account}];
  }
}

void Metrics::Call(const std::string& account, const std::string& method, CallOutcome outcome, bool allowed,
                   std::chrono::duration<double> took) {
  // The key is built before the lock is taken: the lock guards only the maps.
  Key key = {account, "", CallOutcomeName(outcome)};
  std::string& label = key[1];
  bool answered = outcome == CallOutcome::kOk || outcome == CallOutcome::kApiError;
  if (answered) {
    label = AsciiLower(method);
  }
  absl::MutexLock lock(&mutex_);
  if (answered && !method_labels_.count(label)) {
    // A slot only for a method the API answered without an exception: a
    // caller making up method names (InvalidMethod) cannot take them all.
    if (outcome == CallOutcome::kOk && method_labels_.size() < kMaxMethodLabels) method_labels_.insert(label);
    else label = "other";
  }
  ++calls_[std::move(key)];
  if (allowed) {
    auto histogram = call_seconds_.find(account);
    if (histogram != call_seconds_.end()) histogram->second.Observe(took.count());
  }
}

void Metrics::Refusal(const std::string& door, const std::string& reason) {
  absl::MutexLock lock(&mutex_);
  ++refusals_[{door, reason}];
}

void Metrics::CacheRequest(const std::string& account, const char* result) {
  absl::MutexLock lock(&mutex_);
  ++cache_requests_[{account, result}];
}

void Metrics::Login(const std::string& account, Credential credential, bool renewal, Reply reply) {
  absl::MutexLock lock(&mutex_);
  ++logins_[{account, CredentialName(credential), ReplyName(reply)}];
  if (renewal) ++renewals_[{account, ReplyName(reply)}];
}

void Metrics::KeepAlive(const std::string& account, Reply reply) {
  absl::MutexLock lock(&mutex_);
  ++keepalives_[{account, ReplyName(reply)}];
}

void Metrics::Upstream(const std::string& account, std::chrono::steady_clock::duration took) {
  absl::MutexLock lock(&mutex_);
  auto histogram = upstream_seconds_.find(account);
  if (histogram != upstream_seconds_.end()) {
    histogram->second.Observe(std::chrono::duration<double>(took).count());
  }
}

void Metrics::Waited(const std::string& account, std::chrono::steady_clock::duration waited) {
  absl::MutexLock lock(&mutex_);
  auto histogram = wait_seconds_.find(account);
  if (histogram != wait_seconds_.end()) histogram->second.Observe(std::chrono::duration<double>(waited).count());
}

void Metrics::Paused(const std::string& account, std::chrono::steady_clock::duration wait) {
  absl::MutexLock lock(&mutex_);
  auto pauses = pauses_.find({account});
  if (pauses == pauses_.end()) return;
  ++pauses->second;
  last_pause_seconds_[account] = std::chrono::duration<double>(wait).count();
}

void Metrics::AddCollector(std::function<void(Exposition&)> collect) { collectors_.push_back(std::move(collect)); }

Exposition Metrics::Collect(const std::function<bool(const std::string& account)>& may_see) const {
  Exposition out;
  {
    absl::MutexLock lock(&mutex_);
    AddCounters(out, "stormbroker_calls_total",
                "API calls through the broker by account, method (only for calls the upstream answered) and outcome",
                {"account", "method", "outcome"}, calls_);
    auto histograms = [&](const char* name, const char* help, const std::map<std::string, Histogram>& by_account) {
      MetricFamily& family = out.Family(name, "histogram", help);
      for (const auto& [account, histogram] : by_account) {
        std::vector<uint64_t> cumulative;
        uint64_t running = 0;
        for (uint64_t count : histogram.counts) cumulative.push_back(running += count);
        Exposition::AddHistogram(family, {{"account", account}}, DurationBounds(), cumulative, histogram.sum);
      }
    };
    histograms("stormbroker_call_duration_seconds",
               "Time from a call's arrival at the broker to its answer, for calls policy allowed", call_seconds_);
    histograms("stormbroker_upstream_duration_seconds",
               "Time of each exchange of an API call with the upstream (a retried call has two)", upstream_seconds_);
    histograms("stormbroker_upstream_queue_wait_seconds",
               "Time an upstream request waited in line for a connection (the fair line), by account", wait_seconds_);
    AddCounters(out, "stormbroker_upstream_pauses_total",
                "Times the Storm API asked the broker to slow down (HTTP 429, or 503 with Retry-After), by account",
                {"account"}, pauses_);
    MetricFamily& last_pause = out.Family(
        "stormbroker_upstream_last_pause_seconds", "gauge",
        "How long the account's callers waited in the last pause the Storm API asked for (its Retry-After, or the "
        "broker's back-off when it named none); absent before the first");
    for (const auto& [account, seconds] : last_pause_seconds_) {
      last_pause.samples.push_back({"", {{"account", account}}, seconds});
    }
    AddCounters(out, "stormbroker_cache_requests_total",
                "Calls a cache rule covers, by account and how they were answered (hit, coalesced, miss, bypass)",
                {"account", "result"}, cache_requests_);
    AddCounters(out, "stormbroker_logins_total",
                "Logins by account, credential spent (password, passcode, totp) and result (ok, refused, failed)",
                {"account", "kind", "result"}, logins_);
    AddCounters(out, "stormbroker_renewals_total", "Logins that replaced a token still serving, by result",
                {"account", "result"}, renewals_);
    AddCounters(out, "stormbroker_keepalives_total", "Keep-alives of a held token, by result",
                {"account", "result"}, keepalives_);
    AddCounters(out, "stormbroker_caller_refusals_total",
                "Connections and requests refused, by door and reason (policy, invalid, limit, unidentified)",
                {"door", "reason"}, refusals_);
  }
  for (const auto& collect : collectors_) collect(out);
  if (!may_see) return out;
  Exposition seen;
  for (const MetricFamily& family : out.families()) {
    MetricFamily& kept = seen.Family(family.name, family.type, family.help);
    for (const Sample& sample : family.samples) {
      auto account = std::find_if(sample.labels.begin(), sample.labels.end(),
                                  [](const auto& label) { return label.first == "account"; });
      if (account == sample.labels.end() || account->second.empty() || may_see(account->second)) {
        kept.samples.push_back(sample);
      }
    }
  }
  return seen;
}

}  // namespace stormbroker
