#include "fleet/fleet_records.h"

#include <charconv>

#include "secret/sealed_box.h"

namespace stormbroker {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

// The associated data of a sealed value: its format and its place.
std::string ContextOf(std::string_view etcd_key) { return "stormbroker fleet v2\n" + std::string(etcd_key); }

int64_t Millis(system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// Two numbers separated by one space, then a newline: the head of a record
// or of a token body. Where the rest begins, or nothing when malformed.
std::optional<size_t> ReadHead(std::string_view text, int64_t* first, int64_t* second) {
  size_t newline = text.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  std::string_view head = text.substr(0, newline);
  const char* end = head.data() + head.size();
  auto parsed = std::from_chars(head.data(), end, *first);
  if (parsed.ec != std::errc()) return std::nullopt;
  if (second) {
    if (parsed.ptr == end || *parsed.ptr != ' ') return std::nullopt;
    parsed = std::from_chars(parsed.ptr + 1, end, *second);
    if (parsed.ec != std::errc()) return std::nullopt;
  }
  if (parsed.ptr != end) return std::nullopt;
  return newline + 1;
}

}  // namespace

Result<std::string> SealRecord(const Secret& fleet_key, std::string_view etcd_key, system_clock::time_point issued,
                               std::string_view body) {
  std::string plain = std::to_string(Millis(issued)) + "\n";
  plain.append(body);
  Secret wiped(std::move(plain));
  return Seal(fleet_key, ContextOf(etcd_key), wiped.Reveal());
}

Result<FleetRecord> OpenRecord(const Secret& fleet_key, std::string_view etcd_key, std::string_view sealed) {
  auto opened = Unseal(fleet_key, ContextOf(etcd_key), sealed);
  if (!opened.ok()) return opened.status();
  int64_t issued = 0;
  auto rest = ReadHead(opened->Reveal(), &issued, nullptr);
  if (!rest) return InvalidArgument("a fleet record is malformed");
  return FleetRecord{system_clock::time_point(milliseconds(issued)), Secret(std::string(opened->Reveal().substr(*rest)))};
}

bool IsFresh(system_clock::time_point issued, system_clock::time_point now) {
  return issued >= now - kRecordLifetime && issued <= now + kClockSkew;
}

Secret EncodeTokenBody(const FleetToken& token) {
  std::string body = std::to_string(Millis(token.hard_deadline)) + " " + std::to_string(Millis(token.inactivity_deadline)) + "\n";
  body += token.token.Reveal();
  return Secret(std::move(body));
}

Result<FleetToken> DecodeTokenBody(const Secret& body) {
  int64_t hard = 0, inactivity = 0;
  auto rest = ReadHead(body.Reveal(), &hard, &inactivity);
  if (!rest || *rest == body.Reveal().size()) return InvalidArgument("a fleet token record is malformed");
  FleetToken token;
  token.hard_deadline = system_clock::time_point(milliseconds(hard));
  token.inactivity_deadline = system_clock::time_point(milliseconds(inactivity));
  token.token = Secret(std::string(body.Reveal().substr(*rest)));
  return token;
}

}  // namespace stormbroker
