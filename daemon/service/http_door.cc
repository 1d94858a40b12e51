#include "service/http_door.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "access/caller.h"
#include "access/loopback_peer.h"
#include "access/request_check.h"
#include "config/byte_size.h"
#include "encoding/document_bounds.h"
#include "encoding/yaml_json.h"
#include "secret/secret.h"
#include "service/mhd_log.h"
#include "service/tcp_socket.h"
#include "service/unix_listener.h"

namespace stormbroker {
namespace {

// What one connection may hold for its headers and buffers (MHD's memory
// pool per connection; a request's body passes through it in pieces and is
// bounded by max_request_size). 16 KiB holds any client's headers; at 256
// connections 64 KiB cost the daemon 15 MiB more resident memory.
constexpr size_t kConnectionMemory = 16 << 10;
constexpr const char* kAccountHeader = "X-Stormbroker-Account";

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// An answer for the client: an HTTP status, a body, the encoding asked for.
struct Reply {
  unsigned status = 200;
  nlohmann::json body;
};

// The API's error shape: the class, the message under both keys the API's
// clients read, and the class's own keys.
nlohmann::json ErrorBody(const std::string& error_class, const std::string& message,
                         const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json body = extra.is_object() ? extra : nlohmann::json::object();
  body["error_class"] = error_class;
  body["full_message"] = message;
  body["error_message"] = message;
  return body;
}

// A refusal or failure of the broker's own, as the API would shape it.
Reply FromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument: return {400, ErrorBody("StormBroker::InvalidRequest", status.message())};
    case StatusCode::kPermissionDenied: return {403, ErrorBody("StormBroker::PermissionDenied", status.message())};
    case StatusCode::kNotFound: return {404, ErrorBody("StormBroker::NotFound", status.message())};
    case StatusCode::kResourceExhausted: return {429, ErrorBody("StormBroker::ResourceExhausted", status.message())};
    case StatusCode::kFailedPrecondition: return {503, ErrorBody("StormBroker::NeedsLogin", status.message())};
    case StatusCode::kUnavailable: return {503, ErrorBody("StormBroker::Unavailable", status.message())};
    case StatusCode::kDeadlineExceeded: return {504, ErrorBody("StormBroker::DeadlineExceeded", status.message())};
    default: return {500, ErrorBody("StormBroker::Internal", status.message())};
  }
}

Reply FromApi(const ApiOutcome& outcome) {
  if (!outcome.is_error) return {200, outcome.result};
  return {static_cast<unsigned>(outcome.error.http_status),
          ErrorBody(outcome.error.error_class, outcome.error.message, outcome.error.extra)};
}

// A random handle for a client that asked for a token: 32 letters and
// digits that mean nothing upstream.
std::string NewHandle() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string handle;
  for (unsigned char b : bytes) handle += kAlphabet[b % (sizeof kAlphabet - 1)];
  return handle;
}

// What the request line names: the API version, the method path and the
// encoding of body and answer.
struct Target {
  std::string version;
  std::string method;
  std::string encoding = "json";
};

Result<Target> ParseTarget(const std::string& url) {
  Target target;
  size_t slash = url.find('/', 1);
  if (url.empty() || url[0] != '/' || slash == std::string::npos) {
    return NotFound("no API version in " + url.substr(0, 200) + "; the broker serves /v1/Group/Sub/method and /bleed/…");
  }
  target.version = Lower(url.substr(1, slash - 1));
  if (target.version != "v1" && target.version != "bleed") {
    return NotFound("the broker serves the API versions v1 and bleed, not '" + target.version.substr(0, 40) + "'");
  }
  target.method = url.substr(slash + 1);
  size_t dot = target.method.rfind('.');
  if (dot != std::string::npos && target.method.find('/', dot) == std::string::npos) {
    target.encoding = Lower(target.method.substr(dot + 1));
    target.method.resize(dot);
  }
  return target;
}

// The envelope's params: an object, or nothing for none. Parsed within
// kRequestBounds, before anything recursive touches the body.
Result<nlohmann::json> ParseParams(const std::string& body, const std::string& encoding) {
  if (body.empty()) return nlohmann::json::object();
  auto envelope = encoding == "yaml" ? ParseYaml(body, kRequestBounds) : ParseBoundedJson(body, kRequestBounds);
  if (!envelope.ok()) return InvalidArgument("Could not deserialize the request body: " + envelope.status().message());
  if (!(envelope->is_object() || envelope->is_null())) {
    return InvalidArgument("Could not deserialize the request body: expected the envelope {\"params\": {...}} in " +
                           encoding);
  }
  if (envelope->is_null() || !envelope->contains("params") || (*envelope)["params"].is_null()) {
    return nlohmann::json::object();
  }
  nlohmann::json& params = (*envelope)["params"];
  if (!params.is_object()) return InvalidArgument("Could not deserialize the request body: params must be a map");
  return std::move(params);
}

}  // namespace

