#include "config/reload_plan.h"

#include "config/sections.h"

namespace stormbroker {

ReloadPlan PlanReload(const Config& running, const Config& fresh) {
  ReloadPlan plan;
  config::CompareSection(config::TopLevelKeys(), running, fresh, "", plan);
  return plan;
}

Config ApplyReload(const Config& running, const Config& fresh) {
  Config applied;
  config::CopySection(config::TopLevelKeys(), running, applied, /*applied_only=*/false);
  config::CopySection(config::TopLevelKeys(), fresh, applied, /*applied_only=*/true);
  applied.path = running.path;
  applied.warnings = fresh.warnings;
  return applied;
}

}  // namespace stormbroker
