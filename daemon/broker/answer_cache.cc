#include "broker/answer_cache.h"

#include <algorithm>
#include <sstream>
#include <cctype>

#include "access/policy.h"
#include "access/request_check.h"
#include "util/ascii.h"

namespace stormbroker {

const char* CacheUseName(CacheUse use) {
  switch (use) {
    case CacheUse::kNone: return "";
    case CacheUse::kHit: return "hit";
    case CacheUse::kCoalesced: return "coalesced";
    case CacheUse::kMiss: return "miss";
    case CacheUse::kBypass: return "bypass";
  }
  return "";
}

bool AsksForFresh(std::string_view cache_control) {
  std::string value = AsciiLower(cache_control);
  // Directives one by one (RFC 9111 5.2): max-age=05 is five seconds, and
  // "no-cache" inside another directive's value is not the directive.
  std::istringstream directives(value);
  for (std::string directive; std::getline(directives, directive, ',');) {
    size_t first = directive.find_first_not_of(" \t");
    size_t last = directive.find_last_not_of(" \t");
    if (first == std::string::npos) continue;
    directive = directive.substr(first, last - first + 1);
    if (directive == "no-cache" || directive == "no-store") return true;
    if (directive.rfind("max-age=", 0) == 0) {
      std::string seconds = directive.substr(8);
      if (!seconds.empty() && seconds.find_first_not_of('0') == std::string::npos) return true;
    }
  }
  return false;
}

std::string CacheKey(const std::string& account, const std::string& version, const std::string& method,
                     const nlohmann::json& params) {
  std::string lower_version = AsciiLower(version);
  // nlohmann's objects keep their keys sorted: dump() is canonical. NUL
  // cannot occur in an account name, a version or a method path.
  return account + '\0' + lower_version + '\0' + CanonicalMethod(method) + '\0' + params.dump();
}

AnswerCache::AnswerCache(std::vector<CacheRule> rules, size_t max_bytes, std::string default_version, Now now)
    : rules_(std::move(rules)), max_bytes_(max_bytes), default_version_(std::move(default_version)),
      now_(std::move(now)) {}

std::string AnswerCache::KeyOf(const std::string& account, const std::string& version, const std::string& method,
                               const nlohmann::json& params) const {
  return CacheKey(account, version.empty() ? default_version_ : version, method, params);
}

std::optional<std::chrono::milliseconds> AnswerCache::Covers(const std::string& account,
                                                             const std::string& method) const {
  std::string canonical = CanonicalMethod(method);
  for (const CacheRule& rule : rules_) {
    bool account_matches = rule.accounts.empty() ||
                           std::any_of(rule.accounts.begin(), rule.accounts.end(),
                                       [&](const std::string& a) { return a == "*" || a == account; });
    if (!account_matches) continue;
    for (const std::string& pattern : rule.methods) {
      if (MethodPatternMatches(pattern, canonical)) return rule.ttl;
    }
  }
  return std::nullopt;
}

bool AnswerCache::Flight::Abandoned() const {
  absl::MutexLock lock(&mutex_);
  return std::all_of(waiters_.begin(), waiters_.end(), [](const Waiter& w) { return w.gave_up && w.gave_up(); });
}

AnswerCache::Flight::Entry AnswerCache::Flight::NewEntry() {
  absl::MutexLock lock(&mutex_);
  ++outstanding_;
  return ++entries_;
}

bool AnswerCache::Flight::ClaimStart(Entry entry) {
  absl::MutexLock lock(&mutex_);
  if (sent_by_ == 0) sent_by_ = entry;
  return sent_by_ == entry;
}

bool AnswerCache::Flight::StartedByOther(Entry entry) const {
  absl::MutexLock lock(&mutex_);
  return sent_by_ != 0 && sent_by_ != entry;
}

bool AnswerCache::Flight::TakesOutcome(Entry entry) {
  absl::MutexLock lock(&mutex_);
  --outstanding_;
  return sent_by_ == entry || (sent_by_ == 0 && outstanding_ == 0);
}

AnswerCache::Joined AnswerCache::Join(const std::string& key, const std::string& account,
                                      std::chrono::milliseconds ttl, bool fresh, Answer answer,
                                      std::function<bool()> gave_up) {
  absl::MutexLock lock(&mutex_);
  auto now = now_();
  if (!fresh) {
    if (auto stored = stored_.find(key); stored != stored_.end()) {
      if (stored->second.expires > now) {
        recency_.splice(recency_.begin(), recency_, stored->second.recency);
        Joined hit{CacheUse::kHit, stored->second.outcome, nullptr, nullptr};
        hit.stored->age = std::chrono::duration_cast<std::chrono::seconds>(now - stored->second.stored_at);
        return hit;
      }
      DropLocked(stored);
    }
    if (auto flying = in_flight_.find(key); flying != in_flight_.end()) {
      absl::MutexLock waiters(&flying->second->mutex_);
      flying->second->waiters_.push_back({std::move(answer), std::move(gave_up), CacheUse::kCoalesced});
      return {CacheUse::kCoalesced, std::nullopt, nullptr, flying->second};
    }
  }
  auto flight = std::make_shared<Flight>();
  flight->key = key;
  flight->account = account;
  flight->ttl = ttl;
  flight->writes_at_start = writes_[account];
  {
    absl::MutexLock waiters(&flight->mutex_);
    flight->waiters_.push_back({std::move(answer), std::move(gave_up), fresh ? CacheUse::kBypass : CacheUse::kMiss});
  }
  if (!fresh) in_flight_[key] = flight;  // joinable while there
  return {fresh ? CacheUse::kBypass : CacheUse::kMiss, std::nullopt, flight, nullptr};
}

void AnswerCache::Complete(const std::shared_ptr<Flight>& flight, Result<ApiOutcome> outcome) {
  std::vector<Flight::Waiter> waiters;
  {
    absl::MutexLock lock(&mutex_);
    if (auto joined = in_flight_.find(flight->key); joined != in_flight_.end() && joined->second == flight) {
      in_flight_.erase(joined);
    }
    // Only a clean answer, and only when no write on the account completed
    // since the call began (its answer may predate the write).
    if (outcome.ok() && !outcome->is_error && flight->ttl.count() > 0 &&
        writes_[flight->account] == flight->writes_at_start) {
      StoreLocked(flight->key, *outcome, flight->ttl);
    }
    absl::MutexLock held(&flight->mutex_);
    waiters.swap(flight->waiters_);
  }
  for (Flight::Waiter& waiter : waiters) waiter.answer(outcome, waiter.use);
}

void AnswerCache::WriteDone(const std::string& account) {
  absl::MutexLock lock(&mutex_);
  ++writes_[account];
  std::string prefix = account + '\0';
  for (auto it = stored_.lower_bound(prefix); it != stored_.end() && it->first.rfind(prefix, 0) == 0;) {
    auto next = std::next(it);
    DropLocked(it);
    it = next;
  }
  // Calls in flight that began before the write still answer their
  // callers; later callers start afresh.
  for (auto it = in_flight_.lower_bound(prefix); it != in_flight_.end() && it->first.rfind(prefix, 0) == 0;) {
    it = in_flight_.erase(it);
  }
}

size_t AnswerCache::bytes() const {
  absl::MutexLock lock(&mutex_);
  return bytes_;
}

void AnswerCache::StoreLocked(const std::string& key, ApiOutcome outcome, std::chrono::milliseconds ttl) {
  size_t size = key.size() + outcome.result.dump().size();
  if (size > max_bytes_ / 10) return;
  if (auto old = stored_.find(key); old != stored_.end()) DropLocked(old);
  while (bytes_ + size > max_bytes_ && !recency_.empty()) DropLocked(stored_.find(recency_.back()));
  auto now = now_();
  recency_.push_front(key);
  outcome.age.reset();
  stored_[key] = Stored{std::move(outcome), size, now, now + ttl, recency_.begin()};
  bytes_ += size;
}

void AnswerCache::DropLocked(std::map<std::string, Stored>::iterator it) {
  bytes_ -= it->second.bytes;
  recency_.erase(it->second.recency);
  stored_.erase(it);
}

}  // namespace stormbroker
