// Writes one JSON object as text, member by member, with no document built
// first: the audit trail writes one per call, so this is on the hot path.
//
// Strings are escaped as JSON requires; bytes that are not valid UTF-8 (a
// method path a caller made up) become U+FFFD, so the line always parses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace stormbroker {

class JsonLine {
 public:
  JsonLine& Add(std::string_view key, std::string_view value);
  JsonLine& Add(std::string_view key, long long value);
  JsonLine& Add(std::string_view key, const std::vector<std::string>& values);
  // A number with exactly three decimals, cut (not rounded) after the third.
  JsonLine& AddThousandths(std::string_view key, double value);
  // The object, closed; the JsonLine is empty afterwards.
  std::string Finish();

 private:
  void Key(std::string_view key);

  std::string text_ = "{";
};

}  // namespace stormbroker
