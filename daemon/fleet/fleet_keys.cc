#include "fleet/fleet_keys.h"

#include <charconv>

namespace stormbroker {

using std::chrono::milliseconds;
using std::chrono::system_clock;

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // etcd: every key
}

Secret EncodeTokenRecord(const FleetToken& token) {
  auto ms = [](system_clock::time_point t) {
    return std::to_string(std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count());
  };
  std::string head = ms(token.hard_deadline) + " " + ms(token.inactivity_deadline) + "\n";
  std::string record;
  record.reserve(head.size() + token.token.Reveal().size());
  record += head;
  record += token.token.Reveal();
  return Secret(std::move(record));
}

Result<FleetToken> DecodeTokenRecord(const Secret& record) {
  std::string_view text = record.Reveal();
  size_t newline = text.find('\n');
  size_t space = text.find(' ');
  int64_t hard = 0, inactivity = 0;
  if (newline == std::string_view::npos || space > newline ||
      std::from_chars(text.data(), text.data() + space, hard).ec != std::errc() ||
      std::from_chars(text.data() + space + 1, text.data() + newline, inactivity).ec != std::errc() ||
      newline + 1 == text.size()) {
    return InvalidArgument("a fleet token record is malformed");
  }
  FleetToken token;
  token.hard_deadline = system_clock::time_point(milliseconds(hard));
  token.inactivity_deadline = system_clock::time_point(milliseconds(inactivity));
  token.token = Secret(std::string(text.substr(newline + 1)));
  return token;
}

}  // namespace stormbroker
