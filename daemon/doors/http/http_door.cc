#include "doors/http/http_door.h"

#include <microhttpd.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "access/caller.h"
#include "access/loopback_peer.h"
#include "config/byte_size.h"
#include "doors/http/http_protocol.h"
#include "net/tcp_socket.h"
#include "net/unix_socket.h"
#include "observe/mhd_log.h"

namespace stormbroker {
namespace {

// What one connection may hold for its headers and buffers (MHD's memory
// pool per connection; a request's body passes through it in pieces and is
// bounded by max_request_size). 16 KiB holds any client's headers; at 256
// connections 64 KiB cost the daemon 15 MiB more resident memory.
constexpr size_t kConnectionMemory = 16 << 10;
constexpr const char* kAccountHeader = "X-Stormbroker-Account";

// A request header's value; empty when absent.
std::string_view Header(MHD_Connection* connection, const char* name) {
  const char* value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
  return value ? value : "";
}

}  // namespace

// Who is on one connection, learnt once at its start.
struct HttpDoor::Peer {
  int fd = -1;
  std::optional<Caller> caller;
  bool admitted = false;   // taken in by the core
  bool confirmed = false;  // loopback TCP: its owner checked again once a request was complete
  bool busy = false;       // a request is under way (guarded by the door's peers_mutex_)
  bool answered = false;   // has had an answer: when not busy, a kept-alive connection (same guard)
};

// One listening socket and the libmicrohttpd daemon serving it.
struct HttpDoor::Server {
  HttpDoor* door = nullptr;
  Door kind = Door::kHttpUnix;
  std::vector<std::string> hosts;  // TCP: the Host values that name this door
  MHD_Daemon* daemon = nullptr;
};

// One request: decided from its request line and headers, then its body as
// it arrives, then its answer.
class HttpDoor::Exchange {
 public:
  Exchange(Server& server, MHD_Connection* connection)
      : server_(server), door_(*server.door), core_(server.door->core_), connection_(connection) {}
  ~Exchange() {
    ReleaseBody();
    if (peer_) door_.SetBusy(peer_, false);
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char*, const char* upload, size_t* upload_size, void** state) {
    auto* exchange = static_cast<Exchange*>(*state);
    if (!exchange) {
      exchange = new Exchange(*static_cast<Server*>(cls), connection);
      *state = exchange;
      exchange->Start(url, method);
      // Refused before the body is read: libmicrohttpd closes the connection
      // after the answer instead of reading what the client still sends.
      return exchange->reply_ ? exchange->Send() : MHD_YES;
    }
    if (*upload_size > 0) {
      exchange->Append(upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    if (!exchange->reply_ && !exchange->at_core_) {
      exchange->Finish();
      // Suspended in this very call (even if the core has answered already):
      // the answer goes out when the server calls again, resumed.
      if (exchange->at_core_) return MHD_YES;
    }
    return exchange->reply_ ? exchange->Send() : MHD_YES;
  }

  static void OnCompleted(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    delete static_cast<Exchange*>(*state);
    *state = nullptr;
  }

  // A connection starts: who is on it (from the kernel), and its admission
  // by the core; one that cannot be admitted is ended at once.
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode code);

 private:
  // The request line and headers are in: everything that needs no body.
  void Start(std::string_view url, std::string_view method);
  // A piece of the body, kept within limits.max_request_size and the uid's
  // limits.body_bytes_per_uid.
  void Append(const char* data, size_t size);
  // The body is in: the core's call (the connection is suspended until it
  // answers), or a local answer.
  void Finish();
  void TokenDance();
  // A refusal of the door's own (its protocol's rules), audited by the core.
  void Refuse(Decision decision, const Status& why, http::Reply reply) {
    core_.Refuse(*request_, decision, why);
    reply_ = std::move(reply);
  }
  bool ReserveBody(size_t bytes) {
    if (!door_.connections_.ReserveBodyBytes(peer_->caller->uid, bytes)) return false;
    reserved_ += bytes;
    return true;
  }
  void ReleaseBody() {
    if (reserved_ > 0) door_.connections_.ReleaseBodyBytes(peer_->caller->uid, reserved_);
    reserved_ = 0;
    std::string().swap(body_);
  }
  MHD_Result Send() {
    // libmicrohttpd calls again for the rest of a body after an early
    // answer: it is queued once.
    if (queued_) return MHD_YES;
    queued_ = true;
    auto [text, content_type] = http::Render(*reply_, encoding_);
    MHD_Response* response = MHD_create_response_from_buffer(text.size(), text.data(), MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (const auto& [name, value] : reply_->headers) MHD_add_response_header(response, name.c_str(), value.c_str());
    // Shutting down: the client's next request goes to a new connection,
    // which the next process answers.
    if (door_.closing_) MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_Result queued = MHD_queue_response(connection_, reply_->status, response);
    MHD_destroy_response(response);
    return queued;
  }

  Server& server_;
  HttpDoor& door_;
  BrokerCore& core_;
  MHD_Connection* const connection_;
  Peer* peer_ = nullptr;
  std::optional<Request> request_;
  http::Target http_target_;
  http::TokenDance dance_ = http::TokenDance::kNone;
  Target target_;
  std::string encoding_ = "json";
  std::string body_;
  size_t reserved_ = 0;               // bytes of body_ reserved for the caller's uid
  std::optional<http::Reply> body_refusal_;  // the body went over a limit (and was dropped)
  std::optional<http::Reply> reply_;  // set: send it (at once, or when resumed)
  bool at_core_ = false;              // handed to the core, the connection suspended until it answers
  bool queued_ = false;               // the reply is in libmicrohttpd's hands
};

void HttpDoor::Exchange::OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                                      MHD_ConnectionNotificationCode code) {
  auto* server = static_cast<Server*>(cls);
  BrokerCore& core = server->door->core_;
  HttpDoor& door = *server->door;
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    auto* peer = static_cast<Peer*>(*socket_context);
    // Before the server closes the socket: the table's duplicate must go.
    if (peer && peer->admitted) core.ForgetConnection(peer->fd);
    if (peer) {
      absl::MutexLock lock(&door.peers_mutex_);
      door.peers_.erase(peer);
    }
    delete peer;
    *socket_context = nullptr;
    return;
  }
  auto* peer = new Peer;
  *socket_context = peer;
  {
    absl::MutexLock lock(&door.peers_mutex_);
    door.peers_.insert(peer);
  }
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!info) return;
  peer->fd = info->connect_fd;
  Result<Caller> caller = server->kind == Door::kHttpTcp ? IdentifyLoopbackPeer(peer->fd) : IdentifyPeer(peer->fd);
  if (!caller.ok()) {
    core.RefuseUnidentified(server->kind, caller.status());
    shutdown(peer->fd, SHUT_RDWR);
    return;
  }
  if (!core.AdmitConnection(peer->fd, *caller, server->kind).ok()) {
    shutdown(peer->fd, SHUT_RDWR);
    return;
  }
  peer->caller = std::move(caller).value();
  peer->admitted = true;
}

