#include "upstream/http_engine.h"

#include <curl/curl.h>
#include <string.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

struct Transfer {
  HttpRequest request;
  HttpCallback done;
  HttpResponse response;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
  }
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  static_cast<Transfer*>(user)->response.body.append(data, size * count);
  return size * count;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  std::string_view line(data, size * count);
  constexpr std::string_view kDate = "date:";
  if (line.size() > kDate.size() && strncasecmp(line.data(), kDate.data(), kDate.size()) == 0) {
    std::string value(line.substr(kDate.size()));
    time_t t = curl_getdate(value.c_str(), nullptr);
    if (t > 0) static_cast<Transfer*>(user)->response.server_time = t;
  }
  return size * count;
}

}  // namespace

class HttpEngine::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}

  ~Impl() { Stop(); }

  Status Start() {
    static std::once_flag global_init;
    std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi_ = curl_multi_init();
    if (!multi_) return Internal("libcurl could not create a multi handle");
    // Reuse connections as much as the server allows; HTTP/2 multiplexes.
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 64L);
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  void Submit(HttpRequest request, HttpCallback done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!stopping_ && multi_) {
        queue_.push_back(std::move(transfer));
        curl_multi_wakeup(multi_);
        return;
      }
    }
    transfer->done(Unavailable("the broker is shutting down"));
  }

  void CancelAll(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_reason_ = reason;
    if (multi_) curl_multi_wakeup(multi_);
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      if (multi_) curl_multi_wakeup(multi_);
    }
    if (thread_.joinable()) thread_.join();
    if (multi_) curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }

 private:
  void Loop() {
    for (;;) {
      std::deque<std::unique_ptr<Transfer>> incoming;
      std::optional<std::string> cancel;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) break;
        incoming.swap(queue_);
        cancel.swap(cancel_reason_);
      }
      if (cancel) {
        for (auto& transfer : incoming) transfer->done(Unavailable(*cancel));
        incoming.clear();
        FailActive(*cancel);
      }
      for (auto& transfer : incoming) Begin(std::move(transfer));

      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result);
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    // Fail everything still here: a caller must always hear back.
    std::deque<std::unique_ptr<Transfer>> leftover;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      leftover.swap(queue_);
    }
    for (auto& transfer : leftover) transfer->done(Unavailable("the broker is shutting down"));
    FailActive("the broker is shutting down");
  }

  void FailActive(const std::string& reason) {
    auto active = std::move(active_);
    active_.clear();
    for (auto& [easy, transfer] : active) {
      curl_multi_remove_handle(multi_, easy);
      transfer->done(Unavailable(reason));
    }
  }

  void Begin(std::unique_ptr<Transfer> transfer) {
    CURL* easy = curl_easy_init();
    if (!easy) {
      transfer->done(Internal("libcurl could not create a handle"));
      return;
    }
    transfer->easy = easy;
    Transfer* t = transfer.get();
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
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(t->request.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);  // never resend credentials elsewhere
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    curl_multi_add_handle(multi_, easy);
    active_.emplace_back(easy, std::move(transfer));
  }

  void Finish(CURL* easy, CURLcode code) {
    curl_multi_remove_handle(multi_, easy);
    auto it = std::find_if(active_.begin(), active_.end(), [&](auto& p) { return p.first == easy; });
    if (it == active_.end()) return;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    *it = std::move(active_.back());
    active_.pop_back();

    if (code != CURLE_OK) {
      std::string detail = transfer->error[0] ? transfer->error : curl_easy_strerror(code);
      transfer->done(Unavailable("upstream " + transfer->request.url + ": " + detail));
      return;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &transfer->response.status);
    transfer->done(std::move(transfer->response));
  }

  Options options_;
  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::deque<std::unique_ptr<Transfer>> queue_;
  std::optional<std::string> cancel_reason_;
  // Touched only by the engine thread.
  std::vector<std::pair<CURL*, std::unique_ptr<Transfer>>> active_;
};

HttpEngine::HttpEngine(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpEngine::~HttpEngine() = default;
Status HttpEngine::Start() { return impl_->Start(); }
void HttpEngine::Submit(HttpRequest request, HttpCallback done) {
  impl_->Submit(std::move(request), std::move(done));
}
void HttpEngine::CancelAll(const std::string& reason) { impl_->CancelAll(reason); }
void HttpEngine::Stop() { impl_->Stop(); }

}  // namespace stormbroker
