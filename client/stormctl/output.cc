#include "stormctl/output.h"

#include <algorithm>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "format/table.h"
#include "format/terminal_text.h"
#include "encoding/yaml_json.h"

namespace stormbroker::stormctl {
namespace {

using client::AccountInfo;

long long EpochSeconds(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
}

long long EpochSeconds(const std::optional<std::chrono::system_clock::time_point>& when) {
  return when ? EpochSeconds(*when) : 0;
}

std::string LocalTime(std::chrono::system_clock::time_point when) {
  time_t t = std::chrono::system_clock::to_time_t(when);
  struct tm local;
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}


}  // namespace

std::string Until(const std::optional<std::chrono::system_clock::time_point>& when) {
  if (!when) return "-";
  long long seconds = std::chrono::duration_cast<std::chrono::seconds>(*when - std::chrono::system_clock::now()).count();
  if (seconds < 0) return "passed";
  char text[32];
  if (seconds >= 3600) std::snprintf(text, sizeof text, "%lldh%02lldm", seconds / 3600, seconds % 3600 / 60);
  else if (seconds >= 60) std::snprintf(text, sizeof text, "%lldm%02llds", seconds / 60, seconds % 60);
  else std::snprintf(text, sizeof text, "%llds", seconds);
  return text;
}

const char* StateHue(const std::string& state) {
  return state == "active" ? "32" : (state == "refreshing" || state == "starting") ? "33" : "31";
}

bool UseColour(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  return isatty(fd) && !(no_colour && *no_colour);
}

std::string Paint(const std::string& text, const char* code, bool colour) {
  return colour ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
}

int Usage(const std::string& problem) { return Fail(problem + " (see stormctl --help)"); }

int Fail(const std::string& problem) {
  std::fprintf(stderr, "%s %s\n", Paint("stormctl:", "31", UseColour(2)).c_str(), ForOutput(problem, 2).c_str());
  return kExitBroker;
}

int ExitFor(const client::BrokerError& error) {
  using client::ErrorCode;
  const char* label = "error";
  int code = kExitBroker;
  switch (error.code) {
    case ErrorCode::kPermissionDenied: label = "permission denied"; code = kExitPermission; break;
    case ErrorCode::kFailedPrecondition: label = "account not ready"; code = kExitNeedsLogin; break;
    case ErrorCode::kInvalidArgument: label = "invalid request"; break;
    case ErrorCode::kNotFound: label = "not found"; break;
    case ErrorCode::kUnavailable: label = "unavailable"; break;
    case ErrorCode::kDeadlineExceeded: label = "timed out"; break;
    case ErrorCode::kResourceExhausted: label = "over a limit"; break;
    case ErrorCode::kOther: break;
  }
  Fail(std::string(label) + ": " + error.message);
  return code;
}

void Print(const nlohmann::json& value, const std::string& output) {
  // JSON escapes control characters itself; YAML and tables show strings as they are.
  if (output == "yaml") std::cout << ForOutput(RenderYaml(value), 1);
  else if (output == "table") std::cout << ForOutput(RenderTable(value), 1);
  else std::cout << value.dump(2) << std::endl;
}

int PrintCallResult(const client::CallResult& result, const std::string& output) {
  if (!result.api_error) {
    Print(result.result, output);
    return kExitOk;
  }
  const client::ApiError& error = *result.api_error;
  nlohmann::json out = error.extra;
  out["error_class"] = error.error_class;
  out["message"] = error.message;
  out["http_status"] = error.http_status;
  Print(out, output == "table" ? "json" : output);
  return kExitApiError;
}

nlohmann::json AccountsJson(const std::vector<AccountInfo>& accounts) {
  nlohmann::json list = nlohmann::json::array();
  for (const AccountInfo& a : accounts) {
    list.push_back({{"name", a.name}, {"username", a.username}, {"state", a.state}, {"two_factor", a.two_factor},
                    {"inactivity_deadline", EpochSeconds(a.inactivity_deadline)},
                    {"hard_deadline", EpochSeconds(a.hard_deadline)}, {"renew_at", EpochSeconds(a.renew_at)},
                    {"last_error", a.last_error}, {"warning", a.warning}});
    if (!a.fleet_role.empty()) {
      list.back()["fleet_role"] = a.fleet_role;
      list.back()["fleet_leader"] = a.fleet_leader;
    }
    if (a.paused_until) list.back()["paused_until"] = EpochSeconds(a.paused_until);
    if (!a.upstream_protocol.empty()) list.back()["upstream_protocol"] = a.upstream_protocol;
  }
  return list;
}

std::string PauseNote(const AccountInfo& account) {
  if (!account.paused_until) return "";
  return "the API asked to slow down: calls wait " + Until(account.paused_until);
}

namespace {

// The uid's name here, or "-": stormctl may block on NSS; the daemon's
// gRPC threads may not, so the daemon sends numbers.
std::string UserOf(uint32_t uid) {
  struct passwd entry {};
  struct passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found) return found->pw_name;
  return "-";
}

}  // namespace

