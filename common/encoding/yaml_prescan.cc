#include "encoding/yaml_prescan.h"

#include <string>
#include <vector>

namespace stormbroker {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsBreak(char c) { return c == '\n' || c == '\r'; }
bool EndsToken(std::string_view text, size_t i) { return i + 1 >= text.size() || IsBlank(text[i + 1]) || IsBreak(text[i + 1]); }

class Prescan {
 public:
  Prescan(std::string_view text, const DocumentBounds& bounds) : text_(text), bounds_(bounds) {}

  Status Run() {
    while (i_ < text_.size()) {
      if (flow_ == 0) {
        if (Status line = BlockLine(); !line.ok()) return line;
      } else if (Status token = FlowToken(); !token.ok()) {
        return token;
      }
    }
    return Status::Ok();
  }

 private:
  // The start of a line outside flow collections: its indentation closes
  // deeper block collections, and "- " or "? " indicators open new ones.
  Status BlockLine() {
    size_t indent = 0;
    while (i_ < text_.size() && text_[i_] == ' ') ++i_, ++indent;
    if (i_ >= text_.size()) return Status::Ok();
    char c = text_[i_];
    if (IsBreak(c) || c == '#') return SkipLine();
    if (block_scalar_indent_ >= 0) {
      if (static_cast<int>(indent) > block_scalar_indent_) return SkipLine();
      block_scalar_indent_ = -1;
    }
    while (!indents_.empty() && indents_.back() >= indent) indents_.pop_back();
    if (Status opened = Open(indent, /*counts=*/false); !opened.ok()) return opened;
    // Compact nesting on one line: "- - - x", "? - x".
    while (i_ < text_.size() && (text_[i_] == '-' || text_[i_] == '?') && EndsToken(text_, i_)) {
      ++i_;
      size_t column = indent + 1;
      while (i_ < text_.size() && IsBlank(text_[i_])) ++i_, ++column;
      if (Status opened = Open(column, /*counts=*/true); !opened.ok()) return opened;
      indent = column;
    }
    return RestOfBlockLine(indent);
  }

  // The rest of a block line: scalars, "key: value" pairs, comments, and
  // a flow collection or block scalar starting in it.
  Status RestOfBlockLine(size_t indent) {
    bool value_start = true;
    while (i_ < text_.size() && !IsBreak(text_[i_])) {
      char c = text_[i_];
      if (value_start && (c == '[' || c == '{')) return FlowToken();
      if (value_start && (c == '"' || c == '\'')) {
        if (Status quoted = SkipQuoted(); !quoted.ok()) return quoted;
        value_start = false;
        continue;
      }
      if (value_start && (c == '|' || c == '>')) {
        block_scalar_indent_ = static_cast<int>(indent);
        return SkipLine();
      }
      if (c == '#' && (i_ == 0 || IsBlank(text_[i_ - 1]))) return SkipLine();
      if (c == ':' && EndsToken(text_, i_)) {
        if (Status counted = Count(); !counted.ok()) return counted;
        ++i_;
        value_start = true;
        continue;
      }
      if (!IsBlank(c)) value_start = false;
      ++i_;
    }
    return SkipLine();
  }

  // One token inside flow collections, where indentation means nothing.
  Status FlowToken() {
    char c = text_[i_];
    if (c == '[' || c == '{') {
      ++flow_;
      ++i_;
      if (TooDeep()) return DeepRefusal();
      return Count();
    }
    if (c == ']' || c == '}') {
      if (flow_ > 0) --flow_;
      ++i_;
      return Status::Ok();
    }
    if (c == '"' || c == '\'') return SkipQuoted();
    if (c == '#' && (i_ == 0 || IsBlank(text_[i_ - 1]) || IsBreak(text_[i_ - 1]))) return SkipLine();
    if (c == ',') {
      ++i_;
      return Count();
    }
    ++i_;
    return Status::Ok();
  }

  Status SkipQuoted() {
    char quote = text_[i_++];
    while (i_ < text_.size()) {
      char c = text_[i_++];
      if (quote == '"' && c == '\\') {
        ++i_;
      } else if (c == quote) {
        if (quote == '\'' && i_ < text_.size() && text_[i_] == '\'') {
          ++i_;  // '' inside single quotes
        } else {
          return Status::Ok();
        }
      }
    }
    return Status::Ok();  // unterminated: the parser says so
  }

  Status SkipLine() {
    while (i_ < text_.size() && !IsBreak(text_[i_])) ++i_;
    while (i_ < text_.size() && IsBreak(text_[i_])) ++i_;
    return Status::Ok();
  }

  // A block collection (or its entry) opens at column `indent`; an entry
  // ("- ", "? ") `counts` as one value.
  Status Open(size_t indent, bool counts) {
    indents_.push_back(indent);
    if (TooDeep()) return DeepRefusal();
    return counts ? Count() : Status::Ok();
  }

  Status Count() {
    if (++nodes_ > bounds_.max_values) {
      return InvalidArgument("the YAML has more than " + std::to_string(bounds_.max_values) + " values");
    }
    return Status::Ok();
  }

  // The line's indentation levels and the open flow collections overcount
  // the depth by at most one ("- - x", "- [x]"): one level of slack, so
  // that nothing the parser accepts is refused here.
  bool TooDeep() const { return indents_.size() + flow_ > static_cast<size_t>(bounds_.max_depth) + 1; }
  Status DeepRefusal() const {
    return InvalidArgument("the YAML is nested deeper than " + std::to_string(bounds_.max_depth) + " levels");
  }

  const std::string_view text_;
  const DocumentBounds& bounds_;
  size_t i_ = 0;
  size_t flow_ = 0;                  // open flow collections
  std::vector<size_t> indents_;      // open block collections (at most max_depth + 1)
  int block_scalar_indent_ = -1;     // inside a | or > scalar: lines deeper than this are its text
  size_t nodes_ = 0;
};

}  // namespace

Status PrescanYaml(std::string_view text, const DocumentBounds& bounds) { return Prescan(text, bounds).Run(); }

}  // namespace stormbroker
