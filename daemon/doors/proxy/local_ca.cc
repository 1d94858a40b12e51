#include "doors/proxy/local_ca.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace stormbroker {
namespace {

// A CA lives for years (it is in trust stores); its leaves are minted at
// every start and are short-lived by comparison.
constexpr auto kCaValidity = std::chrono::hours(24 * 3650);
// Outside every configured host; a leaf for it must be refused.
constexpr const char* kProbeName = "outside-the-constraints.stormbroker.invalid";

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

// OpenSSL's queued error, for a message, or `fallback` when it has none.
std::string OpenSslError(const std::string& fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return fallback + " (" + text + ")";
}

KeyPtr NewKey() {
  // P-256: every TLS client verifies it, and it is quick to make at start.
  return KeyPtr(EVP_EC_gen("P-256"));
}

std::string CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size);
}

Secret KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  Secret pem(std::string(data, size));
  OPENSSL_cleanse(data, size);
  return pem;
}

CertPtr CertFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1)) {
    return Internal(OpenSslError("cannot add the X.509 extension " + value));
  }
  return Status::Ok();
}

std::string Join(const std::vector<std::string>& names, const std::string& prefix) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ",") + prefix + name;
  return joined;
}

// A certificate for `key` named `common_name`, valid from an hour ago (a
// client's clock may be behind) for `validity`, with a random serial;
// issued by `issuer` (null: itself), unsigned yet.
CertPtr NewCertificate(EVP_PKEY* key, const std::string& common_name, std::chrono::hours validity, X509* issuer) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);  // v3: extensions
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive, as RFC 5280 asks
  BIGNUM* number = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(number, X509_get_serialNumber(cert.get()));
  BN_free(number);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), std::chrono::seconds(validity).count());
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("stormbroker"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  return cert;
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return Internal(OpenSslError("cannot sign a certificate"));
  return Status::Ok();
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Writes `text` to `path` with `mode`, through a temporary file renamed
// into place, so that a crash leaves the whole file or none. The temporary
// file is always new (O_EXCL): one left by this daemon's user (an earlier
// crash) is removed first; one of anybody else's is refused, never written
// into, since its owner could read what goes in.
Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode) {
  std::string temporary = path + ".new";
  struct stat left {};
  if (lstat(temporary.c_str(), &left) == 0) {
    if (left.st_uid != geteuid() || !S_ISREG(left.st_mode)) {
      return FailedPrecondition(temporary + " exists and is not the daemon's own file (owner uid " +
                                std::to_string(left.st_uid) + "): someone may be waiting to read the key; "
                                "find out who made it, remove it, and start again");
    }
    unlink(temporary.c_str());
  }
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Unavailable("cannot write " + temporary + ": " + strerror(errno));
  fchmod(fd, mode);  // whatever the umask
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!written || rename(temporary.c_str(), path.c_str()) != 0) {
    unlink(temporary.c_str());
    return Unavailable("cannot write " + path + ": " + strerror(errno));
  }
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// The directory of a CA file must be as safe as the state directory:
// whoever can write it can plant a CA of their own or a file the key is
// written into.
Status CheckCaDirectory(const std::string& file) {
  size_t slash = file.rfind('/');
  std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : file.substr(0, slash);
  struct stat st {};
  if (lstat(directory.c_str(), &st) != 0) {
    return FailedPrecondition("cannot inspect " + directory + " (the directory of " + file + "): " + strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(directory + " (the directory of " + file + ") is not a directory");
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return FailedPrecondition(directory + " (the directory of " + file + ") belongs to uid " +
                              std::to_string(st.st_uid) + ", who could replace the proxy door's CA: run chown " +
                              std::to_string(geteuid()) + " " + directory);
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return FailedPrecondition(directory + " (the directory of " + file +
                              ") is writable by other users, who could plant a CA or read its key: run chmod "
                              "go-w " + directory);
  }
  return Status::Ok();
}

// The key's file: a regular file (not a link) of root or the daemon's
// user, readable by nobody else.
Status CheckKeyFile(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return FailedPrecondition("cannot inspect " + path + ": " + strerror(errno));
  if (!S_ISREG(st.st_mode)) return FailedPrecondition(path + " is not a regular file (a link is refused)");
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return FailedPrecondition(path + " belongs to uid " + std::to_string(st.st_uid) +
                              ", who can read the CA's key: make a new CA (remove both files) or run chown " +
                              std::to_string(geteuid()) + " " + path);
  }
  return Status::Ok();
}

// Gives `ca` (a new certificate, or a copy of an old one without its
// extensions) the extensions that limit it to the API's servers, and signs
// it with `key`:
//   - name constraints: DNS names only under `hosts`; no IP address (a DNS
//     constraint alone leaves IP names unconstrained); e-mail addresses and
//     URIs only under .invalid, which no real name is;
//   - extendedKeyUsage serverAuth: no client, S/MIME or code-signing
//     certificate chains to it.
// No directoryName constraint: Go refuses a chain whose critical
// constraints name a type it does not handle, and OpenSSL would refuse
// every subject.
Status LimitCa(X509* ca, EVP_PKEY* key, const std::vector<std::string>& hosts) {
  std::string constraints = "critical," + Join(hosts, "permitted;DNS:") +
                            ",permitted;email:.invalid,permitted;URI:.invalid"
                            ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"},
           {NID_ext_key_usage, "serverAuth"},
           {NID_subject_key_identifier, "hash"},
           {NID_name_constraints, constraints},
       }) {
    if (Status added = AddExtension(ca, ca, nid, value); !added.ok()) return added;
  }
  return Sign(ca, key);
}

