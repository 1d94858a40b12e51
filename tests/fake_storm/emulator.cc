#include "emulator.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "secret/base32.h"
#include "tokens/totp.h"
#include "encoding/yaml_json.h"

namespace fake_storm {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string Base64(const unsigned char* data, size_t size) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < size; i += 3) {
    unsigned n = data[i] << 16 | (i + 1 < size ? data[i + 1] << 8 : 0) | (i + 2 < size ? data[i + 2] : 0);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < size ? kAlphabet[n & 63] : '=');
  }
  return out;
}

long long EpochSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string NewTokenString() {
  unsigned char bytes[30];
  RAND_bytes(bytes, sizeof bytes);
  return Base64(bytes, sizeof bytes);
}

Reply Refused(const std::string& username, const std::string& message) {
  return ApiException(401, "Authorization", message, {{"username", username}});
}

Reply WithRetryAfter(Reply reply, const Fault& fault) {
  reply.retry_after_s = fault.retry_after;
  reply.retry_after_as_date = fault.retry_after_date;
  return reply;
}

Reply FaultReply(const Fault& fault, const std::string& method) {
  switch (fault.kind) {
    case FaultKind::kStatus500:
      return ApiException(500, "API::Internal", "Internal Error", {{"public_message", "injected internal error"}});
    case FaultKind::kMaintenance:
      return WithRetryAfter(ApiException(503, "API::Maintenance", "The API is down for maintenance"), fault);
    case FaultKind::kRateLimit:
      return WithRetryAfter(ApiException(429, "API::RateLimit", "Rate limit exceeded",
                                         {{"account", "000000"}, {"ip", "127.0.0.1"}, {"method", method}}),
                            fault);
    case FaultKind::kRejectToken:
      return Refused("", "Authorization failed");
    case FaultKind::kReset:
    case FaultKind::kDelay:
      break;
  }
  Reply reply;
  reply.reset = true;
  return reply;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> DecodeBasicAuth(const std::string& header) {
  const std::string prefix = "Basic ";
  if (header.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  std::string decoded;
  int bits = 0, buffer = 0;
  for (char c : header.substr(prefix.size())) {
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (c == '=') break;
    const char* at = c ? std::strchr(alphabet, c) : nullptr;
    if (!at) return std::nullopt;
    buffer = (buffer << 6) | static_cast<int>(at - alphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      decoded.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded.substr(0, colon), decoded.substr(colon + 1));
}

Emulator::Emulator(std::vector<User> users, nlohmann::json servers, Options options)
    : users_(std::move(users)), servers_(std::move(servers)), options_(options) {
  methods_["account/auth/token"] = [this](Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return TokenMethod(ctx);
  };
  methods_["account/auth/expiretoken"] = [this](Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return ExpireToken(ctx);
  };
  methods_["utilities/info/ping"] = [](Context&) { return Reply{200, {{"ping", "success"}}}; };
  methods_["utilities/info/version"] = [](Context& ctx) { return Reply{200, {{"version", ctx.version}}}; };
  methods_["storm/server/list"] = [this](Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return servers_.List(ctx.params);
  };
  methods_["storm/server/details"] = [this](Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return servers_.Details(ctx.params);
  };
  methods_["storm/server/update"] = [this](Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return servers_.Update(ctx.params);
  };
}

std::chrono::system_clock::time_point Emulator::Now() const {
  absl::MutexLock lock(&mutex_);
  return std::chrono::system_clock::now() + clock_shift_;
}

void Emulator::ShiftClock(std::chrono::seconds by) {
  absl::MutexLock lock(&mutex_);
  clock_shift_ += by;
}

std::chrono::seconds Emulator::ClockShift() const {
  absl::MutexLock lock(&mutex_);
  return clock_shift_;
}

Reply Emulator::Handle(const Request& request) {
  // The extension chooses the encoding of the request and of the answer.
  std::string path = request.path;
  std::string encoding = "json";
  size_t slash = path.rfind('/');
  size_t dot = path.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
    encoding = Lower(path.substr(dot + 1));
    path.resize(dot);
  }
  if (encoding != "json" && encoding != "yaml") {
    Reply reply = ApiException(200, "API::InvalidEncoding", "Invalid encoding: " + encoding, {{"encoding", encoding}});
    return reply;
  }
  std::string method = Lower(path);
  auto credentials = DecodeBasicAuth(request.authorization);

  std::optional<Fault> fault = TakeFault(method, credentials ? credentials->second : "");
  Reply reply = [&]() -> Reply {
    if (fault && fault->kind != FaultKind::kDelay) return FaultReply(*fault, method);
    absl::MutexLock lock(&mutex_);
    Context ctx;
    ctx.version = request.version;
    if (auto refusal = AuthenticateLocked(request, &ctx)) {
      ++auth_counts_["rejected"];
      return *refusal;
    }
    ++auth_counts_[ctx.auth_kind];
    ++method_counts_[method][ctx.auth_kind];
    if (method == "account/auth/token" && ctx.auth_kind != "token") ++password_logins_[ctx.user->username];

    std::optional<nlohmann::json> body = nlohmann::json::object();
    if (!request.body.empty()) {
      if (encoding == "yaml") {
        auto parsed = stormbroker::ParseYaml(request.body);
        body = parsed.ok() ? std::optional<nlohmann::json>(std::move(parsed).value()) : std::nullopt;
      } else {
        body = nlohmann::json::parse(request.body, nullptr, false);
      }
    }
    if (!body || body->is_discarded() || !(body->is_object() || body->is_null())) {
      return ApiException(200, "Deserialize", "Could not deserialize the request body",
                          {{"data", request.body.substr(0, 200)}, {"encoding", encoding == "yaml" ? "YAML" : "JSON"}});
    }
    ctx.params = body->is_object() && body->contains("params") && (*body)["params"].is_object()
                     ? (*body)["params"]
                     : nlohmann::json::object();

    auto handler = methods_.find(method);
    if (handler == methods_.end()) {
      return ApiException(200, "API::InvalidMethod", "Invalid API Method: " + path, {{"method", path}});
    }
    return handler->second(ctx);
  }();
  reply.encoding = encoding;
  if (fault && fault->kind == FaultKind::kDelay) reply.delay_ms = fault->delay_ms;
  return reply;
}

std::optional<Fault> Emulator::TakeFault(const std::string& method, const std::string& secret) {
  // Only a token (not a password) can be named by reject_token.
  bool is_token;
  {
    absl::MutexLock lock(&mutex_);
    is_token = tokens_.count(secret) > 0;
  }
  auto fault = faults_.Take(method, is_token ? secret : "");
  if (fault) {
    absl::MutexLock lock(&mutex_);
    ++fault_counts_[FaultKindName(fault->kind)];
  }
  return fault;
}

std::optional<Reply> Emulator::AuthenticateLocked(const Request& request, Context* ctx) {
  auto credentials = DecodeBasicAuth(request.authorization);
  if (!credentials) return Refused("", "Authorization failed: HTTP Basic credentials required");
  const auto& [username, secret] = *credentials;
  const std::string& name = username;  // clang 14 cannot capture a structured binding
  auto user = std::find_if(users_.begin(), users_.end(), [&](const User& u) { return u.username == name; });
  if (user == users_.end()) return Refused(username, "Authorization failed");
  ctx->user = &*user;
  if (secret == user->password) {
    if (!user->totp_secret.empty()) {
      if (auto refusal = CheckPasscodeLocked(*user, request.passcode)) return refusal;
      ctx->auth_kind = "password+passcode";
    } else {
      ctx->auth_kind = "password";
    }
    return std::nullopt;
  }
  auto token = tokens_.find(secret);
  auto now = std::chrono::system_clock::now() + clock_shift_;
  if (token == tokens_.end() || token->second.username != username) return Refused(username, "Authorization failed");
  if (token->second.expires <= now) {
    tokens_.erase(token);
    return Refused(username, "Authorization failed: the token has expired");
  }
  // Any use of a token is activity.
  token->second.expires = CapExpiry(token->second, token->second.timeout);
  ctx->auth_kind = "token";
  ctx->token = secret;
  return std::nullopt;
}

std::optional<Reply> Emulator::CheckPasscodeLocked(const User& user, const std::string& passcode) {
  if (passcode.empty()) return Refused(user.username, "Authorization failed: two-factor passcode required");
  auto key = stormbroker::DecodeBase32(user.totp_secret);
  int64_t step = stormbroker::TotpStep(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (!key.ok() || passcode != stormbroker::TotpCode(*key, step)) {
    return Refused(user.username, "Authorization failed: invalid two-factor passcode");
  }
  if (!used_steps_[user.username].insert(step).second) {
    return Refused(user.username, "Authorization failed: two-factor passcode already used");
  }
  return std::nullopt;
}

std::chrono::system_clock::time_point Emulator::CapExpiry(const Token& token, long long timeout) const {
  auto now = std::chrono::system_clock::now() + clock_shift_;
  return std::min(now + std::chrono::seconds(timeout), token.created + options_.hard_limit);
}

Reply Emulator::TokenMethod(Context& ctx) {
  long long timeout = options_.default_timeout;
  if (ctx.params.contains("timeout")) {
    const nlohmann::json& value = ctx.params["timeout"];
    bool integral = value.is_number_integer() ||
                    (value.is_string() && !value.get<std::string>().empty() && value.get<std::string>().size() < 18 &&
                     value.get<std::string>().find_first_not_of("0123456789") == std::string::npos);
    if (!integral) {
      return ApiException(200, "Input::Validation", "Validation failed for 'timeout': must be a positive integer",
                          {{"field", "timeout"}, {"type", "positive_integer"}, {"value", value}});
    }
    timeout = value.is_string() ? std::stoll(value.get<std::string>()) : value.get<long long>();
    if (timeout < 1 || timeout > options_.max_timeout) {
      return ApiException(200, "Input::OutOfBounds",
                          "Out of bounds for 'timeout': must be between 1 and " + std::to_string(options_.max_timeout),
                          {{"field", "timeout"}, {"max", options_.max_timeout}, {"min", 1}, {"value", timeout}});
    }
  }
  auto now = std::chrono::system_clock::now() + clock_shift_;
  std::string token_string = ctx.auth_kind == "token" ? ctx.token : NewTokenString();
  if (ctx.auth_kind != "token") {
    tokens_[token_string] = Token{ctx.user->username, now, now, timeout};
    issued_.push_back(token_string);
  }
  Token& token = tokens_[token_string];
  token.timeout = timeout;
  token.expires = CapExpiry(token, timeout);
  return Reply{200, {{"token", token_string}, {"expires", EpochSeconds(token.expires)}}};
}

Reply Emulator::ExpireToken(Context& ctx) {
  if (ctx.auth_kind != "token") return Reply{200, {{"expired", 0}}};
  tokens_.erase(ctx.token);
  return Reply{200, {{"expired", 1}}};
}

nlohmann::json Emulator::Counters() const {
  absl::MutexLock lock(&mutex_);
  nlohmann::json out = {{"methods", nlohmann::json::object()}, {"auth", nlohmann::json::object()},
                        {"faults", fault_counts_}};
  // Every method it implements is listed, with every kind, so that a test
  // asking for a count that cannot exist (a typo) finds nothing rather than 0.
  const nlohmann::json none = {{"password", 0}, {"password+passcode", 0}, {"token", 0}};
  for (const auto& [method, handler] : methods_) out["methods"][method] = none;
  for (const auto& [method, kinds] : method_counts_) {
    if (!out["methods"].contains(method)) out["methods"][method] = none;
    for (const auto& [kind, count] : kinds) out["methods"][method][kind] = count;
  }
  for (const char* kind : {"password", "password+passcode", "token", "rejected"}) {
    auto it = auth_counts_.find(kind);
    out["auth"][kind] = it == auth_counts_.end() ? 0 : it->second;
  }
  out["logins"] = nlohmann::json::object();
  for (const User& user : users_) {
    auto it = password_logins_.find(user.username);
    out["logins"][user.username] = it == password_logins_.end() ? 0 : it->second;
  }
  return out;
}

nlohmann::json Emulator::Tokens() const {
  absl::MutexLock lock(&mutex_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [token, info] : tokens_) {
    out.push_back({{"token", token}, {"username", info.username}, {"expires", EpochSeconds(info.expires)},
                   {"created", EpochSeconds(info.created)}});
  }
  return out;
}

nlohmann::json Emulator::IssuedTokens() const {
  absl::MutexLock lock(&mutex_);
  return issued_;
}

int Emulator::Revoke(const std::string& token) {
  absl::MutexLock lock(&mutex_);
  if (token.empty()) {
    int count = static_cast<int>(tokens_.size());
    tokens_.clear();
    return count;
  }
  return static_cast<int>(tokens_.erase(token));
}

void Emulator::Reset() {
  faults_.Clear();
  absl::MutexLock lock(&mutex_);
  tokens_.clear();
  issued_.clear();
  used_steps_.clear();
  method_counts_.clear();
  auth_counts_.clear();
  password_logins_.clear();
  fault_counts_.clear();
  clock_shift_ = std::chrono::seconds(0);
}

}  // namespace fake_storm
