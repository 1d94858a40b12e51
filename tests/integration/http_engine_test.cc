// The upstream engine against the real emulator over HTTPS: requests are sent
// from many threads at once, from inside callbacks, and cut by timeouts,
// CancelAll and Stop; every request hears back exactly once.

#include "upstream/http_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "harness.h"

namespace {

using namespace std::chrono_literals;
using stormbroker::HttpEngine;
using stormbroker::HttpRequest;
using stormbroker::HttpResponse;
using stormbroker::Result;

// Counts answers and lets a test wait for a number of them.
class Answers {
 public:
  stormbroker::HttpCallback Callback() {
    return [this](Result<HttpResponse> outcome) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (outcome.ok() && outcome->status == 200) {
        ++ok_;
      } else {
        failures_.push_back(outcome.ok() ? "HTTP " + std::to_string(outcome->status) : outcome.status().message());
      }
      changed_.notify_all();
    };
  }
  bool WaitFor(size_t count, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return ok_ + failures_.size() >= count; });
  }
  size_t ok() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ok_;
  }
  std::vector<std::string> failures() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t ok_ = 0;
  std::vector<std::string> failures_;
};

class HttpEngineTest : public ::testing::Test {
 protected:
  HttpEngineTest() : storm_(dir_, {{"bot", "pw", ""}}), engine_({storm_.ca_file()}) {
    EXPECT_TRUE(engine_.Start().ok());
  }

  HttpRequest Ping(std::chrono::milliseconds timeout = 10s) {
    HttpRequest request;
    request.url = storm_.url() + "/Utilities/Info/ping";
    request.body = R"({"params":{}})";
    request.username = "bot";
    request.credential = stormbroker::Secret(std::string("pw"));
    request.timeout = timeout;
    return request;
  }
  void Delay(int count, int delay_ms) {
    storm_.Arm(nlohmann::json({{"kind", "delay"}, {"delay_ms", delay_ms}, {"count", count}}).dump());
  }

  harness::TempDir dir_;
  harness::FakeStorm storm_;
  HttpEngine engine_;
};

TEST_F(HttpEngineTest, ManyThreadsSubmittingAtOnceEachHearBackOnce) {
  constexpr int kThreads = 8, kEach = 100;
  Answers answers;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) engine_.Submit(Ping(), answers.Callback());
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(answers.WaitFor(kThreads * kEach));
  EXPECT_EQ(answers.ok(), size_t{kThreads * kEach}) << ::testing::PrintToString(answers.failures());
  std::this_thread::sleep_for(200ms);  // a second answer to any request would land now
  EXPECT_EQ(answers.ok() + answers.failures().size(), size_t{kThreads * kEach});
}

TEST_F(HttpEngineTest, ACallbackMaySubmitTheNextRequest) {
  // Each answer sends the next request from inside the callback, on whatever
  // thread runs it; a lock held across callbacks would deadlock here.
  constexpr int kChain = 200;
  std::atomic<int> answered{0};
  std::promise<void> finished;
  std::function<void(Result<HttpResponse>)> next = [&](Result<HttpResponse> outcome) {
    EXPECT_TRUE(outcome.ok() && outcome->status == 200);
    if (++answered == kChain) {
      finished.set_value();
      return;
    }
    engine_.Submit(Ping(), next);
  };
  engine_.Submit(Ping(), next);
  EXPECT_EQ(finished.get_future().wait_for(30s), std::future_status::ready) << answered << " answered";
}

TEST_F(HttpEngineTest, ATimeoutCutsAStalledRequest) {
  Delay(1, 2000);
  Answers answers;
  auto started = std::chrono::steady_clock::now();
  engine_.Submit(Ping(300ms), answers.Callback());
  ASSERT_TRUE(answers.WaitFor(1));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  ASSERT_EQ(answers.failures().size(), 1u);
  EXPECT_NE(answers.failures()[0].find("imed out"), std::string::npos) << answers.failures()[0];
  // The engine goes on serving.
  engine_.Submit(Ping(), answers.Callback());
  ASSERT_TRUE(answers.WaitFor(2));
  EXPECT_EQ(answers.ok(), 1u);
}

TEST_F(HttpEngineTest, CancelAllFailsWhatIsInFlightButNotWhatComesAfter) {
  Delay(3, 2000);
  Answers cancelled;
  for (int i = 0; i < 3; ++i) engine_.Submit(Ping(), cancelled.Callback());
  // Wherever they are (sent, or in line), all three fail, well before the
  // emulator's two seconds.
  engine_.CancelAll("the test cancels");
  ASSERT_TRUE(cancelled.WaitFor(3, 1s));
  EXPECT_EQ(cancelled.ok(), 0u);
  EXPECT_EQ(cancelled.failures(), std::vector<std::string>(3, "the test cancels"));

  Answers later;
  engine_.Submit(Ping(), later.Callback());
  ASSERT_TRUE(later.WaitFor(1));
  EXPECT_EQ(later.ok(), 1u) << ::testing::PrintToString(later.failures());
}

TEST_F(HttpEngineTest, StopFailsWhatIsInFlightAndEverythingAfter) {
  Delay(2, 2000);
  Answers answers;
  engine_.Submit(Ping(), answers.Callback());
  engine_.Submit(Ping(), answers.Callback());
  engine_.Stop();
  ASSERT_TRUE(answers.WaitFor(2, 1s)) << "Stop returned with requests unanswered";
  engine_.Submit(Ping(), answers.Callback());
  ASSERT_TRUE(answers.WaitFor(3, 1s));
  EXPECT_EQ(answers.ok(), 0u);
  for (const auto& failure : answers.failures()) EXPECT_EQ(failure, "the broker is shutting down");
}

}  // namespace
