// The connections a door accepted: each caller's share of connections and
// calls, places given back when a call ends, and connections ended for a
// hang-up or by the first-request deadline.
#include "access/connection_table.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace stormbroker {
namespace {

using namespace std::chrono_literals;

class ConnectionTableTest : public ::testing::Test {
 protected:
  ~ConnectionTableTest() override {
    for (int fd : fds_) close(fd);
  }
  // One end of a new socket pair (the other end, the caller's, in `peer`).
  int Connection(int* peer = nullptr) {
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    fds_.push_back(pair[0]);
    fds_.push_back(pair[1]);
    if (peer) *peer = pair[1];
    return pair[0];
  }
  static Caller Uid(uid_t uid) {
    Caller caller;
    caller.uid = uid;
    caller.user = std::to_string(uid);
    return caller;
  }
  static LimitsConfig Limits() {
    LimitsConfig limits;
    limits.connections_per_uid = 2;
    limits.calls_per_uid = 3;
    limits.body_bytes_per_uid = 100;
    limits.first_request_timeout = 300ms;
    return limits;
  }

  std::vector<int> fds_;
};

TEST_F(ConnectionTableTest, EachUidHasItsShareOfConnectionsAndCalls) {
  ConnectionTable table(Limits(), 4);
  int a = Connection(), b = Connection(), c = Connection();
  EXPECT_TRUE(table.Admit(a, Uid(1000), "grpc").ok());
  EXPECT_TRUE(table.Admit(b, Uid(1000), "grpc").ok());
  Status third = table.Admit(c, Uid(1000), "grpc");
  EXPECT_EQ(third.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("connections_per_uid"), std::string::npos);
  EXPECT_TRUE(table.Admit(c, Uid(1001), "grpc").ok()) << "another uid has a share of its own";
  EXPECT_EQ(table.connections(), 3u);
  EXPECT_EQ(table.Lookup(a)->uid, 1000u);

  std::vector<std::shared_ptr<const CallTicket>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(table.BeginCall(i % 2 ? a : b).ticket);
  CallAdmission over = table.BeginCall(a);
  EXPECT_FALSE(over.ticket);
  EXPECT_EQ(over.caller->uid, 1000u) << "a refusal still names the caller, for the audit";
  EXPECT_NE(over.refusal.message().find("calls_per_uid"), std::string::npos);
  calls.pop_back();  // a call ends: its place is free again
  EXPECT_TRUE(table.BeginCall(a).ticket);
  EXPECT_EQ(table.BeginCall(12345).refusal.code(), StatusCode::kUnauthenticated) << "an unknown connection";
}

TEST_F(ConnectionTableTest, AConnectionForgottenWhileOpenCanBeAdmittedAgain) {
  // The proxy door admits a connection, forgets it when CONNECT is
  // answered, and the HTTP door's tunnel server admits the same socket.
  ConnectionTable table(Limits(), 4);
  ASSERT_TRUE(table.Start().ok());
  int tunnel = Connection();
  ASSERT_TRUE(table.Admit(tunnel, Uid(1000), "https-proxy").ok());
  table.Forget(tunnel);
  Status again = table.Admit(tunnel, Uid(1000), "http-unix");
  EXPECT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(table.connections(), 1u);
  EXPECT_EQ(table.ConnectionsByDoor(), (std::map<std::string, size_t>{{"http-unix", 1}, {"https-proxy", 0}}))
      << "counted where it is now; a door that had one still shows";
}

TEST_F(ConnectionTableTest, BodyBytesAreBoundedPerUid) {
  ConnectionTable table(Limits(), 4);
  EXPECT_TRUE(table.ReserveBodyBytes(1000, 60));
  EXPECT_FALSE(table.ReserveBodyBytes(1000, 50));
  EXPECT_TRUE(table.ReserveBodyBytes(1001, 50)) << "another uid";
  table.ReleaseBodyBytes(1000, 60);
  EXPECT_TRUE(table.ReserveBodyBytes(1000, 100));
}

TEST_F(ConnectionTableTest, AHangUpOrASilentConnectionIsEnded) {
  ConnectionTable table(Limits(), 4);
  ASSERT_TRUE(table.Start().ok());
  int hung_up_peer = -1;
  int hung_up = Connection(&hung_up_peer), silent = Connection();
  ASSERT_TRUE(table.Admit(hung_up, Uid(1000), "grpc").ok());
  ASSERT_TRUE(table.Admit(silent, Uid(1000), "grpc").ok());
  shutdown(hung_up_peer, SHUT_RDWR);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (table.connections() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(table.connections(), 0u);
  EXPECT_EQ(table.closed_incomplete(), 1u) << "no request within first_request_timeout";
  char byte;
  EXPECT_EQ(recv(silent, &byte, 1, MSG_DONTWAIT), 0) << "the door's socket is shut down too";
  EXPECT_TRUE(table.Admit(Connection(), Uid(1000), "grpc").ok()) << "the uid's places are free again";
}

}  // namespace
}  // namespace stormbroker
