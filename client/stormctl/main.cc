// stormctl: the command-line client of stormbrokerd.

#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "format/table.h"
#include "format/terminal_text.h"
#include "stormctl/socket_trust.h"
#include "format/yaml_json.h"
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

Commands (stormctl COMMAND --help for more):
  call METHOD [key=value ...]   call a Storm API method
  accounts                      the accounts you may use, with their state
  status                        the daemon's version, uptime and accounts
  login ACCOUNT                 log an account in (two-factor passcode)
  logout ACCOUNT                expire an account's token now
  token ACCOUNT                 print an account's token (where policy allows)
  watch                         account events as they happen

Options:
  --socket PATH   the broker's socket (default: $STORMBROKER_SOCKET, else
                  /run/stormbroker/broker.sock)
  --help          this text
  --version       print the version

Examples:
  stormctl call Utilities/Info/ping
  stormctl call --account prod Storm/Server/list page_size=10 --output table
  stormctl status

Exit codes:
  0  success
  2  the broker could not do it, or bad usage (one line on stderr says why)
  3  the Storm API answered with an exception (printed on stdout)
  4  the account needs a login or its credentials were refused
  5  permission denied by the broker's policy
Colour is used on a terminal only, and never with NO_COLOR set.
)";

const std::map<std::string, std::string> kCommandHelp = {
    {"call", R"(usage: stormctl call [--account NAME] [--timeout DURATION] [--output json|yaml|table]
                     [--params FILE|-] [--all-pages] METHOD [key=value ...]

Calls a Storm API method through the broker and prints the result.
  --account NAME    the account (may be left out when the broker holds one)
  --timeout D       how long to wait, e.g. 30s (default 60s)
  --output FORMAT   json (default), yaml, or table (one row per item of a list)
  --params FILE     parameters from a JSON or YAML file; - reads stdin;
                    key=value arguments override them
  --all-pages       follow page_num to the last page and print all items
Values are typed like JSON: page_size=10 is a number, flag=true a boolean,
name='"10"' a string; anything that is not JSON is a string.

Examples:
  stormctl call Utilities/Info/ping
  stormctl call --account prod Storm/Server/details uniq_id=ABC123 --output yaml
  stormctl call Storm/Server/list --all-pages --output table
  echo '{"page_size": 5}' | stormctl call Storm/Server/list --params -
)"},
    {"accounts", R"(usage: stormctl accounts [--output table|json|yaml]

Lists the accounts you may use: state, two-factor mode, time left before the
token idles out, before it is renewed and before its hard limit.

Example:
  stormctl accounts --output json
)"},
    {"status", R"(usage: stormctl status [--output table|json|yaml]

The daemon's version and uptime, and the accounts you may use.

Example:
  stormctl status
)"},
    {"login", R"(usage: stormctl login ACCOUNT [--passcode-stdin]

Logs the account in (needs a policy rule with admin: true). A two-factor
prompt account asks for the current passcode on the terminal (not echoed), or
reads it from stdin with --passcode-stdin. Other accounts log in afresh with
their password file (the way out of login-failed).

Examples:
  stormctl login prod
  oathtool --totp -b "$SECRET" | stormctl login prod --passcode-stdin
)"},
    {"logout", R"(usage: stormctl logout ACCOUNT

Expires the account's token upstream now (needs a policy rule with admin:
true). A password account logs in again on the next call; a two-factor prompt
account waits for stormctl login.

Example:
  stormctl logout prod
)"},
    {"token", R"(usage: stormctl token ACCOUNT

Prints the account's token (needs a policy rule with token_export: true;
refused otherwise). It stays valid until the broker replaces it.

Example:
  TOKEN=$(stormctl token prod); curl -u "deploy-bot:$TOKEN" ...
)"},
    {"watch", R"(usage: stormctl watch [--count N] [--output text|json]

Prints account events (logins, renewals, warnings, failures) as they happen,
until interrupted or N events were printed.

Example:
  stormctl watch --count 1 --output json
)"},
};

