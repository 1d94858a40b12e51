#include "encoding/document_bounds.h"

#include <utility>
#include <vector>

#include "encoding/tree_builder.h"

namespace stormbroker {
namespace {

using json = nlohmann::json;

// nlohmann's SAX interface, feeding the builder.
class JsonEvents {
 public:
  explicit JsonEvents(TreeBuilder& tree) : tree_(tree) {}
  bool null() { return tree_.Scalar(nullptr); }
  bool boolean(bool value) { return tree_.Scalar(value); }
  bool number_integer(json::number_integer_t value) { return tree_.Scalar(value); }
  bool number_unsigned(json::number_unsigned_t value) { return tree_.Scalar(value); }
  bool number_float(json::number_float_t value, const json::string_t&) { return tree_.Scalar(value); }
  bool string(json::string_t& value) { return tree_.Scalar(std::move(value)); }
  bool binary(json::binary_t&) { return false; }  // JSON text has none
  bool start_object(std::size_t) { return tree_.StartObject(); }
  bool key(json::string_t& key) {
    tree_.Key(std::move(key));
    return true;
  }
  bool end_object() {
    tree_.End();
    return true;
  }
  bool start_array(std::size_t) { return tree_.StartArray(); }
  bool end_array() {
    tree_.End();
    return true;
  }
  // The parser's own message quotes the text it read, which may be a
  // parameter's value: only the position is kept.
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    syntax_error_at_ = position;
    return false;
  }
  size_t syntax_error_at_ = 0;

 private:
  TreeBuilder& tree_;
};

}  // namespace

Result<nlohmann::json> ParseBoundedJson(std::string_view text, const DocumentBounds& bounds) {
  TreeBuilder tree(bounds);
  JsonEvents events(tree);
  if (!json::sax_parse(text.begin(), text.end(), &events)) {
    if (!tree.error().empty()) return InvalidArgument("the JSON is " + tree.error());
    return InvalidArgument("not JSON (syntax error at byte " + std::to_string(events.syntax_error_at_) + ")");
  }
  return tree.Take();
}

Status CheckBounds(const nlohmann::json& value, const DocumentBounds& bounds) {
  // Depth-first with an explicit stack of (value, depth).
  std::vector<std::pair<const json*, int>> pending = {{&value, 0}};
  size_t values = 0;
  while (!pending.empty()) {
    auto [at, depth] = pending.back();
    pending.pop_back();
    if (++values > bounds.max_values) {
      return InvalidArgument("params hold more than " + std::to_string(bounds.max_values) + " values");
    }
    if (!at->is_structured()) continue;
    if (depth >= bounds.max_depth) {
      return InvalidArgument("params are nested deeper than " + std::to_string(bounds.max_depth) + " levels");
    }
    for (const json& item : *at) pending.emplace_back(&item, depth + 1);
  }
  return Status::Ok();
}

}  // namespace stormbroker
