#include "observe/last_words.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <exception>

#include "observe/audit_log.h"

namespace stormbroker {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

std::atomic<AuditLog*> g_audit{nullptr};
std::terminate_handler g_previous_terminate = nullptr;
struct sigaction g_previous[NSIG];

void Flush() {
  if (AuditLog* audit = g_audit.exchange(nullptr)) audit->FlushBeforeDeath();
}

void OnTerminate() {
  Flush();
  // The runtime's own handler says which exception escaped, then aborts.
  if (g_previous_terminate) g_previous_terminate();
  std::abort();
}

void OnFatalSignal(int signal, siginfo_t* info, void*) {
  Flush();
  // What would have happened without us: the default action (a core dump),
  // or a handler installed before (a sanitizer's report).
  sigaction(signal, &g_previous[signal], nullptr);
  // A fault the kernel raised (si_code > 0) happens again when this handler
  // returns, now with the faulting address intact for that handler; a
  // signal sent by kill() or abort() is raised again.
  if (info && info->si_code > 0) return;
  raise(signal);
}

}  // namespace

void FlushAuditOnDeath(AuditLog* audit) {
  g_audit.store(audit);
  if (!audit) return;
  static bool installed = false;
  if (installed) return;
  installed = true;
  g_previous_terminate = std::set_terminate(OnTerminate);
  struct sigaction action {};
  action.sa_sigaction = OnFatalSignal;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int s : kFatalSignals) sigaction(s, &action, &g_previous[s]);
}

}  // namespace stormbroker
