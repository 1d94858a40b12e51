// What stormctl prints: results in the format asked for, the account table,
// and failures as one line on stderr with the exit code that goes with them.
// Text that came from elsewhere (the API, the broker) goes through ForOutput,
// so it cannot drive the terminal.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stormbroker/client.h"

namespace stormbroker::stormctl {

constexpr int kExitOk = 0;
constexpr int kExitBroker = 2;  // broker-side failure or bad usage
constexpr int kExitApiError = 3;
constexpr int kExitNeedsLogin = 4;
constexpr int kExitPermission = 5;

// Colour on a terminal only, and never with NO_COLOR set.
bool UseColour(int fd);
std::string Paint(const std::string& text, const char* code, bool colour);

// Bad usage: says what, points at --help; kExitBroker.
int Usage(const std::string& problem);
// A broker-side failure: one line naming it; the exit code for its kind.
int ExitFor(const client::BrokerError& error);
// A failure of stormctl's own (not the broker's): one line; kExitBroker.
int Fail(const std::string& problem);

// `value` as json (indented), yaml, or table.
void Print(const nlohmann::json& value, const std::string& output);
// The API's answer, or its exception (kExitApiError).
int PrintCallResult(const client::CallResult& result, const std::string& output);

// Time left until `when`: "-" for none, "passed", "42s", "3m05s", "11h58m".
std::string Until(const std::optional<std::chrono::system_clock::time_point>& when);
// The colour (an SGR code) a state is painted in.
const char* StateHue(const std::string& state);

nlohmann::json AccountsJson(const std::vector<client::AccountInfo>& accounts);
void PrintAccountsTable(const std::vector<client::AccountInfo>& accounts);
// "the API asked to slow down: calls wait 2s" while it does; empty otherwise.
std::string PauseNote(const client::AccountInfo& account);
// Who uses the API (status, top): as JSON, or a table of the `most` busiest.
nlohmann::json CallersJson(const std::vector<client::DaemonStatus::CallerLoad>& callers);
std::string CallersTable(const std::vector<client::DaemonStatus::CallerLoad>& callers, size_t most);
void PrintEvent(const client::AccountEvent& event, const std::string& output);

}  // namespace stormbroker::stormctl
