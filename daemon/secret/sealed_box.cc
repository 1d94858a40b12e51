#include "secret/sealed_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

namespace stormbroker {
namespace {

constexpr std::string_view kMagic = "sb1";
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

const unsigned char* Bytes(std::string_view text) { return reinterpret_cast<const unsigned char*>(text.data()); }

}  // namespace

Result<Secret> ReadFleetKey(const std::string& path) {
  auto content = ReadSecretFile(path);
  if (!content.ok()) return content.status();
  std::string_view text = content->Reveal();
  if (text.size() == kFleetKeyBytes) return std::move(content).value();
  if (text.size() == 2 * kFleetKeyBytes) {
    std::string raw(kFleetKeyBytes, '\0');
    for (size_t i = 0; i < kFleetKeyBytes; ++i) {
      int high = HexValue(text[2 * i]), low = HexValue(text[2 * i + 1]);
      if (high < 0 || low < 0) {
        Secret wipe(std::move(raw));
        return InvalidArgument(path + ": the fleet key is 64 characters long but not hexadecimal");
      }
      raw[i] = static_cast<char>(high * 16 + low);
    }
    return Secret(std::move(raw));
  }
  return InvalidArgument(path + ": a fleet key is 32 bytes, or 64 hexadecimal digits; make one with `openssl rand -hex 32`");
}

Result<std::string> Seal(const Secret& key, std::string_view context, std::string_view plaintext) {
  if (key.Reveal().size() != kFleetKeyBytes) return InvalidArgument("the fleet key is not 32 bytes");
  std::string sealed(kMagic);
  sealed.resize(kMagic.size() + kNonceBytes + plaintext.size() + kTagBytes);
  auto* nonce = reinterpret_cast<unsigned char*>(sealed.data() + kMagic.size());
  auto* out = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return Internal("no random bytes for a nonce");
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int written = 0, final_written = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.Reveal()), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &written, Bytes(context), static_cast<int>(context.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out, &written, Bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out + written, &final_written) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, out + plaintext.size()) != 1) {
    return Internal("AES-256-GCM sealing failed");
  }
  return sealed;
}

Result<Secret> Unseal(const Secret& key, std::string_view context, std::string_view sealed) {
  if (key.Reveal().size() != kFleetKeyBytes) return InvalidArgument("the fleet key is not 32 bytes");
  if (sealed.size() < kMagic.size() + kNonceBytes + kTagBytes || sealed.substr(0, kMagic.size()) != kMagic) {
    return InvalidArgument("not a sealed value");
  }
  const unsigned char* nonce = Bytes(sealed) + kMagic.size();
  const unsigned char* in = nonce + kNonceBytes;
  size_t length = sealed.size() - kMagic.size() - kNonceBytes - kTagBytes;
  std::string plain(length, '\0');
  Secret owner;  // wipes `plain` on every path once it holds it
  CipherContext ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int written = 0, final_written = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  bool opened = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.Reveal()), nonce) == 1 &&
                EVP_DecryptUpdate(ctx.get(), nullptr, &written, Bytes(context), static_cast<int>(context.size())) == 1 &&
                EVP_DecryptUpdate(ctx.get(), out, &written, in, static_cast<int>(length)) == 1 &&
                EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                                    const_cast<unsigned char*>(in + length)) == 1 &&
                EVP_DecryptFinal_ex(ctx.get(), out + written, &final_written) == 1;
  owner = Secret(std::move(plain));
  if (!opened) return InvalidArgument("a sealed value did not open: another fleet key, another place, or altered");
  return owner;
}

}  // namespace stormbroker
