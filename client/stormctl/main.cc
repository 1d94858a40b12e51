// stormctl: the command-line client of stormbrokerd.

#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <ctime>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "stormbroker/client.h"

namespace stormbroker {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitBroker = 2;  // broker-side failure or bad usage
constexpr int kExitApiError = 3;
constexpr int kExitNeedsLogin = 4;
constexpr int kExitPermission = 5;

constexpr const char* kUsage = R"(usage: stormctl [--socket PATH] COMMAND [ARGS]

Talks to stormbrokerd, which holds the Storm API credentials, so you never
handle a password or token yourself.

Commands:
  call [--account NAME] [--timeout DURATION] METHOD [key=value ...]
        Call a Storm API method and print its result as JSON.
        Values are typed like JSON: page_size=10 is a number, flag=true a
        boolean, name='"10"' a string; anything that is not JSON is a string.
  accounts [--output table|json]
        List the accounts you may use, with their state and deadlines.
  login ACCOUNT [--passcode-stdin]
        Log the account in (needs an admin policy rule). A two-factor prompt
        account asks for the current passcode on the terminal (not echoed),
        or reads it from stdin with --passcode-stdin. Other accounts log in
        afresh with their password file (the way out of login-failed).
  logout ACCOUNT
        Expire the account's token upstream now (needs an admin policy rule).
  token ACCOUNT
        Print the account's token (needs a policy rule with token_export:
        true; refused otherwise). It is valid until the broker replaces it.
  watch [--count N] [--output text|json]
        Print account events (logins, renewals, warnings) as they happen.

Options:
  --socket PATH   the broker's socket (default: $STORMBROKER_SOCKET, else
                  /run/stormbroker/broker.sock)
  --help          this text
  --version       print the version

Examples:
  stormctl call Utilities/Info/ping
  stormctl call --account prod Storm/Server/list page_size=10
  stormctl accounts
  stormctl login prod
  oathtool --totp -b "$SECRET" | stormctl login prod --passcode-stdin

Exit codes:
  0  success
  2  the broker could not do it, or bad usage (one line on stderr says why)
  3  the Storm API answered with an exception (printed as JSON on stdout)
  4  the account needs a login or its credentials were refused
  5  permission denied by the broker's policy
)";

int Usage(const std::string& problem) {
  std::fprintf(stderr, "stormctl: %s (see stormctl --help)\n", problem.c_str());
  return kExitBroker;
}

int ExitFor(const BrokerError& error) {
  const char* label = "error";
  int code = kExitBroker;
  switch (error.code) {
    case ErrorCode::kPermissionDenied: label = "permission denied"; code = kExitPermission; break;
    case ErrorCode::kFailedPrecondition: label = "account not ready"; code = kExitNeedsLogin; break;
    case ErrorCode::kInvalidArgument: label = "invalid request"; break;
    case ErrorCode::kNotFound: label = "not found"; break;
    case ErrorCode::kUnavailable: label = "unavailable"; break;
    case ErrorCode::kDeadlineExceeded: label = "timed out"; break;
    case ErrorCode::kOther: break;
  }
  std::fprintf(stderr, "stormctl: %s: %s\n", label, error.message.c_str());
  return code;
}

nlohmann::json TypedValue(const std::string& text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? nlohmann::json(text) : value;
}

bool ParseDurationMs(const std::string& text, long long* ms) {
  char* end = nullptr;
  double number = std::strtod(text.c_str(), &end);
  std::string unit = end;
  double scale = unit.empty() || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000 : -1;
  if (end == text.c_str() || scale < 0 || number <= 0) return false;
  *ms = static_cast<long long>(number * scale);
  return true;
}

