#include "observe/last_words.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <exception>

#include "observe/audit_log.h"

namespace stormbroker {
namespace {

std::atomic<AuditLog*> g_audit{nullptr};

void Flush() {
  if (AuditLog* audit = g_audit.exchange(nullptr)) audit->FlushBeforeDeath();
}

void OnTerminate() {
  Flush();
  std::abort();  // SIGABRT, with its handler reset: a core dump as before
}

void OnFatalSignal(int signal) {
  Flush();
  // SA_RESETHAND restored the default action: raised again, the signal
  // ends the process as it would have.
  raise(signal);
}

}  // namespace

void FlushAuditOnDeath(AuditLog* audit) {
  g_audit.store(audit);
  if (!audit) return;
  static bool installed = false;
  if (installed) return;
  installed = true;
  std::set_terminate(OnTerminate);
  struct sigaction action {};
  action.sa_handler = OnFatalSignal;
  action.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) sigaction(s, &action, nullptr);
}

}  // namespace stormbroker
