// libmicrohttpd's messages into the daemon's log, for
// MHD_OPTION_EXTERNAL_LOGGER: pass this function and, as its closure, the
// C string that names the server (e.g. "http door").
#pragma once

#include <cstdarg>

namespace stormbroker {

void LogFromMhd(void* server_name, const char* format, va_list args);

}  // namespace stormbroker
