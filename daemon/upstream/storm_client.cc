#include "upstream/storm_client.h"

#include <algorithm>

namespace stormbroker {

ReplyVerdict ClassifyReply(const Result<StormReply>& reply) {
  if (!reply.ok()) return ReplyVerdict::kFault;
  if (!reply->outcome.is_error) return ReplyVerdict::kAnswered;
  if (IsAuthorizationFailure(reply->outcome.error)) return ReplyVerdict::kCredentialRefused;
  if (IsTransientFailure(reply->outcome.error)) return ReplyVerdict::kFault;
  return ReplyVerdict::kRefused;
}

Status ReplyStatus(const Result<StormReply>& reply) {
  if (!reply.ok()) return reply.status();
  if (!reply->outcome.is_error) return Status::Ok();
  const ApiError& error = reply->outcome.error;
  std::string text = error.error_class;
  if (!error.message.empty()) text += ": " + error.message;
  if (error.http_status != 200) text += " (HTTP " + std::to_string(error.http_status) + ")";
  return Unavailable(text);
}

StormClient::StormClient(HttpEngine& engine, const UpstreamConfig& config)
    : engine_(engine),
      base_url_(config.url),
      // The last segment of upstream.url is the API's version (…/v1).
      api_root_(config.url.substr(0, config.url.rfind('/'))),
      passcode_header_(config.passcode_header),
      timeout_(config.timeout) {}

void StormClient::Call(const std::string& method, const nlohmann::json& params, const Credentials& credentials,
                       StormCallback done, CallOptions options) {
  HttpRequest request;
  request.url = (options.version.empty() ? base_url_ : api_root_ + "/" + options.version) + "/" + method;
  request.body = EncodeEnvelope(params);
  request.username = credentials.username;
  request.credential = credentials.secret.Clone();
  if (credentials.passcode) {
    request.passcode_header = passcode_header_;
    request.passcode = credentials.passcode->Clone();
  }
  request.timeout = options.timeout.count() > 0 ? std::min(options.timeout, timeout_) : timeout_;
  request.lane = std::move(options.lane);
  engine_.Submit(std::move(request), [done = std::move(done)](Result<HttpResponse> response) {
    if (!response.ok()) {
      done(response.status());
      return;
    }
    auto outcome = DecodeResponse(response->status, response->body);
    if (!outcome.ok()) {
      done(outcome.status());
      return;
    }
    done(StormReply{std::move(outcome).value(), response->server_time});
  });
}

}  // namespace stormbroker
