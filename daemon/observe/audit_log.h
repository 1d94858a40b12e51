// The audit trail: one JSON line per request a caller made, allowed or not,
// with who asked (from the kernel), what for, what was decided and how it
// ended. Never a secret or a parameter value: parameters appear by name only.
//
// Record() never blocks a call: records go through a bounded queue (records
// and bytes) to a writer thread, which writes them in batches, each within
// 20 ms. When the queue is full a record is dropped and counted, and the trail
// says so with an {"event":"audit_records_dropped"} line as soon as there is
// room again; the records of allowed logins, logouts and token exports are
// never dropped. Callers cannot flood or inflate the trail: the fields they
// choose are cut to a bounded length, and refusals are written at a bounded
// rate per uid, each written one saying how many of that uid's refusals were
// left out before it ("refusals_suppressed"); a count nobody followed up is
// written as an {"event":"audit_refusals_suppressed"} line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <absl/synchronization/mutex.h>

#include "access/caller.h"
#include "util/status.h"

namespace stormbroker {

// The uid of a caller the kernel could not name (a connection refused for it).
inline constexpr uid_t kUnidentified = static_cast<uid_t>(-1);

// What the broker decided about a request.
enum class Decision {
  kInvalid,       // a malformed request, or no such account (the default: nothing admitted it)
  kAllow,
  kDeny,          // no policy rule, or a reserved method
  kLimit,         // the caller is over one of its limits, or the broker is draining
  kUnidentified,  // the kernel would not say who is calling
};
// How an allowed request ended.
enum class Ending {
  kOk,        // answered
  kApiError,  // answered with the API's exception (with error_class)
  kFailed,    // not answered (with detail)
};
// The trail's words: "invalid", "allow", "deny", "limit", "unidentified";
// "ok", "api_error", "failed".
const char* DecisionName(Decision decision);
const char* EndingName(Ending ending);

struct AuditRecord {
  std::chrono::system_clock::time_point time;
  // The caller, as SO_PEERCRED and /proc said at connection time;
  // kUnidentified when the kernel would not say.
  uid_t uid = kUnidentified;
  std::string user;
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  // What the caller's process said of itself: it could have chosen them, so
  // the trail names them hints ("exe_hint", ...). Empty when unreadable.
  std::string exe;
  std::string comm;
  std::string unit;
  std::string listener;  // which door the request came through, e.g. "grpc" 
  // The request.
  std::string rpc;      // Call, Login, Logout, GetToken
  std::string account;
  std::string method;   // Call only
  std::vector<std::string> param_names;
  Decision decision = Decision::kInvalid;
  int rule_line = 0;    // the policy rule that allowed it
  Ending outcome = Ending::kFailed;
  std::string error_class;
  std::string cache;  // how a call a cache rule covers was answered: hit, coalesced, miss, bypass
  std::string detail;
  double latency_ms = 0;
  // Filled in by AuditLog: refusals of this uid left out just before this one.
  uint64_t refusals_suppressed = 0;
};

// A record of `caller` asking for `rpc` on `account` through `listener`,
// stamped now; what was decided and how it ended are filled in later.
AuditRecord StartAuditRecord(const Caller& caller, const char* listener, const char* rpc, const std::string& account);

// One line of JSON, without the newline.
std::string FormatAuditRecord(const AuditRecord& record);

// Where audit lines go. Write is called with the sink lock held.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Whole lines, each ending in a newline.
  virtual void Write(const std::string& lines) = 0;
  // Reopens a file after log rotation (SIGHUP); streams ignore it.
  virtual Status Reopen() { return Status::Ok(); }
};

std::unique_ptr<AuditSink> MakeStderrAuditSink();
// Appends to `path` (created 0640); fails when it cannot be opened.
Result<std::unique_ptr<AuditSink>> MakeFileAuditSink(const std::string& path);

class AuditLog {
 public:
  struct Options {
    size_t records = 10000;          // queued records before new ones are dropped
    size_t bytes = 16 << 20;         // and the bytes they may hold
    double refusals_per_second = 10;  // per uid, on average
    size_t refusal_burst = 50;       // per uid, at once
  };
  AuditLog(std::unique_ptr<AuditSink> sink, Options options);
  // Writes what is queued, then stops.
  ~AuditLog();

  void Record(AuditRecord record) ABSL_LOCKS_EXCLUDED(mutex_);
  uint64_t dropped() const ABSL_LOCKS_EXCLUDED(mutex_);
  uint64_t suppressed() const ABSL_LOCKS_EXCLUDED(mutex_);
  Status Reopen() ABSL_LOCKS_EXCLUDED(sink_mutex_);
  // For a process about to die (std::terminate, a fatal signal): writes
  // what is queued, and waits for the batch the writer holds to be written,
  // giving up on a lock after about a second (a thread that died holding
  // one cannot give it back). Called on the writer's own thread it does
  // nothing. Best effort: from a signal handler it is not async-signal-safe,
  // but it is the last thing the process does.
  void FlushBeforeDeath() ABSL_NO_THREAD_SAFETY_ANALYSIS;

 private:
  // A uid's allowance of refusal records (a token bucket).
  struct Allowance {
    double tokens;
    std::chrono::steady_clock::time_point refilled;
    uint64_t suppressed = 0;
  };
  // Whether a refusal of `uid` may be written now; counts it when not.
  bool TakeRefusalLocked(uid_t uid, uint64_t* suppressed_before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Waits until there is a batch to write (or a second has passed while
  // suppressed counts wait for their uid to go quiet).
  void WaitForBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Loop() ABSL_LOCKS_EXCLUDED(mutex_, sink_mutex_);

  // The writer holds the sink while it takes a batch from the queue and
  // writes it; nothing takes them in the other order.
  absl::Mutex sink_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);  // so Reopen never races a write
  std::unique_ptr<AuditSink> sink_ ABSL_GUARDED_BY(sink_mutex_);
  const Options options_;
  const size_t wake_at_;  // a batch this big wakes the writer at once
  mutable absl::Mutex mutex_;
  absl::CondVar wake_;
  std::deque<AuditRecord> queue_ ABSL_GUARDED_BY(mutex_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t dropped_total_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t dropped_unreported_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t suppressed_total_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t suppressed_unreported_ ABSL_GUARDED_BY(mutex_) = 0;  // counted, not yet in the trail
  std::map<uid_t, Allowance> allowances_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread writer_;
};

}  // namespace stormbroker
