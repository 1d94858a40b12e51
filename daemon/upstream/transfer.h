// One HTTP request in the upstream engine's hands: what was asked, what has
// come back so far, and how libcurl is told to carry it. Internal to the
// engine (http_engine.cc); no locking of its own.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <string>

#include "upstream/http_engine.h"

namespace stormbroker {

struct Transfer {
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  size_t max_body = 0;
  bool body_too_large = false;
  HttpRequest request;
  HttpCallback done;
  HttpResponse response;
  std::string retry_after;  // the Retry-After header's value, as sent
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() { ForgetAnswer(); }
  // Back to how it was before it was sent (to send it again).
  void ForgetAnswer() {
    if (headers) curl_slist_free_all(headers);
    headers = nullptr;
    response = HttpResponse();
    retry_after.clear();
    body_too_large = false;
    error[0] = 0;
  }
};

// Sets `easy` up to carry `transfer` (a POST with HTTP Basic credentials,
// TLS verified, no redirects), for at most `left`, reading at most
// `options.max_response_bytes` of answer.
void ConfigureTransfer(CURL* easy, Transfer& transfer, const HttpEngine::Options& options,
                       std::chrono::milliseconds left);

// What a finished transfer means for its caller: the response, or
// UNAVAILABLE naming the URL and what went wrong (never a credential).
Result<HttpResponse> TransferOutcome(Transfer& transfer, CURLcode code, long status,
                                     const HttpEngine::Options& options);

}  // namespace stormbroker
