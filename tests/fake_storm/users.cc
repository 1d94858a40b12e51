#include "users.h"

#include <yaml-cpp/yaml.h>

namespace fake_storm {

std::optional<std::vector<User>> LoadUsers(const std::string& path, std::string* error) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsSequence()) {
      *error = path + ": expected a list of users ({username, password, totp_secret})";
      return std::nullopt;
    }
    std::vector<User> users;
    for (const auto& node : root) {
      if (!node.IsMap() || !node["username"] || !node["password"]) {
        *error = path + ":" + std::to_string(node.Mark().line + 1) + ": each user needs username and password";
        return std::nullopt;
      }
      User user;
      user.username = node["username"].as<std::string>();
      user.password = node["password"].as<std::string>();
      if (node["totp_secret"]) user.totp_secret = node["totp_secret"].as<std::string>();
      users.push_back(std::move(user));
    }
    return users;
  } catch (const YAML::Exception& e) {
    *error = path + ": " + e.what();
    return std::nullopt;
  }
}

}  // namespace fake_storm
