#include "observe/logging.h"

#include <cstdlib>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

// "%*" in a pattern: the sd-daemon(3) priority prefix, e.g. "<6>" for info.
class JournalPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr const char* kPrefix[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    std::string_view prefix = kPrefix[static_cast<int>(msg.level)];
    dest.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JournalPriority>(); }
};

}  // namespace

void SetUpLogging(bool verbose) {
  auto logger = spdlog::stderr_logger_mt("stormbrokerd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  if (std::getenv("JOURNAL_STREAM")) {
    // The journal timestamps each line itself.
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JournalPriority>('*').set_pattern("%*%v");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->flush_on(spdlog::level::debug);
}

}  // namespace stormbroker

namespace stormbroker {

void RefusalLog::Warn(uid_t uid, const std::string& message) {
  constexpr auto kEvery = std::chrono::seconds(1);
  auto now = std::chrono::steady_clock::now();
  uint64_t left_out = 0;
  {
    absl::MutexLock lock(&mutex_);
    // Forget uids quiet for a minute, so the map stays as small as the set of active callers.
    if (seen_.size() > 1024) {
      for (auto it = seen_.begin(); it != seen_.end();) {
        it = now - it->second.last > std::chrono::minutes(1) && it->second.left_out == 0 ? seen_.erase(it) : ++it;
      }
    }
    auto [it, fresh] = seen_.try_emplace(uid, Seen{now - kEvery, 0});
    if (now - it->second.last < kEvery) {
      ++it->second.left_out;
      return;
    }
    left_out = it->second.left_out;
    it->second = Seen{now, 0};
  }
  if (left_out > 0) {
    spdlog::warn("{} ({} more refusals of uid {} not logged before this one)", message, left_out, uid);
  } else {
    spdlog::warn("{}", message);
  }
}

}  // namespace stormbroker