void HttpDoor::Exchange::Start(std::string_view url, std::string_view method) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection_, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  peer_ = info ? static_cast<Peer*>(info->socket_context) : nullptr;
  if (!peer_ || !peer_->admitted) {
    peer_ = nullptr;
    reply_ = http::FromStatus(PermissionDenied("the broker does not know who is on this connection"));
    return;
  }
  door_.SetBusy(peer_, true);
  // Every request, answered here or upstream, holds a place among the
  // caller's calls until it is answered.
  auto begun = core_.Begin(peer_->fd, server_.kind, Rpc::kCall, /*drains=*/true);
  if (!begun.ok()) {
    reply_ = http::FromStatus(begun.status());
    return;
  }
  request_.emplace(std::move(begun).value());
  if (server_.kind == Door::kHttpTcp) {
    Status browser = http::CheckBrowserHeaders(Header(connection_, MHD_HTTP_HEADER_HOST),
                                               Header(connection_, "Origin"), Header(connection_, "Sec-Fetch-Site"),
                                               server_.hosts);
    if (!browser.ok()) return Refuse(Decision::kDeny, browser, http::FromStatus(browser));
  }
  if (method != "POST") {
    Status why = InvalidArgument("the Storm API takes POST, not " + std::string(method.substr(0, 20)));
    return Refuse(Decision::kInvalid, why, http::MethodNotAllowed(why));
  }
  auto target = http::ParseTarget(url);
  if (!target.ok()) return Refuse(Decision::kInvalid, target.status(), http::FromStatus(target.status()));
  http_target_ = std::move(target).value();
  request_->record().method = http_target_.method;
  if (!http::IsKnownEncoding(http_target_.encoding)) {
    // The API answers an unknown encoding in JSON.
    std::string shown = http_target_.encoding.substr(0, 40);
    return Refuse(Decision::kInvalid, InvalidArgument("Invalid encoding: " + shown), http::InvalidEncoding(shown));
  }
  encoding_ = http_target_.encoding;
  size_t limit = door_.limits_.max_request_bytes;
  std::string_view length = Header(connection_, MHD_HTTP_HEADER_CONTENT_LENGTH);
  size_t announced = length.empty() ? 0 : std::strtoull(std::string(length).c_str(), nullptr, 10);
  if (announced > limit) {
    Status why = InvalidArgument("the request body is larger than limits.max_request_size (" +
                                 FormatByteSize(limit) + ")");
    return Refuse(Decision::kInvalid, why, http::TooLarge(why));
  }
  // The account: the Basic username, else the header, else the only one.
  // The password (whatever the client holds) is wiped unread.
  std::string account;
  char* password = nullptr;
  if (char* username = MHD_basic_auth_get_username_password(connection_, &password)) {
    account = username;
    MHD_free(username);
  }
  if (password) {
    explicit_bzero(password, strlen(password));
    MHD_free(password);
  }
  if (account.empty()) account = Header(connection_, kAccountHeader);
  // Policy before the body: a refused caller's body is never read.
  dance_ = http::TokenDanceOf(http_target_.method);
  auto decided = dance_ != http::TokenDance::kNone ? core_.Authorize(*request_, account, Permission::kUse)
                                                   : core_.Screen(*request_, account, http_target_.method);
  if (!decided.ok()) {
    reply_ = http::FromStatus(decided.status());
    return;
  }
  target_ = std::move(decided).value();
  if (announced > 0 && !ReserveBody(announced)) {
    Status why = ResourceExhausted("uid " + std::to_string(peer_->caller->uid) +
                                   " holds as many request bytes in the broker as it may "
                                   "(limits.body_bytes_per_uid)");
    Refuse(Decision::kLimit, why, http::FromStatus(why));
  }
}

