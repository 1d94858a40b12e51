// Load: 1000 client connections at once, 100 calls each, through the real
// daemon to the real emulator, with a token renewal in the middle. Every
// call must be answered exactly once and succeed; the daemon's memory stays
// bounded. (How fast is for bench/; this checks that nothing is lost.)

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <thread>

#include "harness.h"
#include "stormbroker/v1/broker.grpc.pb.h"

namespace {

using namespace std::chrono_literals;
namespace v1 = stormbroker::v1;

constexpr int kConnections = 1000;
constexpr int kCallsEach = 100;

long PeakRssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// One connection making its calls one after another, on gRPC's callback API.
class Caller {
 public:
  Caller(std::shared_ptr<grpc::Channel> channel, std::atomic<int>* ok, std::atomic<int>* answered,
         std::atomic<int>* failed, std::function<void()> finished)
      : stub_(v1::Broker::NewStub(channel)), ok_(ok), answered_(answered), failed_(failed),
        finished_(std::move(finished)) {}

  void Next() {
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(std::chrono::system_clock::now() + 120s);
    request_.set_account("prod");
    request_.set_method("Utilities/Info/ping");
    stub_->async()->Call(context_.get(), &request_, &response_, [this](grpc::Status status) {
      ++*answered_;
      if (status.ok() && response_.result().struct_value().fields().at("ping").string_value() == "success") {
        ++*ok_;
      } else if (++*failed_ == 1) {
        std::printf("first failure: %s\n", status.ok() ? response_.DebugString().c_str() : status.error_message().c_str());
      }
      if (++done_ < kCallsEach) Next();
      else finished_();
    });
  }

 private:
  std::unique_ptr<v1::Broker::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::CallRequest request_;
  v1::CallResponse response_;
  int done_ = 0;
  std::atomic<int>* ok_;
  std::atomic<int>* answered_;
  std::atomic<int>* failed_;
  std::function<void()> finished_;
};

TEST(LoadTest, AThousandConnectionsTimesAHundredCallsAcrossARenewal) {
  struct rlimit files {};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  ASSERT_GE(files.rlim_cur, 4096u) << "the test needs descriptors for its connections";

  harness::TempDir dir;
  harness::FakeStorm storm(dir, {{"deploy-bot", "load-pw", ""}}, {"--hard-limit", "20"});
  std::string socket = dir.path() + "/run/broker.sock";
  YAML::Node config = harness::BasicConfig(socket, storm, dir.Write("pw", "load-pw", 0600));
  YAML::Node prod = config["accounts"]["prod"];
  prod["token_timeout"] = "20s";
  prod["max_lifetime"] = "20s";
  prod["renew_before"] = "12s";
  harness::Broker broker(dir, config);
  ASSERT_TRUE(broker.WaitForState("active")) << broker.Log();

  std::atomic<int> ok{0}, answered{0}, failed{0};
  std::mutex mutex;
  std::condition_variable all_done;
  int finished = 0;
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < kConnections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    auto channel = grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
    callers.push_back(std::make_unique<Caller>(channel, &ok, &answered, &failed, [&] {
      std::lock_guard<std::mutex> lock(mutex);
      if (++finished == kConnections) all_done.notify_all();
    }));
  }
  auto started = std::chrono::steady_clock::now();
  for (auto& caller : callers) caller->Next();
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(all_done.wait_for(lock, 240s, [&] { return finished == kConnections; }))
        << answered.load() << " of " << kConnections * kCallsEach << " calls answered";
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  long rss_kib = PeakRssKib(broker.process().pid());
  std::printf("load: %d calls in %.1f s (%.0f/s), %lld logins, daemon peak RSS %.1f MiB\n", answered.load(), seconds,
              answered.load() / seconds, storm.Count("account/auth/token", "password"), rss_kib / 1024.0);

  EXPECT_EQ(answered.load(), kConnections * kCallsEach) << "every call answered exactly once";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(ok.load(), kConnections * kCallsEach);
  if (seconds > 9) {
    EXPECT_GE(storm.Count("account/auth/token", "password"), 2) << "a renewal happened during the run";
  }
  EXPECT_EQ(storm.Counters()["auth"]["rejected"], 0);
  EXPECT_LT(rss_kib, 400 * 1024) << "the daemon's memory must stay bounded";
}

}  // namespace
