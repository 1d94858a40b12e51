// What a fleet's brokers write to etcd, and what a reader checks before it
// believes a value. Whoever can write to etcd (a plain http:// member on
// loopback is anyone's, and backups are copies) must not be able to forge a
// value, move one to another key, or play an old one back:
//  - every value is sealed (sealed_box.h) under the fleet key with the full
//    etcd key it is written under as associated data, so a value opens only
//    where it was written: not under another account, login ID or machine;
//  - inside the seal every value says when it was issued (the writer's
//    clock; a fleet's machines keep their clocks in sync), so a reader can
//    refuse what is stale (IsFresh) and, for tokens, what is older than the
//    record it already holds (a token record put back).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "secret/secret.h"
#include "tokens/fleet_link.h"
#include "util/status.h"

namespace stormbroker {

// How long a login request, a login's answer or a report of a rejected
// token is good for, and how far a writer's clock may run ahead of a reader's.
inline constexpr std::chrono::seconds kRecordLifetime(60);
inline constexpr std::chrono::seconds kClockSkew(5);

struct FleetRecord {
  std::chrono::system_clock::time_point issued;  // whole milliseconds
  Secret body;
};

// Seals `body`, issued at `issued`, for etcd key `etcd_key`.
Result<std::string> SealRecord(const Secret& fleet_key, std::string_view etcd_key,
                               std::chrono::system_clock::time_point issued, std::string_view body);
// INVALID_ARGUMENT when `sealed` was not sealed under the fleet key for
// exactly `etcd_key`, or was altered.
Result<FleetRecord> OpenRecord(const Secret& fleet_key, std::string_view etcd_key, std::string_view sealed);
// Issued within kRecordLifetime before `now`, and not after now + kClockSkew.
bool IsFresh(std::chrono::system_clock::time_point issued, std::chrono::system_clock::time_point now);

// A token record's body: "HARD_MS INACTIVITY_MS\n" then the token.
Secret EncodeTokenBody(const FleetToken& token);
Result<FleetToken> DecodeTokenBody(const Secret& body);

}  // namespace stormbroker
