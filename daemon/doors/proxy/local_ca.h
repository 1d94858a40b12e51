// The HTTPS proxy door's certificate authority: a CA that can vouch for the
// Storm API's host names and for nothing else, so that an operator may put
// it in the system's trust store without handing the broker (or whoever
// steals its key) the power to impersonate any other site.
//
// The limit is X.509 name constraints (RFC 5280 4.2.1.10), marked critical:
// DNS names only under the configured hosts, and no IP address at all (a
// DNS constraint alone leaves IP names unconstrained). OpenSSL, GnuTLS, NSS,
// Go, Java and browsers enforce them when verifying a chain.
//
// The CA is made once (at the daemon's first start with the door
// configured) or supplied by the operator; either way it is checked by
// verifying chains against it: the leaf for the hosts must verify, and a
// probe leaf for a name outside them must be refused. A CA that would
// vouch for more is refused at start, whoever made it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

// A certificate and its private key, as PEM text.
struct PemPair {
  std::string cert;
  Secret key;
};

class LocalCa {
 public:
  ~LocalCa();
  LocalCa(LocalCa&&) noexcept;
  LocalCa& operator=(LocalCa&&) = delete;

  // Reads the CA from `cert_file` and `key_file` (the key checked as a
  // secret file: 0600 or 0640), or, when neither exists, makes one for
  // `hosts` and writes it there (the key 0600, the certificate 0644). One
  // without the other is refused (never overwritten), as is a CA that fails
  // the checks above for `hosts`. Errors name the file and what to do.
  static Result<LocalCa> LoadOrCreate(const std::string& cert_file, const std::string& key_file,
                                      const std::vector<std::string>& hosts);

  // Makes a new CA for `hosts` in memory (tests; LoadOrCreate writes one).
  static Result<LocalCa> Create(const std::vector<std::string>& hosts);

  // A server certificate for `names` (DNS names in its subjectAltName),
  // signed by this CA, valid from an hour ago for `validity`, with a fresh
  // key. Nothing checks `names` against the constraints here: a leaf for a
  // name outside them is what clients must (and do) refuse.
  Result<PemPair> MintLeaf(const std::vector<std::string>& names, std::chrono::hours validity) const;

  // The CA's certificate, PEM: what clients are told to trust.
  const std::string& certificate_pem() const { return cert_pem_; }

 private:
  struct Keys;
  LocalCa(std::unique_ptr<Keys> keys, std::string cert_pem);
  // Verifies the leaf for `hosts`, and refuses probes for what the CA must
  // not vouch for: a DNS name outside them, an e-mail address or a URI
  // beside them, and a client certificate for them.
  Status CheckConstrainedTo(const std::vector<std::string>& hosts) const;
  // A certificate named `common_name` with `alt_names` (subjectAltName in
  // OpenSSL's syntax) for `usage` (extendedKeyUsage), signed by this CA.
  Result<PemPair> Mint(const std::string& common_name, const std::string& alt_names, const std::string& usage,
                       std::chrono::hours validity) const;
  // A CA the broker made before its limits were narrowed (no
  // extendedKeyUsage): certified again with the same key and subject and
  // today's limits, and written back to `cert_file`, so that clients that
  // trust the old certificate go on working with leaves it signs.
  Status Renew(const std::string& cert_file, const std::vector<std::string>& hosts);

  std::unique_ptr<Keys> keys_;
  std::string cert_pem_;
};

// Whether `leaf_pem` verifies as a TLS server certificate for `host` with
// `ca_pem` as the only trust anchor; the error says OpenSSL's reason
// ("permitted subtree violation" for a name outside the constraints).
Status VerifyServerCertificate(const std::string& leaf_pem, const std::string& ca_pem, const std::string& host);
// The same for a TLS client certificate (any name).
Status VerifyClientCertificate(const std::string& leaf_pem, const std::string& ca_pem);

}  // namespace stormbroker
