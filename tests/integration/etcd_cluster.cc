#include "etcd_cluster.h"

#include <filesystem>
#include <stdexcept>
#include <thread>

namespace harness {

EtcdCluster::EtcdCluster(const TempDir& dir, int members, const std::string& certs)
    : root_(dir.path() + "/etcd"), certs_(certs) {
  std::filesystem::create_directories(root_);
  for (int i = 0; i < members; ++i) {
    client_ports_.push_back(FreePort());
    peer_ports_.push_back(FreePort());
  }
  members_.resize(members);
  for (int i = 0; i < members; ++i) Start(i);
}

std::vector<std::string> EtcdCluster::ClientUrls() const {
  std::vector<std::string> urls;
  for (int port : client_ports_) {
    urls.push_back((certs_.empty() ? "http://" : "https://") + std::string("127.0.0.1:") + std::to_string(port));
  }
  return urls;
}

std::vector<std::string> EtcdCluster::Argv(int member) const {
  auto peer = [&](int i) { return "http://127.0.0.1:" + std::to_string(peer_ports_[i]); };
  std::string initial;
  for (size_t i = 0; i < peer_ports_.size(); ++i) {
    initial += (i ? "," : "") + std::string("m") + std::to_string(i) + "=" + peer(i);
  }
  std::string name = "m" + std::to_string(member);
  std::vector<std::string> tls;
  if (!certs_.empty()) {
    tls = {"--cert-file", certs_ + "/server.pem", "--key-file", certs_ + "/server.key", "--client-cert-auth",
           "--trusted-ca-file", certs_ + "/ca.pem"};
  }
  std::vector<std::string> argv = {"/usr/bin/etcd", "--name", name, "--data-dir", root_ + "/" + name,
          "--listen-client-urls", ClientUrls()[member], "--advertise-client-urls", ClientUrls()[member],
          "--listen-peer-urls", peer(member), "--initial-advertise-peer-urls", peer(member),
          "--initial-cluster", initial, "--initial-cluster-state", "new",
          "--initial-cluster-token", "stormbroker-test",
          // Elections within a second, as on a quiet LAN.
          "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn"};
  argv.insert(argv.end(), tls.begin(), tls.end());
  return argv;
}

std::vector<std::string> EtcdCluster::Etcdctl(bool all) const {
  std::string endpoints;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (all || members_[i]) endpoints += (endpoints.empty() ? "" : ",") + ClientUrls()[i];
  }
  std::vector<std::string> argv = {"/usr/bin/etcdctl", "--endpoints", endpoints, "--command-timeout", "2s"};
  if (!certs_.empty()) {
    argv.insert(argv.end(), {"--cacert", certs_ + "/ca.pem", "--cert", certs_ + "/client.pem", "--key",
                             certs_ + "/client.key"});
  }
  return argv;
}

void EtcdCluster::Start(int member) {
  members_[member] = std::make_unique<Process>(Argv(member), root_ + "/m" + std::to_string(member) + ".log", false);
}

void EtcdCluster::Stop(int member) {
  if (members_[member]) members_[member]->Stop(SIGTERM);
  members_[member].reset();
}

bool EtcdCluster::WaitHealthy(std::chrono::milliseconds timeout) const {
  auto argv = Etcdctl(false);
  argv.insert(argv.end(), {"endpoint", "health"});
  return Eventually([&] { return RunCommand(argv).exit_code == 0; }, timeout);
}

std::string EtcdCluster::Dump(const std::string& prefix) const {
  auto argv = Etcdctl(true);
  if (auth_) argv.insert(argv.end(), {"--user", "root:root-pw"});
  argv.insert(argv.end(), {"get", "--prefix", prefix});
  return RunCommand(argv).out;
}

RunResult EtcdCluster::Ctl(const std::vector<std::string>& args, const std::string& input) const {
  auto argv = Etcdctl(false);
  if (auth_) argv.insert(argv.end(), {"--user", "root:root-pw"});
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, input);
}

std::vector<std::pair<std::string, std::string>> EtcdCluster::Get(const std::string& prefix) const {
  auto result = Ctl({"get", "--prefix", prefix, "-w", "json"});
  nlohmann::json answer = nlohmann::json::parse(result.out, nullptr, false);
  std::vector<std::pair<std::string, std::string>> kvs;
  if (answer.is_discarded() || !answer.contains("kvs")) return kvs;
  for (const auto& kv : answer["kvs"]) {
    kvs.emplace_back(Base64Decode(kv["key"]), Base64Decode(kv.value("value", "")));
  }
  return kvs;
}

void EtcdCluster::Put(const std::string& key, const std::string& value) const {
  auto result = Ctl({"put", key}, value);  // the value on stdin: any bytes
  if (result.exit_code != 0) throw std::runtime_error("etcdctl put " + key + ": " + result.err);
}

void EtcdCluster::Delete(const std::string& key) const {
  auto result = Ctl({"del", key});
  if (result.exit_code != 0) throw std::runtime_error("etcdctl del " + key + ": " + result.err);
}

void EtcdCluster::EnableAuth(const std::string& user, const std::string& password, const std::string& prefix) {
  for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
           {"user", "add", "root", "--new-user-password=root-pw"},
           {"user", "grant-role", "root", "root"},
           {"role", "add", "brokers"},
           {"role", "grant-permission", "brokers", "--prefix=true", "readwrite", prefix},
           {"user", "add", user, "--new-user-password=" + password},
           {"user", "grant-role", user, "brokers"},
           {"auth", "enable"}}) {
    auto result = Ctl(step);
    if (result.exit_code != 0) throw std::runtime_error("etcdctl " + step[0] + " " + step[1] + ": " + result.err);
  }
  auth_ = true;
}

std::string EtcdCluster::DataFiles() const {
  std::string all;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root_)) {
    if (entry.is_regular_file()) all += ReadFile(entry.path().string());
  }
  return all;
}

}  // namespace harness
