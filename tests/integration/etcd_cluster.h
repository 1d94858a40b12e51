// A real etcd cluster on loopback for fleet tests: `members` etcd servers on
// free ports, each with its own data directory under `dir`, tuned to elect
// within a second. Stopped members keep their data and can start again.
// With `certs` (a make_test_ca directory) clients speak TLS and must show a
// certificate of that CA for client authentication (ca.pem, client.pem).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace harness {

class EtcdCluster {
 public:
  EtcdCluster(const TempDir& dir, int members = 3, const std::string& certs = "");
  // Every member's client URL (http:// or https://127.0.0.1:PORT).
  std::vector<std::string> ClientUrls() const;
  void Stop(int member);   // SIGTERM, and waits for the exit
  void Start(int member);  // again, on the data it kept
  // Waits until the members that run answer and agree on a leader.
  bool WaitHealthy(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  // etcdctl's output (keys and values) of every key under `prefix`.
  std::string Dump(const std::string& prefix) const;
  // Every key under `prefix` with its value, byte for byte, in etcd's order
  // (by key).
  std::vector<std::pair<std::string, std::string>> Get(const std::string& prefix) const;
  // Writes `value` (any bytes) at `key`, as anyone who can reach etcd may;
  // throws when etcd refuses.
  void Put(const std::string& key, const std::string& value) const;
  void Delete(const std::string& key) const;
  // etcdctl with `args`, as root once authentication is on.
  RunResult Ctl(const std::vector<std::string>& args, const std::string& input = "") const;
  // Turns on etcd's own authentication: a root user, and user `user` with
  // `password` allowed to read and write under `prefix` only.
  void EnableAuth(const std::string& user, const std::string& password, const std::string& prefix);
  // Every file in every member's data directory, concatenated.
  std::string DataFiles() const;

 private:
  std::vector<std::string> Argv(int member) const;
  // etcdctl with the endpoints of the members that run (all with `all`).
  std::vector<std::string> Etcdctl(bool all) const;

  std::string root_, certs_;
  bool auth_ = false;
  std::vector<int> client_ports_, peer_ports_;
  std::vector<std::unique_ptr<Process>> members_;
};

}  // namespace harness
