#include "format/table.h"

#include <algorithm>
#include <set>
#include <vector>

namespace stormbroker {
namespace {

constexpr size_t kMaxCell = 40;

std::string Cell(const nlohmann::json& value) {
  std::string text = value.is_string() ? value.get<std::string>() : value.is_null() ? "-" : value.dump();
  if (text.size() > kMaxCell) text = text.substr(0, kMaxCell - 3) + "...";
  return text;
}

std::string Rows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string RenderTable(const nlohmann::json& result) {
  if (result.is_object() && result.contains("items") && result["items"].is_array()) {
    std::set<std::string> columns;
    for (const auto& item : result["items"]) {
      if (!item.is_object()) continue;
      for (const auto& [key, value] : item.items()) columns.insert(key);
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header;
    for (const auto& column : columns) {
      std::string upper = column;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      header.push_back(upper);
    }
    rows.push_back(header);
    for (const auto& item : result["items"]) {
      std::vector<std::string> row;
      for (const auto& column : columns) row.push_back(item.is_object() && item.contains(column) ? Cell(item[column]) : "-");
      rows.push_back(row);
    }
    std::string out = Rows(rows);
    if (result.contains("item_total")) {
      out += std::to_string(result["items"].size()) + " of " + Cell(result["item_total"]) + " items";
      if (result.contains("page_num") && result.contains("page_total")) {
        out += " (page " + Cell(result["page_num"]) + " of " + Cell(result["page_total"]) + ")";
      }
      out += "\n";
    }
    return out;
  }
  if (result.is_object()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, value] : result.items()) rows.push_back({key, Cell(value)});
    return Rows(rows);
  }
  return Cell(result) + "\n";
}

}  // namespace stormbroker