int RunCall(Client& client, const std::vector<std::string>& args) {
  std::string account, method;
  long long timeout_ms = 60'000;
  nlohmann::json params = nlohmann::json::object();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--account" || arg == "--timeout") {
      if (i + 1 >= args.size()) return Usage(arg + " needs a value");
      if (arg == "--account") account = args[++i];
      else if (!ParseDurationMs(args[++i], &timeout_ms)) return Usage("--timeout takes a duration such as 30s");
    } else if (arg.rfind("--", 0) == 0) {
      return Usage("unknown option " + arg + " for call");
    } else if (method.empty()) {
      method = arg;
    } else {
      size_t eq = arg.find('=');
      if (eq == std::string::npos || eq == 0) return Usage("parameter '" + arg + "' is not key=value");
      params[arg.substr(0, eq)] = TypedValue(arg.substr(eq + 1));
    }
  }
  if (method.empty()) return Usage("call needs a METHOD, e.g. Utilities/Info/ping");
  auto outcome = client.Call(account, method, params, std::chrono::milliseconds(timeout_ms));
  if (!outcome.ok()) return ExitFor(outcome.error());
  if (outcome->api_error) {
    const ApiError& error = *outcome->api_error;
    nlohmann::json out = error.extra;
    out["error_class"] = error.error_class;
    out["message"] = error.message;
    out["http_status"] = error.http_status;
    std::cout << out.dump(2) << std::endl;
    return kExitApiError;
  }
  std::cout << outcome->result.dump(2) << std::endl;
  return kExitOk;
}

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

long long EpochSeconds(const std::optional<std::chrono::system_clock::time_point>& when) {
  return when ? std::chrono::duration_cast<std::chrono::seconds>(when->time_since_epoch()).count() : 0;
}

int RunAccounts(Client& client, const std::vector<std::string>& args) {
  std::string output = "table";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--output" && i + 1 < args.size()) output = args[++i];
    else return Usage("unknown argument " + args[i] + " for accounts");
  }
  if (output != "table" && output != "json") return Usage("--output is table or json");
  auto accounts = client.ListAccounts();
  if (!accounts.ok()) return ExitFor(accounts.error());
  if (output == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const AccountInfo& a : accounts.value()) {
      list.push_back({{"name", a.name}, {"username", a.username}, {"state", a.state},
                      {"two_factor", a.two_factor},
                      {"inactivity_deadline", EpochSeconds(a.inactivity_deadline)},
                      {"hard_deadline", EpochSeconds(a.hard_deadline)}, {"renew_at", EpochSeconds(a.renew_at)},
                      {"last_error", a.last_error}, {"warning", a.warning}});
    }
    std::cout << list.dump(2) << std::endl;
    return kExitOk;
  }
  std::printf("%-16s %-20s %-8s %-14s %-11s %-11s %-11s %s\n", "ACCOUNT", "USERNAME", "2FA", "STATE", "IDLE-LIMIT",
              "RENEWS-IN", "HARD-LIMIT", "NOTE");
  for (const AccountInfo& a : accounts.value()) {
    std::string note = !a.warning.empty() ? a.warning : !a.last_error.empty() ? a.last_error : "-";
    std::printf("%-16s %-20s %-8s %-14s %-11s %-11s %-11s %s\n", a.name.c_str(), a.username.c_str(),
                a.two_factor.c_str(), a.state.c_str(), Until(a.inactivity_deadline).c_str(),
                Until(a.renew_at).c_str(), Until(a.hard_deadline).c_str(), note.c_str());
  }
  return kExitOk;
}

