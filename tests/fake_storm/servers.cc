#include "servers.h"

#include <fstream>
#include <sstream>

#include "encoding/yaml_json.h"

namespace fake_storm {
namespace {

// Reads a positive integer parameter (numbers or digit strings, as the API
// accepts both), or gives the exception for a bad one.
std::optional<Reply> PositiveInteger(const nlohmann::json& params, const std::string& field, long long fallback,
                                     long long max, long long* out) {
  *out = fallback;
  if (!params.contains(field)) return std::nullopt;
  const nlohmann::json& value = params[field];
  long long number = -1;
  if (value.is_number_integer()) {
    number = value.get<long long>();
  } else if (value.is_string() && !value.get<std::string>().empty() &&
             value.get<std::string>().find_first_not_of("0123456789") == std::string::npos &&
             value.get<std::string>().size() < 18) {
    number = std::stoll(value.get<std::string>());
  } else {
    return ApiException(200, "Input::Validation", "Validation failed for '" + field + "': must be a positive integer",
                        {{"field", field}, {"type", "positive_integer"}, {"value", value}});
  }
  if (number < 1 || number > max) {
    return ApiException(200, "Input::OutOfBounds",
                        "Out of bounds for '" + field + "': must be between 1 and " + std::to_string(max),
                        {{"field", field}, {"max", max}, {"min", 1}, {"value", number}});
  }
  *out = number;
  return std::nullopt;
}

}  // namespace

nlohmann::json ServerCatalog::Generated(int count) {
  static const char* kZones[] = {"US Central - Zone A", "US East - Zone B", "EU West - Zone C"};
  nlohmann::json servers = nlohmann::json::array();
  for (int i = 1; i <= count; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "ABC%03d", i);
    servers.push_back({{"uniq_id", id},
                       {"domain", "host" + std::to_string(i) + ".example.com"},
                       {"ip", "10.20." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)},
                       {"zone", {{"id", 1 + i % 3}, {"name", kZones[i % 3]}}},
                       {"config_id", 1000 + i % 7},
                       {"active", 1},
                       {"create_date", "2026-01-" + std::string(i % 28 + 1 < 10 ? "0" : "") +
                                           std::to_string(i % 28 + 1) + " 10:00:00"}});
  }
  return servers;
}

std::optional<nlohmann::json> ServerCatalog::Load(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot read";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  // YAML is a superset of JSON. The emulator's data may be as deep and as
  // large as a test wants (an upstream that sends too much is a test case).
  auto parsed = stormbroker::ParseYaml(text.str(), stormbroker::DocumentBounds{1000, size_t{1} << 30});
  if (!parsed.ok() || !parsed->is_array()) {
    *error = path + ": expected a list of servers";
    return std::nullopt;
  }
  for (const auto& server : *parsed) {
    if (!server.is_object() || !server.contains("uniq_id") || !server["uniq_id"].is_string()) {
      *error = path + ": every server needs a string uniq_id";
      return std::nullopt;
    }
  }
  return std::move(parsed).value();
}

Reply ServerCatalog::List(const nlohmann::json& params) const {
  long long page_num = 1, page_size = 25;
  if (auto bad = PositiveInteger(params, "page_num", 1, 1'000'000, &page_num)) return *bad;
  if (auto bad = PositiveInteger(params, "page_size", 25, 999, &page_size)) return *bad;
  long long total = static_cast<long long>(servers_.size());
  long long first = (page_num - 1) * page_size;
  nlohmann::json items = nlohmann::json::array();
  for (long long i = first; i < std::min(total, first + page_size); ++i) items.push_back(servers_[i]);
  long long page_total = total == 0 ? 0 : (total + page_size - 1) / page_size;
  return Reply{200,
               {{"item_count", items.size()},
                {"item_total", total},
                {"items", items},
                {"page_num", page_num},
                {"page_size", page_size},
                {"page_total", page_total}}};
}

namespace {

Reply MissingUniqId() {
  return ApiException(200, "Input::Required", "Required parameter 'uniq_id' is missing",
                      {{"field", "uniq_id"}, {"position", nullptr}});
}

Reply NotFound(const std::string& id) {
  return ApiException(200, "RecordNotFound", "Record 'uniq_id: " + id + "' not found",
                      {{"field", "uniq_id"}, {"input", id}});
}

// The uniq_id asked for, or nothing when it is missing.
std::optional<std::string> UniqId(const nlohmann::json& params) {
  if (!params.contains("uniq_id") || params["uniq_id"].is_null() ||
      (params["uniq_id"].is_string() && params["uniq_id"].get<std::string>().empty())) {
    return std::nullopt;
  }
  return params["uniq_id"].is_string() ? params["uniq_id"].get<std::string>() : params["uniq_id"].dump();
}

}  // namespace

Reply ServerCatalog::Details(const nlohmann::json& params) const {
  auto id = UniqId(params);
  if (!id) return MissingUniqId();
  for (const auto& server : servers_) {
    if (server["uniq_id"] == *id) return Reply{200, server};
  }
  return NotFound(*id);
}

Reply ServerCatalog::Update(const nlohmann::json& params) {
  auto id = UniqId(params);
  if (!id) return MissingUniqId();
  for (auto& server : servers_) {
    if (server["uniq_id"] != *id) continue;
    if (params.contains("domain") && params["domain"].is_string()) server["domain"] = params["domain"];
    return Reply{200, server};
  }
  return NotFound(*id);
}

}  // namespace fake_storm
