// How long to wait before retrying what failed: exponential (1 s, 2 s, 4 s …
// up to 60 s) and jittered (a random part of each step, between half and all
// of it) so that accounts failing together do not retry in lockstep.
#pragma once

#include <chrono>
#include <functional>

namespace stormbroker {

// A random number in [low, high); a function so that tests can fix it.
using Jitter = std::function<double(double low, double high)>;
double UniformJitter(double low, double high);

class Backoff {
 public:
  explicit Backoff(Jitter jitter = UniformJitter) : jitter_(std::move(jitter)) {}

  // The wait before the next attempt, after one more failure.
  std::chrono::milliseconds Next();
  // Success: the next failure waits the shortest time again.
  void Reset() { failures_ = 0; }

 private:
  Jitter jitter_;
  int failures_ = 0;
};

}  // namespace stormbroker
