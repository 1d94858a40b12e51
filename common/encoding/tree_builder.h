// Builds a JSON value from parser events (JSON's SAX, YAML's event stream)
// with no recursion, counting depth and values against DocumentBounds as it
// goes. Internal to the parsers of this folder.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "encoding/document_bounds.h"

namespace stormbroker {

class TreeBuilder {
 public:
  explicit TreeBuilder(const DocumentBounds& bounds) : bounds_(bounds) {}

  // Each event returns false once a bound is crossed (error() says which);
  // the parser must then stop.
  bool Scalar(nlohmann::json value) { return Place(std::move(value), false); }
  bool StartArray() { return Place(nlohmann::json::array(), true); }
  bool StartObject() { return Place(nlohmann::json::object(), true); }
  // Inside an object: the key of the value that comes next.
  void Key(std::string key) { key_ = std::move(key); }
  void End() {
    if (!open_.empty()) open_.pop_back();
  }
  bool inside_object() const { return !open_.empty() && open_.back()->is_object(); }

  nlohmann::json Take() { return std::move(root_); }
  const std::string& error() const { return error_; }

 private:
  bool Place(nlohmann::json value, bool container) {
    if (++values_ > bounds_.max_values) {
      error_ = "more than " + std::to_string(bounds_.max_values) + " values";
      return false;
    }
    if (container && static_cast<int>(open_.size()) >= bounds_.max_depth) {
      error_ = "nested deeper than " + std::to_string(bounds_.max_depth) + " levels";
      return false;
    }
    nlohmann::json* placed = &root_;
    if (!open_.empty()) {
      nlohmann::json& parent = *open_.back();
      if (parent.is_array()) {
        parent.push_back(std::move(value));
        placed = &parent.back();
      } else {
        placed = &(parent[key_] = std::move(value));
      }
    } else {
      root_ = std::move(value);
    }
    // Pointers stay valid: only the innermost open container grows.
    if (container) open_.push_back(placed);
    return true;
  }

  const DocumentBounds bounds_;
  nlohmann::json root_;
  std::vector<nlohmann::json*> open_;  // the containers being filled, outermost first
  std::string key_;
  size_t values_ = 0;
  std::string error_;
};

}  // namespace stormbroker
