// Fuzzes the config loader: any bytes as a YAML file must give a Config or a
// FILE:LINE error, never a crash, hang or leak.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char name[] = "/tmp/stormbroker-config-fuzz-XXXXXX";
    int fd = mkstemp(name);
    close(fd);
    return std::string(name);
  }();
  FILE* file = std::fopen(path.c_str(), "wb");
  std::fwrite(data, 1, size, file);
  std::fclose(file);
  auto config = stormbroker::LoadConfig(path);
  if (!config.ok() && config.status().message().rfind(path, 0) != 0) __builtin_trap();  // errors name the file
  return 0;
}