void HttpDoor::Exchange::Append(const char* data, size_t size) {
  if (body_refusal_ || reply_) return;  // dropped
  if (body_.size() + size > door_.limits_.max_request_bytes) {
    Status why = InvalidArgument("the request body is larger than limits.max_request_size (" +
                                 FormatByteSize(door_.limits_.max_request_bytes) + ")");
    body_refusal_ = http::TooLarge(why);
    core_.Refuse(*request_, Decision::kInvalid, why);
  } else if (body_.size() + size > reserved_ && !ReserveBody(body_.size() + size - reserved_)) {
    Status why = ResourceExhausted("uid " + std::to_string(peer_->caller->uid) +
                                   " holds as many request bytes in the broker as it may "
                                   "(limits.body_bytes_per_uid)");
    body_refusal_ = http::FromStatus(why);
    core_.Refuse(*request_, Decision::kLimit, why);
  }
  if (body_refusal_) {
    ReleaseBody();
    return;
  }
  body_.append(data, size);
}

void HttpDoor::Exchange::Finish() {
  if (body_refusal_) {
    reply_ = std::move(body_refusal_);
    return;
  }
  // The first request of a TCP connection is complete: is its sender still
  // there, and the same? (One that sent and closed at once is an orphan,
  // which the kernel names as nobody's.)
  if (server_.kind == Door::kHttpTcp && !peer_->confirmed) {
    if (Status still = LoopbackPeerStillOwnedBy(peer_->fd, peer_->caller->uid); !still.ok()) {
      request_->set_concluded();  // audited as unidentified, never as this uid's
      core_.RefuseUnidentified(server_.kind, still);
      reply_ = http::FromStatus(still);
      return;
    }
    peer_->confirmed = true;
  }
  if (dance_ != http::TokenDance::kNone) return TokenDance();
  auto params = http::ParseParams(body_, encoding_);
  ReleaseBody();
  if (!params.ok()) {
    return Refuse(Decision::kInvalid, params.status(), http::Undeserializable(params.status(), encoding_));
  }
  if (Status checked = core_.CheckParams(*request_, *params); !checked.ok()) {
    reply_ = http::FromStatus(checked);
    return;
  }
  at_core_ = true;
  MHD_suspend_connection(connection_);
  CallArgs args{http_target_.method, http_target_.version, std::move(params).value(), std::nullopt};
  core_.Call(std::move(*request_), target_, std::move(args), [this](Result<ApiOutcome> answer) {
    reply_ = answer.ok() ? http::FromApi(*answer) : http::FromStatus(answer.status());
    MHD_resume_connection(connection_);  // the server sends the reply on its own thread
  });
  request_.reset();
}

