#include <shoal/engine.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  shoal::Options o;
  o.store_dir = argv[1];
  auto e = shoal::Engine::Open(o);
  if (!e.ok()) {
    std::fprintf(stderr, "%s\n", e.status().ToString().c_str());
    return 1;
  }
  if (!(*e)->Put("installed/hello", "from an installed shoal").ok()) return 1;
  char buf[64] = {};
  auto n = (*e)->Read("installed/hello", 0, std::as_writable_bytes(std::span<char>(buf, 63)));
  if (!n.ok() || std::string(buf, *n) != "from an installed shoal") return 1;
  std::printf("consumer: read back %llu bytes via shoal::shoal\n",
              static_cast<unsigned long long>(*n));
  return 0;
}