// One listening socket and the libmicrohttpd daemon serving it.
struct HttpDoor::Server {
  HttpDoor* door = nullptr;
  std::string name;  // the audit's listener: http-unix or http-tcp
  bool unix_socket = false;
  MHD_Daemon* daemon = nullptr;
};

namespace {

// Who is on one connection, learnt once at its start.
struct Peer {
  int fd = -1;
  std::optional<Caller> caller;
  bool admitted = false;  // taken into the connection table
  bool confirmed = false;  // TCP: the owner checked again once a request was complete
};

}  // namespace

// One request: its body as it arrives, then its answer.
class HttpDoor::Exchange {
 public:
  std::string body;
  bool too_large = false;      // the body went over limits.max_request_size (and was dropped)
  std::optional<Reply> reply;  // set: send it (at once, or when resumed)
  std::string encoding = "json";
  bool at_desk = false;  // handed to the desk, the connection suspended until it answers
  std::shared_ptr<const CallTicket> ticket;  // its place among the caller's calls

  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char*, const char* upload, size_t* upload_size, void** state) {
    auto* server = static_cast<Server*>(cls);
    auto* exchange = static_cast<Exchange*>(*state);
    size_t limit = server->door->limits_.max_request_bytes;
    if (!exchange) {
      exchange = new Exchange;
      *state = exchange;
      const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      exchange->too_large = length && std::strtoull(length, nullptr, 10) > limit;
      return MHD_YES;
    }
    if (*upload_size > 0) {
      if (!exchange->too_large && exchange->body.size() + *upload_size > limit) {
        exchange->too_large = true;
        exchange->body.clear();
      }
      if (!exchange->too_large) exchange->body.append(upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    if (!exchange->reply && !exchange->at_desk) {
      exchange->Handle(*server, connection, url, method);
      // Suspended in this very call (even if the desk has answered already):
      // the answer goes out when the server calls again, resumed.
      if (exchange->at_desk) return MHD_YES;
    }
    if (!exchange->reply) return MHD_YES;
    return exchange->Send(connection);
  }

  static void OnCompleted(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    delete static_cast<Exchange*>(*state);
    *state = nullptr;
  }

  // A connection starts: who is on it (from the kernel), and its place in
  // the connection table; one that cannot be placed is ended at once.
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode code);

 private:
  // Decides what to answer: locally (refusals, the token dance), or by the
  // desk's call, for which the connection is suspended until it ends.
  void Handle(Server& server, MHD_Connection* connection, const std::string& url, const std::string& method);
  // The local answer to Account/Auth/token and Account/Auth/expireToken.
  Reply TokenDance(HttpDoor& door, const Caller& caller, const std::string& method, const std::string& account,
                   AuditRecord record);

  MHD_Result Send(MHD_Connection* connection) {
    std::string text = encoding == "yaml" ? RenderYaml(reply->body) : reply->body.dump();
    MHD_Response* response =
        MHD_create_response_from_buffer(text.size(), text.data(), MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            encoding == "yaml" ? "application/yaml" : "application/json");
    if (reply->status == 405) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST");
    MHD_Result queued = MHD_queue_response(connection, reply->status, response);
    MHD_destroy_response(response);
    return queued;
  }
};

void HttpDoor::Exchange::OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                                      MHD_ConnectionNotificationCode code) {
  auto* server = static_cast<Server*>(cls);
  HttpDoor& door = *server->door;
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    auto* peer = static_cast<Peer*>(*socket_context);
    // Before the server closes the socket: the table's duplicate must go.
    if (peer && peer->admitted) door.connections_.Forget(peer->fd);
    delete peer;
    *socket_context = nullptr;
    return;
  }
  auto* peer = new Peer;
  *socket_context = peer;
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!info) return;
  peer->fd = info->connect_fd;
  Result<Caller> caller = server->unix_socket ? IdentifyPeer(peer->fd) : IdentifyLoopbackPeer(peer->fd);
  if (!caller.ok()) {
    door.RefuseUnidentified(server->name, caller.status());
    shutdown(peer->fd, SHUT_RDWR);
    return;
  }
  peer->caller = std::move(caller).value();
  if (Status admitted = door.connections_.Admit(peer->fd, *peer->caller); !admitted.ok()) {
    AuditRecord record = StartAuditRecord(*peer->caller, server->name.c_str(), "connect", "");
    record.decision = "limit";
    door.desk_.Conclude(std::move(record), admitted);
    shutdown(peer->fd, SHUT_RDWR);
    return;
  }
  peer->admitted = true;
}