bool UseColour(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  return isatty(fd) && !(no_colour && *no_colour);
}

std::string Paint(const std::string& text, const char* code, bool colour) {
  return colour ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
}

int Usage(const std::string& problem) {
  std::fprintf(stderr, "%s %s (see stormctl --help)\n", Paint("stormctl:", "31", UseColour(2)).c_str(),
               problem.c_str());
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
    case ErrorCode::kResourceExhausted: label = "over a limit"; break;
    case ErrorCode::kOther: break;
  }
  std::fprintf(stderr, "%s %s: %s\n", Paint("stormctl:", "31", UseColour(2)).c_str(), label,
               ForOutput(error.message, 2).c_str());
  return code;
}

// Parses "--name value" options listed in `takes_value` and flags listed in
// `flags`; the rest are positional. False (with a message) on an unknown option.
struct Args {
  std::map<std::string, std::string> options;
  std::vector<std::string> positional;
};
std::optional<Args> ParseArgs(const std::vector<std::string>& args, const std::vector<std::string>& takes_value,
                              const std::vector<std::string>& flags, std::string* problem) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2), value;
      size_t eq = name.find('=');
      bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (std::find(takes_value.begin(), takes_value.end(), name) != takes_value.end()) {
        if (!inline_value) {
          if (i + 1 >= args.size()) {
            *problem = "--" + name + " needs a value";
            return std::nullopt;
          }
          value = args[++i];
        }
        out.options[name] = value;
      } else if (std::find(flags.begin(), flags.end(), name) != flags.end() && !inline_value) {
        out.options[name] = "true";
      } else {
        *problem = "unknown option --" + name;
        return std::nullopt;
      }
    } else {
      out.positional.push_back(arg);
    }
  }
  return out;
}

std::optional<std::string> Output(const Args& args, const std::vector<std::string>& allowed, std::string* problem) {
  std::string output = args.options.count("output") ? args.options.at("output") : allowed.front();
  if (std::find(allowed.begin(), allowed.end(), output) == allowed.end()) {
    *problem = "--output is one of";
    for (const auto& a : allowed) *problem += " " + a;
    return std::nullopt;
  }
  return output;
}

