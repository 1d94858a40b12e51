// stormctl's argument parsing: options and positional arguments, and the
// checked conversions of option values (formats, counts, durations, typed
// parameters). Every failure is a message for the person at the terminal.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace stormbroker::stormctl {

struct Args {
  std::map<std::string, std::string> options;  // flags hold "true"
  std::vector<std::string> positional;

  bool Has(const std::string& name) const { return options.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto found = options.find(name);
    return found == options.end() ? fallback : found->second;
  }
};

// "--name value" and "--name=value" for the options in `takes_value`,
// "--name" for `flags`; everything else is positional. INVALID_ARGUMENT on
// an unknown option or a missing value.
Result<Args> ParseArgs(const std::vector<std::string>& args, const std::vector<std::string>& takes_value,
                       const std::vector<std::string>& flags);

// --output, one of `allowed` (the first is the default).
Result<std::string> OutputFormat(const Args& args, const std::vector<std::string>& allowed);

// A whole number of at least 1, e.g. for --count.
Result<long long> ParseCount(const std::string& option, const std::string& text);

// A duration above zero as the daemon's config writes them ("30s", "500ms",
// "2m", "90"): the same parser, so both read "1.5h" alike.
Result<std::chrono::milliseconds> ParseTimeout(const std::string& option, const std::string& text);

// A key=value parameter's value, typed like JSON: 10 is a number, true a
// boolean, '"10"' a string; anything that is not JSON is a string.
nlohmann::json TypedValue(const std::string& text);

}  // namespace stormbroker::stormctl
