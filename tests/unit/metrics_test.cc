// The metrics' text and their bounds, without a daemon.
#include "observe/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;

std::string SeriesOf(const std::string& text, const std::string& prefix) {
  std::string found;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0) found += line + "\n";
  }
  return found;
}

TEST(ExpositionTest, EscapesLabelValuesAndHelpAsTheTextFormatRequires) {
  Exposition out;
  out.Family("x_total", "counter", "a \\ help\nline").samples.push_back({"", {{"l", "a\"b\\c\nd"}}, 1.5});
  EXPECT_EQ(out.Text(),
            "# HELP x_total a \\\\ help\\nline\n"
            "# TYPE x_total counter\n"
            "x_total{l=\"a\\\"b\\\\c\\nd\"} 1.5\n");
}

TEST(ExpositionTest, AHistogramIsCumulativeBucketsThenSumAndCount) {
  Exposition out;
  MetricFamily& family = out.Family("d_seconds", "histogram", "h");
  Exposition::AddHistogram(family, {{"account", "prod"}}, {0.5, 1}, {1, 3, 4}, 2.25);
  EXPECT_EQ(SeriesOf(out.Text(), "d_seconds"),
            "d_seconds_bucket{account=\"prod\",le=\"0.5\"} 1\n"
            "d_seconds_bucket{account=\"prod\",le=\"1\"} 3\n"
            "d_seconds_bucket{account=\"prod\",le=\"+Inf\"} 4\n"
            "d_seconds_sum{account=\"prod\"} 2.25\n"
            "d_seconds_count{account=\"prod\"} 4\n");
}

TEST(ExpositionTest, LargeValuesKeepEverySecond) {
  Exposition out;
  out.Family("t_seconds", "gauge", "t").samples.push_back({"", {}, 1796026644.25});
  EXPECT_NE(out.Text().find("t_seconds 1796026644.25\n"), std::string::npos) << out.Text();
}

TEST(MetricsRegistryTest, MethodLabelsStopAtTheCapAndTheRestShareOther) {
  Metrics metrics({"prod"});
  for (size_t i = 0; i < Metrics::kMaxMethodLabels + 10; ++i) {
    metrics.Call("prod", "Group/Sub/m" + std::to_string(i), CallOutcome::kOk, true, milliseconds(1));
  }
  metrics.Call("prod", "Group/Sub/M0", CallOutcome::kApiError, true, milliseconds(1));  // an old label, lower-cased
  std::string calls = SeriesOf(metrics.Collect().Text(), "stormbroker_calls_total{");
  EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), static_cast<long>(Metrics::kMaxMethodLabels + 2)) << calls;
  EXPECT_NE(calls.find(R"({account="prod",method="other",outcome="ok"} 10)"), std::string::npos);
  EXPECT_NE(calls.find(R"({account="prod",method="group/sub/m0",outcome="api_error"} 1)"), std::string::npos);
}

// A caller can make up method names, which the API answers with an
// exception (InvalidMethod): those never take a label of their own.
TEST(MetricsRegistryTest, MadeUpMethodsCannotCrowdOutRealOnes) {
  Metrics metrics({"prod"});
  for (int i = 0; i < 300; ++i) {
    metrics.Call("prod", "Utilities/Info/junk" + std::to_string(i), CallOutcome::kApiError, true, milliseconds(1));
  }
  metrics.Call("prod", "Storm/Server/list", CallOutcome::kOk, true, milliseconds(1));
  std::string calls = SeriesOf(metrics.Collect().Text(), "stormbroker_calls_total{");
  EXPECT_NE(calls.find(R"({account="prod",method="other",outcome="api_error"} 300)"), std::string::npos) << calls;
  EXPECT_NE(calls.find(R"({account="prod",method="storm/server/list",outcome="ok"} 1)"), std::string::npos) << calls;
  EXPECT_EQ(calls.find("junk"), std::string::npos) << calls;
}

TEST(MetricsRegistryTest, RefusedCallsCarryNoMethodAndOnlyAllowedOnesAreTimed) {
  Metrics metrics({"prod"});
  metrics.Call("prod", "Made/Up/by_a_caller", CallOutcome::kDenied, false, milliseconds(1));
  metrics.Call("prod", "Utilities/Info/ping", CallOutcome::kUnavailable, true, milliseconds(3));
  std::string text = metrics.Collect().Text();
  EXPECT_EQ(text.find("made/up"), std::string::npos) << text;
  EXPECT_EQ(text.find("Made/Up"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(stormbroker_calls_total{account="prod",method="",outcome="unavailable"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(stormbroker_call_duration_seconds_count{account="prod"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(stormbroker_call_duration_seconds_bucket{account="prod",le="0.003"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(stormbroker_call_duration_seconds_bucket{account="prod",le="0.002"} 0)"),
            std::string::npos);
}

TEST(MetricsRegistryTest, ASeeingFilterDropsOtherAccountsSeriesButKeepsBrokerWideOnes) {
  Metrics metrics({"prod", "other"});
  metrics.Call("other", "A/B/c", CallOutcome::kOk, true, milliseconds(1));
  metrics.Refusal("grpc", "policy");
  std::string text = metrics.Collect([](const std::string& account) { return account == "prod"; }).Text();
  EXPECT_EQ(text.find("account=\"other\""), std::string::npos) << text;
  EXPECT_NE(text.find("account=\"prod\""), std::string::npos);
  EXPECT_NE(text.find(R"(stormbroker_caller_refusals_total{door="grpc",reason="policy"} 1)"), std::string::npos);
}

}  // namespace
}  // namespace stormbroker
