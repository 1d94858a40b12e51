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
// into place, so that a crash leaves the whole file or none.
Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode) {
  std::string temporary = path + ".new";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
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
  auto keys = std::make_unique<Keys>();
  keys->key = NewKey();
  if (!keys->key) return Internal(OpenSslError("cannot make a key for the proxy door's CA"));
  char host_name[256] = "localhost";
  gethostname(host_name, sizeof host_name - 1);
  keys->cert = NewCertificate(keys->key.get(), std::string("stormbroker local CA for the Storm API on ") + host_name,
                              kCaValidity, nullptr);
  X509* ca = keys->cert.get();
  // No IP name at all: 0.0.0.0/0 and ::/0 excluded.
  std::string constraints = "critical," + Join(hosts, "permitted;DNS:") +
                            ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"},
           {NID_subject_key_identifier, "hash"},
           {NID_name_constraints, constraints},
       }) {
    if (Status added = AddExtension(ca, ca, nid, value); !added.ok()) return added;
  }
  if (Status signed_ = Sign(ca, keys->key.get()); !signed_.ok()) return signed_;
  std::string pem = CertToPem(ca);
  LocalCa made(std::move(keys), std::move(pem));
  if (Status checked = made.CheckConstrainedTo(hosts); !checked.ok()) return checked;
  return made;
}

Result<LocalCa> LocalCa::LoadOrCreate(const std::string& cert_file, const std::string& key_file,
                                      const std::vector<std::string>& hosts) {
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
  LocalCa loaded(std::move(keys), std::move(cert_pem));
  if (Status checked = loaded.CheckConstrainedTo(hosts); !checked.ok()) {
    return InvalidArgument("the proxy door's CA in " + cert_file + " is refused: " + checked.message() +
                           ". Remove both files to have one made, or give a CA whose name constraints permit "
                           "only listen.https_proxy.hosts");
  }
  return loaded;
}

Result<PemPair> LocalCa::MintLeaf(const std::vector<std::string>& names, std::chrono::hours validity) const {
  KeyPtr key = NewKey();
  if (!key || names.empty()) return Internal(OpenSslError("cannot make a key for the proxy door"));
  CertPtr cert = NewCertificate(key.get(), names.front(), validity, keys_->cert.get());
  X509* leaf = cert.get();
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature"},
           {NID_ext_key_usage, "serverAuth"},
           {NID_subject_alt_name, Join(names, "DNS:")},
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
  return Status::Ok();
}

Status VerifyServerCertificate(const std::string& leaf_pem, const std::string& ca_pem, const std::string& host) {
  CertPtr leaf = CertFromPem(leaf_pem);
  CertPtr ca = CertFromPem(ca_pem);
  if (!leaf || !ca) return InvalidArgument(OpenSslError("not a PEM certificate"));
  StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca.get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (X509_verify_cert(ctx.get()) == 1) return Status::Ok();
  std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  ERR_clear_error();
  return PermissionDenied(why);
}

}  // namespace stormbroker
