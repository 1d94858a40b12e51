// What a dying daemon still does: an exception nobody caught
// (std::terminate) or a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
// SIGABRT) first writes the audit records still queued, then ends the
// process as it would have ended anyway (the signal's default action: a
// core dump where allowed, an exit status systemd reports). An attack that
// reaches a crash still leaves its trace in the trail.
#pragma once

namespace stormbroker {

class AuditLog;

// Installs the handlers for `audit`, which must outlive the process's
// threads (set nullptr before destroying it).
void FlushAuditOnDeath(AuditLog* audit);

}  // namespace stormbroker
