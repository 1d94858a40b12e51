// The connections the daemon accepted: who is on each (the kernel's word, at
// accept time), and what each holds, within the bounds of limits: so that one
// local user cannot starve the others or the token's keep-alive.
//
// Connections are known by their file descriptor, which the door that
// accepted them owns (gRPC; libmicrohttpd for the HTTP doors; the proxy
// door's loop while it reads a CONNECT, then the HTTP door's tunnel server,
// which admits the connection anew). A door does
// not reuse a number while a call on it is alive, and a new Admit of the
// same number replaces the stale entry.
//
// The table keeps a duplicate of each fd, which lets it learn when the peer
// hangs up (epoll, EPOLLRDHUP) and end a connection itself (shutdown() acts
// on the socket, so the door sees the end too): one that has not completed
// a request within first_request_timeout of being accepted (a half-sent
// message holds memory), or that has had no call in flight for
// idle_timeout. Each connection therefore costs two descriptors.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <absl/synchronization/mutex.h>

#include "access/caller.h"
#include "config/config.h"
#include "util/status.h"

namespace stormbroker {

class ConnectionTable;

// A place among the calls of one connection and one uid, held from the start
// of a call to its end (when the last copy of the pointer goes).
class CallTicket {
 public:
  CallTicket(ConnectionTable& table, uint64_t connection, Caller caller,
             std::shared_ptr<const std::atomic<bool>> gone)
      : table_(table), connection_(connection), caller_(std::move(caller)), gone_(std::move(gone)) {}
  ~CallTicket();
  CallTicket(const CallTicket&) = delete;
  CallTicket& operator=(const CallTicket&) = delete;
  const Caller& caller() const { return caller_; }
  // Set once the call's connection has ended (the caller hung up).
  const std::shared_ptr<const std::atomic<bool>>& gone() const { return gone_; }

 private:
  ConnectionTable& table_;
  const uint64_t connection_;
  const Caller caller_;
  const std::shared_ptr<const std::atomic<bool>> gone_;
};

// What BeginCall decided: a ticket, or why not (with the caller when known,
// so the refusal can be audited).
struct CallAdmission {
  std::shared_ptr<const CallTicket> ticket;
  std::optional<Caller> caller;
  Status refusal;
};

class ConnectionTable {
 public:
  // `max_connections` is what the daemon's descriptors allow, which may be
  // less than limits.connections.
  ConnectionTable(const LimitsConfig& limits, size_t max_connections);
  ~ConnectionTable();
  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  // Starts watching for hang-ups and the deadlines above.
  Status Start();

  // Runs `accept` on the table's thread whenever listening socket `fd` is
  // readable, so that the daemon's accept loop needs no thread of its own.
  // `accept` must not block for long: hang-ups wait meanwhile.
  Status AcceptOn(int fd, std::function<void()> accept) ABSL_LOCKS_EXCLUDED(listeners_mutex_);
  // Stops watching `fd`; returns once its `accept` is not running and will
  // not run again.
  void StopAccepting(int fd) ABSL_LOCKS_EXCLUDED(listeners_mutex_);

  // Takes in the connection on `fd` (accepted, not yet served) through
  // `door` (its name, for the count of connections by door).
  // RESOURCE_EXHAUSTED, saying which limit, when the caller's uid or all
  // callers together hold as many connections as they may, or the uid
  // holds `door_share` of this door's already (a door with a small table
  // of its own): the fd is then not taken (the accept loop closes it).
  Status Admit(int fd, const Caller& caller, const std::string& door,
               std::optional<size_t> door_share = std::nullopt);