// The subject the broker gives a CA it makes (NewCertificate's O).
bool MadeByTheBroker(X509* cert) {
  char organization[64] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_organizationName, organization, sizeof organization);
  return std::string_view(organization) == "stormbroker" && X509_check_issued(cert, cert) == X509_V_OK;
}

}  // namespace

struct LocalCa::Keys {
  KeyPtr key;
  CertPtr cert;
};

LocalCa::LocalCa(std::unique_ptr<Keys> keys, std::string cert_pem)
    : keys_(std::move(keys)), cert_pem_(std::move(cert_pem)) {}
LocalCa::~LocalCa() = default;
LocalCa::LocalCa(LocalCa&&) noexcept = default;

Result<LocalCa> LocalCa::Create(const std::vector<std::string>& hosts) {
  if (hosts.empty()) return InvalidArgument("the proxy door's CA needs a host to be limited to (listen.https_proxy.hosts)");
  auto keys = std::make_unique<Keys>();
  keys->key = NewKey();
  if (!keys->key) return Internal(OpenSslError("cannot make a key for the proxy door's CA"));
  char host_name[256] = "localhost";
  gethostname(host_name, sizeof host_name - 1);
  keys->cert = NewCertificate(keys->key.get(), std::string("stormbroker local CA for the Storm API on ") + host_name,
                              kCaValidity, nullptr);
  if (Status limited = LimitCa(keys->cert.get(), keys->key.get(), hosts); !limited.ok()) return limited;
  std::string pem = CertToPem(keys->cert.get());
  LocalCa made(std::move(keys), std::move(pem));
  if (Status checked = made.CheckConstrainedTo(hosts); !checked.ok()) return checked;
  return made;
}

Result<LocalCa> LocalCa::LoadOrCreate(const std::string& cert_file, const std::string& key_file,
                                      const std::vector<std::string>& hosts) {
  for (const std::string& file : {cert_file, key_file}) {
    if (Status safe = CheckCaDirectory(file); !safe.ok()) return safe;
  }
  bool have_cert = Exists(cert_file);
  bool have_key = Exists(key_file);
  if (!have_cert && !have_key) {
    auto made = Create(hosts);
    if (!made.ok()) return made.status();
    Secret key_pem = KeyToPem(made->keys_->key.get());
    // The key first: a certificate is never on disk without its key.
    if (Status wrote = WriteFileAtomically(key_file, key_pem.Reveal(), 0600); !wrote.ok()) return wrote;
    if (Status wrote = WriteFileAtomically(cert_file, made->cert_pem_, 0644); !wrote.ok()) return wrote;
    return made;
  }
  if (have_cert != have_key) {
    const std::string& missing = have_cert ? key_file : cert_file;
    return FailedPrecondition("the proxy door's CA is half there: " + missing +
                              " is missing; restore it, or remove both files to have a new CA made (clients must "
                              "then trust the new one)");
  }
  if (Status owned = CheckKeyFile(key_file); !owned.ok()) return owned;
  auto key_pem = ReadSecretFile(key_file);
  if (!key_pem.ok()) return key_pem.status();
  auto keys = std::make_unique<Keys>();
  {
    std::string_view pem = key_pem->Reveal();
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    keys->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!keys->key) return InvalidArgument(OpenSslError(key_file + " holds no PEM private key"));
  std::string cert_pem = ReadWholeFile(cert_file);
  keys->cert = CertFromPem(cert_pem);
  if (!keys->cert) return InvalidArgument(OpenSslError(cert_file + " holds no PEM certificate"));
  if (X509_check_private_key(keys->cert.get(), keys->key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(key_file + " is not the key of the certificate in " + cert_file);
  }
  if (X509_check_ca(keys->cert.get()) == 0) {
    return InvalidArgument(cert_file + " is not a CA certificate (basicConstraints CA:TRUE)");
  }
  bool renew = MadeByTheBroker(keys->cert.get()) && !(X509_get_extension_flags(keys->cert.get()) & EXFLAG_XKUSAGE);
  LocalCa loaded(std::move(keys), std::move(cert_pem));
  if (renew) {
    if (Status renewed = loaded.Renew(cert_file, hosts); !renewed.ok()) return renewed;
    spdlog::warn("the proxy door's CA in {} was made before its limits were narrowed (no e-mail, URI or client "
                 "certificates); it is certified again with the same key, and clients that trust the old "
                 "certificate go on working: give them the new one (stormctl proxy-ca) to have the narrower limits",
                 cert_file);
  }
  if (Status checked = loaded.CheckConstrainedTo(hosts); !checked.ok()) {
    return InvalidArgument("the proxy door's CA in " + cert_file + " is refused: " + checked.message() +
                           ". Remove both files to have one made, or give a CA whose name constraints permit "
                           "only listen.https_proxy.hosts");
  }
  return loaded;
}

Result<PemPair> LocalCa::MintLeaf(const std::vector<std::string>& names, std::chrono::hours validity) const {
  if (names.empty()) return InvalidArgument("a leaf needs a name");
  return Mint(names.front(), Join(names, "DNS:"), "serverAuth", validity);
}

Result<PemPair> LocalCa::Mint(const std::string& common_name, const std::string& alt_names, const std::string& usage,
                              std::chrono::hours validity) const {
  KeyPtr key = NewKey();
  if (!key) return Internal(OpenSslError("cannot make a key for the proxy door"));
  CertPtr cert = NewCertificate(key.get(), common_name, validity, keys_->cert.get());
  X509* leaf = cert.get();
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature"},
           {NID_ext_key_usage, usage},
           {NID_subject_alt_name, alt_names},
           {NID_authority_key_identifier, "keyid:always"},
       }) {
    if (Status added = AddExtension(leaf, keys_->cert.get(), nid, value); !added.ok()) return added;
  }
  if (Status signed_ = Sign(leaf, keys_->key.get()); !signed_.ok()) return signed_;
  return PemPair{CertToPem(leaf), KeyToPem(key.get())};
}

