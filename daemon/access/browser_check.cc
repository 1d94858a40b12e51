#include "access/browser_check.h"

#include <algorithm>

#include "util/ascii.h"

namespace stormbroker {

Status CheckBrowserHeaders(std::string_view host, std::string_view origin, std::string_view sec_fetch_site,
                           const std::vector<std::string>& door_hosts) {
  if (!origin.empty()) {
    return PermissionDenied("requests from web pages (with an Origin header) are refused: a browser on this "
                            "machine must not reach the broker");
  }
  if (AsciiLower(sec_fetch_site) == "cross-site") {
    return PermissionDenied("cross-site requests (Sec-Fetch-Site: cross-site) are refused");
  }
  std::string asked = AsciiLower(host);
  if (std::find(door_hosts.begin(), door_hosts.end(), asked) == door_hosts.end()) {
    return PermissionDenied("the Host header must name this door (" + (door_hosts.empty() ? "" : door_hosts.front()) +
                            "), not another name: a name that resolves here is how DNS rebinding reaches a "
                            "loopback service");
  }
  return Status::Ok();
}

std::vector<std::string> DoorHosts(const std::string& host, uint16_t port) {
  std::string suffix = ":" + std::to_string(port);
  std::string own = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + suffix;
  std::vector<std::string> hosts = {AsciiLower(own)};
  for (std::string name : {"127.0.0.1", "localhost", "[::1]"}) {
    if (name + suffix != hosts.front()) hosts.push_back(name + suffix);
    // A client leaves out the scheme's default port.
    if (port == 80 || port == 443) hosts.push_back(name);
  }
  return hosts;
}

}  // namespace stormbroker
