// One answer for many: identical reads in flight share one upstream call,
// and an answer may be reused for a while after (config `cache:` rules).
//
// The broker decides policy for every caller first; this only says how an
// allowed call is answered. A key is the account, the API version, the
// method in its canonical form (lower case, no .json/.yaml) and the params
// as canonical JSON (key order and whitespace do not matter). The model:
//   - a call no rule covers may write: when it completes, the account's
//     stored answers are dropped, and calls in flight that started before
//     are neither stored nor joined by later callers;
//   - an API exception or a transport error is shared with those already
//     waiting, never stored;
//   - a caller that gives up only leaves; the shared call is given up when
//     every caller waiting for it has;
//   - answers are held up to max_bytes in all, least recently used dropped
//     first; one larger than a tenth of that is never stored.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "upstream/storm_codec.h"
#include "util/status.h"

namespace stormbroker {

// How a covered call was answered (audit, metrics).
enum class CacheUse { kNone, kHit, kCoalesced, kMiss, kBypass };
const char* CacheUseName(CacheUse use);  // "", "hit", "coalesced", "miss", "bypass"

// The key of a call: what makes two calls the same question.
std::string CacheKey(const std::string& account, const std::string& version, const std::string& method,
                     const nlohmann::json& params);
// Whether a Cache-Control value (HTTP's header, or gRPC metadata of that
// name) asks for a fresh answer: no-cache, no-store or max-age=0, any case.
bool AsksForFresh(std::string_view cache_control);

class AnswerCache {
 public:
  using Clock = std::chrono::steady_clock;
  // How a caller is answered, and how its call was (kCoalesced, kMiss, kBypass).
  using Answer = std::function<void(Result<ApiOutcome>, CacheUse)>;

  // Reads the time (the steady clock; a test's own in unit tests).
  using Now = std::function<Clock::time_point()>;

  // `default_version`: the API version a call that names none goes to (the
  // last segment of upstream.url), so that such a call and one naming it
  // are the same question.
  AnswerCache(std::vector<CacheRule> rules, size_t max_bytes, std::string default_version = "v1",
              Now now = Clock::now);

  // CacheKey, with a call that names no version asking the default one.
  std::string KeyOf(const std::string& account, const std::string& version, const std::string& method,
                    const nlohmann::json& params) const;

  // How long an answer of `method` on `account` may be reused (zero: only
  // while in flight); nothing when no rule covers it (a possible write).
  std::optional<std::chrono::milliseconds> Covers(const std::string& account, const std::string& method) const;

  // One shared upstream call: the leader starts it and hands its outcome to
  // Complete, which answers everyone who joined.
  class Flight;
  struct Joined {
    CacheUse use = CacheUse::kNone;
    std::optional<ApiOutcome> stored;  // kHit: the answer, with its age
    std::shared_ptr<Flight> lead;      // kMiss, kBypass: start the call
    std::shared_ptr<Flight> joined;    // kCoalesced: the call joined (it may still wait in line)
  };
  // A covered call with `key`: a stored answer (kHit), a place among those
  // waiting for a call in flight (kCoalesced: `answer` runs later), or the
  // lead of a new call (kMiss; kBypass when `fresh`, which neither reads
  // what is stored nor joins a call in flight). `gave_up` says when this
  // caller has left.
  Joined Join(const std::string& key, const std::string& account, std::chrono::milliseconds ttl, bool fresh,
              Answer answer, std::function<bool()> gave_up) ABSL_LOCKS_EXCLUDED(mutex_);
  // The shared call ended: stores the answer when it may, and answers every
  // caller waiting for it (on this thread, outside the lock).
  void Complete(const std::shared_ptr<Flight>& flight, Result<ApiOutcome> outcome) ABSL_LOCKS_EXCLUDED(mutex_);
  // A call on `account` that no rule covers has completed.
  void WriteDone(const std::string& account) ABSL_LOCKS_EXCLUDED(mutex_);

  size_t bytes() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Stored {
    ApiOutcome outcome;
    size_t bytes = 0;
    Clock::time_point stored_at, expires;
    std::list<std::string>::iterator recency;
  };
  void StoreLocked(const std::string& key, ApiOutcome outcome, std::chrono::milliseconds ttl)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void DropLocked(std::map<std::string, Stored>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::vector<CacheRule> rules_;
  const size_t max_bytes_;
  const std::string default_version_;
  const Now now_;
  mutable absl::Mutex mutex_;
  std::map<std::string, Stored> stored_ ABSL_GUARDED_BY(mutex_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mutex_);  // most recently used first
  size_t bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, std::shared_ptr<Flight>> in_flight_ ABSL_GUARDED_BY(mutex_);
  // Per account: how many uncovered calls have completed (a write's mark).
  std::map<std::string, uint64_t> writes_ ABSL_GUARDED_BY(mutex_);
};

// A shared call may wait in line once for each of its callers' lanes (so
// that it takes the best place among them, not its first caller's): each
// such place is an entry, and the first entry the line lets go sends it;
// the others leave the line unsent.
class AnswerCache::Flight {
 public:
  using Entry = uint64_t;
  // True once every caller waiting for this call has given up.
  bool Abandoned() const ABSL_LOCKS_EXCLUDED(mutex_);
  // A new place in line for this call.
  Entry NewEntry() ABSL_LOCKS_EXCLUDED(mutex_);
  // Whether `entry` sends the call: the first entry to ask, and it again
  // (a retry), never another.
  bool ClaimStart(Entry entry) ABSL_LOCKS_EXCLUDED(mutex_);
  // Whether an entry other than `entry` has sent the call (`entry` may
  // leave the line); with 0, whether any has.
  bool StartedByOther(Entry entry) const ABSL_LOCKS_EXCLUDED(mutex_);
  // `entry`'s call ended: whether its outcome is the call's (it sent the
  // call, or it is the last entry back and none sent it), to Complete.
  bool TakesOutcome(Entry entry) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  friend class AnswerCache;
  struct Waiter {
    Answer answer;
    std::function<bool()> gave_up;
    CacheUse use;
  };
  std::string key, account;
  std::chrono::milliseconds ttl{0};
  uint64_t writes_at_start = 0;
  mutable absl::Mutex mutex_;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mutex_);
  Entry entries_ ABSL_GUARDED_BY(mutex_) = 0;      // made so far (ids 1..entries_)
  size_t outstanding_ ABSL_GUARDED_BY(mutex_) = 0;  // not yet back
  Entry sent_by_ ABSL_GUARDED_BY(mutex_) = 0;       // the entry that sent the call, once one has
};

}  // namespace stormbroker