nlohmann::json CallersJson(const std::vector<client::DaemonStatus::CallerLoad>& callers) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : callers) {
    list.push_back({{"account", c.account}, {"uid", c.uid}, {"user", UserOf(c.uid)}, {"at_api", c.at_api},
                    {"waiting", c.waiting}, {"longest_wait_ms", c.longest_wait.count()}});
  }
  return list;
}

std::string CallersTable(const std::vector<client::DaemonStatus::CallerLoad>& callers, size_t most) {
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %-8s %-16s %7s %8s %12s\n", "ACCOUNT", "UID", "USER", "AT-API", "WAITING",
                "LONGEST-WAIT");
  std::string out = line;
  for (size_t i = 0; i < callers.size() && i < most; ++i) {
    const auto& c = callers[i];
    std::snprintf(line, sizeof line, "%-16s %-8u %-16s %7u %8u %11.1fs\n", ForOutput(c.account, 1).c_str(), c.uid,
                  ForOutput(UserOf(c.uid), 1).c_str(), c.at_api, c.waiting,
                  static_cast<double>(c.longest_wait.count()) / 1000);
    out += line;
  }
  return out;
}

void PrintAccountsTable(const std::vector<AccountInfo>& accounts) {
  bool colour = UseColour(1);
  bool fleet = std::any_of(accounts.begin(), accounts.end(), [](const AccountInfo& a) { return !a.fleet_role.empty(); });
  std::printf("%-16s %-20s %-8s %-14s %-11s %-11s %-11s %s%s\n", "ACCOUNT", "USERNAME", "2FA", "STATE", "IDLE-LIMIT",
              "RENEWS-IN", "HARD-LIMIT", fleet ? "FLEET                " : "", "NOTE");
  for (const AccountInfo& a : accounts) {
    std::string note = a.paused_until      ? PauseNote(a)
                       : !a.warning.empty() ? a.warning
                       : !a.last_error.empty() ? a.last_error
                                               : "-";
    if (fleet) {
      // "leader", or "follower of b1": who obtains this account's tokens.
      std::string role = a.fleet_role == "leader" || a.fleet_leader.empty() ? a.fleet_role
                                                                             : a.fleet_role + " of " + a.fleet_leader;
      char column[64];
      std::snprintf(column, sizeof column, "%-20s ", ForOutput(role, 1).c_str());
      note = column + note;
    }
    char state[32];
    std::snprintf(state, sizeof state, "%-14s", a.state.c_str());
    std::printf("%-16s %-20s %-8s %s %-11s %-11s %-11s %s\n", a.name.c_str(), ForOutput(a.username, 1).c_str(),
                a.two_factor.c_str(), Paint(state, StateHue(a.state), colour).c_str(),
                Until(a.inactivity_deadline).c_str(), Until(a.renew_at).c_str(), Until(a.hard_deadline).c_str(),
                ForOutput(note, 1).c_str());
  }
}

void PrintEvent(const client::AccountEvent& event, const std::string& output) {
  if (output == "json") {
    nlohmann::json line = {{"account", event.account}, {"state", event.state}, {"message", event.message},
                           {"time", EpochSeconds(event.time)}};
    std::cout << line.dump() << std::endl;
    return;
  }
  std::cout << LocalTime(event.time) << "  " << event.account << "  "
            << Paint(event.state, StateHue(event.state), UseColour(1)) << "  " << ForOutput(event.message, 1)
            << std::endl;
}

}  // namespace stormbroker::stormctl
