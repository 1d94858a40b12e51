// stormctl: the options every command shares (--socket, --wait, --help,
// --version), then the command named, from the table in commands.cc.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "stormctl/commands.h"
#include "stormctl/output.h"
#include "units/duration.h"

namespace stormbroker::stormctl {
namespace {

constexpr const char* kUsageHead = R"(usage: stormctl [--socket PATH] [--wait DURATION] COMMAND [ARGS]

Talks to stormbrokerd, which holds the Storm API credentials, so you never
handle a password or token yourself.

Commands (stormctl COMMAND --help for more):
)";

constexpr const char* kUsageTail = R"(
Options:
  --socket PATH   the broker's socket (default: $STORMBROKER_SOCKET, else
                  /run/stormbroker/broker.sock)
  --wait D        how long to wait for a broker that is starting or
                  restarting (its socket is there but it does not answer
                  yet): 5s by default, or $STORMBROKER_WAIT; 0 fails at once.
                  A missing socket fails at once.
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

void PrintUsage() {
  std::fputs(kUsageHead, stdout);
  for (const Command& command : Commands()) std::printf("  %-29s %s\n", command.synopsis, command.summary);
  std::fputs(kUsageTail, stdout);
}

int Main(int argc, char** argv) {
  const char* env_socket = std::getenv("STORMBROKER_SOCKET");
  std::string socket_path = env_socket && *env_socket ? env_socket : "/run/stormbroker/broker.sock";
  const char* env_wait = std::getenv("STORMBROKER_WAIT");
  std::string wait = env_wait && *env_wait ? env_wait : "5s";
  std::string name;
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
    } else if (arg == "--wait") {
      if (i + 1 >= argc) return Usage("--wait needs a duration, such as 5s");
      wait = argv[++i];
    } else if (arg.rfind("--wait=", 0) == 0) {
      wait = arg.substr(7);
    } else if (name.empty() && arg.rfind("--", 0) != 0) {
      name = arg;
    } else {
      rest.push_back(arg);
    }
  }
  if (name == "help" && !rest.empty()) {
    name = rest[0];
    help = true;
  }
  const Command* command = FindCommand(name);
  if (help) {
    if (command) std::fputs(command->help, stdout);
    else PrintUsage();
    return kExitOk;
  }
  if (name.empty()) return Usage("no command given");
  if (!command) return Usage("unknown command '" + name + "'");
  auto waited = ParseDuration(wait);
  if (!waited.ok()) return Usage("--wait: " + waited.status().message());
  auto broker = client::Client::Connect(socket_path, {.wait_for_broker = *waited});
  return command->run({*broker, socket_path, rest});
}

}  // namespace
}  // namespace stormbroker::stormctl

int main(int argc, char** argv) { return stormbroker::stormctl::Main(argc, argv); }
