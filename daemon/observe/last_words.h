// What a dying daemon still does: an exception nobody caught
// (std::terminate) or a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
// SIGABRT) first writes the audit records still queued, then goes on as it
// would have without it: the runtime's terminate handler (which names the
// exception), the signal's default action (a core dump where allowed, an
// exit status systemd reports) or a handler installed before (a
// sanitizer's report, with the faulting address). An attack that reaches a
// crash still leaves its trace in the trail.
#pragma once

namespace stormbroker {

class AuditLog;

// Installs the handlers for `audit`, which must outlive the process's
// threads (set nullptr before destroying it).
void FlushAuditOnDeath(AuditLog* audit);

}  // namespace stormbroker
