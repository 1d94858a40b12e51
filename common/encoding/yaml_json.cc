#include "encoding/yaml_json.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include "encoding/tree_builder.h"
#include "encoding/yaml_prescan.h"

namespace stormbroker {
namespace {

// Whether `text` is a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view text) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    return i > start;
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (i < text.size() && text[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == text.size();
}

// What an unquoted scalar means: null, a boolean, a number, or else a string.
// Most scalars are not numbers: JSON's parser runs only on those that are.
nlohmann::json PlainScalar(const std::string& text) {
  if (text == "~" || text == "null" || text == "Null" || text == "NULL" || text.empty()) return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (!IsJsonNumber(text)) return text;
  // Whole numbers as nlohmann reads them: signed, else unsigned, else a double.
  if (text.find_first_of(".eE") == std::string::npos) {
    int64_t whole = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), whole).ec == std::errc()) return whole;
    uint64_t positive = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), positive).ec == std::errc()) return positive;
  }
  nlohmann::json number = nlohmann::json::parse(text, nullptr, false);
  if (!number.is_discarded() && number.is_number()) return number;
  return text;
}

// Whether a string can be written unquoted and read back as the same string.
bool SafeUnquoted(const std::string& text) {
  if (text.empty() || !PlainScalar(text).is_string()) return false;
  if (std::isspace(static_cast<unsigned char>(text.front())) || std::isspace(static_cast<unsigned char>(text.back()))) {
    return false;
  }
  if (std::string("-?:,[]{}#&*!|>'\"%@`").find(text.front()) != std::string::npos) return false;
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f || c == ':' || c == '#') return false;
  }
  return true;
}

// The length of the well-formed UTF-8 sequence at the start of `text`
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF), or 0.
size_t Utf8SequenceLength(std::string_view text) {
  auto byte = [&](size_t i) { return i < text.size() ? static_cast<unsigned char>(text[i]) : 0; };
  auto continuation = [&](size_t i, unsigned char low = 0x80, unsigned char high = 0xbf) {
    return byte(i) >= low && byte(i) <= high;
  };
  unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return continuation(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    bool second = lead == 0xe0 ? continuation(1, 0xa0) : lead == 0xed ? continuation(1, 0x80, 0x9f) : continuation(1);
    return second && continuation(2) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    bool second = lead == 0xf0 ? continuation(1, 0x90) : lead == 0xf4 ? continuation(1, 0x80, 0x8f) : continuation(1);
    return second && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

// `text` as valid UTF-8: each byte that is not part of a well-formed
// sequence becomes U+FFFD, as JSON's renderer does (a string may quote what
// a caller sent, and YAML must be UTF-8 too).
std::string ValidUtf8(const std::string& text) {
  std::string valid;
  valid.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t length = Utf8SequenceLength(std::string_view(text).substr(i));
    if (length == 0) {
      valid += "\xef\xbf\xbd";
      ++i;
    } else {
      valid.append(text, i, length);
      i += length;
    }
  }
  return valid;
}

// Thrown from the event handler to stop yaml-cpp's parser (it has no other
// way); caught in ParseYaml.
struct Stop {};

// yaml-cpp's event stream, feeding the builder. In an object, events
// alternate between a key (a scalar) and its value.
class YamlEvents : public YAML::EventHandler {
 public:
  explicit YamlEvents(TreeBuilder& tree) : tree_(tree) {}
  std::string refusal;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override { Value(nullptr, anchor); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { Refuse("uses an alias (*name); write the value out"); }
  void OnScalar(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor, const std::string& text) override {
    if (tree_.inside_object() && expecting_key_.back()) {
      if (anchor != YAML::NullAnchor) Refuse("uses an anchor (&name)");
      tree_.Key(text);
      expecting_key_.back() = false;
      return;
    }
    // Quoted scalars carry the non-specific tag "!": strings, whatever they look like.
    Value(tag == "!" ? nlohmann::json(text) : PlainScalar(text), anchor);
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    CheckNotKey();
    Open(anchor, tree_.StartArray(), false);
  }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    CheckNotKey();
    Open(anchor, tree_.StartObject(), true);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapEnd() override { Close(); }

 private:
  void Refuse(std::string why) {
    refusal = std::move(why);
    throw Stop{};
  }
  // A key must be a scalar: a map or sequence where a key belongs is refused.
  void CheckNotKey() {
    if (tree_.inside_object() && expecting_key_.back()) Refuse("has a key that is not a single value");
  }
  void Value(nlohmann::json value, YAML::anchor_t anchor) {
    CheckNotKey();
    if (anchor != YAML::NullAnchor) Refuse("uses an anchor (&name)");
    if (!tree_.Scalar(std::move(value))) Refuse("is " + tree_.error());
    if (tree_.inside_object()) expecting_key_.back() = true;
  }
  void Open(YAML::anchor_t anchor, bool placed, bool object) {
    if (!placed) Refuse("is " + tree_.error());
    if (anchor != YAML::NullAnchor) Refuse("uses an anchor (&name)");
    expecting_key_.push_back(object);
  }
  void Close() {
    tree_.End();
    expecting_key_.pop_back();
    if (tree_.inside_object()) expecting_key_.back() = true;
  }

  TreeBuilder& tree_;
  std::vector<bool> expecting_key_;  // per open container: an object waiting for a key
};

void Emit(YAML::Emitter& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << ValidUtf8(key) << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::string: {
      std::string text = ValidUtf8(value.get<std::string>());
      if (SafeUnquoted(text)) {
        out << text;
      } else {
        out << YAML::DoubleQuoted << text;
      }
      break;
    }
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << value.dump();
  }
}

}  // namespace

Result<nlohmann::json> ParseYaml(std::string_view text, const DocumentBounds& bounds) {
  if (Status bounded = PrescanYaml(text, bounds); !bounded.ok()) return bounded;
  TreeBuilder tree(bounds);
  YamlEvents events(tree);
  std::istringstream stream{std::string(text)};
  try {
    YAML::Parser parser(stream);
    if (!parser.HandleNextDocument(events)) return nlohmann::json();  // no document: nothing
  } catch (const Stop&) {
    return InvalidArgument("the YAML " + events.refusal);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("not YAML (line " + std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1) + ")");
  }
  return tree.Take();
}

std::string RenderYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace stormbroker
