// The proxy door's CA: it vouches for the configured hosts and, through its
// name constraints, for nothing else, even where it is trusted.
#include "doors/proxy/local_ca.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

const std::vector<std::string> kHosts = {"api.stormondemand.com", "api.liquidweb.com"};

TEST(LocalCaTest, VouchesForTheConfiguredHostsOnly) {
  auto ca = LocalCa::Create(kHosts);
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto leaf = ca->MintLeaf(kHosts, std::chrono::hours(24));
  ASSERT_TRUE(leaf.ok());
  for (const std::string& host : kHosts) {
    EXPECT_TRUE(VerifyServerCertificate(leaf->cert, ca->certificate_pem(), host).ok()) << host;
  }
  // A leaf the CA signs on purpose for a name outside its constraints: a
  // client that trusts the CA still refuses it.
  for (std::string outside : {"www.example.com", "api.stormondemand.com.evil.example", "stormondemand.com"}) {
    auto forged = ca->MintLeaf({outside}, std::chrono::hours(24));
    ASSERT_TRUE(forged.ok());
    Status verified = VerifyServerCertificate(forged->cert, ca->certificate_pem(), outside);
    EXPECT_EQ(verified.code(), StatusCode::kPermissionDenied) << outside;
    EXPECT_NE(verified.message().find("permitted subtree violation"), std::string::npos) << verified.message();
  }
  // Nor can it vouch for an address: IP names are excluded outright.
  auto by_address = ca->MintLeaf({"127.0.0.1"}, std::chrono::hours(24));
  ASSERT_TRUE(by_address.ok());
  EXPECT_FALSE(VerifyServerCertificate(by_address->cert, ca->certificate_pem(), "127.0.0.1").ok());
  // The leaf for the API's names is not valid for another name either.
  EXPECT_FALSE(VerifyServerCertificate(leaf->cert, ca->certificate_pem(), "www.example.com").ok());
}

class LocalCaFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("local_ca_test." + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    cert_ = (dir_ / "proxy-ca.pem").string();
    key_ = (dir_ / "proxy-ca.key").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string cert_;
  std::string key_;
};

TEST_F(LocalCaFilesTest, MadeOnceWithAPrivateKeyThenReadBack) {
  auto made = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_TRUE(made.ok()) << made.status().message();
  struct stat key_stat {};
  ASSERT_EQ(stat(key_.c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);
  auto again = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->certificate_pem(), made->certificate_pem());
  // A leaf minted by the CA read back verifies against the one made first.
  auto leaf = again->MintLeaf(kHosts, std::chrono::hours(1));
  ASSERT_TRUE(leaf.ok());
  EXPECT_TRUE(VerifyServerCertificate(leaf->cert, made->certificate_pem(), kHosts[0]).ok());
}

TEST_F(LocalCaFilesTest, RefusesAHalfCaAReadableKeyAndACaForOtherHosts) {
  ASSERT_TRUE(LocalCa::LoadOrCreate(cert_, key_, kHosts).ok());
  // Configured for a host the CA cannot vouch for.
  auto other = LocalCa::LoadOrCreate(cert_, key_, {"api.example.net"});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("cannot vouch for api.example.net"), std::string::npos)
      << other.status().message();
  chmod(key_.c_str(), 0644);
  auto readable = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_FALSE(readable.ok());
  EXPECT_NE(readable.status().message().find("chmod"), std::string::npos) << readable.status().message();
  std::remove(key_.c_str());
  auto half = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("is missing"), std::string::npos) << half.status().message();
  EXPECT_TRUE(std::filesystem::exists(cert_)) << "a half CA is never overwritten";
}

TEST_F(LocalCaFilesTest, RefusesAnUnconstrainedCa) {
  // An operator's CA without name constraints, made as most guides show.
  std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=wide"
                        " -keyout " + key_ + " -out " + cert_ + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  chmod(key_.c_str(), 0600);
  auto wide = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("no name constraints"), std::string::npos) << wide.status().message();
}

// A CA as the broker made them before their limits were narrowed: DNS
// names under the hosts and no IP address, but no extendedKeyUsage and no
// limit on e-mail addresses or URIs; `subject` says whose it looks like.
std::string OldStyleCa(const std::string& cert, const std::string& key, const std::string& subject) {
  return "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj '" + subject + "'" +
         " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
         " -addext 'nameConstraints=critical,permitted;DNS:api.stormondemand.com,permitted;DNS:api.liquidweb.com,"
         "excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0'"
         " -keyout " + key + " -out " + cert + " 2>/dev/null";
}

TEST_F(LocalCaFilesTest, RefusesAnOperatorsCaThatCouldVouchForMailOrClients) {
  ASSERT_EQ(std::system(OldStyleCa(cert_, key_, "/CN=operator CA").c_str()), 0);
  chmod(key_.c_str(), 0600);
  auto wide = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("e-mail addresses"), std::string::npos) << wide.status().message();
}

TEST_F(LocalCaFilesTest, ACaTheBrokerMadeBeforeIsCertifiedAgainWithItsKey) {
  ASSERT_EQ(std::system(OldStyleCa(cert_, key_, "/O=stormbroker/CN=stormbroker local CA").c_str()), 0);
  chmod(key_.c_str(), 0600);
  std::ifstream old_file(cert_);
  std::string old_pem((std::istreambuf_iterator<char>(old_file)), std::istreambuf_iterator<char>());
  auto renewed = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_TRUE(renewed.ok()) << renewed.status().message();
  EXPECT_NE(renewed->certificate_pem(), old_pem);
  std::ifstream new_file(cert_);
  std::string on_disk((std::istreambuf_iterator<char>(new_file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, renewed->certificate_pem()) << "the narrower certificate was not written back";
  // Clients that still trust the old certificate accept the new leaves.
  auto leaf = renewed->MintLeaf(kHosts, std::chrono::hours(1));
  ASSERT_TRUE(leaf.ok());
  EXPECT_TRUE(VerifyServerCertificate(leaf->cert, old_pem, kHosts[0]).ok());
  EXPECT_TRUE(VerifyServerCertificate(leaf->cert, renewed->certificate_pem(), kHosts[0]).ok());
  ASSERT_TRUE(LocalCa::LoadOrCreate(cert_, key_, kHosts).ok()) << "renewed once, then read as it is";
}

TEST_F(LocalCaFilesTest, RefusesADirectoryOthersCanWriteAndAKeyNewOfAnotherUser) {
  chmod(dir_.c_str(), 0775);
  auto loose = LocalCa::LoadOrCreate(cert_, key_, kHosts);
  ASSERT_FALSE(loose.ok());
  EXPECT_NE(loose.status().message().find("chmod go-w"), std::string::npos) << loose.status().message();
  chmod(dir_.c_str(), 0755);
  // One of the daemon's own, left by a crash: removed and made anew.
  std::ofstream(key_ + ".new") << "left over";
  ASSERT_TRUE(LocalCa::LoadOrCreate(cert_, key_, kHosts).ok());
  std::filesystem::remove(cert_);
  std::filesystem::remove(key_);
  if (geteuid() == 0) {
    std::ofstream(key_ + ".new") << "";
    ASSERT_EQ(chown((key_ + ".new").c_str(), 65534, 65534), 0);
    auto planted = LocalCa::LoadOrCreate(cert_, key_, kHosts);
    ASSERT_FALSE(planted.ok());
    EXPECT_NE(planted.status().message().find("not the daemon's own file"), std::string::npos)
        << planted.status().message();
    EXPECT_FALSE(std::filesystem::exists(key_));
  }
}

}  // namespace
}  // namespace stormbroker
