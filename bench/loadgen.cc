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
//   loadgen --mode proxy --target PROXY_URL --account A --ca CA
//                                               HTTPS to https://api.stormondemand.com
//                                               through stormbrokerd's proxy door
//                                               (CONNECT once per connection, kept alive)
//   loadgen --mode idle --target SOCKET --pid PID
//                                               opens --concurrency connections to
//                                               stormbrokerd, makes no call, and reports
//                                               what they cost the daemon's RSS
// Common: --calls N --concurrency C [--method M] [--account A] [--ca FILE]
//         [--pid PID] (the daemon whose RSS and CPU time to report)
//         [--cpu NAME=PID[,PID...]] (repeatable: CPU time per call of these
//         processes, summed, under cpu_us_per_call.NAME; the load generator's
//         own is cpu_us_per_call.client)
//         [--timeline FILE] (each call's start, epoch seconds, and latency, µs)
//         [--duration SECONDS] (stop after this long even if --calls are not done)
//         [--pace SECONDS] (a pause before each next call: sporadic callers)
//         [--per-connection K] (broker: K calls in flight on each connection)
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
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
  long calls = 1000, concurrency = 1, per_connection = 1;
  int pid = 0;
  std::map<std::string, std::vector<int>> cpu_pids;  // --cpu NAME=PID,PID...
  std::string timeline;  // a file to write "started_s latency_us" per call to
  double duration_s = 0;  // stop issuing calls after this long (0: after --calls)
  double pace_s = 0;      // a pause before each call after the first: sporadic callers
  Clock::time_point begun = Clock::now();

  // Whether the call numbered `issued` (from 0) is still to be made.
  bool MayIssue(long issued) const {
    return issued < calls && (duration_s <= 0 || std::chrono::duration<double>(Clock::now() - begun).count() < duration_s);
  }
};

// When a call started (wall clock, so it lines up with the daemon's log) and
// how long it took.
struct Sample {
  double started_s;
  double latency_us;
};

struct Outcome {
  std::vector<Sample> samples;
  long errors = 0;
  std::string first_error;

  // One call, started at `started` (steady clock), is over; `error` is empty
  // when it went well.
  void Record(Clock::time_point started, const std::string& error) {
    auto now = Clock::now();
    auto wall_start = std::chrono::system_clock::now() - (now - started);
    samples.push_back({std::chrono::duration<double>(wall_start.time_since_epoch()).count(),
                       std::chrono::duration<double, std::micro>(now - started).count()});
    if (!error.empty() && errors++ == 0) first_error = error;
  }
  void Merge(const Outcome& other) {
    samples.insert(samples.end(), other.samples.begin(), other.samples.end());
    errors += other.errors;
    if (first_error.empty()) first_error = other.first_error;
  }
};

// Sporadic callers (--pace): the daemon idles between calls, as it does on a
// build server between jobs.
void Pause(const Options& options) {
  if (options.pace_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(options.pace_s));
}

// --- broker: one thread drives every caller through a completion queue,
// as the direct path's one libcurl multi thread does; each caller has a
// connection of its own, like a separate process ---------------------------
struct BrokerCall {
  size_t caller;
  Clock::time_point started = Clock::now();
  grpc::ClientContext context;
  grpc::Status status;
  stormbroker::v1::CallResponse response;
  stormbroker::v1::GetStatusResponse status_response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<stormbroker::v1::CallResponse>> call;
  std::unique_ptr<grpc::ClientAsyncResponseReader<stormbroker::v1::GetStatusResponse>> get_status;
};

// `count` connections of their own to the daemon, each connected.
std::vector<std::unique_ptr<stormbroker::v1::Broker::Stub>> Connect(const Options& options, long count) {
  std::vector<std::unique_ptr<stormbroker::v1::Broker::Stub>> stubs;
  for (long i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel("unix:" + options.target, grpc::InsecureChannelCredentials(), args);
    channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
    stubs.push_back(stormbroker::v1::Broker::NewStub(channel));
  }
  return stubs;
}

