// stormctl top: a live view of the accounts the caller may use, built from
// two readings of the broker's metrics a second apart (rates and
// percentiles over that second) and the broker's status (states, deadlines,
// pauses the API asked for, and the busiest callers with how long they wait).
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "stormctl/args.h"
#include "stormctl/commands.h"
#include "stormctl/output.h"

namespace stormbroker::stormctl {
namespace {

using client::MetricSample;
using client::MetricsSnapshot;
using Clock = std::chrono::steady_clock;

// Buckets (upper bound -> cumulative count) of one account's histogram.
using Buckets = std::map<double, double>;

double Bound(const std::string& le) { return le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr); }

Buckets HistogramOf(const MetricsSnapshot& metrics, const std::string& name, const std::string& account) {
  Buckets buckets;
  for (const MetricSample& sample : metrics.samples) {
    auto owner = sample.labels.find("account");
    auto le = sample.labels.find("le");
    if (sample.name == name + "_bucket" && owner != sample.labels.end() && owner->second == account &&
        le != sample.labels.end()) {
      buckets[Bound(le->second)] = sample.value;
    }
  }
  return buckets;
}

// The q-quantile of the observations between two readings, interpolated in
// its bucket as Prometheus' histogram_quantile does; nothing without any.
std::optional<double> Quantile(double q, const Buckets& before, const Buckets& after) {
  std::vector<std::pair<double, double>> delta;
  for (const auto& [bound, count] : after) {
    auto old = before.find(bound);
    delta.emplace_back(bound, count - (old == before.end() ? 0 : old->second));
  }
  if (delta.empty() || delta.back().second <= 0) return std::nullopt;
  double rank = q * delta.back().second;
  double lower = 0, below = 0;
  for (const auto& [bound, count] : delta) {
    if (count >= rank) {
      if (std::isinf(bound)) return lower;
      return lower + (bound - lower) * (count - below > 0 ? (rank - below) / (count - below) : 1);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

// Calls of `account` counted with one of `outcomes`.
double CallsOf(const MetricsSnapshot& metrics, const std::string& account, const std::set<std::string>& outcomes) {
  double total = 0;
  for (const MetricSample& sample : metrics.samples) {
    if (sample.name != "stormbroker_calls_total") continue;
    auto owner = sample.labels.find("account");
    auto outcome = sample.labels.find("outcome");
    if (owner != sample.labels.end() && owner->second == account && outcome != sample.labels.end() &&
        outcomes.count(outcome->second)) {
      total += sample.value;
    }
  }
  return total;
}

double GaugeOf(const MetricsSnapshot& metrics, const std::string& name) {
  for (const MetricSample& sample : metrics.samples) {
    if (sample.name == name) return sample.value;
  }
  return 0;
}

std::string Millis(std::optional<double> seconds) {
  if (!seconds) return "-";
  char text[16];
  std::snprintf(text, sizeof text, "%.1f", *seconds * 1000);
  return text;
}

const std::set<std::string> kOk = {"ok"}, kApiError = {"api_error"},
                             kFailed = {"needs_login", "unavailable", "deadline"},
                             kRefused = {"denied", "invalid", "limited"};

constexpr size_t kBusiestShown = 8;

// One frame: a header line, a row per account, and the busiest callers.
std::string Frame(const client::DaemonStatus& status, const MetricsSnapshot& before, const MetricsSnapshot& after,
                  double seconds, bool colour) {
  const std::vector<client::AccountInfo>& accounts = status.accounts;
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "stormbroker top   callers connected: %.0f   upstream busy: %.0f, waiting: %.0f\n\n",
                GaugeOf(after, "stormbroker_caller_connections"),
                GaugeOf(after, "stormbroker_upstream_connections_busy"),
                GaugeOf(after, "stormbroker_upstream_calls_waiting"));
  out += line;
  std::snprintf(line, sizeof line, "%-16s %-14s %-9s %-9s %7s %8s %7s %8s  %-15s %-15s\n", "ACCOUNT", "STATE",
                "IDLE-IN", "HARD-IN", "OK/s", "APIERR/s", "FAIL/s", "REFUSE/s", "CALL ms p50/99", "UPSTREAM p50/99");
  out += line;
  auto now = std::chrono::system_clock::now();
  for (const client::AccountInfo& account : accounts) {
    auto rate = [&](const std::set<std::string>& outcomes) {
      return (CallsOf(after, account.name, outcomes) - CallsOf(before, account.name, outcomes)) / seconds;
    };
    auto percentiles = [&](const std::string& name) {
      Buckets old = HistogramOf(before, name, account.name), fresh = HistogramOf(after, name, account.name);
      return Millis(Quantile(0.5, old, fresh)) + "/" + Millis(Quantile(0.99, old, fresh));
    };
    char state[32], hard[32];
    std::snprintf(state, sizeof state, "%-14s", account.state.c_str());
    std::snprintf(hard, sizeof hard, "%-9s", Until(account.hard_deadline).c_str());
    std::string hard_text = hard;
    // A person must type the next passcode before this runs out.
    if (account.two_factor == "prompt" && account.hard_deadline) {
      auto left = *account.hard_deadline - now;
      if (left < std::chrono::minutes(15)) hard_text = Paint(hard, "31", colour);
      else if (left < std::chrono::minutes(60)) hard_text = Paint(hard, "33", colour);
    }
    std::snprintf(line, sizeof line, "%-16s %s %-9s %s %7.1f %8.1f %7.1f %8.1f  %-15s %-15s\n", account.name.c_str(),
                  Paint(state, StateHue(account.state), colour).c_str(), Until(account.inactivity_deadline).c_str(),
                  hard_text.c_str(), rate(kOk), rate(kApiError), rate(kFailed), rate(kRefused),
                  percentiles("stormbroker_call_duration_seconds").c_str(),
                  percentiles("stormbroker_upstream_duration_seconds").c_str());
    out += line;
    if (account.paused_until) out += "  " + Paint(PauseNote(account), "33", colour) + "\n";
  }
  if (!status.callers.empty()) out += "\n" + CallersTable(status.callers, kBusiestShown);
  return out;
}

// Raw keys on the terminal while top runs; restored when it ends.
class RawTerminal {
 public:
  RawTerminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    std::fputs("\033[?25l", stdout);  // hide the cursor
  }
  ~RawTerminal() {
    std::fputs("\033[?25h", stdout);
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

// Waits up to `wait` for a key; true when it was q (or stdin ended).
bool QuitPressed(std::chrono::milliseconds wait) {
  pollfd in = {STDIN_FILENO, POLLIN, 0};
  if (poll(&in, 1, static_cast<int>(wait.count())) <= 0) return false;
  char key = 0;
  ssize_t got = read(STDIN_FILENO, &key, 1);
  return got == 0 || key == 'q' || key == 'Q';
}

}  // namespace

int RunTop(const Invocation& invocation) {
  auto args = ParseArgs(invocation.args, {"count"}, {});
  if (!args.ok()) return Usage(args.status().message());
  if (!args->positional.empty()) return Usage("top takes no arguments");
  long long frames = -1;
  if (args->Has("count")) {
    auto count = ParseCount("--count", args->Get("count"));
    if (!count.ok()) return Usage(count.status().message());
    frames = *count;
  }
  bool terminal = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
  std::optional<RawTerminal> raw;
  if (terminal) raw.emplace();
  auto before = invocation.broker.GetMetrics();
  if (!before.ok()) return ExitFor(before.error());
  Clock::time_point read_at = Clock::now();
  for (long long shown = 0; frames < 0 || shown < frames; ++shown) {
    if (terminal ? QuitPressed(std::chrono::seconds(1)) : (usleep(1'000'000), false)) break;
    auto after = invocation.broker.GetMetrics();
    auto status = invocation.broker.GetStatus();
    if (!after.ok()) return ExitFor(after.error());
    if (!status.ok()) return ExitFor(status.error());
    Clock::time_point now = Clock::now();
    double seconds = std::max(0.001, std::chrono::duration<double>(now - read_at).count());
    std::string frame = Frame(status.value(), before.value(), after.value(), seconds, terminal && UseColour(1));
    // On a terminal: home and clear, then the frame; otherwise frames follow one another.
    std::fputs(terminal ? ("\033[H\033[2J" + frame + "\nq quits").c_str() : (frame + "\n").c_str(), stdout);
    std::fflush(stdout);
    before = std::move(after);
    read_at = now;
  }
  if (terminal) std::fputs("\n", stdout);
  return kExitOk;
}

}  // namespace stormbroker::stormctl