  // A call beginning on connection `fd`: UNAUTHENTICATED when the
  // connection is unknown, RESOURCE_EXHAUSTED when its uid has as many calls
  // in flight as it may. (The calls of one gRPC connection are also bounded
  // by HTTP/2: limits.calls_per_connection is the server's
  // MAX_CONCURRENT_STREAMS, beyond which a client queues.)
  CallAdmission BeginCall(int fd) ABSL_LOCKS_EXCLUDED(mutex_);
  // Forgets connection `fd`, whose owner is about to close it (the HTTP
  // door's, which the server closes itself; the table's duplicate would
  // otherwise keep the socket open).
  void Forget(int fd) ABSL_LOCKS_EXCLUDED(mutex_);

  // Request bodies held in memory, per uid (limits.body_bytes_per_uid): a
  // door reserves a body's bytes before it keeps them and gives them back
  // when the request ends. False when the uid would hold more than it may.
  bool ReserveBodyBytes(uid_t uid, size_t bytes) ABSL_LOCKS_EXCLUDED(mutex_);
  void ReleaseBodyBytes(uid_t uid, size_t bytes) ABSL_LOCKS_EXCLUDED(mutex_);

  // The caller on `fd`, without taking a place (for calls that hold
  // nothing, such as a health check).
  std::optional<Caller> Lookup(int fd) const ABSL_LOCKS_EXCLUDED(mutex_);

  size_t connections() const;
  // Connections open now by door, for every door that has admitted one.
  std::map<std::string, size_t> ConnectionsByDoor() const ABSL_LOCKS_EXCLUDED(mutex_);
  // The most connections all callers together may hold.
  size_t max_connections() const { return max_connections_; }
  // For a restart: a mark of this moment; then waits until the connections
  // admitted before it have all closed, or until `deadline`, and says how
  // many are still open.
  uint64_t Mark() const ABSL_LOCKS_EXCLUDED(mutex_);
  size_t WaitForCloseBefore(uint64_t mark, std::chrono::steady_clock::time_point deadline) const
      ABSL_LOCKS_EXCLUDED(mutex_);
  // Connections the table ended: no first request in time, or idle.
  uint64_t closed_incomplete() const { return closed_incomplete_; }
  uint64_t closed_idle() const { return closed_idle_; }

 private:
  friend class CallTicket;
  struct Connection {
    uint64_t id = 0;
    int watch_fd = -1;  // our duplicate of the door's fd
    uid_t uid = 0;
    Caller caller;
    std::string door;
    size_t calls = 0;
    bool requested = false;  // a complete request has arrived
    std::chrono::steady_clock::time_point last_active;
    std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);  // set when it ends
  };
  struct Usage {
    size_t connections = 0;
    size_t calls = 0;
    size_t body_bytes = 0;
  };

  void EndCall(uint64_t id, uid_t uid) ABSL_LOCKS_EXCLUDED(mutex_);
  size_t OpenBeforeLocked(uint64_t mark) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Loop() ABSL_LOCKS_EXCLUDED(mutex_, listeners_mutex_);
  // Forgets connection `fd`, ending the socket when `end_socket`.
  void RemoveLocked(int fd, bool end_socket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void ReleaseUsageLocked(uid_t uid, size_t connections, size_t calls, size_t body_bytes = 0)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const LimitsConfig limits_;
  const size_t max_connections_;
  mutable absl::Mutex mutex_;
  std::unordered_map<int, Connection> by_fd_ ABSL_GUARDED_BY(mutex_);  // the door's fd number -> connection
  std::unordered_map<uint64_t, int> fd_of_ ABSL_GUARDED_BY(mutex_);    // connection id -> the door's fd number
  std::unordered_map<uid_t, Usage> usage_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> doors_ ABSL_GUARDED_BY(mutex_);  // that admitted a connection once
  uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  // Held while an `accept` runs (taken before mutex_, never after).
  absl::Mutex listeners_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);
  std::unordered_map<int, std::function<void()>> listeners_ ABSL_GUARDED_BY(listeners_mutex_);
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> closed_incomplete_{0};
  std::atomic<uint64_t> closed_idle_{0};
  std::thread thread_;
};

}  // namespace stormbroker
