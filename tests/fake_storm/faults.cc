#include "faults.h"

#include <algorithm>

namespace fake_storm {
namespace {

struct KindName {
  FaultKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {{FaultKind::kDelay, "delay"},           {FaultKind::kStatus500, "status500"},
                               {FaultKind::kMaintenance, "maintenance"}, {FaultKind::kRateLimit, "rate_limit"},
                               {FaultKind::kReset, "reset"},             {FaultKind::kRejectToken, "reject_token"}};

}  // namespace

const char* FaultKindName(FaultKind kind) {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

std::optional<Fault> ParseFault(const nlohmann::json& spec, std::string* error) {
  if (!spec.is_object() || !spec.contains("kind") || !spec["kind"].is_string()) {
    *error = "a fault is an object with \"kind\": delay, status500, maintenance, rate_limit, reset or reject_token";
    return std::nullopt;
  }
  Fault fault{};
  std::string kind = spec["kind"];
  auto found = std::find_if(std::begin(kKinds), std::end(kKinds), [&](const KindName& k) { return kind == k.name; });
  if (found == std::end(kKinds)) {
    *error = "unknown fault kind '" + kind + "'";
    return std::nullopt;
  }
  fault.kind = found->kind;
  for (const char* key : {"count", "seconds", "delay_ms", "retry_after"}) {
    if (spec.contains(key) && (!spec[key].is_number_integer() || spec[key].get<long long>() < 0)) {
      *error = std::string(key) + " must be a non-negative integer";
      return std::nullopt;
    }
  }
  fault.count = spec.value("count", spec.contains("seconds") ? 0LL : 1LL);
  if (spec.contains("seconds")) {
    fault.until = std::chrono::steady_clock::now() + std::chrono::seconds(spec["seconds"].get<long long>());
  }
  fault.delay_ms = spec.value("delay_ms", 0LL);
  if (fault.kind == FaultKind::kDelay && fault.delay_ms == 0) {
    *error = "a delay needs delay_ms";
    return std::nullopt;
  }
  if (spec.contains("retry_after")) {
    if (fault.kind != FaultKind::kRateLimit && fault.kind != FaultKind::kMaintenance) {
      *error = "retry_after goes with rate_limit or maintenance";
      return std::nullopt;
    }
    fault.retry_after = spec["retry_after"].get<long long>();
    fault.retry_after_date = spec.value("retry_after_date", false);
  }
  fault.method = spec.value("method", "");
  std::transform(fault.method.begin(), fault.method.end(), fault.method.begin(), ::tolower);
  fault.token = spec.value("token", "");
  return fault;
}

void FaultPlan::Add(Fault fault) {
  absl::MutexLock lock(&mutex_);
  faults_.push_back(std::move(fault));
}

void FaultPlan::Clear() {
  absl::MutexLock lock(&mutex_);
  faults_.clear();
}

std::optional<Fault> FaultPlan::Take(const std::string& method, const std::string& token) {
  absl::MutexLock lock(&mutex_);
  auto now = std::chrono::steady_clock::now();
  std::erase_if(faults_, [&](const Fault& f) { return f.until && *f.until <= now; });
  // The newest first: a fault armed for one call overrides a window armed before.
  for (auto it = faults_.rbegin(); it != faults_.rend(); ++it) {
    if (!it->method.empty() && it->method != method) continue;
    if (it->kind == FaultKind::kRejectToken && (token.empty() || (!it->token.empty() && it->token != token))) continue;
    Fault taken = *it;
    if (it->count > 0 && --it->count == 0) faults_.erase(std::next(it).base());
    return taken;
  }
  return std::nullopt;
}

nlohmann::json FaultPlan::Describe() const {
  absl::MutexLock lock(&mutex_);
  nlohmann::json out = nlohmann::json::array();
  auto now = std::chrono::steady_clock::now();
  for (const auto& f : faults_) {
    nlohmann::json item = {{"kind", FaultKindName(f.kind)}, {"count", f.count}};
    if (!f.method.empty()) item["method"] = f.method;
    if (f.delay_ms) item["delay_ms"] = f.delay_ms;
    if (f.retry_after) item["retry_after"] = *f.retry_after;
    if (f.until) item["seconds_left"] = std::chrono::duration_cast<std::chrono::seconds>(*f.until - now).count();
    out.push_back(item);
  }
  return out;
}

}  // namespace fake_storm
