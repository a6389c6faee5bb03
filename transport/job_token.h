// Proofs of the job token: HMAC-SHA256 (OpenSSL) over labelled, nonce-bound messages. The token
// itself never leaves the process; only MACs of fresh nonces do, so a recorded handshake cannot
// be replayed and a peer without the token cannot forge one.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace shoal::transport {

using Mac = std::array<std::byte, 32>;
using Nonce = std::array<std::byte, 32>;

// HMAC-SHA256 keyed by `token` over `label` and each part, each part length-prefixed.
Mac TokenMac(std::string_view token, std::string_view label,
             std::initializer_list<std::span<const std::byte>> parts);

// Constant-time comparison.
bool MacEqual(const Mac& a, const Mac& b);

// 32 bytes from the OS CSPRNG (OpenSSL RAND_bytes).
Nonce NewNonce();

}  // namespace shoal::transport
