// The HTTP door's inside, shared by its two files: a connection's peer, a
// listening socket's server, and one request's exchange (http_exchange.cc);
// the door itself (http_door.cc) owns the servers and the peers.
#pragma once

#include <microhttpd.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "access/caller.h"
#include "broker/call_exchange.h"
#include "doors/http/http_door.h"
#include "doors/http/http_protocol.h"

namespace stormbroker {

// Who is on one connection, learnt once at its start.
struct HttpDoor::Peer {
  int fd = -1;
  std::optional<Caller> caller;
  bool admitted = false;   // taken in by the core
  bool confirmed = false;  // loopback TCP: its owner checked again once a request was complete
};

// One listening socket and the libmicrohttpd daemon serving it.
struct HttpDoor::Server {
  HttpDoor* door = nullptr;
  DoorKind kind = DoorKind::kHttpUnix;
  std::vector<std::string> hosts;  // TCP: the Host values that name this door
  MHD_Daemon* daemon = nullptr;
  int held_fd = -1;  // TCP: the listening socket, quiesced, kept until the door stops
};

// One request: decided from its request line and headers, then its body as
// it arrives, then its answer.
class HttpDoor::Exchange {
 public:
  Exchange(Server& server, MHD_Connection* connection)
      : server_(server), door_(*server.door), core_(server.door->core_), connection_(connection) {}
  ~Exchange() {
    // Its uid's YAML turn, held or waited for, is given up.
    if (encoding_ == "yaml" && peer_ && peer_->caller) door_.EndYamlTurn(peer_->caller->uid, this);
    if (peer_) door_.SetBusy(peer_, false);
  }

  // libmicrohttpd's request callback. Nothing thrown while handling one
  // request may cross into libmicrohttpd's C frames (std::terminate would
  // end the daemon): it is caught here, and the request alone fails.
  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                              const char* version, const char* upload, size_t* upload_size, void** state) {
    try {
      return Handle(cls, connection, url, method, version, upload, upload_size, state);
    } catch (const std::exception& e) {
      return Faulted(*state, e.what());
    } catch (...) {
      return Faulted(*state, "an exception of unknown type");
    }
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
  friend class HttpDoor;  // a YAML turn resumes the exchange it hands the turn to

  static MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url, const char* method,
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
  // What Handle threw: the core logs and audits it, the caller gets 500 in
  // the API's error shape, or the connection is closed when an answer is
  // under way already.
  static MHD_Result Faulted(void* state, std::string_view what);
  static void Notified(void* cls, MHD_Connection* connection, void** socket_context,
                       MHD_ConnectionNotificationCode code);
  // The request line and headers are in: the core opens the call (all it
  // decides without a body).
  void Start(std::string_view url, std::string_view method);
  // A piece of the body, kept while the core takes it in (its limits).
  void Append(const char* data, size_t size);
  // The body is in: decoded and handed to the core, the connection
  // suspended until it answers.
  void Finish();
  // The request the core holds for this exchange, if any (for Fault).
  Request* PendingRequest() { return call_ ? &call_->request() : request_ ? &*request_ : nullptr; }
  MHD_Result Send() {
    // libmicrohttpd calls again for the rest of a body after an early
    // answer: it is queued once.
    if (queued_) return MHD_YES;
    auto [text, content_type] = http::Render(*reply_, encoding_);
    queued_ = true;
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
  std::optional<Request> request_;    // begun, until the core opens the call
  std::optional<CallExchange> call_;  // opened, until its end is handed to the core
  std::string encoding_ = "json";
  std::string body_;
  std::optional<http::Reply> body_refusal_;  // the core refused the body (dropped)
  std::optional<http::Reply> reply_;  // set: send it (at once, or when resumed)
  bool at_core_ = false;              // handed to the core, the connection suspended until it answers
  bool queued_ = false;               // the reply is in libmicrohttpd's hands
  // Holds its uid's YAML turn (HttpDoor::TakeYamlTurn); set and cleared under the door's yaml_mutex_.
  std::atomic<bool> yaml_turn_{false};
};

}  // namespace stormbroker
