#include "transport/job_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace shoal::transport {

Mac TokenMac(std::string_view token, std::string_view label,
             std::initializer_list<std::span<const std::byte>> parts) {
  std::vector<unsigned char> msg;
  auto append = [&](const void* p, size_t n) {
    uint64_t len = n;
    auto* l = reinterpret_cast<const unsigned char*>(&len);
    msg.insert(msg.end(), l, l + 8);
    auto* b = static_cast<const unsigned char*>(p);
    msg.insert(msg.end(), b, b + n);
  };
  append(label.data(), label.size());
  for (auto part : parts) append(part.data(), part.size());
  Mac out{};
  size_t out_len = 0;
  // An empty key is valid HMAC; OpenSSL wants a non-null pointer.
  static const unsigned char kEmpty = 0;
  const void* key = token.empty() ? static_cast<const void*>(&kEmpty) : token.data();
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key, token.size(), msg.data(),
                msg.size(), reinterpret_cast<unsigned char*>(out.data()), out.size(),
                &out_len) == nullptr ||
      out_len != out.size()) {
    std::abort();  // OpenSSL without SHA-256: nothing sensible can follow
  }
  return out;
}

bool MacEqual(const Mac& a, const Mac& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Nonce NewNonce() {
  Nonce n{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1) {
    std::abort();
  }
  return n;
}

}  // namespace shoal::transport
