// Sorting the sockets systemd passes into the broker's doors, on real
// sockets of each kind.
#include "net/passed_sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

namespace stormbroker {
namespace {

class PassedSocketsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (int fd : fds_) close(fd);
    std::filesystem::remove_all(dir_);
  }

  int Keep(int fd) {
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    return fd;
  }

  int UnixSocket(bool listening) {
    int fd = Keep(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string path = dir_ + "/s" + std::to_string(fds_.size());
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    if (listening) {
      EXPECT_EQ(listen(fd, 1), 0);
    }
    return fd;
  }

  int TcpSocket(const char* host) {
    int fd = Keep(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    inet_pton(AF_INET, host, &address.sin_addr);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(fd, 1), 0);
    return fd;
  }

  std::string dir_ = [] {
    char name[] = "/tmp/passed_sockets.XXXXXX";
    return std::string(mkdtemp(name));
  }();
  std::vector<int> fds_;
};

TEST_F(PassedSocketsTest, NoSocketsMeansEveryDoorFromTheConfig) {
  auto sorted = SortPassedSockets({});
  ASSERT_TRUE(sorted.ok());
  EXPECT_FALSE(sorted->grpc || sorted->http_unix || sorted->http_tcp);
}

TEST_F(PassedSocketsTest, NamesPickTheDoorAndKindPicksUnixOrTcp) {
  int grpc = UnixSocket(true);
  int http_unix = UnixSocket(true);
  int http_tcp = TcpSocket("127.0.0.1");
  auto sorted = SortPassedSockets({{grpc, "stormbrokerd.socket"}, {http_unix, "http"}, {http_tcp, "http"}});
  ASSERT_TRUE(sorted.ok()) << sorted.status().message();
  EXPECT_EQ(sorted->grpc, grpc);
  EXPECT_EQ(sorted->http_unix, http_unix);
  EXPECT_EQ(sorted->http_tcp, http_tcp);
  // Non-blocking (gRPC's event engine hangs on a blocking fd), and not
  // inherited by children.
  EXPECT_TRUE(fcntl(grpc, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(fcntl(http_tcp, F_GETFD) & FD_CLOEXEC);
}

TEST_F(PassedSocketsTest, AnHttpSocketOffLoopbackIsRefused) {
  auto sorted = SortPassedSockets({{TcpSocket("0.0.0.0"), "http"}});
  ASSERT_FALSE(sorted.ok());
  EXPECT_NE(sorted.status().message().find("not on a loopback address"), std::string::npos)
      << sorted.status().message();
}

TEST_F(PassedSocketsTest, TheProxyDoorTakesALoopbackTcpSocketOnly) {
  int proxy = TcpSocket("127.0.0.1");
  auto sorted = SortPassedSockets({{proxy, "https-proxy"}});
  ASSERT_TRUE(sorted.ok()) << sorted.status().message();
  EXPECT_EQ(sorted->https_proxy, proxy);
  EXPECT_FALSE(sorted->grpc || sorted->http_tcp);
  auto wide = SortPassedSockets({{TcpSocket("0.0.0.0"), "https-proxy"}});
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("not on a loopback address"), std::string::npos);
  auto unix_socket = SortPassedSockets({{UnixSocket(true), "https-proxy"}});
  ASSERT_FALSE(unix_socket.ok());
  EXPECT_NE(unix_socket.status().message().find("not a listening stream socket"), std::string::npos);
}

TEST_F(PassedSocketsTest, ATcpSocketIsNoGrpcDoor) {
  auto sorted = SortPassedSockets({{TcpSocket("127.0.0.1"), "grpc"}});
  ASSERT_FALSE(sorted.ok());
  EXPECT_NE(sorted.status().message().find("\"grpc\""), std::string::npos) << sorted.status().message();
  EXPECT_NE(sorted.status().message().find("not a listening stream socket"), std::string::npos);
}

TEST_F(PassedSocketsTest, ASocketThatDoesNotListenIsRefused) {
  auto sorted = SortPassedSockets({{UnixSocket(false), "http"}});
  ASSERT_FALSE(sorted.ok());
  EXPECT_NE(sorted.status().message().find("not a listening stream socket"), std::string::npos);
}

TEST_F(PassedSocketsTest, TwoSocketsForOneDoorAreRefused) {
  auto sorted = SortPassedSockets({{UnixSocket(true), "grpc"}, {UnixSocket(true), "grpc"}});
  ASSERT_FALSE(sorted.ok());
  EXPECT_NE(sorted.status().message().find("second socket for the same door"), std::string::npos);
}

}  // namespace
}  // namespace stormbroker
