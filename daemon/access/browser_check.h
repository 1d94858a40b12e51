// What keeps a browser on this machine out of a loopback TCP door.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace stormbroker {

// A loopback TCP door is reachable from a browser on this machine: a web
// page could post to it (CSRF) or, through DNS rebinding, read its answers.
// Refused (PERMISSION_DENIED, saying which header) unless `host` names the
// door itself (one of `door_hosts`, e.g. "127.0.0.1:8080") and the request
// carries no Origin and no Sec-Fetch-Site: cross-site. Browsers always send
// Origin on a cross-origin POST; command-line clients and libraries never do.
// An empty value stands for a header that is absent.
Status CheckBrowserHeaders(std::string_view host, std::string_view origin, std::string_view sec_fetch_site,
                           const std::vector<std::string>& door_hosts);
// The Host values that name a loopback door listening on `host`:`port`:
// 127.0.0.1, localhost and [::1] with the port, and the address itself.
std::vector<std::string> DoorHosts(const std::string& host, uint16_t port);

}  // namespace stormbroker
