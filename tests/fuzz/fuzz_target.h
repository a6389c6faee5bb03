// The targets of shoal-fuzz: one function per decoder (or name check) that feeds it the fuzzer's
// bytes and, where the input is accepted, checks what the decoder promises: the value re-encodes
// and decodes back to itself, and its fields are consistent with each other. A broken promise
// aborts the process, which libFuzzer records as a crash with the input that caused it.
//
// A target also lists seeds: valid inputs that tests/fuzz/corpus/<target>/ is generated from
// (`shoal-fuzz --write-corpus=DIR`), so fuzzing starts past the decoder's first checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::fuzz {

[[noreturn]] void Fail(const char* file, int line, const char* what);

// Aborts with the failed condition; not an assert (it must hold in release builds too).
#define FUZZ_REQUIRE(cond)                                       \
  do {                                                           \
    if (!(cond)) ::shoal::fuzz::Fail(__FILE__, __LINE__, #cond); \
  } while (0)

// The fuzzer's bytes, read front to back; past the end every read yields zeros / "".
class Input {
 public:
  explicit Input(std::string_view data) : data_(data) {}

  template <typename T>
  T Take() {
    T v{};
    size_t n = std::min(sizeof(T), data_.size());
    std::memcpy(&v, data_.data(), n);
    data_.remove_prefix(n);
    return v;
  }
  // A string of at most `max` bytes, its length taken from one byte of the input.
  std::string TakeString(size_t max = 255) {
    size_t n = std::min<size_t>({size_t{Take<uint8_t>()}, max, data_.size()});
    std::string s(data_.substr(0, n));
    data_.remove_prefix(n);
    return s;
  }
  std::string_view Rest() {
    std::string_view r = data_;
    data_ = {};
    return r;
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

// Appends the bytes of `v` (host order, as Input::Take reads them) to `out`: for seeds.
template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

struct Target {
  std::string_view name;                 // also the corpus folder: tests/fuzz/corpus/<name>/
  void (*fuzz)(std::string_view input);  // the input without its selector byte
  std::vector<std::string> (*seeds)();   // valid inputs without selector byte; may be null
};

// The targets, in targets.cc.
void FuzzHeader(std::string_view input);
std::vector<std::string> HeaderSeeds();
void FuzzInode(std::string_view input);
std::vector<std::string> InodeSeeds();
void FuzzManifest(std::string_view input);
std::vector<std::string> ManifestSeeds();
void FuzzManifestEncode(std::string_view input);
std::vector<std::string> ManifestEncodeSeeds();
void FuzzSharedRing(std::string_view input);
std::vector<std::string> SharedRingSeeds();
void FuzzPath(std::string_view input);
std::vector<std::string> PathSeeds();
void FuzzTag(std::string_view input);
std::vector<std::string> TagSeeds();
void FuzzManifestName(std::string_view input);
std::vector<std::string> ManifestNameSeeds();
void FuzzMemberInfo(std::string_view input);
std::vector<std::string> MemberInfoSeeds();
void FuzzMemberBlobs(std::string_view input);
std::vector<std::string> MemberBlobsSeeds();
void FuzzRendezvousWorld(std::string_view input);
std::vector<std::string> RendezvousWorldSeeds();
void FuzzMembership(std::string_view input);
std::vector<std::string> MembershipSeeds();
void FuzzNumber(std::string_view input);
std::vector<std::string> NumberSeeds();
// engine/protocol.h (tests/fuzz/protocol_targets.cc)
void FuzzProtocol(std::string_view input);
std::vector<std::string> ProtocolSeeds();
// engine/observer_protocol.h (tests/fuzz/observer_targets.cc)
void FuzzObserver(std::string_view input);
std::vector<std::string> ObserverSeeds();

}  // namespace shoal::fuzz