Status LocalCa::CheckConstrainedTo(const std::vector<std::string>& hosts) const {
  auto leaf = MintLeaf(hosts, std::chrono::hours(1));
  if (!leaf.ok()) return leaf.status();
  for (const std::string& host : hosts) {
    if (Status verified = VerifyServerCertificate(leaf->cert, cert_pem_, host); !verified.ok()) {
      return FailedPrecondition("it cannot vouch for " + host + ": " + verified.message());
    }
  }
  auto probe = MintLeaf({kProbeName}, std::chrono::hours(1));
  if (!probe.ok()) return probe.status();
  if (VerifyServerCertificate(probe->cert, cert_pem_, kProbeName).ok()) {
    return FailedPrecondition("it can vouch for names other than the API's (it has no name constraints)");
  }
  const std::string& host = hosts.front();
  for (auto [kind, alt_name] : std::initializer_list<std::pair<const char*, std::string>>{
           {"e-mail addresses", "email:someone@example.com"}, {"URIs", "URI:https://example.com/"}}) {
    auto beside = Mint(host, "DNS:" + host + "," + alt_name, "serverAuth", std::chrono::hours(1));
    if (!beside.ok()) return beside.status();
    if (VerifyServerCertificate(beside->cert, cert_pem_, host).ok()) {
      return FailedPrecondition(std::string("it can vouch for ") + kind +
                                " (its name constraints must permit only .invalid for them)");
    }
  }
  auto client = Mint(host, "DNS:" + host, "clientAuth", std::chrono::hours(1));
  if (!client.ok()) return client.status();
  if (VerifyClientCertificate(client->cert, cert_pem_).ok()) {
    return FailedPrecondition("it can vouch for TLS clients (it needs extendedKeyUsage serverAuth alone)");
  }
  return Status::Ok();
}

Status LocalCa::Renew(const std::string& cert_file, const std::vector<std::string>& hosts) {
  X509_NAME* subject = X509_get_subject_name(keys_->cert.get());
  char common_name[256] = "";
  X509_NAME_get_text_by_NID(subject, NID_commonName, common_name, sizeof common_name);
  CertPtr renewed = NewCertificate(keys_->key.get(), common_name, kCaValidity, nullptr);
  if (Status limited = LimitCa(renewed.get(), keys_->key.get(), hosts); !limited.ok()) return limited;
  std::string pem = CertToPem(renewed.get());
  if (Status wrote = WriteFileAtomically(cert_file, pem, 0644); !wrote.ok()) return wrote;
  keys_->cert = std::move(renewed);
  cert_pem_ = std::move(pem);
  return Status::Ok();
}

namespace {

Status VerifyFor(const std::string& leaf_pem, const std::string& ca_pem, int purpose, const std::string& host) {
  CertPtr leaf = CertFromPem(leaf_pem);
  CertPtr ca = CertFromPem(ca_pem);
  if (!leaf || !ca) return InvalidArgument(OpenSslError("not a PEM certificate"));
  StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca.get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, purpose);
  if (!host.empty()) X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (X509_verify_cert(ctx.get()) == 1) return Status::Ok();
  std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  ERR_clear_error();
  return PermissionDenied(why);
}

}  // namespace

Status VerifyServerCertificate(const std::string& leaf_pem, const std::string& ca_pem, const std::string& host) {
  return VerifyFor(leaf_pem, ca_pem, X509_PURPOSE_SSL_SERVER, host);
}

Status VerifyClientCertificate(const std::string& leaf_pem, const std::string& ca_pem) {
  return VerifyFor(leaf_pem, ca_pem, X509_PURPOSE_SSL_CLIENT, "");
}

}  // namespace stormbroker