void HttpDoor::Exchange::Handle(Server& server, MHD_Connection* connection, const std::string& url,
                                const std::string& method) {
  HttpDoor& door = *server.door;
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  auto* peer = info ? static_cast<Peer*>(info->socket_context) : nullptr;
  if (!peer || !peer->admitted) {
    reply = FromStatus(PermissionDenied("the broker does not know who is on this connection"));
    return;
  }
  // The first request of a TCP connection is complete: is its sender still
  // there, and the same? (One that sent and closed at once is an orphan,
  // which the kernel names as nobody's.)
  if (!server.unix_socket && !peer->confirmed) {
    if (Status still = LoopbackPeerStillOwnedBy(peer->fd, peer->caller->uid); !still.ok()) {
      door.RefuseUnidentified(server.name, still);
      reply = FromStatus(still);
      return;
    }
    peer->confirmed = true;
  }
  const Caller& caller = *peer->caller;
  AuditRecord record = StartAuditRecord(caller, server.name.c_str(), "Call", "");
  // Refused here, before any call: audited, and answered in the API's shape.
  auto refuse = [&](Reply answer, const Status& why) {
    door.desk_.Conclude(std::move(record), why);
    reply = std::move(answer);
  };
  auto target = ParseTarget(url);
  if (target.ok()) {
    encoding = target->encoding;
    record.method = target->method;
  }
  // Every request, answered here or upstream, holds a place among the
  // caller's calls until it is answered.
  CallAdmission admission = door.connections_.BeginCall(peer->fd);
  if (!admission.ticket) {
    record.decision = "limit";
    return refuse(FromStatus(admission.refusal), admission.refusal);
  }
  ticket = std::move(admission.ticket);
  if (too_large) {
    Status why = InvalidArgument("the request body is larger than limits.max_request_size (" +
                                 FormatByteSize(door.limits_.max_request_bytes) + ")");
    return refuse(Reply{413, ErrorBody("StormBroker::RequestTooLarge", why.message())}, why);
  }
  if (method != "POST") {
    Status why = InvalidArgument("the Storm API takes POST, not " + method.substr(0, 20));
    return refuse(Reply{405, ErrorBody("StormBroker::MethodNotAllowed", why.message())}, why);
  }
  if (!target.ok()) return refuse(FromStatus(target.status()), target.status());
  if (encoding != "json" && encoding != "yaml") {
    std::string shown = encoding.substr(0, 40);
    encoding = "json";  // the API answers an unknown encoding in JSON
    Status why = InvalidArgument("Invalid encoding: " + shown);
    return refuse(Reply{200, ErrorBody("LW::Exception::API::InvalidEncoding", why.message(), {{"encoding", shown}})},
                  why);
  }
  // The account: the Basic username, else the header, else the only one.
  // The password (whatever the client holds) is wiped unread.
  std::string account;
  char* password = nullptr;
  if (char* username = MHD_basic_auth_get_username_password(connection, &password)) {
    account = username;
    MHD_free(username);
  }
  if (password) {
    explicit_bzero(password, strlen(password));
    MHD_free(password);
  }
  if (account.empty()) {
    const char* named = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, kAccountHeader);
    if (named) account = named;
  }
  record.account = account;
  auto params = ParseParams(body, encoding);
  if (!params.ok()) {
    return refuse(Reply{400, ErrorBody("LW::Exception::Deserialize", params.status().message(),
                                       {{"encoding", encoding == "yaml" ? "YAML" : "JSON"}})},
                  params.status());
  }
  std::string lower = Lower(target->method);
  if (lower == "account/auth/token" || lower == "account/auth/expiretoken") {
    reply = TokenDance(door, caller, target->method, account, std::move(record));
    return;
  }
  if (!door.in_flight_.Begin()) {
    Status closing = Unavailable("the broker is shutting down");
    return refuse(FromStatus(closing), closing);
  }
  at_desk = true;
  MHD_suspend_connection(connection);
  DeskCall call{account, target->method, target->version, std::move(params).value(), std::nullopt};
  door.desk_.Call(caller, std::move(record), std::move(call), [this, &door, connection](Result<DeskAnswer> answer) {
    reply = answer.ok() ? FromApi(answer->outcome) : FromStatus(answer.status());
    ticket.reset();
    door.in_flight_.End();
    MHD_resume_connection(connection);  // the server sends the reply on its own thread
  });
}

