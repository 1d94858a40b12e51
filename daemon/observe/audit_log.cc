#include "observe/audit_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <absl/synchronization/mutex.h>

#include "observe/json_line.h"

namespace stormbroker {
namespace {

// How long the writer gathers records after the first of a batch, and the
// batch size that wakes it early (or half the queue, when that is smaller). A record reaches the file within this time.
constexpr std::chrono::milliseconds kGatherTime{20};
constexpr size_t kWakeAt = 256;
// The longest a caller-chosen field may be in the trail, and how many
// parameter names one record lists.
constexpr size_t kMaxField = 200;
constexpr size_t kMaxParamNames = 32;
constexpr size_t kMaxDetail = 1000;

// Takes `mutex` within about a second without blocking on it (for a dying
// process, whose other threads may never give it back).
bool LockSoon(absl::Mutex& mutex) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (int tries = 0; tries < 1000; ++tries) {
    if (mutex.TryLock()) return true;
    timespec pause{0, 1000000};
    nanosleep(&pause, nullptr);
  }
  return false;
}

void Cut(std::string& field, size_t max) {
  if (field.size() > max) {
    field.resize(max);
    field += "...";
  }
}

// Cuts what the caller chose (method, account, parameter names, and
// messages that may quote them) to bounded lengths.
void CutCallerFields(AuditRecord& r) {
  Cut(r.method, kMaxField);
  Cut(r.account, kMaxField);
  Cut(r.detail, kMaxDetail);
  Cut(r.error_class, kMaxField);
  Cut(r.exe, kMaxField);
  Cut(r.comm, kMaxField);
  Cut(r.unit, kMaxField);
  if (r.param_names.size() > kMaxParamNames) {
    size_t more = r.param_names.size() - kMaxParamNames;
    r.param_names.resize(kMaxParamNames);
    r.param_names.push_back("... " + std::to_string(more) + " more");
  }
  for (auto& name : r.param_names) Cut(name, kMaxField);
}

// About what a record costs while it waits in the queue.
size_t SizeOf(const AuditRecord& r) {
  size_t size = sizeof r + r.user.size() + r.exe.size() + r.comm.size() + r.unit.size() + r.rpc.size() +
                r.account.size() + r.method.size() + r.error_class.size() +
                r.detail.size() + r.listener.size();
  for (const auto& name : r.param_names) size += sizeof name + name.size();
  return size;
}

// Records that are never dropped: an operator's or a token exporter's
// allowed action is the trail's reason to exist.
bool MustKeep(const AuditRecord& r) {
  return r.decision == Decision::kAllow && (r.rpc == "Login" || r.rpc == "Logout" || r.rpc == "GetToken");
}

bool IsRefusal(const AuditRecord& r) { return r.decision != Decision::kAllow; }

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  time_t seconds = static_cast<time_t>(ms / 1000);
  struct tm utc;
  gmtime_r(&seconds, &utc);
  char text[40];
  size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(text + n, sizeof text - n, ".%03lldZ", static_cast<long long>(ms % 1000));
  return text;
}

void WriteAll(int fd, const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report it but here; the daemon goes on
    done += n;
  }
}

class FdSink : public AuditSink {
 public:
  FdSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FdSink() override {
    if (!path_.empty() && fd_ >= 0) close(fd_);
  }
  void Write(const std::string& lines) override { WriteAll(fd_, lines); }
  Status Reopen() override {
    if (path_.empty()) return Status::Ok();
    int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return Unavailable("cannot reopen the audit file " + path_ + ": " + strerror(errno));
    close(fd_);
    fd_ = fd;
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;  // empty for stderr
};

}  // namespace

const char* DecisionName(Decision decision) {
  switch (decision) {
    case Decision::kInvalid: return "invalid";
    case Decision::kAllow: return "allow";
    case Decision::kDeny: return "deny";
    case Decision::kLimit: return "limit";
    case Decision::kUnidentified: return "unidentified";
  }
  return "invalid";
}

const char* EndingName(Ending ending) {
  switch (ending) {
    case Ending::kOk: return "ok";
    case Ending::kApiError: return "api_error";
    case Ending::kFailed: return "failed";
  }
  return "failed";
}

