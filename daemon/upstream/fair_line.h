// The line in front of the Storm API: requests that wait for a connection,
// served fairly, so that one busy caller cannot make the others wait behind
// its backlog (upstream/http_engine.cc holds one).
//
// Order: an account's upkeep (keep-alive, login, renewal, expiry) first;
// then the accounts with callers' requests waiting take turns, one request
// each, skipping an account that holds its cap of requests at the API or
// that the API asked to slow down; within an account, the uids with
// requests waiting take turns, each sending `share` requests a turn
// (deficit round-robin with a cost of one per request). A caller with one
// request therefore waits for at most `share` requests of each other
// caller of its account (one, where no share is set). Push and Pop are O(1)
// but for the accounts skipped.
//
// Not thread-safe: the engine's mutex guards it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "upstream/lane.h"

namespace stormbroker {

template <typename Item>
class FairLine {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Lane lane;
    Item item;
  };

  // `account` holds at most `cap` requests at the API at once (unset: no cap).
  void SetCap(const std::string& account, size_t cap) { accounts_[account].cap = std::max<size_t>(cap, 1); }

  // In line, behind the caller's own earlier requests.
  void Push(Lane lane, Item item) { Add(std::move(lane), std::move(item), /*front=*/false); }
  // Back in line ahead of the caller's other requests: one the API turned
  // away unprocessed (slow down) keeps its place.
  void PushFront(Lane lane, Item item) { Add(std::move(lane), std::move(item), /*front=*/true); }

  // The next request that may go to the API now, counted as there for its
  // account until Done; none when every waiting one must wait on.
  std::optional<Entry> Pop(Clock::time_point now) {
    if (!upkeep_.empty()) {
      Entry entry = std::move(upkeep_.front());
      upkeep_.pop_front();
      --size_;
      ++accounts_[entry.lane.account].at_api;
      return entry;
    }
    for (size_t turns = ring_.size(); turns > 0; --turns) {
      std::string name = std::move(ring_.front());
      ring_.pop_front();
      AccountLine& line = accounts_[name];
      if (line.at_api >= line.cap || line.paused_until > now) {
        ring_.push_back(std::move(name));
        continue;
      }
      Entry entry = line.PopTurn();
      --size_;
      ++line.at_api;
      if (line.waiting > 0) ring_.push_back(std::move(name));
      else line.in_ring = false;
      return entry;
    }
    return std::nullopt;
  }

  // A request Pop gave has left the API (answered, failed, or never sent).
  void Done(const std::string& account) { --accounts_[account].at_api; }

  // The account's callers' requests wait until `until` (its upkeep does not).
  void Pause(const std::string& account, Clock::time_point until) {
    Clock::time_point& paused = accounts_[account].paused_until;
    paused = std::max(paused, until);
  }
  std::optional<Clock::time_point> PausedUntil(const std::string& account, Clock::time_point now) const {
    auto found = accounts_.find(account);
    if (found == accounts_.end() || found->second.paused_until <= now) return std::nullopt;
    return found->second.paused_until;
  }
  // When a request now held back by a pause may go; none when none is.
  std::optional<Clock::time_point> NextPauseEnd(Clock::time_point now) const {
    std::optional<Clock::time_point> next;
    for (const auto& [name, line] : accounts_) {
      if (line.waiting > 0 && line.paused_until > now && (!next || line.paused_until < *next)) next = line.paused_until;
    }
    return next;
  }

