#include "doors/http/http_exchange.h"

#include <sys/socket.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "access/loopback_peer.h"
#include "util/printable.h"

namespace stormbroker {
namespace {

constexpr const char* kAccountHeader = "X-Stormbroker-Account";

// A request header's value; empty when absent.
std::string_view Header(MHD_Connection* connection, const char* name) {
  const char* value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
  return value ? value : "";
}

// Connections whose caller the kernel names through sock_diag (the owner
// of the client's socket), with the Host and browser checks of a TCP door.
bool OverLoopbackTcp(DoorKind door) { return door == DoorKind::kHttpTcp || door == DoorKind::kHttpsProxy; }

// The answer to a request whose handling failed inside the broker: written
// out in full, so that sending it cannot fail the same way.
constexpr std::string_view kInternalAnswer =
    R"({"error_class":"StormBroker::Internal","error_message":"the broker failed while handling this request; )"
    R"(the failure is in its log","full_message":"the broker failed while handling this request; the failure is )"
    R"(in its log"})";

}  // namespace

MHD_Result HttpDoor::Exchange::Faulted(void* state, std::string_view what) {
  auto* exchange = static_cast<Exchange*>(state);
  if (!exchange) return MHD_NO;  // not even begun (no memory): the connection closes
  std::optional<Caller> caller;
  if (exchange->peer_ && exchange->peer_->caller) caller = exchange->peer_->caller;
  exchange->core_.Fault(exchange->server_.kind, Rpc::kCall, exchange->PendingRequest(), caller, what);
  exchange->call_.reset();
  exchange->request_.reset();
  exchange->reply_ = http::FromStatus(Internal("failed"));  // what the client sends next is dropped
  // Handed to the core: its answer resumes the connection. Queued: half an
  // answer may be out, so the connection closes.
  if (exchange->at_core_) return MHD_YES;
  if (exchange->queued_) return MHD_NO;
  exchange->queued_ = true;
  MHD_Response* response = MHD_create_response_from_buffer(kInternalAnswer.size(), const_cast<char*>(kInternalAnswer.data()),
                                                           MHD_RESPMEM_PERSISTENT);
  if (!response) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  MHD_Result queued = MHD_queue_response(exchange->connection_, MHD_HTTP_INTERNAL_SERVER_ERROR, response);
  MHD_destroy_response(response);
  return queued;
}

void HttpDoor::Exchange::OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                                      MHD_ConnectionNotificationCode code) {
  try {
    Notified(cls, connection, socket_context, code);
  } catch (const std::exception& e) {
    spdlog::error("HTTP door: admitting a connection threw: {}; it is closed", Printable(e.what()));
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info && code == MHD_CONNECTION_NOTIFY_STARTED) shutdown(info->connect_fd, SHUT_RDWR);
  }
}

void HttpDoor::Exchange::Notified(void* cls, MHD_Connection* connection, void** socket_context,
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
    door.peers_.emplace(peer, PeerState{});
  }
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!info) return;
  peer->fd = info->connect_fd;
  Result<Caller> caller = OverLoopbackTcp(server->kind) ? IdentifyLoopbackPeer(peer->fd) : IdentifyPeer(peer->fd);
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
  // The account: the Basic username, else the header, else the only one.
  // The password (whatever the client holds) is wiped unread. Known before
  // anything is refused, so that every refusal is audited with it, as the
  // gRPC door's are.
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
  request_->record().account = account;
  if (OverLoopbackTcp(server_.kind)) {
    Status browser = core_.AdmitFromLoopbackTcp(*request_, Header(connection_, MHD_HTTP_HEADER_HOST),
                                                Header(connection_, "Origin"), Header(connection_, "Sec-Fetch-Site"),
                                                server_.hosts);
    if (!browser.ok()) {
      reply_ = http::FromStatus(browser);
      return;
    }
  }
  auto read = http::ReadHead(method, url, Header(connection_, http::kTimeoutHeader),
                             Header(connection_, MHD_HTTP_HEADER_CONTENT_LENGTH));
  if (auto* refusal = std::get_if<http::Refusal>(&read)) {
    core_.Refuse(*request_, refusal->decision, refusal->why);
    reply_ = std::move(refusal->reply);
    return;
  }
  http::Head& head = std::get<http::Head>(read);
  encoding_ = head.target.encoding;
  CallHead call{account, head.target.method, head.target.version, head.timeout,
                AsksForFresh(Header(connection_, MHD_HTTP_HEADER_CACHE_CONTROL)), head.announced_body};
  auto opened = core_.OpenCall(std::move(*request_), std::move(call));
  request_.reset();
  if (!opened.ok()) {
    reply_ = http::FromStatus(opened.status());
    return;
  }
  call_.emplace(std::move(opened).value());
}

