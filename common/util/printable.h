// Text a caller chose (a method path, an HTTP method, an API version, a
// header), made safe to quote in an answer, a log line or an audit record.
// It is the one way such text is quoted: whatever bytes came in, what comes
// out is printable ASCII, so it cannot start a line of its own in the log,
// cannot move a terminal's cursor, and cannot make a JSON or YAML renderer
// fail on bytes that are not UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace stormbroker {

// `text` with every byte outside printable ASCII (line breaks, escape
// sequences and every byte of a UTF-8 sequence among them) and every
// backslash written as \xNN, cut to `max_length` characters of output
// ("..." marks a cut; an escape is never cut in half).
std::string Printable(std::string_view text, size_t max_length = 200);

}  // namespace stormbroker
