#include "access/request_check.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "config/config.h"
#include "util/ascii.h"
#include "util/printable.h"

namespace stormbroker {

Status CheckMethodPath(std::string_view method) {
  if (method.empty()) return InvalidArgument("method is empty; give a path such as Utilities/Info/ping");
  if (method.size() > kMaxMethodLength) {
    return InvalidArgument("method is longer than " + std::to_string(kMaxMethodLength) + " characters");
  }
  int words = 1;
  size_t word_length = 0;
  for (size_t i = 0; i < method.size(); ++i) {
    unsigned char c = method[i];
    if (c == '/') {
      if (word_length == 0) {
        return InvalidArgument(i == 0 ? "method must not start with '/'"
                                      : "method must not contain an empty segment ('//')");
      }
      ++words;
      word_length = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
      ++word_length;
    } else {
      std::string shown = (c < 0x20 || c >= 0x7f) ? "a control or non-ASCII byte"
                                                  : "'" + std::string(1, static_cast<char>(c)) + "'";
      return InvalidArgument("method contains " + shown + " at position " + std::to_string(i) +
                             "; a method is words of letters, digits and '_' joined by '/'");
    }
  }
  if (word_length == 0) return InvalidArgument("method must not end with '/'");
  if (words < 2 || words > 8) {
    return InvalidArgument("method must have 2 to 8 segments, such as Utilities/Info/ping");
  }
  return Status::Ok();
}

std::string CanonicalMethod(std::string_view method) {
  std::string canonical = AsciiLower(method);
  for (std::string_view extension : {".json", ".yaml"}) {
    if (canonical.size() > extension.size() &&
        canonical.compare(canonical.size() - extension.size(), extension.size(), extension) == 0) {
      canonical.resize(canonical.size() - extension.size());
    }
  }
  size_t slashes = canonical.find_first_not_of('/');
  canonical.erase(0, slashes == std::string::npos ? canonical.size() : slashes);
  return canonical;
}

bool IsReservedMethod(std::string_view method) {
  // Broader than CanonicalMethod on purpose: any extension is cut, so that
  // no spelling of Account/Auth reaches the API.
  std::string lower = AsciiLower(method.substr(0, kMaxMethodLength + 16));
  size_t dot = lower.rfind('.');
  if (dot != std::string::npos && lower.find('/', dot) == std::string::npos) lower.resize(dot);  // ".json", ".yaml"
  return lower == "account/auth" || lower.rfind("account/auth/", 0) == 0;
}

Status ReservedMethodRefusal(std::string_view method) {
  std::string shown = Printable(method, kMaxMethodLength);
  return PermissionDenied(shown +
                          " is reserved: the broker never forwards the API's credential methods (Account/Auth/*) "
                          "for a caller; use GetToken (stormctl token) to read the token where policy allows "
                          "token_export, and Logout (stormctl logout) to expire it");
}

Status CheckPasscode(std::string_view passcode) {
  bool digits = std::all_of(passcode.begin(), passcode.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (passcode.size() < 6 || passcode.size() > 8 || !digits) {
    return InvalidArgument("a passcode is 6 to 8 digits, with nothing else (no spaces or line breaks)");
  }
  return Status::Ok();
}

Status CheckAccountName(std::string_view account) {
  if (account.empty() || IsValidAccountName(account)) return Status::Ok();
  return InvalidArgument("an account name is 1 to 64 letters, digits, '_', '-' or '.'");
}

}  // namespace stormbroker