AuditRecord StartAuditRecord(const Caller& caller, const char* listener, const char* rpc, const std::string& account) {
  AuditRecord record;
  record.time = std::chrono::system_clock::now();
  record.uid = caller.uid;
  record.user = caller.user;
  record.gid = caller.gid;
  record.pid = caller.pid;
  record.exe = caller.exe;
  record.comm = caller.comm;
  record.unit = caller.unit;
  record.listener = listener;
  record.rpc = rpc;
  record.account = account;
  return record;
}

std::string FormatAuditRecord(const AuditRecord& r) {
  JsonLine line;
  line.Add("time", Rfc3339(r.time));
  // A caller the kernel could not name has no uid: never a made-up one.
  if (r.uid != kUnidentified) {
    line.Add("uid", static_cast<long long>(r.uid))
        .Add("user", r.user)
        .Add("gid", static_cast<long long>(r.gid))
        .Add("pid", static_cast<long long>(r.pid));
  }
  line.Add("comm_hint", r.comm)
      .Add("exe_hint", r.exe)
      .Add("unit_hint", r.unit)
      .Add("rpc", r.rpc)
      .Add("account", r.account)
      .Add("decision", DecisionName(r.decision))
      .Add("outcome", EndingName(r.outcome))
      .AddThousandths("latency_ms", r.latency_ms);
  if (!r.method.empty()) line.Add("method", r.method);
  if (!r.param_names.empty()) line.Add("params", r.param_names);
  if (r.rule_line > 0) line.Add("rule_line", static_cast<long long>(r.rule_line));
  if (!r.error_class.empty()) line.Add("error_class", r.error_class);
  if (!r.cache.empty()) line.Add("cache", r.cache);
  if (!r.detail.empty()) line.Add("detail", r.detail);
  if (!r.listener.empty()) line.Add("listener", r.listener);
  if (r.refusals_suppressed > 0) line.Add("refusals_suppressed", static_cast<long long>(r.refusals_suppressed));
  return line.Finish();
}

std::unique_ptr<AuditSink> MakeStderrAuditSink() { return std::make_unique<FdSink>(2, ""); }

Result<std::unique_ptr<AuditSink>> MakeFileAuditSink(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return Unavailable("cannot open the audit file " + path + ": " + strerror(errno));
  return std::unique_ptr<AuditSink>(std::make_unique<FdSink>(fd, path));
}

AuditLog::AuditLog(std::unique_ptr<AuditSink> sink, Options options)
    : sink_(std::move(sink)),
      options_(options),
      wake_at_(std::clamp<size_t>(options.records / 2, 1, kWakeAt)),
      writer_([this] {
        // Signals sent to the process land on another thread, whose
        // FlushBeforeDeath then waits for this one's batch.
        sigset_t fatal;
        sigemptyset(&fatal);
        for (int signal : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaddset(&fatal, signal);
        pthread_sigmask(SIG_BLOCK, &fatal, nullptr);
        Loop();
      }) {}

AuditLog::~AuditLog() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  wake_.SignalAll();
  writer_.join();
}

bool AuditLog::TakeRefusalLocked(uid_t uid, uint64_t* suppressed_before) {
  auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = allowances_.try_emplace(uid, Allowance{static_cast<double>(options_.refusal_burst), now});
  Allowance& a = it->second;
  double refill = std::chrono::duration<double>(now - a.refilled).count() * options_.refusals_per_second;
  a.tokens = std::min<double>(options_.refusal_burst, a.tokens + refill);
  a.refilled = now;
  if (a.tokens < 1) {
    ++a.suppressed;
    ++suppressed_total_;
    ++suppressed_unreported_;
    return false;
  }
  a.tokens -= 1;
  *suppressed_before = a.suppressed;
  suppressed_unreported_ -= a.suppressed;
  a.suppressed = 0;
  return true;
}

void AuditLog::Record(AuditRecord record) {
  CutCallerFields(record);
  size_t size = SizeOf(record);
  {
    absl::MutexLock lock(&mutex_);
    if (IsRefusal(record) && !TakeRefusalLocked(record.uid, &record.refusals_suppressed)) return;
    if (!MustKeep(record) && (queue_.size() >= options_.records || queued_bytes_ + size > options_.bytes)) {
      ++dropped_total_;
      ++dropped_unreported_;
      return;
    }
    queue_.push_back(std::move(record));
    queued_bytes_ += size;
    // Wake the writer for the first record of a batch (it then gathers more
    // for up to kGatherTime) and when the batch is big; not for every record,
    // since a wake-up per call is what a busy broker can least afford.
    if (queue_.size() != 1 && queue_.size() != wake_at_) return;
  }
  wake_.Signal();
}