void Print(const nlohmann::json& value, const std::string& output) {
  // JSON escapes control characters itself; YAML and tables show strings as they are.
  if (output == "yaml") std::cout << ForOutput(RenderYaml(value), 1);
  else if (output == "table") std::cout << ForOutput(RenderTable(value), 1);
  else std::cout << value.dump(2) << std::endl;
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

// Params from --params: a JSON or YAML object in a file, or on stdin for "-".
std::optional<nlohmann::json> ReadParams(const std::string& source, std::string* problem) {
  std::stringstream text;
  if (source == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(source);
    if (!in) {
      *problem = "cannot read --params file " + source;
      return std::nullopt;
    }
    text << in.rdbuf();
  }
  auto parsed = ParseYaml(text.str());  // YAML is a superset of JSON
  if (!parsed || !(parsed->is_object() || parsed->is_null())) {
    *problem = "--params " + source + " must hold a JSON or YAML object of parameters";
    return std::nullopt;
  }
  return parsed->is_null() ? nlohmann::json::object() : *parsed;
}

int PrintCallResult(const CallResult& result, const std::string& output) {
  if (result.api_error) {
    const ApiError& error = *result.api_error;
    nlohmann::json out = error.extra;
    out["error_class"] = error.error_class;
    out["message"] = error.message;
    out["http_status"] = error.http_status;
    Print(out, output == "table" ? "json" : output);
    return kExitApiError;
  }
  Print(result.result, output);
  return kExitOk;
}

int RunCall(Client& client, const std::vector<std::string>& raw) {
  std::string problem;
  auto args = ParseArgs(raw, {"account", "timeout", "output", "params"}, {"all-pages"}, &problem);
  if (!args) return Usage(problem);
  auto output = Output(*args, {"json", "yaml", "table"}, &problem);
  if (!output) return Usage(problem);
  long long timeout_ms = 60'000;
  if (args->options.count("timeout") && !ParseDurationMs(args->options["timeout"], &timeout_ms)) {
    return Usage("--timeout takes a duration such as 30s");
  }
  if (args->positional.empty()) return Usage("call needs a METHOD, e.g. Utilities/Info/ping");
  std::string method = args->positional[0];
  nlohmann::json params = nlohmann::json::object();
  if (args->options.count("params")) {
    auto from_file = ReadParams(args->options["params"], &problem);
    if (!from_file) return Usage(problem);
    params = *from_file;
  }
  for (size_t i = 1; i < args->positional.size(); ++i) {
    const std::string& pair = args->positional[i];
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) return Usage("parameter '" + pair + "' is not key=value");
    params[pair.substr(0, eq)] = TypedValue(pair.substr(eq + 1));
  }
  std::string account = args->options.count("account") ? args->options["account"] : "";
  auto call = [&](const nlohmann::json& p) { return client.Call(account, method, p, std::chrono::milliseconds(timeout_ms)); };

  auto first = call(params);
  if (!first.ok()) return ExitFor(first.error());
  if (!args->options.count("all-pages") || first->api_error) return PrintCallResult(first.value(), *output);

  // Follow the pages: the API's list results say how many there are.
  nlohmann::json combined = first->result;
  if (!combined.is_object() || !combined.contains("items") || !combined.contains("page_total")) {
    return PrintCallResult(first.value(), *output);
  }
  long long pages = combined["page_total"].get<long long>();
  for (long long page = combined.value("page_num", 1LL) + 1; page <= pages; ++page) {
    params["page_num"] = page;
    auto next = call(params);
    if (!next.ok()) return ExitFor(next.error());
    if (next->api_error) return PrintCallResult(next.value(), *output);
    for (const auto& item : next->result["items"]) combined["items"].push_back(item);
  }
  combined["item_count"] = combined["items"].size();
  combined["page_num"] = 1;
  combined["page_size"] = combined["items"].size();
  combined["page_total"] = 1;
  Print(combined, *output);
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

nlohmann::json AccountsJson(const std::vector<AccountInfo>& accounts) {
  nlohmann::json list = nlohmann::json::array();
  for (const AccountInfo& a : accounts) {
    list.push_back({{"name", a.name}, {"username", a.username}, {"state", a.state}, {"two_factor", a.two_factor},
                    {"inactivity_deadline", EpochSeconds(a.inactivity_deadline)},
                    {"hard_deadline", EpochSeconds(a.hard_deadline)}, {"renew_at", EpochSeconds(a.renew_at)},
                    {"last_error", a.last_error}, {"warning", a.warning}});
  }
  return list;
}

void PrintAccountsTable(const std::vector<AccountInfo>& accounts) {
  bool colour = UseColour(1);
  std::printf("%-16s %-20s %-8s %-14s %-11s %-11s %-11s %s\n", "ACCOUNT", "USERNAME", "2FA", "STATE", "IDLE-LIMIT",
              "RENEWS-IN", "HARD-LIMIT", "NOTE");
  for (const AccountInfo& a : accounts) {
    std::string note = !a.warning.empty() ? a.warning : !a.last_error.empty() ? a.last_error : "-";
    const char* hue = a.state == "active" ? "32" : (a.state == "refreshing" || a.state == "starting") ? "33" : "31";
    char state[32];
    std::snprintf(state, sizeof state, "%-14s", a.state.c_str());
    std::printf("%-16s %-20s %-8s %s %-11s %-11s %-11s %s\n", a.name.c_str(), ForOutput(a.username, 1).c_str(),
                a.two_factor.c_str(), Paint(state, hue, colour).c_str(), Until(a.inactivity_deadline).c_str(),
                Until(a.renew_at).c_str(), Until(a.hard_deadline).c_str(), ForOutput(note, 1).c_str());
  }
}

int RunAccounts(Client& client, const std::vector<std::string>& raw) {
  std::string problem;
  auto args = ParseArgs(raw, {"output"}, {}, &problem);
  if (!args || !args->positional.empty()) return Usage(args ? "accounts takes no arguments" : problem);
  auto output = Output(*args, {"table", "json", "yaml"}, &problem);
  if (!output) return Usage(problem);
  auto accounts = client.ListAccounts();
  if (!accounts.ok()) return ExitFor(accounts.error());
  if (*output == "table") PrintAccountsTable(accounts.value());
  else Print(AccountsJson(accounts.value()), *output);
  return kExitOk;
}

int RunStatus(Client& client, const std::vector<std::string>& raw, const std::string& socket_path) {
  std::string problem;
  auto args = ParseArgs(raw, {"output"}, {}, &problem);
  if (!args || !args->positional.empty()) return Usage(args ? "status takes no arguments" : problem);
  auto output = Output(*args, {"table", "json", "yaml"}, &problem);
  if (!output) return Usage(problem);
  auto status = client.GetStatus();
  if (!status.ok()) return ExitFor(status.error());
  long long uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - status->started_at).count();
  if (*output != "table") {
    Print({{"version", status->version},
           {"socket", socket_path},
           {"uptime_seconds", uptime},
           {"audit_records_dropped", status->audit_records_dropped},
           {"accounts", AccountsJson(status->accounts)}},
          *output);
    return kExitOk;
  }
  std::printf("stormbrokerd %s on %s, up %lldd %02lldh%02lldm%02llds\n", status->version.c_str(), socket_path.c_str(),
              uptime / 86400, uptime % 86400 / 3600, uptime % 3600 / 60, uptime % 60);
  if (status->audit_records_dropped > 0) {
    std::printf("%s\n", Paint("audit records dropped: " + std::to_string(status->audit_records_dropped), "31",
                              UseColour(1)).c_str());
  }
  std::printf("\n");
  PrintAccountsTable(status->accounts);
  return kExitOk;
}

