#include "observe/audit_log.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <sstream>

#include <nlohmann/json.hpp>

namespace stormbroker {
namespace {

// A sink whose writes wait until the test opens the gate. The gate outlives
// the sink, which the AuditLog owns and deletes.
struct Gate {
  std::mutex mutex;
  std::condition_variable opened;
  bool open = false;
  int writes = 0;  // begun, whether the gate let them through or not
  std::condition_variable began;
  std::vector<std::string> lines;

  void Open() {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
    opened.notify_all();
  }
};

class GatedSink : public AuditSink {
 public:
  explicit GatedSink(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  void Write(const std::string& lines) override {
    std::unique_lock<std::mutex> lock(gate_->mutex);
    ++gate_->writes;
    gate_->began.notify_all();
    gate_->opened.wait(lock, [&] { return gate_->open; });
    EXPECT_EQ(lines.back(), '\n') << "a sink is given whole lines";
    std::istringstream in(lines);
    for (std::string line; std::getline(in, line);) gate_->lines.push_back(line);
  }

 private:
  std::shared_ptr<Gate> gate_;
};

AuditRecord Sample(int n) {
  AuditRecord record;
  record.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'123));
  record.uid = 1000 + n;
  record.user = "alice";
  record.rpc = "Call";
  record.account = "prod";
  record.method = "Utilities/Info/ping";
  record.param_names = {"page_size"};
  record.decision = Decision::kAllow;
  record.outcome = Ending::kOk;
  record.latency_ms = 1.23456;
  return record;
}

TEST(AuditLogTest, AFullQueueDropsAndCountsButNeverBlocks) {
  auto gate = std::make_shared<Gate>();
  uint64_t dropped = 0;
  {
    AuditLog log(std::make_unique<GatedSink>(gate), {.records = 10});
    // The writer takes the first record and blocks on the gate; the queue
    // then fills. Recording must return at once however many come.
    auto recording = std::async(std::launch::async, [&] {
      for (int i = 0; i < 1000; ++i) log.Record(Sample(i));
    });
    bool returned = recording.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    EXPECT_TRUE(returned) << "Record blocked";
    // At most one batch in the writer's hands plus a full queue got through.
    dropped = log.dropped();
    EXPECT_GE(dropped, 1000u - 2 * 10);
    gate->Open();
  }
  auto lines = gate->lines;
  ASSERT_FALSE(lines.empty());
  uint64_t reported = 0, written = 0;
  for (const auto& line : lines) {
    auto json = nlohmann::json::parse(line);
    if (json.value("event", "") == "audit_records_dropped") reported += json["count"].get<uint64_t>();
    else ++written;
  }
  EXPECT_EQ(reported, dropped) << "the trail must say how many records were lost";
  EXPECT_EQ(written + dropped, 1000u) << "every record is written or counted";
}

// Every line the sink received, as JSON.
std::vector<nlohmann::json> Parsed(const std::shared_ptr<Gate>& gate) {
  std::vector<nlohmann::json> out;
  for (const auto& line : gate->lines) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(AuditLogTest, RefusalsAreWrittenAtABoundedRatePerUidAndTheRestCounted) {
  auto gate = std::make_shared<Gate>();
  gate->Open();
  {
    AuditLog log(std::make_unique<GatedSink>(gate), {.refusals_per_second = 1, .refusal_burst = 5});
    for (int i = 0; i < 20; ++i) {
      AuditRecord refused = Sample(0);  // uid 1000
      refused.decision = i % 2 ? Decision::kDeny : Decision::kLimit;
      log.Record(refused);
    }
    AuditRecord other = Sample(1);  // uid 1001 has an allowance of its own
    other.decision = Decision::kInvalid;
    log.Record(other);
    log.Record(Sample(0));  // an allowed call is never rate-limited
    EXPECT_EQ(log.suppressed(), 15u);
  }
  int written_1000 = 0, allowed = 0;
  uint64_t counted = 0;
  for (const auto& r : Parsed(gate)) {
    if (r.value("event", "") == "audit_refusals_suppressed") {
      EXPECT_EQ(r["uid"], 1000);
      counted += r["count"].get<uint64_t>();
    } else if (r["uid"] == 1000 && r["decision"] != "allow") {
      ++written_1000;
    } else if (r["decision"] == "allow") {
      ++allowed;
    }
  }
  EXPECT_EQ(written_1000, 5);
  EXPECT_EQ(counted, 15u) << "the suppressed refusals are reported when the log closes";
  EXPECT_EQ(allowed, 1);
}

// A process dying while the writer holds a batch (and with more queued)
// waits for that batch, then writes the rest itself, before it goes.
TEST(AuditLogTest, LastWordsWaitForTheBatchTheWriterHoldsAndWriteTheRest) {
  auto gate = std::make_shared<Gate>();
  AuditLog log(std::make_unique<GatedSink>(gate), {});
  log.Record(Sample(1));
  {
    std::unique_lock<std::mutex> lock(gate->mutex);
    ASSERT_TRUE(gate->began.wait_for(lock, std::chrono::seconds(5), [&] { return gate->writes == 1; }));
  }
  log.Record(Sample(2));
  auto dying = std::async(std::launch::async, [&] { log.FlushBeforeDeath(); });
  EXPECT_EQ(dying.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "gave up on the writer's batch without waiting for it";
  gate->Open();
  dying.get();
  std::vector<uid_t> written;
  for (const auto& json : Parsed(gate)) written.push_back(json["uid"].get<uid_t>());
  EXPECT_EQ(written, (std::vector<uid_t>{1001, 1002})) << "what was queued when the process died is in the trail";
}

TEST(AuditLogTest, AllowedLoginsLogoutsAndTokenExportsAreNeverDropped) {
  auto gate = std::make_shared<Gate>();
  {
    AuditLog log(std::make_unique<GatedSink>(gate), {.records = 4});
    for (int i = 0; i < 100; ++i) {
      log.Record(Sample(i));  // calls: dropped once the queue is full
      AuditRecord exported = Sample(i);
      exported.rpc = i % 3 == 0 ? "GetToken" : i % 3 == 1 ? "Login" : "Logout";
      log.Record(exported);
    }
    EXPECT_GT(log.dropped(), 0u);
    gate->Open();
  }
  int kept = 0;
  for (const auto& r : Parsed(gate)) {
    if (r.value("rpc", "") != "Call" && r.contains("uid")) ++kept;
  }
  EXPECT_EQ(kept, 100);
}

TEST(AuditLogTest, AFullByteBudgetDropsLikeAFullQueue) {
  auto gate = std::make_shared<Gate>();
  uint64_t dropped = 0;
  {
    AuditLog log(std::make_unique<GatedSink>(gate), {.records = 100000, .bytes = 64 << 10});
    for (int i = 0; i < 1000; ++i) {
      AuditRecord big = Sample(i);
      big.detail = std::string(900, 'd');  // each about 1.5 KiB queued
      log.Record(big);
    }
    dropped = log.dropped();
    gate->Open();
  }
  EXPECT_GT(dropped, 800u) << "64 KiB holds a few dozen such records, not a thousand";
}

TEST(AuditLogTest, FieldsACallerChoseAreCut) {
  auto gate = std::make_shared<Gate>();
  gate->Open();
  {
    AuditLog log(std::make_unique<GatedSink>(gate), {});
    AuditRecord fat = Sample(0);
    fat.method = std::string(4096, 'm');
    fat.account = std::string(4096, 'a');
    fat.param_names.assign(1000, std::string(1000, 'p'));
    log.Record(fat);
  }
  ASSERT_EQ(gate->lines.size(), 1u);
  EXPECT_LT(gate->lines[0].size(), 10000u);
  auto r = nlohmann::json::parse(gate->lines[0]);
  EXPECT_EQ(r["params"].size(), 33u);
  EXPECT_EQ(r["params"].back(), "... 968 more");
  EXPECT_LE(r["method"].get<std::string>().size(), 203u);
}

TEST(AuditLogTest, FormatsOneJsonLineWithNamesNotValues) {
  std::string line = FormatAuditRecord(Sample(0));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["time"], "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(json["uid"], 1000);
  EXPECT_EQ(json["params"], nlohmann::json({"page_size"}));
  EXPECT_EQ(json["latency_ms"], 1.234);
  AuditRecord odd = Sample(0);
  odd.method = "bad\xff\x01";
  EXPECT_FALSE(nlohmann::json::parse(FormatAuditRecord(odd), nullptr, /*allow_exceptions=*/false).is_discarded());
}

}  // namespace
}  // namespace stormbroker