void HttpDoor::Exchange::Append(const char* data, size_t size) {
  if (body_refusal_ || reply_) return;  // dropped
  if (Status taken = call_->Receive(size); !taken.ok()) {
    body_refusal_ = http::FromStatus(taken);
    std::string().swap(body_);
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
  if (OverLoopbackTcp(server_.kind) && !peer_->confirmed) {
    if (Status still = LoopbackPeerStillOwnedBy(peer_->fd, peer_->caller->uid); !still.ok()) {
      call_->request().set_concluded();  // audited as unidentified, never as this uid's
      core_.RefuseUnidentified(server_.kind, still);
      reply_ = http::FromStatus(still);
      return;
    }
    peer_->confirmed = true;
  }
  nlohmann::json params = nlohmann::json::object();
  // YAML waits for its uid's turn (suspended: no thread held), and gives it
  // up however the parse ends.
  bool yaml = call_->needs_params() && encoding_ == "yaml";
  if (yaml && !yaml_turn_ && !door_.TakeYamlTurn(peer_->caller->uid, this)) return;
  struct TurnEnds {
    Exchange* holder;
    ~TurnEnds() {
      if (holder) holder->door_.EndYamlTurn(holder->peer_->caller->uid, holder);
    }
  } turn_ends{yaml ? this : nullptr};
  if (call_->needs_params()) {
    auto parsed = http::ParseParams(body_, encoding_);
    std::string().swap(body_);
    if (!parsed.ok()) {
      call_->Refuse(Decision::kInvalid, parsed.status());
      reply_ = http::Undeserializable(parsed.status(), encoding_);
      return;
    }
    params = std::move(parsed).value();
  }
  at_core_ = true;
  MHD_suspend_connection(connection_);
  CallExchange call = std::move(*call_);
  call_.reset();
  std::move(call).End(std::move(params), [this](Result<ApiOutcome> answer) {
    reply_ = answer.ok() ? http::FromApi(*answer) : http::FromStatus(answer.status());
    MHD_resume_connection(connection_);  // the server sends the reply on its own thread
  });
}

bool HttpDoor::TakeYamlTurn(uid_t uid, Exchange* exchange) {
  absl::MutexLock lock(&yaml_mutex_);
  auto [turn, free] = yaml_turns_.try_emplace(uid);
  if (free) {
    exchange->yaml_turn_ = true;
    return true;
  }
  // Suspended before anyone can see it queued: the resume that hands it the
  // turn can only come after.
  MHD_suspend_connection(exchange->connection_);
  turn->second.push_back(exchange);
  return false;
}

void HttpDoor::EndYamlTurn(uid_t uid, Exchange* holder) {
  Exchange* next = nullptr;
  {
    absl::MutexLock lock(&yaml_mutex_);
    auto turn = yaml_turns_.find(uid);
    if (turn == yaml_turns_.end()) return;
    if (!holder->yaml_turn_) {
      // Not its turn: it only leaves the queue (its connection ended while it waited).
      auto& waiting = turn->second;
      waiting.erase(std::remove(waiting.begin(), waiting.end(), holder), waiting.end());
      return;
    }
    holder->yaml_turn_ = false;
    if (turn->second.empty()) {
      yaml_turns_.erase(turn);
      return;
    }
    next = turn->second.front();
    turn->second.pop_front();
    next->yaml_turn_ = true;
  }
  MHD_resume_connection(next->connection_);  // it parses when its server calls again
}

}  // namespace stormbroker
