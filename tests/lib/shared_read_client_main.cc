// A reader process of shared_reader_test (started with exec, so it shares no allocator or lock
// state with the threads of the test process):
//   shared_read_client NAME TOKEN read K ROUNDS OBJECTS   rounds of 32 reads of "o/<i>", checked
//   shared_read_client NAME TOKEN hold                    reads "big" and keeps it, then asks
//                                                         for it again: waits until killed
// Exit 0 when every read was whole and exact; 10 attach failed, 11 a read failed, 12 wrong bytes
// or outside the pool.
#include <string>
#include <vector>

#include "shoal/shared_reader.h"
#include "tests/lib/shared_read_content.h"

using namespace shoal;

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  auto r = SharedReader::Attach(argv[1], argv[2]);
  if (!r.ok()) return 10;
  const std::string mode = argv[3];
  if (mode == "hold") {
    ReadItem big;
    big.path = "big";
    std::vector<ReadItem> one = {big};
    auto held = (*r)->ReadBatch(one);
    if (!held.ok()) return 11;
    (void)(*r)->ReadBatch(one);  // no room until the first is released: killed here
    return 12;
  }
  if (mode != "read" || argc != 7) return 2;
  const int k = std::stoi(argv[4]), rounds = std::stoi(argv[5]), objects = std::stoi(argv[6]);
  for (int round = 0; round < rounds; ++round) {
    const int from = (round * 13 + k * 31) % (objects - 32);
    std::vector<ReadItem> items(32);
    for (int i = 0; i < 32; ++i) items[i].path = "o/" + std::to_string(from + i);
    auto got = (*r)->ReadBatch(items);
    if (!got.ok()) return 11;
    std::vector<uint64_t> leases;
    for (int i = 0; i < 32; ++i) {
      if (!(*got)[i].status.ok()) return 11;
      if (!testing::Same((*got)[i].bytes, testing::Content(from + i, testing::SizeOf(from + i))) ||
          !testing::Within((*got)[i].bytes, (*r)->pool())) {
        return 12;
      }
      leases.push_back((*got)[i].pool_offset);
    }
    (*r)->Release(leases);
  }
  return 0;
}