// Reads one line from the terminal with echo off; nothing when there is no terminal.
std::optional<std::string> ReadHidden(const std::string& prompt) {
  FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) return std::nullopt;
  std::fputs(prompt.c_str(), tty);
  std::fflush(tty);
  termios saved{};
  bool have_terminal = tcgetattr(fileno(tty), &saved) == 0;
  if (have_terminal) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
  }
  char line[256] = {};
  bool got = std::fgets(line, sizeof line, tty) != nullptr;
  if (have_terminal) tcsetattr(fileno(tty), TCSAFLUSH, &saved);
  std::fputs("\n", tty);
  std::fclose(tty);
  if (!got) return std::nullopt;
  std::string text(line);
  explicit_bzero(line, sizeof line);
  return text;
}

int RunLogin(Client& client, const std::vector<std::string>& raw, const std::string& socket_path) {
  std::string problem;
  auto args = ParseArgs(raw, {}, {"passcode-stdin"}, &problem);
  if (!args) return Usage(problem);
  if (args->positional.size() != 1) return Usage("login takes one ACCOUNT");
  const std::string& account = args->positional[0];
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
    if (args->options.count("passcode-stdin")) {
      std::string line;
      if (std::getline(std::cin, line)) read = line;
    } else {
      read = ReadHidden("two-factor passcode for " + account + ": ");
    }
    if (!read) {
      return Usage(args->options.count("passcode-stdin")
                       ? "no passcode on stdin"
                       : "no terminal to read the passcode from; pipe it in with --passcode-stdin");
    }
    passcode = *read;
    while (!passcode.empty() && std::isspace(static_cast<unsigned char>(passcode.back()))) passcode.pop_back();
    // A passcode goes only to the real broker.
    if (std::string untrusted = UntrustedSocketServer(socket_path); !untrusted.empty()) {
      explicit_bzero(passcode.data(), passcode.size());
      std::fprintf(stderr, "%s not sending the passcode: %s\n", Paint("stormctl:", "31", UseColour(2)).c_str(),
                   untrusted.c_str());
      return kExitBroker;
    }
  }
  auto outcome = client.Login(account, passcode);
  explicit_bzero(passcode.data(), passcode.size());
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: %s\n", account.c_str(), outcome->state.c_str());
  return kExitOk;
}

