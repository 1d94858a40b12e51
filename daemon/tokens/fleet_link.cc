#include "tokens/fleet_link.h"

namespace stormbroker {

const char* TokenRoleName(TokenRole role) {
  switch (role) {
    case TokenRole::kLead: return "leader";
    case TokenRole::kFollow: return "follower";
    case TokenRole::kStranded: return "stranded";
  }
  return "unknown";
}

}  // namespace stormbroker
