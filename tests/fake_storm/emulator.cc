#include "emulator.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

namespace fake_storm {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0, buffer = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return {};
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::string Base64Encode(const unsigned char* data, size_t size) {
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

}  // namespace

Emulator::Emulator(std::vector<User> users, Options options)
    : users_(std::move(users)), options_(options) {
  methods_["account/auth/token"] = [this](Context& ctx) { return TokenMethod(ctx); };
  methods_["account/auth/expiretoken"] = [this](Context& ctx) { return ExpireToken(ctx); };
  methods_["utilities/info/ping"] = [](Context&) { return Reply{200, {{"ping", "success"}}}; };
  methods_["utilities/info/version"] = [](Context&) { return Reply{200, {{"version", "v1"}}}; };
}

Reply Emulator::Handle(const Request& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  Context ctx{};
  if (auto refusal = AuthenticateLocked(request, &ctx)) {
    ++auth_counts_["rejected"];
    return *refusal;
  }
  std::string kind = ctx.kind == AuthKind::kPassword ? "password" : "token";
  ++auth_counts_[kind];

  std::string path = request.path;
  if (path.size() > 5 && Lower(path.substr(path.size() - 5)) == ".json") path.resize(path.size() - 5);
  ctx.method = Lower(path);
  ++method_counts_[ctx.method][kind];

  nlohmann::json body = request.body.empty() ? nlohmann::json::object()
                                             : nlohmann::json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return ApiException(200, "Deserialize", "Could not deserialize the request body",
                        {{"data", request.body.substr(0, 200)}, {"encoding", "JSON"}});
  }
  ctx.params = body.contains("params") && body["params"].is_object() ? body["params"] : nlohmann::json::object();

  auto handler = methods_.find(ctx.method);
  if (handler == methods_.end()) {
    return ApiException(200, "API::InvalidMethod", "Invalid API Method: " + path, {{"method", path}});
  }
  return handler->second(ctx);
}

std::optional<Reply> Emulator::AuthenticateLocked(const Request& request, Context* ctx) {
  auto refuse = [](const std::string& username) {
    return ApiException(401, "Authorization", "Authorization failed", {{"username", username}});
  };
  const std::string prefix = "Basic ";
  if (request.authorization.compare(0, prefix.size(), prefix) != 0) return refuse("");
  std::string decoded = Base64Decode(request.authorization.substr(prefix.size()));
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return refuse("");
  std::string username = decoded.substr(0, colon);
  std::string secret = decoded.substr(colon + 1);

  auto user = std::find_if(users_.begin(), users_.end(), [&](const User& u) { return u.username == username; });
  if (user == users_.end()) return refuse(username);
  ctx->user = &*user;
  if (secret == user->password) {
    ctx->kind = AuthKind::kPassword;
    return std::nullopt;
  }
  auto token = tokens_.find(secret);
  auto now = Now();
  if (token == tokens_.end() || token->second.username != username) return refuse(username);
  if (token->second.expires <= now) {
    tokens_.erase(token);
    return refuse(username);
  }
  // Any use of a token is activity.
  token->second.expires = CapExpiry(token->second, token->second.timeout);
  ctx->kind = AuthKind::kToken;
  ctx->token = secret;
  return std::nullopt;
}

std::chrono::system_clock::time_point Emulator::CapExpiry(const Token& token, long long timeout) const {
  return std::min(Now() + std::chrono::seconds(timeout), token.created + options_.hard_limit);
}

Reply Emulator::TokenMethod(Context& ctx) {
  long long timeout = options_.default_timeout;
  if (ctx.params.contains("timeout")) {
    const nlohmann::json& value = ctx.params["timeout"];
    bool integral = value.is_number_integer() ||
                    (value.is_string() && !value.get<std::string>().empty() &&
                     std::all_of(value.get<std::string>().begin(), value.get<std::string>().end(), ::isdigit));
    if (!integral) {
      return ApiException(200, "Input::Validation", "Validation failed for 'timeout': must be a positive integer",
                          {{"field", "timeout"}, {"type", "positive_integer"}, {"value", value}});
    }
    timeout = value.is_string() ? std::stoll(value.get<std::string>()) : value.get<long long>();
    if (timeout < 1 || timeout > options_.max_timeout) {
      return ApiException(200, "Input::OutOfBounds",
                          "Out of bounds for 'timeout': must be between 1 and " +
                              std::to_string(options_.max_timeout),
                          {{"field", "timeout"}, {"max", options_.max_timeout}, {"min", 1}, {"value", timeout}});
    }
  }
  std::string token_string = ctx.kind == AuthKind::kToken ? ctx.token : NewTokenString();
  if (ctx.kind == AuthKind::kPassword) {
    tokens_[token_string] = Token{ctx.user->username, Now(), Now(), timeout};
  }
  Token& token = tokens_[token_string];
  token.timeout = timeout;
  token.expires = CapExpiry(token, timeout);
  return Reply{200, {{"token", token_string}, {"expires", EpochSeconds(token.expires)}}};
}

Reply Emulator::ExpireToken(Context& ctx) {
  if (ctx.kind != AuthKind::kToken) return Reply{200, {{"expired", 0}}};
  tokens_.erase(ctx.token);
  return Reply{200, {{"expired", 1}}};
}

std::string Emulator::NewTokenString() {
  unsigned char bytes[30];
  RAND_bytes(bytes, sizeof bytes);
  return Base64Encode(bytes, sizeof bytes);
}

nlohmann::json Emulator::Counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json out = {{"methods", nlohmann::json::object()}, {"auth", nlohmann::json::object()}};
  for (const auto& [method, kinds] : method_counts_) out["methods"][method] = kinds;
  for (const char* kind : {"password", "token", "rejected"}) {
    auto it = auth_counts_.find(kind);
    out["auth"][kind] = it == auth_counts_.end() ? 0 : it->second;
  }
  return out;
}

nlohmann::json Emulator::Tokens() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [token, info] : tokens_) {
    out.push_back({{"token", token}, {"username", info.username}, {"expires", EpochSeconds(info.expires)},
                   {"created", EpochSeconds(info.created)}});
  }
  return out;
}

int Emulator::Revoke(const std::string& token) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (token.empty()) {
    int count = static_cast<int>(tokens_.size());
    tokens_.clear();
    return count;
  }
  return static_cast<int>(tokens_.erase(token));
}

void Emulator::Reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  tokens_.clear();
  method_counts_.clear();
  auth_counts_.clear();
}

}  // namespace fake_storm