  // Takes out every waiting request `leave(entry)` says goes (its caller
  // gave up, or its time ran out).
  template <typename Predicate>
  std::vector<Entry> RemoveIf(Predicate leave) {
    std::vector<Entry> gone;
    auto sift = [&](std::deque<Entry>& entries) {
      std::deque<Entry> kept;
      for (Entry& entry : entries) {
        if (leave(entry)) gone.push_back(std::move(entry));
        else kept.push_back(std::move(entry));
      }
      entries.swap(kept);
    };
    sift(upkeep_);
    for (auto& [name, line] : accounts_) {
      size_t before = gone.size();
      for (auto& [uid, flow] : line.flows) sift(flow.entries);
      line.waiting -= gone.size() - before;
      line.DropEmptyFlows();
    }
    size_ -= gone.size();
    std::erase_if(ring_, [this](const std::string& name) {
      AccountLine& line = accounts_[name];
      if (line.waiting > 0) return false;
      line.in_ring = false;
      return true;
    });
    return gone;
  }

  size_t size() const { return size_; }
  // Callers' requests of `account` waiting, and its requests at the API.
  size_t Waiting(const std::string& account) const {
    auto found = accounts_.find(account);
    return found == accounts_.end() ? 0 : found->second.waiting;
  }
  size_t AtApi(const std::string& account) const {
    auto found = accounts_.find(account);
    return found == accounts_.end() ? 0 : found->second.at_api;
  }
  // Calls `visit(lane, item)` for every waiting request.
  template <typename Visitor>
  void ForEach(Visitor visit) const {
    for (const Entry& entry : upkeep_) visit(entry.lane, entry.item);
    for (const auto& [name, line] : accounts_) {
      for (const auto& [uid, flow] : line.flows) {
        for (const Entry& entry : flow.entries) visit(entry.lane, entry.item);
      }
    }
  }

 private:
  struct Flow {
    uint32_t share = 1;
    std::deque<Entry> entries;
  };
  struct AccountLine {
    size_t cap = std::numeric_limits<size_t>::max();
    size_t at_api = 0;
    Clock::time_point paused_until{};
    std::unordered_map<uid_t, Flow> flows;  // uids with requests waiting
    std::deque<uid_t> turns;                // those uids in turn order; the front one is sending
    uint32_t deficit = 0;                   // what the front one may still send this turn
    size_t waiting = 0;
    bool in_ring = false;

    Entry PopTurn() {
      uid_t uid = turns.front();
      Flow& flow = flows[uid];
      if (deficit == 0) deficit = flow.share;
      Entry entry = std::move(flow.entries.front());
      flow.entries.pop_front();
      --waiting;
      --deficit;
      if (flow.entries.empty()) {
        flows.erase(uid);
        turns.pop_front();
        deficit = 0;
      } else if (deficit == 0) {
        turns.pop_front();
        turns.push_back(uid);
      }
      return entry;
    }
    void DropEmptyFlows() {
      uid_t front = turns.empty() ? 0 : turns.front();
      std::erase_if(turns, [this](uid_t uid) {
        auto found = flows.find(uid);
        if (found == flows.end() || !found->second.entries.empty()) return false;
        flows.erase(found);
        return true;
      });
      if (turns.empty() || turns.front() != front) deficit = 0;
    }
  };

  void Add(Lane lane, Item item, bool front) {
    ++size_;
    if (lane.upkeep) {
      if (front) upkeep_.push_front({std::move(lane), std::move(item)});
      else upkeep_.push_back({std::move(lane), std::move(item)});
      return;
    }
    AccountLine& line = accounts_[lane.account];
    auto [found, fresh] = line.flows.try_emplace(lane.uid);
    Flow& flow = found->second;
    flow.share = std::max<uint32_t>(lane.share, 1);
    if (fresh) line.turns.push_back(lane.uid);
    ++line.waiting;
    if (!line.in_ring) {
      ring_.push_back(lane.account);
      line.in_ring = true;
    }
    if (front) flow.entries.push_front({std::move(lane), std::move(item)});
    else flow.entries.push_back({std::move(lane), std::move(item)});
  }

  std::unordered_map<std::string, AccountLine> accounts_;
  std::deque<std::string> ring_;  // accounts with callers' requests waiting, in turn order
  std::deque<Entry> upkeep_;
  size_t size_ = 0;
};

}  // namespace stormbroker
