// loadgen: makes a fixed number of Storm API calls at a given concurrency by
// one of three paths and prints one JSON line of figures.
//
//   loadgen --mode broker --target SOCKET       gRPC to stormbrokerd
//   loadgen --mode grpc_floor --target SOCKET   GetStatus to stormbrokerd: what gRPC alone
//                                               costs, with no upstream call behind it
//   loadgen --mode direct --target BASE_URL --user U --token T
//                                               HTTP(S) to the API itself, keep-alive
//   loadgen --mode nginx --target SOCKET        HTTP over a Unix socket to a proxy
//                                               that adds the credentials
// Common: --calls N --concurrency C [--method M] [--account A] [--ca FILE]
//         [--pid PID] (the daemon whose RSS and CPU time to report)
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "stormbroker/v1/broker.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode, target, method = "Utilities/Info/ping", account, user, token, ca;
  long calls = 1000, concurrency = 1;
  int pid = 0;
};

struct Outcome {
  std::vector<double> latencies_us;
  long errors = 0;
  std::string first_error;
};

// --- broker: one thread per concurrent caller, each with its own connection
// and blocking calls, as a build job using the client library makes them ----
Outcome RunBroker(const Options& options) {
  std::atomic<long> issued{0};
  std::vector<Outcome> outcomes(options.concurrency);
  std::vector<std::thread> callers;
  for (long i = 0; i < options.concurrency; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own, like a separate process
    auto channel = grpc::CreateCustomChannel("unix:" + options.target, grpc::InsecureChannelCredentials(), args);
    channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
    callers.emplace_back([&, channel, i] {
      auto stub = stormbroker::v1::Broker::NewStub(channel);
      stormbroker::v1::CallRequest request;
      request.set_account(options.account);
      request.set_method(options.method);
      Outcome& outcome = outcomes[i];
      while (issued.fetch_add(1) < options.calls) {
        grpc::ClientContext context;
        grpc::Status status;
        std::string api_error;
        auto started = Clock::now();
        if (options.mode == "grpc_floor") {
          stormbroker::v1::GetStatusResponse response;
          status = stub->GetStatus(&context, stormbroker::v1::GetStatusRequest(), &response);
        } else {
          stormbroker::v1::CallResponse response;
          status = stub->Call(&context, request, &response);
          if (response.has_error()) api_error = response.error().error_class();
        }
        outcome.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - started).count());
        if ((!status.ok() || !api_error.empty()) && outcome.errors++ == 0) {
          outcome.first_error = status.ok() ? api_error : status.error_message();
        }
      }
    });
  }
  for (auto& caller : callers) caller.join();
  Outcome all;
  for (auto& outcome : outcomes) {
    all.latencies_us.insert(all.latencies_us.end(), outcome.latencies_us.begin(), outcome.latencies_us.end());
    all.errors += outcome.errors;
    if (all.first_error.empty()) all.first_error = outcome.first_error;
  }
  return all;
}

// --- direct and nginx: libcurl multi, keep-alive, C transfers in flight ------
struct Transfer {
  CURL* easy;
  Clock::time_point started;
  std::string body;
};

size_t Collect(char* data, size_t size, size_t count, void* user) {
  static_cast<Transfer*>(user)->body.append(data, size * count);
  return size * count;
}