// For commands that take exactly one ACCOUNT and nothing else.
std::optional<std::string> OneAccount(const std::vector<std::string>& raw, const std::string& command) {
  if (raw.size() != 1 || raw[0].rfind("--", 0) == 0) {
    Usage(command + " takes one ACCOUNT");
    return std::nullopt;
  }
  return raw[0];
}

int RunLogout(Client& client, const std::vector<std::string>& raw) {
  auto account = OneAccount(raw, "logout");
  if (!account) return kExitBroker;
  auto outcome = client.Logout(*account);
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: logged out; the token is expired upstream\n", account->c_str());
  return kExitOk;
}

int RunToken(Client& client, const std::vector<std::string>& raw) {
  auto account = OneAccount(raw, "token");
  if (!account) return kExitBroker;
  auto token = client.GetToken(*account);
  if (!token.ok()) return ExitFor(token.error());
  std::printf("%s\n", token.value().c_str());
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

int RunWatch(Client& client, const std::vector<std::string>& raw) {
  std::string problem;
  auto args = ParseArgs(raw, {"count", "output"}, {}, &problem);
  if (!args || !args->positional.empty()) return Usage(args ? "watch takes no arguments" : problem);
  auto output = Output(*args, {"text", "json"}, &problem);
  if (!output) return Usage(problem);
  long long limit = args->options.count("count") ? std::atoll(args->options["count"].c_str()) : -1;
  long long seen = 0;
  bool colour = UseColour(1);
  BrokerError end = client.Watch([&](const AccountEvent& event) {
    if (*output == "json") {
      nlohmann::json line = {{"account", event.account}, {"state", event.state}, {"message", event.message},
                             {"time", std::chrono::duration_cast<std::chrono::seconds>(event.time.time_since_epoch()).count()}};
      std::cout << line.dump() << std::endl;
    } else {
      const char* hue = event.state == "active" ? "32" : event.state == "refreshing" ? "33" : "31";
      std::cout << LocalTime(event.time) << "  " << event.account << "  " << Paint(event.state, hue, colour) << "  "
                << ForOutput(event.message, 1) << std::endl;
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
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
    } else if (arg == "--version") {
      std::printf("stormctl %s\n", STORMBROKER_VERSION);
      return kExitOk;
    } else if (arg == "--socket") {
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
  if (command == "help" && !rest.empty()) {
    command = rest[0];
    help = true;
  }
  if (help) {
    auto found = kCommandHelp.find(command);
    std::fputs(found != kCommandHelp.end() ? found->second.c_str() : kUsage, stdout);
    return kExitOk;
  }
  if (command.empty()) return Usage("no command given");
  if (!kCommandHelp.count(command)) return Usage("unknown command '" + command + "'");
  auto client = Client::Connect(socket_path);
  if (command == "call") return RunCall(*client, rest);
  if (command == "accounts") return RunAccounts(*client, rest);
  if (command == "status") return RunStatus(*client, rest, socket_path);
  if (command == "login") return RunLogin(*client, rest, socket_path);
  if (command == "logout") return RunLogout(*client, rest);
  if (command == "token") return RunToken(*client, rest);
  return RunWatch(*client, rest);
}

}  // namespace
}  // namespace stormbroker

int main(int argc, char** argv) { return stormbroker::Main(argc, argv); }
