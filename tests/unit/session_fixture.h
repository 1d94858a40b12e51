// What the token-session tests share: a session for account "prod" (user
// deploy-bot, password "the-password") over a scripted upstream, a clock
// that moves only when told, and an in-memory token store and event log.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "fake_scheduler.h"
#include "fake_upstream.h"
#include "memory_token_store.h"
#include "tokens/account_session.h"

namespace stormbroker::testing {

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    config_.name = "prod";
    config_.username = "deploy-bot";
    config_.password = Secret("the-password");
    config_.token_timeout = std::chrono::seconds(600);
  }

  // Owners stop a session before letting it go: that releases the calls
  // still waiting on it (they hold the session).
  void TearDown() override {
    if (session_) session_->Stop(false, nullptr);
  }

  // (Re)creates the session from config_.
  void Create() { session_ = std::make_shared<AccountSession>(config_, upstream_, scheduler_, &store_, &events_); }

  // Moves time to the next task and runs it.
  void RunNextTask() {
    auto due = scheduler_.NextDue();
    ASSERT_TRUE(due) << "nothing is scheduled";
    scheduler_.Advance(*due - scheduler_.Now());
  }

  struct Captured {
    int calls = 0;
    std::optional<Result<ApiOutcome>> outcome;
  };
  // Calls Utilities/Info/ping; the result arrives in the returned Captured.
  std::shared_ptr<Captured> CallPing() {
    auto captured = std::make_shared<Captured>();
    session_->Call("Utilities/Info/ping", nlohmann::json::object(), std::nullopt, [captured](Result<ApiOutcome> outcome) {
      ++captured->calls;
      captured->outcome.emplace(std::move(outcome));
    });
    return captured;
  }

  AccountConfig config_;
  FakeUpstream upstream_;
  FakeScheduler scheduler_;
  MemoryTokenStore store_;
  RecordingEvents events_;
  std::shared_ptr<AccountSession> session_;
};

}  // namespace stormbroker::testing
