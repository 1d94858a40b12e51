// http_floor: the least a proxy built from the HTTP door's two libraries can
// cost, to measure the door against (as grpc_floor is for the gRPC path).
//
//   http_floor --socket PATH --upstream BASE_URL --user U --token-file FILE
//
// libmicrohttpd on a Unix socket, a thread per connection; each request is
// sent on that same thread with a blocking libcurl handle of the thread's
// own (so its own keep-alive connection upstream), with fixed Basic
// credentials, and the upstream's status and body go back as they came.
// Nothing else: no policy, audit, session, limits, JSON, or hand-off between
// threads. Its latency at concurrency 1 is what the door's libraries cost
// with nothing of the broker's; a thread per connection makes it no floor
// for throughput at high concurrency, so bench/run measures it at
// concurrency 1 only.
#include <curl/curl.h>
#include <microhttpd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

struct Options {
  std::string socket, upstream, user, token;
};
Options options;

size_t Append(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// One libcurl handle per thread, reused, so the connection upstream stays open.
CURL* ThreadHandle() {
  thread_local CURL* easy = nullptr;
  if (!easy) {
    easy = curl_easy_init();
    static curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_USERNAME, options.user.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, options.token.c_str());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, Append);
  }
  return easy;
}

// "/v1/Group/Sub/method" → BASE_URL "/Group/Sub/method" (BASE_URL ends in /v1).
MHD_Result OnRequest(void*, MHD_Connection* connection, const char* url, const char*, const char*, const char* upload,
                     size_t* upload_size, void** state) {
  auto* body = static_cast<std::string*>(*state);
  if (!body) {
    *state = new std::string;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    body->append(upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  const char* method = std::strchr(url + 1, '/');
  std::string target = options.upstream + (method ? method : "/");
  std::string answer;
  CURL* easy = ThreadHandle();
  curl_easy_setopt(easy, CURLOPT_URL, target.c_str());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body->data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer);
  long status = MHD_HTTP_BAD_GATEWAY;
  if (curl_easy_perform(easy) == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  MHD_Response* response = MHD_create_response_from_buffer(answer.size(), answer.data(), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(status), response);
  MHD_destroy_response(response);
  return queued;
}

void OnCompleted(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  delete static_cast<std::string*>(*state);
}

}  // namespace

int main(int argc, char** argv) {
  std::string token_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--socket") options.socket = value;
    else if (key == "--upstream") options.upstream = value;
    else if (key == "--user") options.user = value;
    else if (key == "--token-file") token_file = value;
  }
  std::ifstream token(token_file);
  if (options.socket.empty() || options.upstream.empty() || !std::getline(token, options.token)) {
    std::fprintf(stderr, "usage: http_floor --socket PATH --upstream BASE_URL --user U --token-file FILE\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, options.socket.c_str(), sizeof address.sun_path - 1);
  unlink(options.socket.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, SOMAXCONN) != 0) {
    std::perror("http_floor: cannot listen");
    return 1;
  }
  MHD_Daemon* daemon = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_TURBO, 0, nullptr,
      nullptr, OnRequest, nullptr, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, OnCompleted, nullptr,
      MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
  if (!daemon) {
    std::fprintf(stderr, "http_floor: libmicrohttpd did not start\n");
    return 1;
  }
  pause();  // until bench/run kills it
}