Reply HttpDoor::Exchange::TokenDance(HttpDoor& door, const Caller& caller, const std::string& method,
                                     const std::string& account, AuditRecord record) {
  record.method = method;
  auto found = door.desk_.FindAccount(account);
  if (!found.ok()) {
    door.desk_.Conclude(std::move(record), found.status());
    return FromStatus(found.status());
  }
  record.account = found->first;
  if (!door.policy_.Get()->AdmitsAccount(caller, found->first)) {
    record.decision = "deny";
    Status denied = PermissionDenied("uid " + std::to_string(caller.uid) + " (" + caller.user +
                                     ") may not use account " + found->first +
                                     "; an administrator can add a policy rule");
    door.desk_.Conclude(std::move(record), denied);
    return FromStatus(denied);
  }
  record.decision = "allow";
  if (Lower(method) == "account/auth/expiretoken") {
    record.detail = "answered by the broker; the account's token lives on";
    door.desk_.Conclude(std::move(record), Status::Ok());
    return {200, {{"expired", 1}}};
  }
  auto held = found->second->CurrentToken();
  if (!held.ok()) {
    door.desk_.Conclude(std::move(record), held.status());
    return FromStatus(held.status());
  }
  // A handle, not the token: the client sends it back as its password,
  // which the door ignores; the account's own token never leaves.
  auto expires = held->snapshot.inactivity_deadline.value_or(std::chrono::system_clock::now());
  door.desk_.Conclude(std::move(record), Status::Ok());
  return {200,
          {{"token", NewHandle()},
           {"expires", std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count()}}};
}

void HttpDoor::RefuseUnidentified(const std::string& listener, const Status& why) {
  AuditRecord record = StartAuditRecord(Caller{}, listener.c_str(), "connect", "");
  record.decision = "deny";
  desk_.Conclude(std::move(record), why);
}

HttpDoor::HttpDoor(ConnectionTable& connections, CallDesk& desk, const PolicyHolder& policy,
                   const LimitsConfig& limits)
    : connections_(connections), desk_(desk), policy_(policy), limits_(limits) {}

HttpDoor::~HttpDoor() { Stop(); }

Status HttpDoor::Start(const ListenConfig& listen, const PassedSockets& passed) {
  if (passed.http_unix) {
    if (Status served = Serve(*passed.http_unix, "http-unix", nullptr); !served.ok()) return served;
    spdlog::info("HTTP door on the Unix socket systemd passed (listen.http_socket is not used)");
  } else if (!listen.http_socket.empty()) {
    auto fd = OpenUnixSocket(listen.http_socket, listen.mode, listen.group);
    if (!fd.ok()) return fd.status();
    socket_path_ = listen.http_socket;
    if (Status served = Serve(*fd, "http-unix", nullptr); !served.ok()) return served;
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
    if (Status served = Serve(*passed.http_tcp, "http-tcp", tls ? &*tls : nullptr); !served.ok()) return served;
    spdlog::info("HTTP door ({}) on the loopback socket systemd passed (listen.http is not used)", scheme);
    return Status::Ok();
  }
  auto fd = OpenTcpSocket(*listen.http);
  if (!fd.ok()) return fd.status();
  if (Status served = Serve(*fd, "http-tcp", tls ? &*tls : nullptr); !served.ok()) return served;
  spdlog::info("HTTP door on {}://{}:{}", scheme, listen.http->host, listen.http->port);
  return Status::Ok();
}

Status HttpDoor::Serve(int listen_fd, const std::string& name, const Tls* tls) {
  auto server = std::make_unique<Server>();
  server->door = this;
  server->name = name;
  server->unix_socket = name == "http-unix";
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
      MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, const_cast<char*>("http door"),     //
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
    return Unavailable("libmicrohttpd could not start the HTTP door (" + name + ")");
  }
  servers_.push_back(std::move(server));
  return Status::Ok();
}

bool HttpDoor::Drain(std::chrono::milliseconds bound) {
  for (auto& server : servers_) {
    // No new connections: the listening socket goes now.
    int fd = MHD_quiesce_daemon(server->daemon);
    if (fd >= 0) close(fd);
  }
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
  return in_flight_.Drain(bound);
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
