#include "stormctl/args.h"

#include <algorithm>
#include <charconv>

#include "units/duration.h"

namespace stormbroker::stormctl {

namespace {
bool Contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}
}  // namespace

Result<Args> ParseArgs(const std::vector<std::string>& args, const std::vector<std::string>& takes_value,
                       const std::vector<std::string>& flags) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() <= 2 || arg.rfind("--", 0) != 0) {
      out.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (Contains(takes_value, name)) {
      if (!value) {
        if (i + 1 >= args.size()) return InvalidArgument("--" + name + " needs a value");
        value = args[++i];
      }
      out.options[name] = *value;
    } else if (Contains(flags, name) && !value) {
      out.options[name] = "true";
    } else {
      return InvalidArgument("unknown option --" + name);
    }
  }
  return out;
}

Result<std::string> OutputFormat(const Args& args, const std::vector<std::string>& allowed) {
  std::string output = args.Get("output", allowed.front());
  if (Contains(allowed, output)) return output;
  std::string problem = "--output is one of";
  for (const auto& format : allowed) problem += " " + format;
  return InvalidArgument(problem);
}

Result<long long> ParseCount(const std::string& option, const std::string& text) {
  long long count = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (error != std::errc() || end != text.data() + text.size() || count < 1) {
    return InvalidArgument("--" + option + " takes a whole number of at least 1, not '" + text + "'");
  }
  return count;
}

Result<std::chrono::milliseconds> ParseTimeout(const std::string& option, const std::string& text) {
  auto parsed = ParseDuration(text);
  if (!parsed.ok() || parsed->count() <= 0) {
    return InvalidArgument("--" + option + " takes a duration above zero such as 30s, 500ms or 2m, not '" + text +
                           "'");
  }
  return *parsed;
}

nlohmann::json TypedValue(const std::string& text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? nlohmann::json(text) : value;
}

}  // namespace stormbroker::stormctl