Outcome RunBroker(const Options& options) {
  auto stubs = Connect(options, options.concurrency);
  stormbroker::v1::CallRequest request;
  request.set_account(options.account);
  request.set_method(options.method);
  grpc::CompletionQueue queue;
  long issued = 0, outstanding = 0;
  auto start = [&](size_t caller) {
    auto* call = new BrokerCall;
    call->caller = caller;
    if (options.mode == "grpc_floor") {
      call->get_status = stubs[caller]->AsyncGetStatus(&call->context, stormbroker::v1::GetStatusRequest(), &queue);
      call->get_status->Finish(&call->status_response, &call->status, call);
    } else {
      call->call = stubs[caller]->AsyncCall(&call->context, request, &queue);
      call->call->Finish(&call->response, &call->status, call);
    }
    ++issued;
    ++outstanding;
  };
  for (long round = 0; round < options.per_connection; ++round) {
    for (size_t caller = 0; caller < stubs.size() && options.MayIssue(issued); ++caller) start(caller);
  }
  Outcome outcome;
  void* tag = nullptr;
  bool ok = false;
  while (outstanding > 0 && queue.Next(&tag, &ok)) {
    std::unique_ptr<BrokerCall> call(static_cast<BrokerCall*>(tag));
    --outstanding;
    std::string error = !call->status.ok()        ? call->status.error_message()
                        : call->response.has_error() ? call->response.error().error_class()
                                                     : "";
    outcome.Record(call->started, error);
    if (options.MayIssue(issued)) {
      Pause(options);
      start(call->caller);
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return outcome;
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
  // nginx and the broker's HTTP door: the same client, on a Unix socket.
  bool via_socket = options.mode == "nginx" || options.mode == "http";
  bool via_proxy = options.mode == "proxy";
  std::string url = via_socket  ? "http://localhost/v1/" + options.method
                    : via_proxy ? "https://api.stormondemand.com/v1/" + options.method
                                : options.target + "/" + options.method;
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
    } else if (via_proxy) {
      // As a client with a hard-coded URL and https_proxy: the Basic
      // username names the account, the password is anything.
      curl_easy_setopt(t.easy, CURLOPT_PROXY, options.target.c_str());
      curl_easy_setopt(t.easy, CURLOPT_USERNAME, options.account.c_str());
      curl_easy_setopt(t.easy, CURLOPT_PASSWORD, "unused");
      curl_easy_setopt(t.easy, CURLOPT_CAINFO, options.ca.c_str());
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
    if (options.MayIssue(issued)) start(t);
  }
  while (completed < issued) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      std::string error;
      if (msg->data.result != CURLE_OK) {
        error = curl_easy_strerror(msg->data.result);
      } else if (status != 200 || t->body.find("error_class") != std::string::npos) {
        error = "HTTP " + std::to_string(status) + " " + t->body;
      }
      outcome.Record(t->started, error);
      ++completed;
      curl_multi_remove_handle(multi, msg->easy_handle);
      if (options.MayIssue(issued)) {
        Pause(options);
        start(*t);
      }
    }
    if (completed < issued) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  for (auto& t : transfers) curl_easy_cleanup(t.easy);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return outcome;
}

// A line of /proc/PID/status as a number ("VmRSS:", "Threads:"); 0 when absent.
double StatusField(int pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size()));
  }
  return 0;
}

// The daemon's resident set and threads, sampled every 50 ms while a run
// lasts: the most of each.
class Sampler {
 public:
  explicit Sampler(int pid) : pid_(pid) {
    if (pid_ > 0) thread_ = std::thread([this] { Run(); });
  }
  ~Sampler() { Stop(); }
  void Stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  double peak_rss_kib() const { return peak_rss_kib_; }
  double peak_threads() const { return peak_threads_; }

