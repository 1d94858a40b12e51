// The audit trail: one JSON line per request a caller made, allowed or not,
// with who asked (from the kernel), what for, what was decided and how it
// ended. Never a secret or a parameter value: parameters appear by name only.
//
// Record() never blocks a call: records go through a bounded queue to a
// writer thread, which writes them in batches, each within 20 ms. When the queue is full a record is dropped and counted, and
// the trail says so with an {"event":"audit_records_dropped"} line as soon as
// there is room again.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/status.h"

namespace stormbroker {

struct AuditRecord {
  std::chrono::system_clock::time_point time;
  // The caller, as SO_PEERCRED and /proc said at connection time.
  uid_t uid = static_cast<uid_t>(-1);
  std::string user;
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
  std::string exe;
  std::string unit;
  // The request.
  std::string rpc;      // Call, Login, Logout, GetToken
  std::string account;
  std::string method;   // Call only
  std::vector<std::string> param_names;
  // What the broker decided: "allow", "deny" (policy) or "invalid" (bad request).
  std::string decision;
  int rule_line = 0;    // the policy rule that allowed it
  // How it ended: "ok", "api_error" (with error_class), "failed" (with detail).
  std::string outcome;
  std::string error_class;
  std::string detail;
  double latency_ms = 0;
};

// One line of JSON, without the newline.
std::string FormatAuditRecord(const AuditRecord& record);

// Where audit lines go. Write is called from the writer thread only.
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
  AuditLog(std::unique_ptr<AuditSink> sink, size_t capacity);
  // Writes what is queued, then stops.
  ~AuditLog();

  void Record(AuditRecord record);
  uint64_t dropped() const;
  Status Reopen();

 private:
  void Loop();

  std::unique_ptr<AuditSink> sink_;
  std::mutex sink_mutex_;  // held while writing, so Reopen never races a write
  const size_t capacity_;
  const size_t wake_at_;  // a batch this big wakes the writer at once
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<AuditRecord> queue_;
  uint64_t dropped_total_ = 0;
  uint64_t dropped_unreported_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace stormbroker
