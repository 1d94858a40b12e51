#include "access/connection_table.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <vector>

#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

namespace stormbroker {
namespace {

// How often the deadlines are looked at: they are seconds long, so a
// quarter of a second late is on time.
constexpr int kSweepMs = 250;

// The epoll tag of a listening socket: connection ids (from 1) and the
// wake-up (0) never have the top bit set.
constexpr uint64_t kListenerTag = uint64_t{1} << 63;

const Status kUnknownConnection(StatusCode::kUnauthenticated, "the broker cannot identify this connection");

}  // namespace

CallTicket::~CallTicket() { table_.EndCall(connection_, caller_.uid); }

ConnectionTable::ConnectionTable(const LimitsConfig& limits, size_t max_connections)
    : limits_(limits), max_connections_(max_connections) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ >= 0 && wake_fd_ >= 0) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = 0;  // connection ids start at 1
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
  }
}

ConnectionTable::~ConnectionTable() {
  stopping_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (auto& [fd, connection] : by_fd_) close(connection.watch_fd);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status ConnectionTable::Start() {
  if (epoll_fd_ < 0 || wake_fd_ < 0) return Internal(std::string("connection table: ") + strerror(errno));
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

Status ConnectionTable::AcceptOn(int fd, std::function<void()> accept) {
  absl::MutexLock lock(&listeners_mutex_);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kListenerTag | static_cast<uint32_t>(fd);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return Internal(std::string("cannot watch the listening socket: ") + strerror(errno));
  }
  listeners_[fd] = std::move(accept);
  return Status::Ok();
}

void ConnectionTable::StopAccepting(int fd) {
  absl::MutexLock lock(&listeners_mutex_);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  listeners_.erase(fd);
}

Status ConnectionTable::Admit(int fd, const Caller& caller, const std::string& door,
                              std::optional<size_t> door_share) {
  absl::MutexLock lock(&mutex_);
  // The kernel gave us this number again, so its door has closed the old one.
  if (by_fd_.count(fd)) RemoveLocked(fd, /*end_socket=*/false);
  if (by_fd_.size() >= max_connections_) {
    return ResourceExhausted("the broker holds " + std::to_string(by_fd_.size()) +
                             " connections, as many as it may (limits.connections, and its descriptors)");
  }
  Usage& usage = usage_[caller.uid];
  if (usage.connections >= limits_.connections_per_uid) {
    return ResourceExhausted("uid " + std::to_string(caller.uid) + " holds " + std::to_string(usage.connections) +
                             " connections to the broker, as many as it may (limits.connections_per_uid)");
  }
  if (door_share) {
    size_t held = std::count_if(by_fd_.begin(), by_fd_.end(), [&](const auto& entry) {
      return entry.second.uid == caller.uid && entry.second.door == door;
    });
    if (held >= *door_share) {
      return ResourceExhausted("uid " + std::to_string(caller.uid) + " holds " + std::to_string(held) +
                               " connections to the " + door + " door, as many as it may");
    }
  }
  int watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watch_fd < 0) return ResourceExhausted(std::string("cannot watch the connection: ") + strerror(errno));
  uint64_t id = next_id_++;
  epoll_event event{};
  event.events = EPOLLRDHUP;  // not EPOLLIN: the data is the door's to read
  event.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watch_fd, &event) != 0) {
    Status failure = ResourceExhausted(std::string("cannot watch the connection: ") + strerror(errno));
    close(watch_fd);
    return failure;
  }
  ++usage.connections;
  Connection& connection = by_fd_[fd];
  connection.id = id;
  connection.watch_fd = watch_fd;
  connection.uid = caller.uid;
  connection.caller = caller;
  connection.door = door;
  doors_.insert(door);
  connection.last_active = std::chrono::steady_clock::now();
  fd_of_[id] = fd;
  return Status::Ok();
}

std::map<std::string, size_t> ConnectionTable::ConnectionsByDoor() const {
  absl::MutexLock lock(&mutex_);
  std::map<std::string, size_t> open;
  for (const std::string& door : doors_) open[door] = 0;
  for (const auto& [fd, connection] : by_fd_) ++open[connection.door];
  return open;
}

void ConnectionTable::Forget(int fd) {
  absl::MutexLock lock(&mutex_);
  RemoveLocked(fd, /*end_socket=*/false);
}

CallAdmission ConnectionTable::BeginCall(int fd) {
  CallAdmission admission;
  absl::MutexLock lock(&mutex_);
  auto found = by_fd_.find(fd);
  if (found == by_fd_.end()) {
    admission.refusal = kUnknownConnection;
    return admission;
  }
  Connection& connection = found->second;
  admission.caller = connection.caller;
  connection.requested = true;
  connection.last_active = std::chrono::steady_clock::now();
  Usage& usage = usage_[connection.uid];
  if (usage.calls >= limits_.calls_per_uid) {
    admission.refusal = ResourceExhausted("uid " + std::to_string(connection.uid) + " has " +
                                          std::to_string(usage.calls) +
                                          " calls in flight, as many as it may (limits.calls_per_uid)");
  } else {
    ++connection.calls;
    ++usage.calls;
    admission.ticket = std::make_shared<const CallTicket>(*this, connection.id, connection.caller, connection.gone);
  }
  return admission;
}

std::optional<Caller> ConnectionTable::Lookup(int fd) const {
  absl::MutexLock lock(&mutex_);
  auto found = by_fd_.find(fd);
  if (found == by_fd_.end()) return std::nullopt;
  return found->second.caller;
}

size_t ConnectionTable::connections() const {
  absl::MutexLock lock(&mutex_);
  return by_fd_.size();
}

