// stormctl's commands: one table of name, synopsis, summary, help text and
// handler, from which main() dispatches and --help is written.
#pragma once

#include <string>
#include <vector>

#include "stormbroker/client.h"

namespace stormbroker::stormctl {

// What a command runs with: the broker, the socket it is reached on (for
// messages and the passcode's trust check), and the command's arguments.
struct Invocation {
  client::Client& broker;
  const std::string& socket_path;
  const std::vector<std::string>& args;
};

struct Command {
  const char* name;
  const char* synopsis;  // e.g. "login ACCOUNT"
  const char* summary;   // one line for the command list
  const char* help;      // stormctl COMMAND --help
  int (*run)(const Invocation&);  // returns the exit code
};

const std::vector<Command>& Commands();
// Null when there is no such command.
const Command* FindCommand(const std::string& name);

// The handlers, one per command.
int RunCall(const Invocation& invocation);  // call_command.cc
int RunAccounts(const Invocation& invocation);
int RunStatus(const Invocation& invocation);
int RunLogin(const Invocation& invocation);
int RunLogout(const Invocation& invocation);
int RunToken(const Invocation& invocation);
int RunWatch(const Invocation& invocation);
int RunMetrics(const Invocation& invocation);
int RunProxyCa(const Invocation& invocation);
int RunTop(const Invocation& invocation);  // top.cc

}  // namespace stormbroker::stormctl
