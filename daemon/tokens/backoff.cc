#include "tokens/backoff.h"

#include <algorithm>
#include <random>

namespace stormbroker {

using std::chrono::milliseconds;

constexpr milliseconds kFirst{1000};
constexpr milliseconds kMax{60000};

double UniformJitter(double low, double high) {
  thread_local std::mt19937 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(low, high)(random);
}

milliseconds Backoff::Next() {
  int doublings = std::min(failures_++, 6);
  milliseconds step = std::min<milliseconds>(kFirst * (1 << doublings), kMax);
  return milliseconds(static_cast<long long>(step.count() * jitter_(0.5, 1.0)));
}

}  // namespace stormbroker