uint64_t ConnectionTable::Mark() const {
  absl::MutexLock lock(&mutex_);
  return next_id_;
}

size_t ConnectionTable::OpenBeforeLocked(uint64_t mark) const {
  // Ids grow with each admission.
  return std::count_if(by_fd_.begin(), by_fd_.end(), [mark](const auto& entry) { return entry.second.id < mark; });
}

size_t ConnectionTable::WaitForCloseBefore(uint64_t mark, std::chrono::steady_clock::time_point deadline) const {
  absl::MutexLock lock(&mutex_);
  struct Closed {
    const ConnectionTable* table;
    uint64_t mark;
    bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return table->OpenBeforeLocked(mark) == 0; }
  } closed{this, mark};
  // The condition is looked at again whenever the lock is released: no polling.
  mutex_.AwaitWithDeadline(absl::Condition(&closed), absl::FromChrono(std::chrono::system_clock::now() +
                                                                       (deadline - std::chrono::steady_clock::now())));
  return OpenBeforeLocked(mark);
}

void ConnectionTable::EndCall(uint64_t id, uid_t uid) {
  absl::MutexLock lock(&mutex_);
  auto fd = fd_of_.find(id);
  if (fd != fd_of_.end()) {
    Connection& connection = by_fd_[fd->second];
    --connection.calls;
    connection.last_active = std::chrono::steady_clock::now();
  }
  ReleaseUsageLocked(uid, 0, 1);
}

void ConnectionTable::ReleaseUsageLocked(uid_t uid, size_t connections, size_t calls, size_t body_bytes) {
  auto usage = usage_.find(uid);
  if (usage == usage_.end()) return;
  usage->second.connections -= connections;
  usage->second.calls -= calls;
  usage->second.body_bytes -= body_bytes;
  if (usage->second.connections == 0 && usage->second.calls == 0 && usage->second.body_bytes == 0) {
    usage_.erase(usage);
  }
}

bool ConnectionTable::ReserveBodyBytes(uid_t uid, size_t bytes) {
  absl::MutexLock lock(&mutex_);
  Usage& usage = usage_[uid];
  if (usage.body_bytes + bytes > limits_.body_bytes_per_uid) return false;
  usage.body_bytes += bytes;
  return true;
}

void ConnectionTable::ReleaseBodyBytes(uid_t uid, size_t bytes) {
  absl::MutexLock lock(&mutex_);
  ReleaseUsageLocked(uid, 0, 0, bytes);
}

void ConnectionTable::RemoveLocked(int fd, bool end_socket) {
  auto found = by_fd_.find(fd);
  if (found == by_fd_.end()) return;
  Connection& connection = found->second;
  if (end_socket) shutdown(connection.watch_fd, SHUT_RDWR);  // the door sees the end too
  // Removed from epoll by name: closing our duplicate alone would leave the
  // registration in place while the door's descriptor of the same socket
  // is open, and watching that socket again (the proxy door hands a
  // connection it admitted to the HTTP door, which admits it anew) would
  // fail with EEXIST.
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.watch_fd, nullptr);
  close(connection.watch_fd);
  connection.gone->store(true, std::memory_order_relaxed);  // its calls still in line leave it
  fd_of_.erase(connection.id);
  // Calls still in flight keep their place in the uid's count until they end.
  ReleaseUsageLocked(connection.uid, 1, 0);
  by_fd_.erase(found);
}

void ConnectionTable::Loop() {
  epoll_event events[64];
  auto next_sweep = std::chrono::steady_clock::now();
  while (!stopping_) {
    int ready = epoll_wait(epoll_fd_, events, 64, kSweepMs);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("connection table: epoll_wait failed: {}", strerror(errno));
      return;
    }
    {
      absl::MutexLock lock(&listeners_mutex_);
      for (int i = 0; i < ready; ++i) {
        uint64_t tag = events[i].data.u64;
        if (!(tag & kListenerTag)) continue;
        // Stopped since epoll_wait returned: gone from the map.
        auto listener = listeners_.find(static_cast<int>(tag & ~kListenerTag));
        if (listener != listeners_.end()) listener->second();
      }
    }
    absl::MutexLock lock(&mutex_);
    for (int i = 0; i < ready; ++i) {
      // A copy: epoll_event is packed, so its u64 may be misaligned for a reference.
      uint64_t id = events[i].data.u64;
      auto fd = fd_of_.find(id);
      // A hang-up (or half a one): end the connection for the door as well.
      if (fd != fd_of_.end()) RemoveLocked(fd->second, /*end_socket=*/true);
    }
    auto now = std::chrono::steady_clock::now();
    if (now < next_sweep) continue;
    next_sweep = now + std::chrono::milliseconds(kSweepMs);
    std::vector<int> incomplete, idle;
    for (const auto& [fd, connection] : by_fd_) {
      if (connection.calls > 0) continue;
      auto quiet = now - connection.last_active;
      if (!connection.requested && quiet >= limits_.first_request_timeout) incomplete.push_back(fd);
      else if (connection.requested && quiet >= limits_.idle_timeout) idle.push_back(fd);
    }
    if (!incomplete.empty()) {
      spdlog::info("closed {} connection(s) (the first of uid {}) with no complete request within {} ms",
                   incomplete.size(), by_fd_[incomplete.front()].uid, limits_.first_request_timeout.count());
    }
    for (int fd : incomplete) RemoveLocked(fd, /*end_socket=*/true);
    for (int fd : idle) RemoveLocked(fd, /*end_socket=*/true);
    closed_incomplete_ += incomplete.size();
    closed_idle_ += idle.size();
  }
}

}  // namespace stormbroker
