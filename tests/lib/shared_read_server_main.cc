// A rank process serving shared reads, for tests of what readers see when it dies:
//   shared_read_server_main STORE_DIR OBJECTS
// writes OBJECTS objects "o/<i>" of 10,000 + i bytes (byte j = (i + j) & 0xff), starts a
// SharedReadServer, prints "<name> <token>" and waits to be killed.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "shoal/engine.h"
#include "shoal/shared_reader.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  shoal::Options o;
  o.store_dir = argv[1];
  o.world_size = 1;
  o.rank = 0;
  auto e = shoal::Engine::Open(o);
  if (!e.ok()) {
    std::fprintf(stderr, "%s\n", e.status().ToString().c_str());
    return 1;
  }
  const int n = std::stoi(argv[2]);
  for (int i = 0; i < n; ++i) {
    std::vector<std::byte> b(10000 + i);
    for (size_t j = 0; j < b.size(); ++j) b[j] = static_cast<std::byte>((i + j) & 0xff);
    if (!(*e)->Put("o/" + std::to_string(i), b).ok()) return 1;
  }
  auto s = shoal::SharedReadServer::Start(**e);
  if (!s.ok()) return 1;
  std::printf("%s %s\n", (*s)->name().c_str(), (*s)->token().c_str());
  std::fflush(stdout);
  for (;;) pause();
}
