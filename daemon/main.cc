// stormbrokerd: holds Storm API credentials and proxies calls for local
// processes, over gRPC on a Unix socket and over HTTP on the API's own paths.

#include <signal.h>
#include <unistd.h>

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "config/config.h"
#include "daemon.h"
#include "observe/logging.h"

namespace stormbroker {
namespace {

constexpr const char* kUsage = R"(usage: stormbrokerd --config FILE [--check-config] [--verbose]

Holds Storm API credentials and proxies API calls for local processes: over
gRPC on a Unix socket, and (listen.http_socket, listen.http) over HTTP on the
Storm API's own paths.

  --config FILE    the YAML configuration (default /etc/stormbroker/stormbroker.yaml)
  --check-config   validate the configuration and exit: 0 when valid, 1 with
                   FILE:LINE: what is wrong
  --verbose        log every call, not only failures
  --version        print the version and exit
  --help           this text
)";

struct Options {
  std::string config_path = "/etc/stormbroker/stormbroker.yaml";
  bool check_only = false;
  bool verbose = false;
};

int Main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves the deadlock detector
  // on: every gRPC mutex lock would then update a lock-order graph.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      options.config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (arg == "--check-config") {
      options.check_only = true;
    } else if (arg == "--verbose" || arg == "-v") {
      options.verbose = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("stormbrokerd %s\n", STORMBROKER_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "stormbrokerd: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }

  // Secrets must never reach a core file or another process's ptrace: no
  // core dumps, and /proc/PID is root's alone.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // One descriptor per connected caller: a build server can have thousands.
  struct rlimit files {};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  // glibc gives each thread that meets another in malloc an arena of its
  // own, up to 8 per core. gRPC's, libmicrohttpd's and our threads then
  // each hold a partly used arena: 6-9 MiB more resident at concurrency 256,
  // for no measurable throughput (bench/README.md, "memory"). One arena
  // per core. Before any thread starts, so that no thread has one already.
  mallopt(M_ARENA_MAX, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  // Before any thread starts, so that every thread inherits the mask and the
  // main thread alone takes these signals through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = LoadConfig(options.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().message().c_str());
    return 1;
  }
  for (const std::string& warning : config->warnings) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  if (options.check_only) {
    std::printf("%s: OK (%zu account(s), %zu policy rule(s))\n", options.config_path.c_str(),
                config->accounts.size(), config->policy.size());
    return 0;
  }
  SetUpLogging(options.verbose);
  return RunDaemon(std::move(config).value());
}

}  // namespace
}  // namespace stormbroker

int main(int argc, char** argv) { return stormbroker::Main(argc, argv); }