Outcome RunHttp(const Options& options) {
  bool via_socket = options.mode == "nginx";
  std::string url = via_socket ? "http://localhost/v1/" + options.method : options.target + "/" + options.method;
  const std::string payload = R"({"params":{}})";
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.concurrency);
  std::vector<Transfer> transfers(options.concurrency);
  long issued = 0, completed = 0;
  Outcome outcome;
  auto start = [&](Transfer& t) {
    t.body.clear();
    curl_easy_setopt(t.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(t.easy, CURLOPT_PRIVATE, &t);
    if (via_socket) {
      curl_easy_setopt(t.easy, CURLOPT_UNIX_SOCKET_PATH, options.target.c_str());
    } else {
      curl_easy_setopt(t.easy, CURLOPT_USERNAME, options.user.c_str());
      curl_easy_setopt(t.easy, CURLOPT_PASSWORD, options.token.c_str());
      if (!options.ca.empty()) curl_easy_setopt(t.easy, CURLOPT_CAINFO, options.ca.c_str());
    }
    t.started = Clock::now();
    curl_multi_add_handle(multi, t.easy);
    ++issued;
  };
  for (auto& t : transfers) {
    t.easy = curl_easy_init();
    if (issued < options.calls) start(t);
  }
  while (completed < options.calls) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      outcome.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t->started).count());
      if (msg->data.result != CURLE_OK || status != 200 || t->body.find("error_class") != std::string::npos) {
        if (outcome.errors++ == 0) {
          outcome.first_error = msg->data.result != CURLE_OK ? curl_easy_strerror(msg->data.result)
                                                              : "HTTP " + std::to_string(status) + " " + t->body;
        }
      }
      ++completed;
      curl_multi_remove_handle(multi, msg->easy_handle);
      if (issued < options.calls) start(*t);
    }
    if (completed < options.calls) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  for (auto& t : transfers) curl_easy_cleanup(t.easy);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return outcome;
}

// CPU seconds (user + system) and peak RSS (MiB) of a process.
std::pair<double, double> Usage(int pid) {
  if (pid <= 0) return {0, 0};
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields;
  size_t close = text.rfind(')');
  std::string rest = text.substr(close + 2), field;
  for (char c : rest) {
    if (c == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  double cpu = fields.size() > 12 ? (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK) : 0;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  double rss = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) rss = std::stod(line.substr(6)) / 1024;
  }
  return {cpu, rss};
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--mode") options.mode = value;
    else if (key == "--target") options.target = value;
    else if (key == "--method") options.method = value;
    else if (key == "--account") options.account = value;
    else if (key == "--user") options.user = value;
    else if (key == "--token") options.token = value;
    else if (key == "--ca") options.ca = value;
    else if (key == "--calls") options.calls = std::stol(value);
    else if (key == "--concurrency") options.concurrency = std::stol(value);
    else if (key == "--pid") options.pid = std::stoi(value);
    else {
      std::fprintf(stderr, "loadgen: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  if (options.mode != "broker" && options.mode != "grpc_floor" && options.mode != "direct" && options.mode != "nginx") {
    std::fprintf(stderr, "loadgen: --mode broker|grpc_floor|direct|nginx is required\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto [cpu_before, rss_unused] = Usage(options.pid);
  auto started = Clock::now();
  Outcome outcome = options.mode == "broker" || options.mode == "grpc_floor" ? RunBroker(options) : RunHttp(options);
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  auto [cpu_after, rss] = Usage(options.pid);
  std::sort(outcome.latencies_us.begin(), outcome.latencies_us.end());
  nlohmann::json line = {{"mode", options.mode},
                         {"concurrency", options.concurrency},
                         {"calls", outcome.latencies_us.size()},
                         {"seconds", seconds},
                         {"cps", outcome.latencies_us.size() / seconds},
                         {"p50_us", Percentile(outcome.latencies_us, 0.50)},
                         {"p90_us", Percentile(outcome.latencies_us, 0.90)},
                         {"p99_us", Percentile(outcome.latencies_us, 0.99)},
                         {"max_us", outcome.latencies_us.empty() ? 0 : outcome.latencies_us.back()},
                         {"errors", outcome.errors}};
  if (!outcome.first_error.empty()) line["first_error"] = outcome.first_error;
  if (options.pid > 0) {
    line["daemon_cpu_s"] = cpu_after - cpu_before;
    line["daemon_peak_rss_mib"] = rss;
  }
  std::printf("%s\n", line.dump().c_str());
  return outcome.errors == 0 ? 0 : 1;
}
