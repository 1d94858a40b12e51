#include "observe/mhd_log.h"

#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

namespace stormbroker {

void LogFromMhd(void* server_name, const char* format, va_list args) {
  char line[512];
  vsnprintf(line, sizeof line, format, args);
  std::string text(line);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  spdlog::warn("{}: {}", static_cast<const char*>(server_name), text);
}

}  // namespace stormbroker
