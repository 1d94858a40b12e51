// stormctl's command table, and every command but call (call_command.cc).
#include "stormctl/commands.h"

#include <termios.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>

#include "format/terminal_text.h"
#include "stormctl/args.h"
#include "stormctl/output.h"

namespace stormbroker::stormctl {
namespace {

// For commands that take --output and nothing else.
Result<std::string> OnlyOutput(const Invocation& invocation, const std::string& command,
                               const std::vector<std::string>& formats) {
  auto args = ParseArgs(invocation.args, {"output"}, {});
  if (!args.ok()) return args.status();
  if (!args->positional.empty()) return InvalidArgument(command + " takes no arguments");
  return OutputFormat(*args, formats);
}

// For commands that take exactly one ACCOUNT and nothing else.
Result<std::string> OneAccount(const Invocation& invocation, const std::string& command) {
  const auto& args = invocation.args;
  if (args.size() != 1 || args[0].rfind("--", 0) == 0) return InvalidArgument(command + " takes one ACCOUNT");
  return args[0];
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

// Whether `account` logs in with a passcode (when the broker cannot say: yes).
bool NeedsPasscode(client::Client& broker, const std::string& account) {
  auto accounts = broker.ListAccounts();
  if (!accounts.ok()) return true;
  for (const auto& info : accounts.value()) {
    if (info.name == account) return info.two_factor == "prompt";
  }
  return true;
}

}  // namespace

int RunAccounts(const Invocation& invocation) {
  auto output = OnlyOutput(invocation, "accounts", {"table", "json", "yaml"});
  if (!output.ok()) return Usage(output.status().message());
  auto accounts = invocation.broker.ListAccounts();
  if (!accounts.ok()) return ExitFor(accounts.error());
  if (*output == "table") PrintAccountsTable(accounts.value());
  else Print(AccountsJson(accounts.value()), *output);
  return kExitOk;
}

int RunStatus(const Invocation& invocation) {
  auto output = OnlyOutput(invocation, "status", {"table", "json", "yaml"});
  if (!output.ok()) return Usage(output.status().message());
  auto status = invocation.broker.GetStatus();
  if (!status.ok()) return ExitFor(status.error());
  long long uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - status->started_at).count();
  if (*output != "table") {
    nlohmann::json out = {{"version", status->version},
                          {"socket", invocation.socket_path},
                          {"uptime_seconds", uptime},
                          {"audit_records_dropped", status->audit_records_dropped},
                          {"accounts", AccountsJson(status->accounts)},
                          {"callers", CallersJson(status->callers)}};
    if (const auto& proxy = status->https_proxy) {
      out["https_proxy"] = {{"address", proxy->address}, {"hosts", proxy->hosts}};
    }
    if (status->fleet) {
      out["fleet"] = {{"name", status->fleet->name},
                      {"connected", status->fleet->connected},
                      {"detail", status->fleet->detail},
                      {"members", status->fleet->members}};
    }
    Print(out, *output);
    return kExitOk;
  }
  std::printf("stormbrokerd %s on %s, up %lldd %02lldh%02lldm%02llds\n", status->version.c_str(),
              invocation.socket_path.c_str(), uptime / 86400, uptime % 86400 / 3600, uptime % 3600 / 60, uptime % 60);
  if (status->audit_records_dropped > 0) {
    std::printf("%s\n", Paint("audit records dropped: " + std::to_string(status->audit_records_dropped), "31",
                              UseColour(1)).c_str());
  }
  if (const auto& fleet = status->fleet) {
    std::string members;
    for (const auto& member : fleet->members) members += (members.empty() ? "" : ", ") + member;
    std::printf("fleet: this machine is %s; %s\n", ForOutput(fleet->name, 1).c_str(),
                fleet->connected ? ("in touch with etcd; members: " + ForOutput(members, 1)).c_str()
                                 : Paint(ForOutput(fleet->detail, 1), "31", UseColour(1)).c_str());
  }
  if (const auto& proxy = status->https_proxy) {
    std::string hosts;
    for (const auto& host : proxy->hosts) hosts += (hosts.empty() ? "" : ", ") + host;
    std::printf("HTTPS proxy door on %s for %s (stormctl proxy-ca prints its CA)\n",
                ForOutput(proxy->address, 1).c_str(), ForOutput(hosts, 1).c_str());
  }
  std::string protocols;
  for (const auto& account : status->accounts) {
    if (account.upstream_protocol.empty()) continue;
    protocols += (protocols.empty() ? "" : ", ") + ForOutput(account.name, 1) + " over " + account.upstream_protocol;
  }
  if (!protocols.empty()) std::printf("the API answers %s\n", protocols.c_str());
  std::printf("\n");
  PrintAccountsTable(status->accounts);
  if (!status->callers.empty()) {
    std::printf("\n");
    std::fputs(CallersTable(status->callers, status->callers.size()).c_str(), stdout);
  }
  return kExitOk;
}

int RunProxyCa(const Invocation& invocation) {
  if (!invocation.args.empty()) return Usage("proxy-ca takes no arguments");
  auto status = invocation.broker.GetStatus();
  if (!status.ok()) return ExitFor(status.error());
  if (!status->https_proxy) return Fail("the broker has no HTTPS proxy door (listen.https_proxy is not configured)");
  std::fputs(status->https_proxy->ca_certificate.c_str(), stdout);
  return kExitOk;
}

int RunMetrics(const Invocation& invocation) {
  if (!invocation.args.empty()) return Usage("metrics takes no arguments");
  auto metrics = invocation.broker.GetMetrics();
  if (!metrics.ok()) return ExitFor(metrics.error());
  std::fputs(metrics->text.c_str(), stdout);
  return kExitOk;
}

int RunLogin(const Invocation& invocation) {
  auto args = ParseArgs(invocation.args, {}, {"passcode-stdin"});
  if (!args.ok()) return Usage(args.status().message());
  if (args->positional.size() != 1) return Usage("login takes one ACCOUNT");
  const std::string& account = args->positional[0];
  std::string passcode;
  // Ask for a passcode only where one is needed.
  if (NeedsPasscode(invocation.broker, account)) {
    std::optional<std::string> read;
    if (args->Has("passcode-stdin")) {
      std::string line;
      if (std::getline(std::cin, line)) read = line;
    } else {
      read = ReadHidden("two-factor passcode for " + account + ": ");
    }
    if (!read) {
      return Usage(args->Has("passcode-stdin") ? "no passcode on stdin"
                                               : "no terminal to read the passcode from; pipe it in with --passcode-stdin");
    }
    passcode = *read;
    while (!passcode.empty() && std::isspace(static_cast<unsigned char>(passcode.back()))) passcode.pop_back();
  }
  // The library sends a passcode only to the real broker (stormbroker/socket_trust.h).
  auto outcome = invocation.broker.Login(account, passcode);
  explicit_bzero(passcode.data(), passcode.size());
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: %s\n", account.c_str(), outcome->state.c_str());
  return kExitOk;
}

int RunLogout(const Invocation& invocation) {
  auto account = OneAccount(invocation, "logout");
  if (!account.ok()) return Usage(account.status().message());
  auto outcome = invocation.broker.Logout(*account);
  if (!outcome.ok()) return ExitFor(outcome.error());
  std::printf("%s: logged out; the token is expired upstream\n", account->c_str());
  return kExitOk;
}

int RunToken(const Invocation& invocation) {
  auto account = OneAccount(invocation, "token");
  if (!account.ok()) return Usage(account.status().message());
  auto token = invocation.broker.GetToken(*account);
  if (!token.ok()) return ExitFor(token.error());
  std::printf("%s\n", token.value().c_str());
  return kExitOk;
}

int RunWatch(const Invocation& invocation) {
  auto args = ParseArgs(invocation.args, {"count", "output"}, {});
  if (!args.ok()) return Usage(args.status().message());
  if (!args->positional.empty()) return Usage("watch takes no arguments");
  auto output = OutputFormat(*args, {"text", "json"});
  if (!output.ok()) return Usage(output.status().message());
  std::optional<long long> limit;
  if (args->Has("count")) {
    auto count = ParseCount("count", args->Get("count"));
    if (!count.ok()) return Usage(count.status().message());
    limit = *count;
  }
  long long seen = 0;
  client::BrokerError end = invocation.broker.Watch([&](const client::AccountEvent& event) {
    PrintEvent(event, *output);
    return !limit || ++seen < *limit;
  });
  if (!end.message.empty()) return ExitFor(end);
  return kExitOk;
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"call", "call METHOD [key=value ...]", "call a Storm API method",
       R"(usage: stormctl call [--account NAME] [--timeout DURATION] [--output json|yaml|table]
                     [--params FILE|-] [--all-pages] [--fresh] METHOD [key=value ...]

Calls a Storm API method through the broker and prints the result.
  --account NAME    the account (may be left out when the broker holds one)
  --timeout D       how long to wait: 30s, 500ms, 2m, 1.5h (default 60s)
  --output FORMAT   json (default), yaml, or table (one row per item of a list)
  --params FILE     parameters from a JSON or YAML file; - reads stdin;
                    key=value arguments override them
  --all-pages       follow page_num to the last page and print all items
  --fresh           an answer from the API itself, not one the broker shares
                    or stored (its cache rules); the answer refreshes the stored one
Values are typed like JSON: page_size=10 is a number, flag=true a boolean,
name='"10"' a string; anything that is not JSON is a string.

Examples:
  stormctl call Utilities/Info/ping
  stormctl call --account prod Storm/Server/details uniq_id=ABC123 --output yaml
  stormctl call Storm/Server/list --all-pages --output table
  echo '{"page_size": 5}' | stormctl call Storm/Server/list --params -
)",
       RunCall},
      {"accounts", "accounts", "the accounts you may use, with their state",
       R"(usage: stormctl accounts [--output table|json|yaml]

Lists the accounts you may use: state, two-factor mode, time left before the
token idles out, before it is renewed and before its hard limit.

Example:
  stormctl accounts --output json
)",
       RunAccounts},
      {"status", "status", "the daemon's version, uptime and accounts",
       R"(usage: stormctl status [--output table|json|yaml]

The daemon's version and uptime, and the accounts you may use.

Example:
  stormctl status
)",
       RunStatus},
      {"proxy-ca", "proxy-ca", "the HTTPS proxy door's CA certificate, for clients to trust",
       R"(usage: stormctl proxy-ca

Prints the certificate (PEM) of the local CA with which the HTTPS proxy door
(listen.https_proxy) terminates TLS for the Storm API's host names. Its name
constraints let it vouch for those names only, so trusting it system-wide
lends the broker no other site.

Examples:
  stormctl proxy-ca > /usr/local/share/ca-certificates/stormbroker-proxy.crt
  update-ca-certificates
  stormctl proxy-ca > ~/stormbroker-ca.pem; export REQUESTS_CA_BUNDLE=~/stormbroker-ca.pem
)",
       RunProxyCa},
      {"metrics", "metrics", "the broker's metrics, as Prometheus reads them",
       R"(usage: stormctl metrics

Prints the broker's metrics in Prometheus' text format: the series of the
accounts you may use, and the broker-wide ones (calls by outcome, durations,
logins, the upstream's load, callers, the process). The same text is served
at metrics.listen and written to metrics.textfile when configured.

Example:
  stormctl metrics | grep stormbroker_calls_total
)",
       RunMetrics},
      {"top", "top", "a live view of the accounts and their calls",
       R"(usage: stormctl top [--count N]

A live view, refreshed every second: per account you may use, its state,
the time left before the token idles out and before its hard limit (a
two-factor prompt account's in yellow within an hour, red within 15 min),
calls per second (ok, API errors, failed, refused), and the p50/p99 of the
whole call and of its upstream part, over the last second. q quits. When
not on a terminal it prints plain frames; --count N stops after N.

Example:
  stormctl top
)",
       RunTop},
      {"login", "login ACCOUNT", "log an account in (two-factor passcode)",
       R"(usage: stormctl login ACCOUNT [--passcode-stdin]

Logs the account in (needs a policy rule with admin: true). A two-factor
prompt account asks for the current passcode on the terminal (not echoed), or
reads it from stdin with --passcode-stdin. Other accounts log in afresh with
their password file (the way out of login-failed).

Examples:
  stormctl login prod
  oathtool --totp -b "$SECRET" | stormctl login prod --passcode-stdin
)",
       RunLogin},
      {"logout", "logout ACCOUNT", "expire an account's token now",
       R"(usage: stormctl logout ACCOUNT

Expires the account's token upstream now (needs a policy rule with admin:
true). A password account logs in again on the next call; a two-factor prompt
account waits for stormctl login.

Example:
  stormctl logout prod
)",
       RunLogout},
      {"token", "token ACCOUNT", "print an account's token (where policy allows)",
       R"(usage: stormctl token ACCOUNT

Prints the account's token (needs a policy rule with token_export: true;
refused otherwise). It stays valid until the broker replaces it.

Example:
  TOKEN=$(stormctl token prod); curl -u "deploy-bot:$TOKEN" ...
)",
       RunToken},
      {"watch", "watch", "account events as they happen",
       R"(usage: stormctl watch [--count N] [--output text|json]

Prints account events (logins, renewals, warnings, failures) as they happen,
until interrupted or N events were printed.

Example:
  stormctl watch --count 1 --output json
)",
       RunWatch},
  };
  return commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& command : Commands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

}  // namespace stormbroker::stormctl
