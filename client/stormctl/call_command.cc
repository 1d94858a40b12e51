// stormctl call: parameters from key=value arguments and --params, the call,
// and --all-pages, which follows the API's paging to the last page.
#include <fstream>
#include <iostream>
#include <sstream>

#include "encoding/yaml_json.h"
#include "stormctl/args.h"
#include "stormctl/commands.h"
#include "stormctl/output.h"

namespace stormbroker::stormctl {
namespace {

// Params from --params: a JSON or YAML object in a file, or on stdin for "-".
Result<nlohmann::json> ReadParams(const std::string& source) {
  std::stringstream text;
  if (source == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(source);
    if (!in) return InvalidArgument("cannot read --params file " + source);
    text << in.rdbuf();
  }
  auto parsed = ParseYaml(text.str());  // YAML is a superset of JSON
  if (!parsed.ok()) return InvalidArgument("--params " + source + ": " + parsed.status().message());
  if (!(parsed->is_object() || parsed->is_null())) {
    return InvalidArgument("--params " + source + " must hold a JSON or YAML object of parameters");
  }
  return parsed->is_null() ? nlohmann::json::object() : *parsed;
}

Result<nlohmann::json> Params(const Args& args) {
  nlohmann::json params = nlohmann::json::object();
  if (args.Has("params")) {
    auto from_file = ReadParams(args.Get("params"));
    if (!from_file.ok()) return from_file.status();
    params = *from_file;
  }
  for (size_t i = 1; i < args.positional.size(); ++i) {
    const std::string& pair = args.positional[i];
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("parameter '" + pair + "' is not key=value");
    params[pair.substr(0, eq)] = TypedValue(pair.substr(eq + 1));
  }
  return params;
}

bool IsPage(const nlohmann::json& result) {
  return result.is_object() && result.contains("items") && result["items"].is_array() &&
         result.contains("page_total");
}

}  // namespace

int RunCall(const Invocation& invocation) {
  auto args = ParseArgs(invocation.args, {"account", "timeout", "output", "params"}, {"all-pages", "fresh"});
  if (!args.ok()) return Usage(args.status().message());
  auto output = OutputFormat(*args, {"json", "yaml", "table"});
  if (!output.ok()) return Usage(output.status().message());
  auto timeout = ParseTimeout("timeout", args->Get("timeout", "60s"));
  if (!timeout.ok()) return Usage(timeout.status().message());
  if (args->positional.empty()) return Usage("call needs a METHOD, e.g. Utilities/Info/ping");
  const std::string& method = args->positional[0];
  auto params = Params(*args);
  if (!params.ok()) return Usage(params.status().message());
  auto call = [&](const nlohmann::json& p) {
    return invocation.broker.Call(args->Get("account"), method, p, *timeout, args->Has("fresh"));
  };

  auto first = call(*params);
  if (!first.ok()) return ExitFor(first.error());
  if (!args->Has("all-pages") || first->api_error || !IsPage(first->result)) {
    return PrintCallResult(first.value(), *output);
  }
  // Follow the pages: the API's list results say how many there are.
  nlohmann::json combined = first->result;
  if (!combined["page_total"].is_number_integer() || !combined.value("page_num", nlohmann::json(1)).is_number_integer()) {
    return Fail("--all-pages: the answer's page_num and page_total are not whole numbers, so its pages cannot be "
                "followed; call without --all-pages to see it");
  }
  long long pages = combined["page_total"].get<long long>();
  for (long long page = combined.value("page_num", 1LL) + 1; page <= pages; ++page) {
    (*params)["page_num"] = page;
    auto next = call(*params);
    if (!next.ok()) return ExitFor(next.error());
    if (next->api_error) return PrintCallResult(next.value(), *output);
    if (!IsPage(next->result)) return Fail("--all-pages: page " + std::to_string(page) + " holds no list of items");
    for (const auto& item : next->result["items"]) combined["items"].push_back(item);
  }
  combined["item_count"] = combined["items"].size();
  combined["page_num"] = 1;
  combined["page_size"] = combined["items"].size();
  combined["page_total"] = 1;
  Print(combined, *output);
  return kExitOk;
}

}  // namespace stormbroker::stormctl
