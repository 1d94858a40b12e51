#include "upstream/transfer.h"

#include <string.h>
#include <strings.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <string_view>

namespace stormbroker {
namespace {

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  if (transfer->response.body.size() + size * count > transfer->max_body) {
    transfer->body_too_large = true;
    return 0;  // libcurl ends the transfer (CURLE_WRITE_ERROR)
  }
  transfer->response.body.append(data, size * count);
  return size * count;
}

// The server's clock from a Date header value. The value changes once a
// second and curl_getdate is slow (sscanf), so each value is parsed once.
std::optional<long long> ParseHttpDate(std::string_view value) {
  thread_local std::string last_value;
  thread_local time_t last_time = -1;
  if (value != last_value) {
    last_value.assign(value);
    last_time = curl_getdate(last_value.c_str(), nullptr);
  }
  if (last_time <= 0) return std::nullopt;
  return last_time;
}

// The value of header `name:` (lower case, with the colon) on `line`, trimmed;
// none when the line is another header.
std::optional<std::string_view> HeaderValue(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || strncasecmp(line.data(), name.data(), name.size()) != 0) return std::nullopt;
  line.remove_prefix(name.size());
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  return line;
}

// The timeout of a Keep-Alive header ("timeout=5, max=100"), if it names
// a sane one.
std::optional<std::chrono::seconds> ParseKeepAliveTimeout(std::string_view value) {
  size_t at = value.find("timeout=");
  if (at == std::string_view::npos) return std::nullopt;
  long long seconds = 0;
  size_t digits = 0;
  for (char c : value.substr(at + 8)) {
    if (c < '0' || c > '9' || ++digits > 6) break;
    seconds = seconds * 10 + (c - '0');
  }
  if (digits == 0 || digits > 6 || seconds <= 0) return std::nullopt;
  return std::chrono::seconds(seconds);
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  if (auto date = HeaderValue(line, "date:")) transfer->response.server_time = ParseHttpDate(*date);
  if (auto after = HeaderValue(line, "retry-after:")) transfer->retry_after.assign(after->substr(0, 64));
  if (auto keep_alive = HeaderValue(line, "keep-alive:")) {
    transfer->response.keep_alive_timeout = ParseKeepAliveTimeout(*keep_alive);
  }
  return size * count;
}

// Retry-After: delta-seconds, or an HTTP date (counted from the answer's
// own Date when it has one, so that a skewed clock does not matter).
std::optional<std::chrono::milliseconds> ParseRetryAfter(const std::string& value,
                                                         std::optional<long long> server_time) {
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    if (value.size() > 9) return std::nullopt;
    return std::chrono::seconds(std::stoll(value));
  }
  time_t when = curl_getdate(value.c_str(), nullptr);
  if (when <= 0) return std::nullopt;
  long long now = server_time ? *server_time : static_cast<long long>(time(nullptr));
  return std::chrono::seconds(std::max<long long>(when - now, 0));
}

}  // namespace

void ConfigureTransfer(CURL* easy, Transfer& transfer, const HttpEngine::Options& options,
                       std::chrono::milliseconds left) {
  Transfer* t = &transfer;
  t->max_body = options.max_response_bytes;
  curl_easy_setopt(easy, CURLOPT_URL, t->request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->request.body.size()));
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->request.body.data());
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  t->headers = curl_slist_append(t->headers, "Accept: application/json");
  t->headers = curl_slist_append(t->headers, "Expect:");
  if (!t->request.passcode.empty()) {
    // curl_slist_append copies the line; wipe our copy of it at once.
    std::string line = t->request.passcode_header + ": " + std::string(t->request.passcode.Reveal());
    t->headers = curl_slist_append(t->headers, line.c_str());
    explicit_bzero(line.data(), line.size());
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  // libcurl copies both strings; our Secret keeps the only copy we own.
  curl_easy_setopt(easy, CURLOPT_USERNAME, t->request.username.c_str());
  curl_easy_setopt(easy, CURLOPT_PASSWORD, t->request.credential.Reveal().data());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);  // never resend credentials elsewhere
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
}

Result<HttpResponse> TransferOutcome(Transfer& transfer, CURLcode code, long status,
                                     const HttpEngine::Options& options) {
  if (code != CURLE_OK) {
    std::string detail = transfer.body_too_large
                             ? "the answer is larger than upstream.max_response_size (" +
                                   std::to_string(options.max_response_bytes) + " bytes)"
                         : transfer.error[0] ? transfer.error
                                             : curl_easy_strerror(code);
    return Unavailable("upstream " + transfer.request.url + ": " + detail);
  }
  transfer.response.status = status;
  transfer.response.retry_after = ParseRetryAfter(transfer.retry_after, transfer.response.server_time);
  return std::move(transfer.response);
}

}  // namespace stormbroker
