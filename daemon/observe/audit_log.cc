#include "observe/audit_log.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "observe/json_line.h"

namespace stormbroker {
namespace {

// How long the writer gathers records after the first of a batch, and the
// batch size that wakes it early (or half the queue, when that is smaller). A record reaches the file within this time.
constexpr std::chrono::milliseconds kGatherTime{20};
constexpr size_t kWakeAt = 256;

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

std::string FormatAuditRecord(const AuditRecord& r) {
  JsonLine line;
  line.Add("time", Rfc3339(r.time))
      .Add("uid", static_cast<long long>(r.uid))
      .Add("user", r.user)
      .Add("gid", static_cast<long long>(r.gid))
      .Add("pid", static_cast<long long>(r.pid))
      .Add("exe", r.exe)
      .Add("unit", r.unit)
      .Add("rpc", r.rpc)
      .Add("account", r.account)
      .Add("decision", r.decision)
      .Add("outcome", r.outcome)
      .AddThousandths("latency_ms", r.latency_ms);
  if (!r.method.empty()) line.Add("method", r.method);
  if (!r.param_names.empty()) line.Add("params", r.param_names);
  if (r.rule_line > 0) line.Add("rule_line", static_cast<long long>(r.rule_line));
  if (!r.error_class.empty()) line.Add("error_class", r.error_class);
  if (!r.detail.empty()) line.Add("detail", r.detail);
  return line.Finish();
}

std::unique_ptr<AuditSink> MakeStderrAuditSink() { return std::make_unique<FdSink>(2, ""); }

Result<std::unique_ptr<AuditSink>> MakeFileAuditSink(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return Unavailable("cannot open the audit file " + path + ": " + strerror(errno));
  return std::unique_ptr<AuditSink>(std::make_unique<FdSink>(fd, path));
}

AuditLog::AuditLog(std::unique_ptr<AuditSink> sink, size_t capacity)
    : sink_(std::move(sink)),
      capacity_(capacity),
      wake_at_(std::clamp<size_t>(capacity / 2, 1, kWakeAt)),
      writer_([this] { Loop(); }) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void AuditLog::Record(AuditRecord record) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= capacity_) {
      ++dropped_total_;
      ++dropped_unreported_;
      return;
    }
    queue_.push_back(std::move(record));
    // Wake the writer for the first record of a batch (it then gathers more
    // for up to kGatherTime) and when the batch is big; not for every record,
    // since a wake-up per call is what a busy broker can least afford.
    if (queue_.size() != 1 && queue_.size() != wake_at_) return;
  }
  wake_.notify_one();
}

uint64_t AuditLog::dropped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dropped_total_;
}

Status AuditLog::Reopen() {
  std::lock_guard<std::mutex> lock(sink_mutex_);  // not in the middle of a write
  return sink_->Reopen();
}

void AuditLog::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) return;
    wake_.wait_for(lock, kGatherTime, [&] { return stopping_ || queue_.size() >= wake_at_; });
    std::deque<AuditRecord> batch;
    batch.swap(queue_);
    uint64_t dropped = dropped_unreported_;
    dropped_unreported_ = 0;
    lock.unlock();
    std::lock_guard<std::mutex> writing(sink_mutex_);
    if (dropped > 0) {
      JsonLine gap;
      gap.Add("time", Rfc3339(std::chrono::system_clock::now()))
          .Add("event", "audit_records_dropped")
          .Add("count", static_cast<long long>(dropped));
      sink_->Write(gap.Finish() + "\n");
    }
    std::string lines;
    for (const auto& record : batch) lines += FormatAuditRecord(record) + "\n";
    sink_->Write(lines);
    lock.lock();
  }
}

}  // namespace stormbroker