void HttpDoor::Exchange::TokenDance() {
  ReleaseBody();  // whatever the client asked (a timeout) is the broker's to decide
  if (dance_ == http::TokenDance::kExpireToken) {
    // The account's token lives on: other callers use it.
    core_.Conclude(*request_, Status::Ok());
    reply_ = http::TokenExpired();
    return;
  }
  auto held = target_.session->CurrentToken();
  if (!held.ok()) {
    core_.Conclude(*request_, held.status());
    reply_ = http::FromStatus(held.status());
    return;
  }
  auto expires = held->snapshot.inactivity_deadline.value_or(std::chrono::system_clock::now());
  core_.Conclude(*request_, Status::Ok());
  reply_ = http::TokenHandle(std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count());
}

HttpDoor::HttpDoor(BrokerCore& core, ConnectionTable& connections, const LimitsConfig& limits)
    : core_(core), connections_(connections), limits_(limits) {}

HttpDoor::~HttpDoor() { Stop(); }

Status HttpDoor::Start(const ListenConfig& listen, const PassedSockets& passed) {
  if (passed.http_unix) {
    if (Status served = Serve(*passed.http_unix, Door::kHttpUnix, nullptr); !served.ok()) return served;
    spdlog::info("HTTP door on the Unix socket systemd passed (listen.http_socket is not used)");
  } else if (!listen.http_socket.empty()) {
    auto fd = OpenUnixSocket(listen.http_socket, listen.mode, listen.group);
    if (!fd.ok()) return fd.status();
    socket_path_ = listen.http_socket;
    if (Status served = Serve(*fd, Door::kHttpUnix, nullptr); !served.ok()) return served;
    spdlog::info("HTTP door on {}", listen.http_socket);
  }
  if (!listen.http && !passed.http_tcp) return Status::Ok();
  std::optional<Tls> tls;
  if (!listen.http_tls_cert_file.empty()) {
    std::ifstream cert_file(listen.http_tls_cert_file);
    std::stringstream cert;
    cert << cert_file.rdbuf();
    auto key = ReadSecretFile(listen.http_tls_key_file);
    if (!cert_file || !key.ok()) {
      return Unavailable("cannot read listen.http_tls: " +
                         (key.ok() ? listen.http_tls_cert_file : key.status().message()));
    }
    tls = Tls{cert.str(), std::move(key).value()};
  }
  const char* scheme = tls ? "https" : "http";
  if (passed.http_tcp) {
    if (Status served = Serve(*passed.http_tcp, Door::kHttpTcp, tls ? &*tls : nullptr); !served.ok()) return served;
    spdlog::info("HTTP door ({}) on the loopback socket systemd passed (listen.http is not used)", scheme);
    return Status::Ok();
  }
  auto fd = OpenTcpSocket(*listen.http);
  if (!fd.ok()) return fd.status();
  if (Status served = Serve(*fd, Door::kHttpTcp, tls ? &*tls : nullptr); !served.ok()) return served;
  spdlog::info("HTTP door on {}://{}:{}", scheme, listen.http->host, listen.http->port);
  return Status::Ok();
}

