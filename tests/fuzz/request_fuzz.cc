// Fuzzes the checks on what callers send: method paths, account names, and
// policy pattern matching, reserved methods and passcodes. A path that passes
// must be safe to append to a URL; a passcode that passes is digits only.
// Whatever a caller sends, its audit line must be JSON that parses, and its
// log text one printable line. The whole input is also an HTTP door's body,
// in JSON and in YAML: whatever parses is within the request bounds (depth
// and values), so nothing recursive can overrun the stack on it.
#include <cctype>
#include <string>

#include <nlohmann/json.hpp>

#include "access/policy.h"
#include "access/request_check.h"
#include "doors/http/http_protocol.h"
#include "encoding/document_bounds.h"
#include "observe/audit_log.h"
#include "observe/logging.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t split = input.find('\n');
  std::string method = input.substr(0, split);
  std::string pattern = split == std::string::npos ? "*" : input.substr(split + 1);
  if (stormbroker::CheckMethodPath(method).ok()) {
    for (char c : method) {
      bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '/';
      if (!word) __builtin_trap();
    }
    if (method.find("//") != std::string::npos || method.front() == '/' || method.back() == '/') __builtin_trap();
  }
  // The reserved credential methods are recognised in any case and encoding.
  std::string lower;
  for (char c : method) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("account/auth/", 0) == 0 && !stormbroker::IsReservedMethod(method)) __builtin_trap();
  // A passcode that passes is 6 to 8 digits: nothing a header could carry.
  if (stormbroker::CheckPasscode(method).ok()) {
    if (method.size() < 6 || method.size() > 8) __builtin_trap();
    for (char c : method) {
      if (c < '0' || c > '9') __builtin_trap();
    }
  }
  stormbroker::CheckAccountName(method);
  stormbroker::MethodPatternMatches(pattern, method);
  if (!stormbroker::MethodPatternMatches("*", method)) __builtin_trap();

  stormbroker::AuditRecord record;
  record.rpc = "Call";
  // Cut as the audit log cuts what callers chose before it formats a record.
  record.method = method.substr(0, 200);
  record.account = pattern.substr(0, 200);
  record.param_names = {pattern.substr(0, 200), method.substr(0, 200)};
  record.detail = input.substr(0, 1000);  // as the audit log cuts it
  auto line = nlohmann::json::parse(stormbroker::FormatAuditRecord(record), nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded() || !line.is_object()) __builtin_trap();
  for (unsigned char c : stormbroker::Printable(input, 1 << 20)) {
    if (c < 0x20 || c >= 0x7f) __builtin_trap();
  }

  for (const char* encoding : {"json", "yaml"}) {
    auto params = stormbroker::http::ParseParams(input, encoding);
    if (!params.ok()) continue;
    if (!params->is_object()) __builtin_trap();
    if (!stormbroker::CheckBounds(*params, stormbroker::kRequestBounds).ok()) __builtin_trap();
    nlohmann::json copy = *params;  // recursive: safe within the bounds
    (void)copy.dump();
  }
  return 0;
}
