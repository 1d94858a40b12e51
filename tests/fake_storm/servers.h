// Storm/Server/list and Storm/Server/details over a fixed set of servers,
// seeded from a file (a JSON or YAML list of objects, each with a uniq_id) or
// generated.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api_error.h"

namespace fake_storm {

class ServerCatalog {
 public:
  explicit ServerCatalog(nlohmann::json servers) : servers_(std::move(servers)) {}

  // `count` made-up servers with stable uniq_ids (ABC001, ABC002, ...).
  static nlohmann::json Generated(int count);
  // Loads a seed file; nothing (and `error` set) when it is not a list of
  // objects with a string uniq_id.
  static std::optional<nlohmann::json> Load(const std::string& path, std::string* error);

  // page_num (default 1), page_size (default 25, 1 to 999).
  Reply List(const nlohmann::json& params) const;
  // uniq_id required; unknown → RecordNotFound.
  Reply Details(const nlohmann::json& params) const;
  // uniq_id required; sets `domain` when given (a string) and answers the
  // server as it now is, as Storm/Server/update does.
  Reply Update(const nlohmann::json& params);

 private:
  nlohmann::json servers_;
};

}  // namespace fake_storm