Status HttpDoor::Serve(int listen_fd, Door kind, const Tls* tls) {
  auto server = std::make_unique<Server>();
  server->door = this;
  server->kind = kind;
  if (kind == Door::kHttpTcp) {
    auto bound = BoundAddress(listen_fd);
    if (!bound.ok()) {
      close(listen_fd);
      return bound.status();
    }
    server->hosts = http::DoorHosts(bound->host, bound->port);
  }
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                       MHD_USE_ERROR_LOG;
  // TLS (GnuTLS, inside libmicrohttpd): the key and certificate as PEM text.
  std::vector<MHD_OptionItem> tls_options;
  if (tls) {
    flags |= MHD_USE_TLS;
    tls_options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls->key.Reveal().data())});
    tls_options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls->cert.c_str())});
  }
  tls_options.push_back({MHD_OPTION_END, 0, nullptr});
  auto idle_seconds = static_cast<unsigned int>(
      std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(limits_.idle_timeout).count()));
  server->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Exchange::OnRequest, server.get(),                //
      // The logger first, so that every message goes there.
      MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>(DoorName(kind)),   //
      MHD_OPTION_LISTEN_SOCKET, listen_fd,                                          //
      MHD_OPTION_NOTIFY_CONNECTION, &Exchange::OnConnection, server.get(),          //
      MHD_OPTION_NOTIFY_COMPLETED, &Exchange::OnCompleted, nullptr,                 //
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,                        //
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(limits_.connections),  //
      MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds,                                  //
      MHD_OPTION_THREAD_POOL_SIZE, 2u,                                              //
      MHD_OPTION_ARRAY, tls_options.data(),                                         //
      MHD_OPTION_END);
  if (!server->daemon) {
    close(listen_fd);
    return Unavailable(std::string("libmicrohttpd could not start the HTTP door (") + DoorName(kind) + ")");
  }
  servers_.push_back(std::move(server));
  return Status::Ok();
}

void HttpDoor::SetBusy(Peer* peer, bool busy) {
  absl::MutexLock lock(&peers_mutex_);
  peer->busy = busy;
  if (!busy) peer->answered = true;
}

void HttpDoor::GoAway() {
  closing_ = true;
  // Idle keep-alive connections are closed now, before the listening socket
  // is another process's; the busy ones close after their answer, and a new
  // one after its first. A client whose request crosses the close on the
  // wire sees the connection end: HTTP/1.1 has no way to say "not
  // processed, send it again" for a POST.
  absl::MutexLock lock(&peers_mutex_);
  for (Peer* peer : peers_) {
    if (!peer->busy && peer->answered) shutdown(peer->fd, SHUT_RDWR);
  }
}

void HttpDoor::StopAccepting() {
  GoAway();
  for (auto& server : servers_) {
    // No new connections: our copy of the listening socket goes now.
    int fd = MHD_quiesce_daemon(server->daemon);
    if (fd >= 0) close(fd);
  }
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
}

void HttpDoor::Stop() {
  for (auto& server : servers_) {
    if (server->daemon) MHD_stop_daemon(server->daemon);
    server->daemon = nullptr;
  }
  servers_.clear();
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
  socket_path_.clear();
}

}  // namespace stormbroker
