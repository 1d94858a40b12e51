#include "tokens/token_pool.h"

#include <algorithm>

namespace stormbroker {

std::shared_ptr<TokenPool::Slot> TokenPool::Install(std::shared_ptr<Slot> slot) {
  slot->generation = next_generation_++;
  std::swap(current_, slot);
  return slot;
}

std::shared_ptr<TokenPool::Slot> TokenPool::TakeCurrent() { return std::exchange(current_, nullptr); }

bool TokenPool::Release(const std::shared_ptr<Slot>& slot) {
  if (--slot->in_flight > 0 || !slot->retired) return false;
  Forget(slot);
  return true;
}

bool TokenPool::Retire(std::shared_ptr<Slot> slot) {
  slot->retired = true;
  if (slot->in_flight == 0) return true;
  Hold(std::move(slot));
  return false;
}

void TokenPool::Hold(std::shared_ptr<Slot> slot) {
  if (std::find(replaced_.begin(), replaced_.end(), slot) == replaced_.end()) replaced_.push_back(std::move(slot));
}

void TokenPool::Forget(const std::shared_ptr<Slot>& slot) { std::erase(replaced_, slot); }

std::vector<std::shared_ptr<TokenPool::Slot>> TokenPool::TakeAll() {
  std::vector<std::shared_ptr<Slot>> all = std::move(replaced_);
  replaced_.clear();
  if (current_) all.push_back(std::exchange(current_, nullptr));
  return all;
}

}  // namespace stormbroker