 private:
  void Run() {
    while (!done_) {
      peak_rss_kib_ = std::max(peak_rss_kib_.load(), StatusField(pid_, "VmRSS:"));
      peak_threads_ = std::max(peak_threads_.load(), StatusField(pid_, "Threads:"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  int pid_;
  std::atomic<bool> done_{false};
  std::atomic<double> peak_rss_kib_{0}, peak_threads_{0};
  std::thread thread_;
};

// --- idle: connections that make no call, and what they cost -------------
int RunIdle(const Options& options) {
  if (options.pid <= 0) {
    std::fprintf(stderr, "loadgen: --mode idle needs --pid\n");
    return 2;
  }
  double before = StatusField(options.pid, "VmRSS:");
  auto stubs = Connect(options, options.concurrency);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let the daemon settle every connection
  double after = StatusField(options.pid, "VmRSS:");
  nlohmann::json line = {{"mode", "idle"},
                         {"connections", stubs.size()},
                         {"daemon_rss_before_kib", before},
                         {"daemon_rss_after_kib", after},
                         {"rss_per_idle_conn_kib", (after - before) / static_cast<double>(stubs.size())},
                         {"daemon_threads", StatusField(options.pid, "Threads:")}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

// CPU seconds (user + system) and peak RSS (MiB) of a process; zeros when
// it is gone.
std::pair<double, double> Usage(int pid) {
  if (pid <= 0) return {0, 0};
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return {0, 0};
  // After the command name: state, then fields 4.. of proc(5); utime and
  // stime are fields 14 and 15.
  std::istringstream rest(text.substr(close + 1));
  std::vector<std::string> fields(std::istream_iterator<std::string>(rest), {});
  double cpu = fields.size() > 12 ? (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK) : 0;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  double rss = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) rss = std::stod(line.substr(6)) / 1024;
  }
  return {cpu, rss};
}

// CPU seconds of each named group of processes; "client" is this process.
std::map<std::string, double> CpuSeconds(const std::map<std::string, std::vector<int>>& groups) {
  std::map<std::string, double> seconds;
  if (groups.empty()) return seconds;
  for (const auto& [name, pids] : groups) {
    for (int pid : pids) seconds[name] += Usage(pid).first;
  }
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  auto to_seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  seconds["client"] = to_seconds(self.ru_utime) + to_seconds(self.ru_stime);
  return seconds;
}

double Percentile(const std::vector<double>& sorted, double p) {
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
    else if (key == "--timeline") options.timeline = value;
    else if (key == "--duration") options.duration_s = std::stod(value);
    else if (key == "--pace") options.pace_s = std::stod(value);
    else if (key == "--per-connection") options.per_connection = std::stol(value);
    else if (size_t equals = value.find('='); key == "--cpu" && equals != std::string::npos) {
      std::istringstream pids(value.substr(equals + 1));
      for (std::string pid; std::getline(pids, pid, ',');) options.cpu_pids[value.substr(0, equals)].push_back(std::stoi(pid));
    }
    else {
      std::fprintf(stderr, "loadgen: unknown option %s\n", key.c_str());
      return 2;
    }
  }
  if (options.mode == "idle") return RunIdle(options);
  if (options.mode != "broker" && options.mode != "grpc_floor" && options.mode != "direct" && options.mode != "nginx" &&
      options.mode != "http" && options.mode != "proxy") {
    std::fprintf(stderr, "loadgen: --mode broker|grpc_floor|direct|nginx|http|proxy|idle is required\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  options.begun = Clock::now();
  auto [cpu_before, rss_unused] = Usage(options.pid);
  std::map<std::string, double> cpu_of = CpuSeconds(options.cpu_pids);
  double rss_before_kib = options.pid > 0 ? StatusField(options.pid, "VmRSS:") : 0;
  Sampler sampler(options.pid);
  auto started = Clock::now();
  Outcome outcome = options.mode == "broker" || options.mode == "grpc_floor" ? RunBroker(options) : RunHttp(options);
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  sampler.Stop();
  auto [cpu_after, rss] = Usage(options.pid);
  for (auto& [name, seconds_after] : CpuSeconds(options.cpu_pids)) cpu_of[name] = seconds_after - cpu_of[name];
  if (!options.timeline.empty()) {
    std::ofstream out(options.timeline);
    out.precision(17);
    for (const auto& sample : outcome.samples) out << sample.started_s << ' ' << sample.latency_us << '\n';
  }
  std::vector<double> latencies;
  for (const auto& sample : outcome.samples) latencies.push_back(sample.latency_us);
  std::sort(latencies.begin(), latencies.end());
  nlohmann::json line = {{"mode", options.mode},
                         {"concurrency", options.concurrency},
                         {"calls", latencies.size()},
                         {"seconds", seconds},
                         {"cps", latencies.size() / seconds},
                         {"p50_us", Percentile(latencies, 0.50)},
                         {"p90_us", Percentile(latencies, 0.90)},
                         {"p99_us", Percentile(latencies, 0.99)},
                         {"max_us", latencies.empty() ? 0 : latencies.back()},
                         {"errors", outcome.errors}};
  if (!outcome.first_error.empty()) line["first_error"] = outcome.first_error;
  if (!latencies.empty()) {
    for (const auto& [name, spent] : cpu_of) line["cpu_us_per_call"][name] = spent * 1e6 / latencies.size();
  }
  if (options.pid > 0) {
    line["daemon_cpu_s"] = cpu_after - cpu_before;
    line["daemon_peak_rss_mib"] = rss;
    line["daemon_rss_before_kib"] = rss_before_kib;
    line["daemon_sampled_peak_rss_kib"] = sampler.peak_rss_kib();
    line["daemon_peak_threads"] = sampler.peak_threads();
  }
  std::printf("%s\n", line.dump().c_str());
  return outcome.errors == 0 ? 0 : 1;
}