// Reads one line from the terminal with echo off; nothing when there is no terminal.
std::optional<std::string> ReadHidden(const std::string& prompt) {
  FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) return std::nullopt;
  std::fputs(prompt.c_str(), tty);
  std::fflush(tty);
  termios saved{};
  bool restored = tcgetattr(fileno(tty), &saved) != 0;
  if (!restored) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
  }
  char line[256] = {};
  bool got = std::fgets(line, sizeof line, tty) != nullptr;
  if (!restored) tcsetattr(fileno(tty), TCSAFLUSH, &saved);
  std::fputs("\n", tty);
  std::fclose(tty);
  if (!got) return std::nullopt;
  std::string text(line);
  explicit_bzero(line, sizeof line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

int RunLogin(Client& client, const std::vector<std::string>& args) {
  std::string account;
  bool from_stdin = false;
  for (const auto& arg : args) {
    if (arg == "--passcode-stdin") from_stdin = true;
    else if (arg.rfind("--", 0) == 0) return Usage("unknown option " + arg + " for login");
    else if (account.empty()) account = arg;
    else return Usage("login takes one ACCOUNT");
  }
  if (account.empty()) return Usage("login needs an ACCOUNT");
  // Ask for a passcode only where one is needed.
  bool needs_passcode = true;
  auto accounts = client.ListAccounts();
  if (accounts.ok()) {
    for (const auto& info : accounts.value()) {
      if (info.name == account) needs_passcode = info.two_factor == "prompt";
    }
  }
  std::string passcode;
  if (needs_passcode) {
    std::optional<std::string> read;
    if (from_stdin) {
      std::string line;
      if (std::getline(std::cin, line)) read = line;
    } else {
      read = ReadHidden("two-factor passcode for " + account + ": ");
    }
    if (!read) {
      return Usage(from_stdin ? "no passcode on stdin"
                              : "no terminal to read the passcode from; pipe it in with --passcode-stdin");
    }
    passcode = *read;
    while (!passcode.empty() && std::isspace(static_cast<unsigned char>(passcode.back()))) passcode.pop_back();
  }
  auto outcome = client.Login(account, passcode);
  explicit_bzero(passcode.data(), passcode.size());
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: %s\n", account.c_str(), outcome->state.c_str());
  return kExitOk;
}

int RunToken(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].rfind("--", 0) == 0) return Usage("token takes one ACCOUNT");
  auto token = client.GetToken(args[0]);
  if (!token.ok()) return ExitFor(token.error());
  std::printf("%s\n", token.value().c_str());
  return kExitOk;
}

int RunLogout(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].rfind("--", 0) == 0) return Usage("logout takes one ACCOUNT");
  auto outcome = client.Logout(args[0]);
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: logged out; the token is expired upstream\n", args[0].c_str());
  return kExitOk;
}

std::string LocalTime(std::chrono::system_clock::time_point when) {
  time_t t = std::chrono::system_clock::to_time_t(when);
  struct tm local;
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

int RunWatch(Client& client, const std::vector<std::string>& args) {
  long long limit = -1;
  std::string output = "text";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--count" && i + 1 < args.size()) limit = std::atoll(args[++i].c_str());
    else if (args[i] == "--output" && i + 1 < args.size()) output = args[++i];
    else return Usage("unknown argument " + args[i] + " for watch");
  }
  if (output != "text" && output != "json") return Usage("--output is text or json");
  long long seen = 0;
  BrokerError end = client.Watch([&](const AccountEvent& event) {
    if (output == "json") {
      nlohmann::json line = {{"account", event.account}, {"state", event.state}, {"message", event.message},
                             {"time", std::chrono::duration_cast<std::chrono::seconds>(event.time.time_since_epoch()).count()}};
      std::cout << line.dump() << std::endl;
    } else {
      std::cout << LocalTime(event.time) << "  " << event.account << "  " << event.state << "  " << event.message
                << std::endl;
    }
    return limit < 0 || ++seen < limit;
  });
  if (!end.message.empty()) return ExitFor(end);
  return kExitOk;
}

int Main(int argc, char** argv) {
  const char* env_socket = std::getenv("STORMBROKER_SOCKET");
  std::string socket_path = env_socket && *env_socket ? env_socket : "/run/stormbroker/broker.sock";
  std::string command;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if (arg == "--version") {
      std::printf("stormctl %s\n", STORMBROKER_VERSION);
      return kExitOk;
    }
    if (arg == "--socket") {
      if (i + 1 >= argc) return Usage("--socket needs a path");
      socket_path = argv[++i];
    } else if (arg.rfind("--socket=", 0) == 0) {
      socket_path = arg.substr(9);
    } else if (command.empty() && arg.rfind("--", 0) != 0) {
      command = arg;
    } else {
      rest.push_back(arg);
    }
  }
  if (command.empty()) return Usage("no command given");
  auto client = Client::Connect(socket_path);
  if (command == "call") return RunCall(*client, rest);
  if (command == "accounts") return RunAccounts(*client, rest);
  if (command == "login") return RunLogin(*client, rest);
  if (command == "logout") return RunLogout(*client, rest);
  if (command == "watch") return RunWatch(*client, rest);
  if (command == "token") return RunToken(*client, rest);
  return Usage("unknown command '" + command + "'");
}

}  // namespace
}  // namespace stormbroker

int main(int argc, char** argv) { return stormbroker::Main(argc, argv); }