uint64_t AuditLog::dropped() const {
  absl::MutexLock lock(&mutex_);
  return dropped_total_;
}

uint64_t AuditLog::suppressed() const {
  absl::MutexLock lock(&mutex_);
  return suppressed_total_;
}

Status AuditLog::Reopen() {
  absl::MutexLock lock(&sink_mutex_);  // not in the middle of a write
  return sink_->Reopen();
}

void AuditLog::FlushBeforeDeath() {
  // The writer never takes an asynchronous fatal signal (it blocks them), so
  // it is still running here: waiting for the sink lock waits for the batch
  // it holds to reach the file. A lock held by a thread that died is given
  // up on after a moment.
  if (std::this_thread::get_id() == writer_.get_id() || !LockSoon(sink_mutex_)) return;
  if (!LockSoon(mutex_)) {
    sink_mutex_.Unlock();
    return;
  }
  std::deque<AuditRecord> batch;
  batch.swap(queue_);
  queued_bytes_ = 0;
  mutex_.Unlock();
  std::string lines;
  for (const auto& record : batch) lines += FormatAuditRecord(record) + "\n";
  if (!lines.empty()) sink_->Write(lines);
  sink_mutex_.Unlock();
}

void AuditLog::WaitForBatchLocked() {
  // Suppressed counts waiting for their uid to go quiet: look again soon.
  absl::Time give_up = suppressed_unreported_ > 0 ? absl::Now() + absl::Seconds(1) : absl::InfiniteFuture();
  while (!stopping_ && queue_.empty()) {
    if (wake_.WaitWithDeadline(&mutex_, give_up)) break;
  }
  if (queue_.empty() || stopping_) return;
  absl::Time gathered = absl::Now() + absl::FromChrono(kGatherTime);
  while (!stopping_ && queue_.size() < wake_at_) {
    if (wake_.WaitWithDeadline(&mutex_, gathered)) break;
  }
}

void AuditLog::Loop() {
  for (;;) {
    bool last;
    std::deque<AuditRecord> batch;
    uint64_t dropped;
    // Suppressed refusals of uids that have gone quiet (their allowance is
    // full again, so no record of theirs will carry the count).
    std::vector<std::pair<uid_t, uint64_t>> quiet;
    {
      absl::MutexLock lock(&mutex_);
      WaitForBatchLocked();
    }
    // The batch is taken with the sink held, so a process dying meanwhile
    // (FlushBeforeDeath) waits for it to be written rather than miss it.
    absl::MutexLock writing(&sink_mutex_);
    {
      absl::MutexLock lock(&mutex_);
      last = stopping_;
      batch.swap(queue_);
      queued_bytes_ = 0;
      dropped = dropped_unreported_;
      dropped_unreported_ = 0;
      auto now = std::chrono::steady_clock::now();
      for (auto it = allowances_.begin(); it != allowances_.end();) {
        double idle = std::chrono::duration<double>(now - it->second.refilled).count();
        if (!last && idle * options_.refusals_per_second + it->second.tokens < options_.refusal_burst) {
          ++it;
          continue;
        }
        if (it->second.suppressed > 0) quiet.emplace_back(it->first, it->second.suppressed);
        suppressed_unreported_ -= it->second.suppressed;
        it = allowances_.erase(it);  // a full allowance is the default: forget it
      }
    }
    if (dropped > 0) {
      JsonLine gap;
      gap.Add("time", Rfc3339(std::chrono::system_clock::now()))
          .Add("event", "audit_records_dropped")
          .Add("count", static_cast<long long>(dropped));
      sink_->Write(gap.Finish() + "\n");
    }
    for (auto [uid, count] : quiet) {
      JsonLine gap;
      gap.Add("time", Rfc3339(std::chrono::system_clock::now()))
          .Add("event", "audit_refusals_suppressed")
          .Add("uid", static_cast<long long>(uid))
          .Add("count", static_cast<long long>(count));
      sink_->Write(gap.Finish() + "\n");
    }
    std::string lines;
    for (const auto& record : batch) lines += FormatAuditRecord(record) + "\n";
    if (!lines.empty()) sink_->Write(lines);
    if (last) return;
  }
}

}  // namespace stormbroker
