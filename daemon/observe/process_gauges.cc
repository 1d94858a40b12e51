#include "observe/process_gauges.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace stormbroker {
namespace {

// The fields of /proc/self/stat after the command name (which may hold
// spaces, so the line is cut at its last ')'); field 3 (state) is [0].
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

double BootTime() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double seconds = 0;
      in >> seconds;
      return seconds;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

void AddProcessGauges(Exposition& out, const std::string& version) {
  std::vector<std::string> stat = StatFields();
  if (stat.size() > 21) {
    double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    // man 5 proc: utime (14), stime (15), starttime (22), vsize (23), rss (24).
    out.AddSingle("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds",
          (std::stod(stat[11]) + std::stod(stat[12])) / ticks);
    out.AddSingle("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds",
          BootTime() + std::stod(stat[19]) / ticks);
    out.AddSingle("process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes", std::stod(stat[20]));
    out.AddSingle("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes",
                  std::stod(stat[21]) * page);
  }
  std::error_code error;
  size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++fds;
  }
  out.AddSingle("process_open_fds", "gauge", "Open file descriptors", static_cast<double>(fds));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.AddSingle("process_max_fds", "gauge", "The most file descriptors the process may open",
          static_cast<double>(limit.rlim_cur));
  }
  out.Family("stormbroker_build_info", "gauge", "Always 1; the labels say which build of the broker runs")
      .samples.push_back({"", {{"version", version}}, 1});
}

}  // namespace stormbroker
