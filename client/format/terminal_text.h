// Text from the API (or from the broker quoting it) shown on a terminal. A
// string an upstream or another user chose must not be able to move the
// cursor, retitle the window or hide a line: control characters become
// visible (caret notation, as `cat -v` shows them) before they reach one.
#pragma once

#include <string>
#include <string_view>

namespace stormbroker {

// `text` with C0 controls other than newline and tab, DEL and the C1
// controls (U+0080..U+009F) replaced by visible notation ("^[", "^?", "\u009b").
std::string ForTerminal(std::string_view text);

// ForTerminal(text) when `fd` is a terminal; `text` unchanged otherwise (a
// pipe or file gets the bytes as the API sent them).
std::string ForOutput(std::string_view text, int fd);

}  // namespace stormbroker
