// MetaStore (the LMDB metadata shard) on its own: group commit, key encoding, listing pages,
// removal, creatability checks, striped replacement, and what a reopen or a crash leaves.
#include "engine/meta_store.h"

#include <fmt/format.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace shoal::engine {
namespace {

constexpr uint64_t kMapSize = 64ull << 20;

Inode InlineInode(size_t size = 10) {
  Inode n;
  n.is_inline = true;
  n.chunk_size = kMinChunkSize;
  n.size = size;
  n.inline_data.assign(size, 'x');
  return n;
}

// A local object of one chunk of `length` bytes at (segment, offset).
Inode LocalInode(uint32_t segment, uint64_t offset, uint32_t length) {
  Inode n;
  n.chunk_size = kMinChunkSize;
  n.size = length;
  n.chunks.push_back(Extent{segment, offset, length, 0});
  return n;
}

Inode StripedInode(uint64_t uid, uint32_t replicas, uint64_t size = 3 * kMinChunkSize) {
  Inode n;
  n.is_striped = true;
  n.uid = uid;
  n.chunk_size = kMinChunkSize;
  n.size = size;
  n.replicas = replicas;
  for (uint32_t i = 0; i < replicas; ++i) {
    n.layout.push_back({"member-" + std::to_string(i), "node-" + std::to_string(i)});
  }
  n.written.assign((n.NumChunks() + 7) / 8, 0xff);
  return n;
}

std::unique_ptr<MetaStore> OpenStore(const std::string& dir, uint64_t map_size = kMapSize) {
  auto m = MetaStore::Open(dir, map_size);
  EXPECT_OK(m);
  return m.ok() ? std::move(m).value() : nullptr;
}

// Inserts inline objects from several threads (each insert is its own write, so the group commit
// batches them: far fewer fsyncs than one per insert). Returns how many inserts failed.
int InsertAll(MetaStore* m, const std::vector<std::string>& paths, int threads = 8) {
  std::atomic<size_t> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (size_t i = next++; i < paths.size(); i = next++) {
        Inode n = InlineInode();
        Status s = m->InsertObject(paths[i], &n);
        if (!s.ok()) {
          ADD_FAILURE() << paths[i] << ": " << s.ToString();
          failed++;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  return failed.load();
}

// Every entry of a directory, through pages of `limit`.
std::vector<DirEntry> ListAll(MetaStore* m, std::string_view dir, uint32_t limit, int* pages) {
  std::vector<DirEntry> all;
  ListOptions o;
  o.limit = limit;
  *pages = 0;
  while (true) {
    auto page = m->List(dir, o);
    EXPECT_OK(page);
    if (!page.ok()) break;
    ++*pages;
    EXPECT_LE(page->entries.size(), limit);
    all.insert(all.end(), page->entries.begin(), page->entries.end());
    if (!page->truncated) {
      EXPECT_TRUE(page->next_start_after.empty());
      break;
    }
    EXPECT_EQ(page->entries.size(), limit) << "a truncated page is a full page";
    EXPECT_EQ(page->next_start_after, page->entries.back().name);
    o.start_after = page->next_start_after;
  }
  return all;
}

std::vector<std::string> Names(const std::vector<DirEntry>& entries) {
  std::vector<std::string> v;
  for (const DirEntry& e : entries) v.push_back(e.name);
  return v;
}

// The id of the last committed LMDB write transaction of the environment in `dir` (the store
// must be closed: one process opens an environment once).
uint64_t LastTxnId(const std::string& dir) {
  MDB_env* env = nullptr;
  EXPECT_EQ(mdb_env_create(&env), 0);
  EXPECT_EQ(mdb_env_set_maxdbs(env, 8), 0);
  EXPECT_EQ(mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0600), 0);
  MDB_envinfo info{};
  mdb_env_info(env, &info);
  mdb_env_close(env);
  return info.me_last_txnid;
}

TEST(MetaStore, ReopenKeepsMemberIdObjectsAndIdSequence) {
  testing::TempDir tmp;
  std::string member;
  uint64_t first_id = 0;
  {
    auto m = OpenStore(tmp.path());
    ASSERT_NE(m, nullptr);
    member = m->member_id();
    EXPECT_EQ(member.size(), 32u);
    Inode n = InlineInode(5);
    ASSERT_OK(m->InsertObject("a/b", &n));
    first_id = n.id;
    EXPECT_GT(first_id, 0u);
  }
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->member_id(), member);
  auto got = m->GetInode("a/b");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, first_id);
  EXPECT_EQ(got->inline_data, "xxxxx");
  Inode n = InlineInode();
  ASSERT_OK(m->InsertObject("c", &n));
  EXPECT_GT(n.id, first_id) << "ids are never reused across a reopen";
}

TEST(MetaStore, ConcurrentInsertsAreAllDurableAndGroupCommitted) {
  testing::TempDir tmp;
  uint64_t before = 0;
  { ASSERT_NE(OpenStore(tmp.path()), nullptr); }
  before = LastTxnId(tmp.path());
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<std::string> paths;
  std::set<uint64_t> ids;
  {
    auto m = OpenStore(tmp.path());
    ASSERT_NE(m, nullptr);
    std::mutex mu;
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Half into a shared directory (contended parent entry), half into one per thread.
          std::string p = i % 2 == 0 ? fmt::format("shared/t{}-{}", t, i)
                                     : fmt::format("own{}/deep/o{}", t, i);
          Inode n = InlineInode();
          Status s = m->InsertObject(p, &n);
          EXPECT_OK(s) << p;
          std::lock_guard lk(mu);
          paths.push_back(p);
          ids.insert(n.id);
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(ids.size(), size_t{kThreads * kPerThread}) << "every insert got its own id";
  uint64_t txns = LastTxnId(tmp.path()) - before - 1;  // -1: the reopen's own transaction
  std::printf("[ meta     ] %d inserts from %d threads in %llu write transactions\n",
              kThreads * kPerThread, kThreads, static_cast<unsigned long long>(txns));
  EXPECT_GE(txns, 1u);
  EXPECT_LT(txns, uint64_t{kThreads * kPerThread}) << "no two inserts shared a transaction";

  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  for (const std::string& p : paths) {
    EXPECT_OK(m->GetInode(p)) << p;
  }
  int pages = 0;
  auto shared = ListAll(m.get(), "shared", 1000, &pages);
  EXPECT_EQ(shared.size(), size_t{kThreads * ((kPerThread + 1) / 2)});
  auto root = ListAll(m.get(), "", 1000, &pages);
  ASSERT_EQ(root.size(), size_t{kThreads + 1});  // own0..own7, shared
  for (const DirEntry& e : root) {
    EXPECT_TRUE(e.is_dir);
    EXPECT_EQ(e.size, e.name == "shared" ? shared.size() : 1u) << e.name;
  }
  auto deep = ListAll(m.get(), "own3/deep", 1000, &pages);
  EXPECT_EQ(deep.size(), size_t{kPerThread / 2});
}

// One update of a batch failing (a duplicate) must not undo the others committed with it.
TEST(MetaStore, RacingInsertsOfOneNameLetExactlyOneWin) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  constexpr int kThreads = 8, kNames = 20;
  std::atomic<int> ok{0}, exists{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < kNames; ++i) {
        Inode n = InlineInode();
        Status s = m->InsertObject(fmt::format("dup/n{:02}", i), &n);
        if (s.ok()) ok++;
        else if (s.IsAlreadyExists()) exists++;
        else ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), kNames);
  EXPECT_EQ(exists.load(), (kThreads - 1) * kNames);
  m.reset();
  m = OpenStore(tmp.path());
  int pages = 0;
  auto all = ListAll(m.get(), "dup", 1000, &pages);
  EXPECT_EQ(all.size(), size_t{kNames});
  auto root = ListAll(m.get(), "", 1000, &pages);
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].size, uint64_t{kNames}) << "the directory counts each entry once";
}

// A process that dies without closing the environment loses nothing it was told was committed.
TEST(MetaStore, CommittedInsertsSurviveAProcessCrash) {
  testing::TempDir tmp;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto m = MetaStore::Open(tmp.path(), kMapSize);
    if (!m.ok()) ::_exit(2);
    for (int i = 0; i < 5; ++i) {
      Inode n = InlineInode();
      if (!(*m)->InsertObject(fmt::format("crash/o{}", i), &n).ok()) ::_exit(3);
    }
    ::_exit(0);  // no destructor: the environment is never closed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  for (int i = 0; i < 5; ++i) {
    EXPECT_OK(m->GetInode(fmt::format("crash/o{}", i)));
  }
  Inode n = InlineInode();
  EXPECT_OK(m->InsertObject("crash/after", &n));
}

// Paths whose bytes sort around '/' (0x2f): '.' (0x2e) below it, '0' (0x30) above. A directory's
// entries must be exactly its own, in byte order, whatever its neighbours' names.
TEST(MetaStore, KeyEncodingKeepsDirectoriesApart) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  const std::vector<std::string> paths = {
      "a/b", "a/c/d", "a.b", "a0", "ab", "a-", "a/b.x", "a/b0", "a/bb",
      "d/x", "d.e/y", "d0/z", "d/e/f", "zz\xc3\xa9", "zz~", "A"};
  ASSERT_EQ(InsertAll(m.get(), paths), 0);
  int pages = 0;
  auto root = ListAll(m.get(), "", 1000, &pages);
  std::vector<std::string> want_root = {"A", "a", "a-", "a.b", "a0", "ab", "d", "d.e", "d0",
                                        "zz~", "zz\xc3\xa9"};  // UTF-8 sorts above ASCII
  EXPECT_EQ(Names(root), want_root);
  for (const DirEntry& e : root) {
    bool dir = e.name == "a" || e.name == "d" || e.name == "d.e" || e.name == "d0";
    EXPECT_EQ(e.is_dir, dir) << e.name;
    if (!dir) {
      EXPECT_EQ(e.size, 10u) << e.name;
    }
  }
  EXPECT_EQ(Names(ListAll(m.get(), "a", 1000, &pages)),
            (std::vector<std::string>{"b", "b.x", "b0", "bb", "c"}));
  EXPECT_EQ(Names(ListAll(m.get(), "d", 1000, &pages)), (std::vector<std::string>{"e", "x"}));
  EXPECT_EQ(Names(ListAll(m.get(), "d.e", 1000, &pages)), (std::vector<std::string>{"y"}));
  EXPECT_EQ(Names(ListAll(m.get(), "d0", 1000, &pages)), (std::vector<std::string>{"z"}));
  auto a = ListAll(m.get(), "a", 1000, &pages);
  EXPECT_TRUE(a[4].is_dir);
  EXPECT_EQ(a[4].size, 1u);
  // A prefix of a name is not its directory, nor is an object.
  EXPECT_CODE(m->List("a.", {}), kNotFound);
  EXPECT_CODE(m->List("a/c/d", {}), kNotFound);
  EXPECT_CODE(m->List("a0", {}), kNotFound);
  EXPECT_CODE(m->GetInode("a"), kNotFound);
  EXPECT_CODE(m->GetInode("a/c"), kNotFound);
}

// A listing with a filter (a member listing while it drops retired shard copies) leaves out
// the objects the filter refuses and the directories holding, at any depth, none it keeps; a
// directory holding none is NotFound, as one that does not exist.
TEST(MetaStore, AFilteredListingLeavesOutRefusedObjectsAndTheDirectoriesOnlyTheyFill) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  const std::vector<std::string> paths = {
      "d/keep1",   "d/drop1",       "d/mixed/keep2", "d/mixed/drop2", "d/gone/drop3",
      "d/gone/deep/drop4", "d/deep/a/b/keep3", "d/deep/a/drop5", "e/drop6",
      std::string(210, 'l') + "/keep4",  std::string(210, 'l') + "/drop7"};
  ASSERT_EQ(InsertAll(m.get(), paths), 0);
  const MetaStore::PathFilter keep = [](std::string_view p) {
    return p.find("drop") == std::string_view::npos;
  };
  auto names = [&](std::string_view dir) -> std::vector<std::string> {
    auto page = m->List(dir, ListOptions{"", 1000}, keep);
    EXPECT_OK(page) << dir;
    std::vector<std::string> out;
    if (page.ok()) {
      for (const DirEntry& e : page->entries) out.push_back(e.name);
    }
    return out;
  };
  EXPECT_EQ(names(""), (std::vector<std::string>{"d", std::string(210, 'l')}));
  EXPECT_EQ(names("d"), (std::vector<std::string>{"deep", "keep1", "mixed"}));
  EXPECT_EQ(names("d/mixed"), (std::vector<std::string>{"keep2"}));
  EXPECT_EQ(names("d/deep/a"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(names(std::string(210, 'l')), (std::vector<std::string>{"keep4"}));
  EXPECT_CODE(m->List("d/gone", ListOptions{"", 1000}, keep), kNotFound);
  EXPECT_CODE(m->List("e", ListOptions{"", 1000}, keep), kNotFound);
  // Pages count what is kept: two entries a page still reach every kept name once.
  std::vector<std::string> paged;
  ListOptions lo{"", 2};
  for (;;) {
    auto page = m->List("d", lo, keep);
    ASSERT_OK(page);
    for (const DirEntry& e : page->entries) paged.push_back(e.name);
    if (!page->truncated) break;
    lo.start_after = page->next_start_after;
  }
  EXPECT_EQ(paged, (std::vector<std::string>{"deep", "keep1", "mixed"}));
  // Without a filter, everything.
  int pages = 0;
  EXPECT_EQ(Names(ListAll(m.get(), "d", 1000, &pages)),
            (std::vector<std::string>{"deep", "drop1", "gone", "keep1", "mixed"}));
}

// Paths longer than the short-key limit are stored under a prefix and a hash: two such paths
// sharing a long prefix stay distinct, and so do their directories' entries.
TEST(MetaStore, LongPathsSharingAPrefixStayDistinct) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  std::string base = std::string(150, 'p') + "/" + std::string(120, 'q');  // 271 bytes
  std::vector<std::string> paths;
  for (std::string tail : {"1", "2", "10"}) {
    paths.push_back(base + tail + ".obj");      // objects with long names
    paths.push_back(base + tail + "/entry");    // and long directories
    paths.push_back(base + tail + "/" + std::string(255, 'n'));  // the longest component
  }
  // Around the boundary where keys switch to hashing.
  for (size_t len : {199, 200, 201, 202}) paths.push_back("edge/" + std::string(len - 5, 'e'));
  paths.push_back(std::string(200, 'f') + "/x");  // a 200-byte directory: the longest plain key
  paths.push_back(std::string(201, 'f') + "/y");  // one byte more: hashed
  ASSERT_EQ(InsertAll(m.get(), paths), 0);
  for (const std::string& p : paths) {
    auto got = m->GetInode(p);
    EXPECT_OK(got) << p.size();
  }
  int pages = 0;
  std::string parent = std::string(150, 'p');
  auto entries = ListAll(m.get(), parent, 1000, &pages);
  ASSERT_EQ(entries.size(), 6u);  // three directories, three objects, all with hashed keys
  for (std::string tail : {"1", "2", "10"}) {
    auto dir = ListAll(m.get(), base + tail, 1000, &pages);
    EXPECT_EQ(Names(dir), (std::vector<std::string>{"entry", std::string(255, 'n')})) << tail;
  }
  EXPECT_EQ(Names(ListAll(m.get(), std::string(200, 'f'), 10, &pages)),
            (std::vector<std::string>{"x"}));
  EXPECT_EQ(Names(ListAll(m.get(), std::string(201, 'f'), 10, &pages)),
            (std::vector<std::string>{"y"}));
  EXPECT_EQ(ListAll(m.get(), "edge", 10, &pages).size(), 4u);
  auto removed = m->RemoveObject(base + "10/entry");
  ASSERT_OK(removed);
  EXPECT_OK(m->GetInode(base + "1/entry"));
  EXPECT_CODE(m->GetInode(base + "10/entry"), kNotFound);
  EXPECT_EQ(ListAll(m.get(), base + "10", 10, &pages).size(), 1u);
}

TEST(MetaStore, PagesCoverADirectoryOnceInOrder) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  std::vector<std::string> paths;
  for (int i = 0; i < 150; ++i) paths.push_back(fmt::format("big/o{:03}", i));
  for (int i = 0; i < 20; ++i) paths.push_back(fmt::format("big/sub{:02}/x/y", i));
  for (int i = 0; i < 10; ++i) paths.push_back(fmt::format("big0/o{}", i));  // neighbour dir
  for (int i = 0; i < 10; ++i) paths.push_back(fmt::format("bi/o{}", i));    // and its prefix
  ASSERT_EQ(InsertAll(m.get(), paths), 0);

  int pages = 0;
  auto one = ListAll(m.get(), "big", 1000000, &pages);
  EXPECT_EQ(pages, 1);
  ASSERT_EQ(one.size(), 170u);
  EXPECT_TRUE(std::is_sorted(one.begin(), one.end(),
                             [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; }));
  for (uint32_t limit : {1u, 7u, 17u, 169u, 170u, 171u}) {
    auto all = ListAll(m.get(), "big", limit, &pages);
    EXPECT_EQ(Names(all), Names(one)) << limit;
    EXPECT_EQ(pages, static_cast<int>((170 + limit - 1) / limit)) << limit;
  }
  for (const DirEntry& e : one) {
    if (e.name.rfind("sub", 0) == 0) {
      EXPECT_TRUE(e.is_dir);
      EXPECT_EQ(e.size, 1u);
    }
  }
}

TEST(MetaStore, ListEdges) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  auto empty = m->List("", {});
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->entries.empty());
  EXPECT_FALSE(empty->truncated);
  EXPECT_CODE(m->List("nothing", {}), kNotFound);

  ASSERT_EQ(InsertAll(m.get(), {"d/b", "d/d", "d/f", "d/h"}), 0);
  ListOptions o;
  o.limit = 0;
  EXPECT_CODE(m->List("d", o), kInvalidArgument);
  o.limit = 1000001;
  EXPECT_CODE(m->List("d", o), kInvalidArgument);

  // Exactly `limit` entries left: not truncated (no empty last page).
  o.limit = 4;
  auto exact = m->List("d", o);
  ASSERT_OK(exact);
  EXPECT_EQ(exact->entries.size(), 4u);
  EXPECT_FALSE(exact->truncated);
  // start_after need not be a name that exists; it is a position in byte order.
  o.limit = 10;
  o.start_after = "c";
  EXPECT_EQ(Names(m->List("d", o)->entries), (std::vector<std::string>{"d", "f", "h"}));
  o.start_after = "d";
  EXPECT_EQ(Names(m->List("d", o)->entries), (std::vector<std::string>{"f", "h"}));
  o.start_after = "a";
  EXPECT_EQ(m->List("d", o)->entries.size(), 4u);
  o.start_after = "h";
  auto after_last = m->List("d", o);
  ASSERT_OK(after_last);
  EXPECT_TRUE(after_last->entries.empty());
  EXPECT_FALSE(after_last->truncated);
  o.start_after = "\xff";
  EXPECT_TRUE(m->List("d", o)->entries.empty());
  // A position longer than any name (names are at most 255 bytes) is still a position.
  o.start_after = std::string(600, 'c');
  auto long_pos = m->List("d", o);
  ASSERT_OK(long_pos);
  EXPECT_EQ(Names(long_pos->entries), (std::vector<std::string>{"d", "f", "h"}));
  o.start_after = std::string(255, 'd') + "x";
  EXPECT_EQ(Names(m->List("d", o)->entries), (std::vector<std::string>{"f", "h"}));
  o.start_after = "d";
  o.limit = 1;
  auto one = m->List("d", o);
  EXPECT_EQ(Names(one->entries), (std::vector<std::string>{"f"}));
  EXPECT_TRUE(one->truncated);
  EXPECT_EQ(one->next_start_after, "f");
}

TEST(MetaStore, RemoveTakesEmptiedDirectoriesWithIt) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  Inode x = LocalInode(1, 0, 5000);
  ASSERT_OK(m->InsertObject("x/y/z", &x));
  Inode w = InlineInode();
  ASSERT_OK(m->InsertObject("x/w", &w));
  int pages = 0;
  auto xs = ListAll(m.get(), "x", 10, &pages);
  ASSERT_EQ(Names(xs), (std::vector<std::string>{"w", "y"}));

  EXPECT_CODE(m->RemoveObject("x/y"), kNotFound);  // a directory is not an object
  EXPECT_CODE(m->RemoveObject("x/nothing"), kNotFound);
  EXPECT_EQ(ListAll(m.get(), "x", 10, &pages).size(), 2u) << "failed removes change nothing";

  auto gone = m->RemoveObject("x/y/z");
  ASSERT_OK(gone);
  EXPECT_EQ(gone->id, x.id);
  ASSERT_EQ(gone->chunks.size(), 1u);
  EXPECT_EQ(gone->chunks[0].segment, 1u);
  EXPECT_CODE(m->List("x/y", {}), kNotFound);
  auto left = ListAll(m.get(), "x", 10, &pages);
  EXPECT_EQ(Names(left), (std::vector<std::string>{"w"}));
  auto root = ListAll(m.get(), "", 10, &pages);
  ASSERT_EQ(root.size(), 1u);
  EXPECT_EQ(root[0].size, 1u);
  int extents = 0;
  ASSERT_OK(m->ForEachExtent([&](uint32_t, uint64_t, uint32_t) { ++extents; }));
  EXPECT_EQ(extents, 0) << "the removed object's extent is no longer live";

  ASSERT_OK(m->RemoveObject("x/w"));
  EXPECT_CODE(m->List("x", {}), kNotFound);
  EXPECT_TRUE(m->List("", {})->entries.empty());
  EXPECT_CODE(m->RemoveObject("x/w"), kNotFound);

  // The names are free again; a new object gets a new id.
  Inode again = InlineInode();
  ASSERT_OK(m->InsertObject("x/y/z", &again));
  EXPECT_GT(again.id, w.id);
  Inode as_object = InlineInode();
  ASSERT_OK(m->RemoveObject("x/y/z"));
  ASSERT_OK(m->InsertObject("x", &as_object)) << "x was a directory; now it can be an object";
}

TEST(MetaStore, CheckCreatable) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  EXPECT_OK(m->CheckCreatable("a/b/c"));
  ASSERT_EQ(InsertAll(m.get(), {"a/b/c", "obj"}), 0);
  EXPECT_CODE(m->CheckCreatable("a/b/c"), kAlreadyExists);   // an object
  EXPECT_CODE(m->CheckCreatable("a/b"), kAlreadyExists);     // a directory
  EXPECT_CODE(m->CheckCreatable("a"), kAlreadyExists);
  EXPECT_CODE(m->CheckCreatable("a/b/c/d"), kInvalidArgument);  // under an object
  EXPECT_CODE(m->CheckCreatable("obj/x/y"), kInvalidArgument);
  EXPECT_OK(m->CheckCreatable("a/b/c2"));
  EXPECT_OK(m->CheckCreatable("a/bc"));
  EXPECT_OK(m->CheckCreatable("ob"));
  EXPECT_OK(m->CheckCreatable("objx/y"));
  // InsertObject applies the same rules, and a refused insert changes nothing.
  Inode n = InlineInode();
  EXPECT_CODE(m->InsertObject("a/b", &n), kAlreadyExists);
  EXPECT_CODE(m->InsertObject("obj/x", &n), kInvalidArgument);
  EXPECT_CODE(m->List("obj", {}), kNotFound);
  int pages = 0;
  EXPECT_EQ(ListAll(m.get(), "", 10, &pages).size(), 2u);
  EXPECT_EQ(ListAll(m.get(), "a/b", 10, &pages).size(), 1u);
}

TEST(MetaStore, ReplaceVersionedOnlyReplacesTheSameObject) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  Inode s = StripedInode(7, 1);
  ASSERT_OK(m->InsertObject("ckpt/s", &s));
  Inode more = StripedInode(7, 2);
  more.copies.push_back({1, {"member-9", "node-9"}, 99});
  ASSERT_OK(m->ReplaceVersioned(0, "ckpt/s", 7, more));
  auto got = m->GetInode("ckpt/s");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, s.id) << "the id stays";
  EXPECT_EQ(got->replicas, 2u);
  EXPECT_EQ(got->layout, more.layout);
  EXPECT_EQ(got->copies, more.copies);
  int pages = 0;
  auto entries = ListAll(m.get(), "ckpt", 10, &pages);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].size, s.size);

  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 8, more), kInvalidArgument);  // uid differs from inode
  Inode local = InlineInode();
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 0, local), kInvalidArgument);
  Inode other = StripedInode(8, 2);
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 8, other), kNotFound);  // the path holds uid 7
  Inode resized = StripedInode(7, 2, 5 * kMinChunkSize);
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 7, resized), kNotFound);
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/none", 7, more), kNotFound);
  Inode inl = InlineInode();
  ASSERT_OK(m->InsertObject("ckpt/inline", &inl));
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/inline", 7, more), kNotFound);
  ASSERT_OK(m->RemoveObject("ckpt/s"));
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 7, more), kNotFound);
  // A new object under the old name is not the one a repair read.
  Inode reborn = StripedInode(9, 1);
  ASSERT_OK(m->InsertObject("ckpt/s", &reborn));
  EXPECT_CODE(m->ReplaceVersioned(0, "ckpt/s", 7, more), kNotFound);
  EXPECT_EQ(m->GetInode("ckpt/s")->uid, 9u);
}

TEST(MetaStore, ExtentsAreListedInSegmentThenOffsetOrder) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  // Big-endian keys: offset 2^40 sorts after 8192 (little-endian bytes would not).
  Inode a = LocalInode(2, 4096, 100);
  Inode b = LocalInode(1, uint64_t{1} << 40, 5000);
  Inode c = LocalInode(1, 8192, 4096);
  Inode d = LocalInode(256, 0, 1);
  ASSERT_OK(m->InsertObject("a", &a));
  ASSERT_OK(m->InsertObject("b", &b));
  ASSERT_OK(m->InsertObject("c", &c));
  ASSERT_OK(m->InsertObject("d", &d));
  Inode hole;
  hole.chunk_size = kMinChunkSize;
  hole.size = 1000;
  hole.chunks.push_back(Extent{});  // never written: no extent
  ASSERT_OK(m->InsertObject("hole", &hole));
  std::vector<std::tuple<uint32_t, uint64_t, uint32_t>> seen;
  ASSERT_OK(m->ForEachExtent([&](uint32_t s, uint64_t o, uint32_t bytes) {
    seen.emplace_back(s, o, bytes);
  }));
  std::vector<std::tuple<uint32_t, uint64_t, uint32_t>> want = {
      {1, 8192, 4096}, {1, uint64_t{1} << 40, 8192}, {2, 4096, 4096}, {256, 0, 4096}};
  EXPECT_EQ(seen, want);
}

TEST(MetaStore, FullMapIsNoSpaceAndKeepsWhatWasCommitted) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path(), 1 << 20);
  ASSERT_NE(m, nullptr);
  // Threads of large inline records (3 pages each) fill 1 MiB within a few batches.
  std::atomic<int> ok{0}, full{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        Inode n = InlineInode(12000);
        Status s = m->InsertObject(fmt::format("f/t{}-{}", t, i), &n);
        if (s.ok()) ok++;
        else if (s.IsNoSpace()) full++;
        else ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(full.load(), 0);
  int pages = 0;
  EXPECT_EQ(ListAll(m.get(), "f", 1000, &pages).size(), static_cast<size_t>(ok.load()));
  m.reset();
  m = OpenStore(tmp.path(), 1 << 20);
  ASSERT_NE(m, nullptr);
  auto after = ListAll(m.get(), "f", 1000, &pages);
  EXPECT_EQ(after.size(), static_cast<size_t>(ok.load()));
  // Removing makes room again.
  for (size_t i = 0; i < after.size() / 2; ++i) ASSERT_OK(m->RemoveObject("f/" + after[i].name));
  Inode n = InlineInode(12000);
  EXPECT_OK(m->InsertObject("f/again", &n));
}

TEST(MetaStore, UnknownFormatIsCorruption) {
  testing::TempDir tmp;
  { ASSERT_NE(OpenStore(tmp.path()), nullptr); }
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  ASSERT_EQ(mdb_env_open(env, tmp.path().c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
  std::string k = "format", v = "shoal-meta-99";
  MDB_val key{k.size(), k.data()}, val{v.size(), v.data()};
  ASSERT_EQ(mdb_put(txn, dbi, &key, &val, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  EXPECT_CODE(MetaStore::Open(tmp.path(), kMapSize), kCorruption);
}

TEST(LmdbStatus, MapsCodes) {
  EXPECT_OK(LmdbStatus(0, "x"));
  EXPECT_CODE(LmdbStatus(MDB_NOTFOUND, "x"), kNotFound);
  EXPECT_CODE(LmdbStatus(MDB_MAP_FULL, "x"), kNoSpace);
  EXPECT_CODE(LmdbStatus(MDB_CORRUPTED, "x"), kCorruption);
  EXPECT_CODE(LmdbStatus(MDB_READERS_FULL, "x"), kUnavailable);
  EXPECT_CODE(LmdbStatus(MDB_BAD_VALSIZE, "x"), kInvalidArgument);
  EXPECT_CODE(LmdbStatus(ENOSPC, "x"), kNoSpace);
  EXPECT_CODE(LmdbStatus(EACCES, "x"), kPermissionDenied);
  EXPECT_NE(LmdbStatus(MDB_MAP_FULL, "put").ToString().find("metadata_map_size"),
            std::string::npos);
}

}  // namespace
}  // namespace shoal::engine

namespace shoal::engine {
namespace {

constexpr uint64_t kE1 = uint64_t{1} << 40;  // the first version of epoch 1
constexpr uint64_t kE2 = uint64_t{2} << 40;

// Versioned records (engine/meta_shards.cc): versions assigned above the floor and above what
// the path had, tombstones that outvote older records, merges by version in any order, shard
// summaries equal exactly when the contents are, tombstones collected below a version.
TEST(MetaStore, VersionedRecordsMergeByVersionAndTombstonesWin) {
  testing::TempDir tmp;
  auto a = OpenStore(tmp.Sub("a"));
  auto b = OpenStore(tmp.Sub("b"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Inode x = InlineInode();
  auto v1 = a->InsertVersioned(3, "d/x", &x, 0, kE1);
  ASSERT_OK(v1);
  EXPECT_EQ(*v1, kE1);
  Inode again = InlineInode();
  EXPECT_CODE(a->InsertVersioned(3, "d/x", &again, 0, kE1), kAlreadyExists);
  // A replica given the primary's version; an older given version is refused.
  Inode xr = InlineInode();
  ASSERT_OK(b->InsertVersioned(3, "d/x", &xr, *v1, kE1));
  // The same record again (a catch-up brought it before the seal's insert, or a retry): done,
  // nothing changes; anything older than what is here is still refused.
  Inode xr2 = InlineInode();
  auto same = b->InsertVersioned(3, "d/x", &xr2, *v1, kE1);
  ASSERT_OK(same);
  EXPECT_EQ(*same, *v1);
  auto s1 = a->Summaries(8), s2 = b->Summaries(8);
  ASSERT_OK(s1);
  ASSERT_OK(s2);
  EXPECT_EQ(*s1, *s2);
  EXPECT_EQ((*s1)[3].count, 1u);
  // a removes (tombstone v1 + 1); b missed it. Merging b's record into a changes nothing;
  // merging a's tombstone into b removes the object there.
  auto rm = a->RemoveVersioned(3, "d/x", 0, 0, kE1);
  ASSERT_OK(rm);
  EXPECT_TRUE(rm->first.has_value());
  EXPECT_EQ(rm->second, *v1 + 1);
  std::string next;
  auto from_b = b->ShardPage(3, "", 100, &next);
  ASSERT_OK(from_b);
  ASSERT_EQ(from_b->size(), 1u);
  ASSERT_OK(a->Apply(3, (*from_b)[0]));
  EXPECT_CODE(a->GetInode("d/x"), kNotFound) << "an older record brought a removed object back";
  auto from_a = a->ShardPage(3, "", 100, &next);
  ASSERT_OK(from_a);
  ASSERT_EQ(from_a->size(), 1u);
  EXPECT_TRUE((*from_a)[0].tombstone);
  std::vector<Status> conflicts;
  ASSERT_OK(b->ApplyAll(3, *from_a, &conflicts));
  EXPECT_TRUE(conflicts.empty());
  EXPECT_CODE(b->GetInode("d/x"), kNotFound);
  EXPECT_EQ(*a->Summaries(8), *b->Summaries(8));
  // A remove given a version where this copy never had the record still leaves the tombstone.
  auto blind = b->RemoveVersioned(3, "d/never", 0, kE1 + 5, kE1);
  ASSERT_OK(blind);
  EXPECT_FALSE(blind->first.has_value());
  Inode late = InlineInode();
  EXPECT_CODE(b->InsertVersioned(3, "d/never", &late, kE1 + 4, kE1), kFailedPrecondition);
  // A create in a later epoch outvotes the tombstone.
  Inode reborn = InlineInode();
  auto v2 = a->InsertVersioned(3, "d/x", &reborn, 0, kE2);
  ASSERT_OK(v2);
  EXPECT_EQ(*v2, kE2);
  // Tombstones below epoch 2 go; the live record stays.
  auto collected = b->CollectTombstones(8, kE2);
  ASSERT_OK(collected);
  EXPECT_EQ(*collected, 2u);
  EXPECT_EQ((*b->Summaries(8))[3].count, 0u);
  EXPECT_EQ(*a->CollectTombstones(8, kE2), 0u);
  ASSERT_OK(a->GetInode("d/x"));
  // Dropping a shard removes its records and their directory entries.
  ASSERT_OK(a->DropShard(3));
  EXPECT_CODE(a->GetInode("d/x"), kNotFound);
  EXPECT_EQ((*a->Summaries(8))[3].count, 0u);
}

// At an equal version a tombstone beats a record (a remove assigned the version a replica's
// replace had already taken), the two do not look alike in the summaries, and collecting
// tombstones leaves a path that was written again meanwhile alone.
TEST(MetaStore, EqualVersionsFavourTheTombstoneAndCollectionRechecks) {
  testing::TempDir tmp;
  auto a = OpenStore(tmp.Sub("a"));
  auto b = OpenStore(tmp.Sub("b"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Inode x = InlineInode(), xb = InlineInode();
  ASSERT_OK(a->InsertVersioned(1, "d/x", &x, kE1 + 1, kE1));  // live at v on a
  ASSERT_OK(b->InsertVersioned(1, "d/x", &xb, kE1, kE1));
  ASSERT_OK(b->RemoveVersioned(1, "d/x", 0, kE1 + 1, kE1));  // tombstone at v on b
  EXPECT_NE(*a->Summaries(4), *b->Summaries(4)) << "a record and a tombstone look alike";
  // A remove given v where this copy has the record at v removes it.
  Inode y = InlineInode();
  ASSERT_OK(a->InsertVersioned(1, "d/y", &y, kE1 + 3, kE1));
  auto r = a->RemoveVersioned(1, "d/y", 0, kE1 + 3, kE1);
  ASSERT_OK(r);
  EXPECT_TRUE(r->first.has_value());
  EXPECT_CODE(a->GetInode("d/y"), kNotFound);
  // Merging both ways ends with the tombstone on both.
  std::string next;
  auto from_b = b->ShardPage(1, "", 100, &next);
  ASSERT_OK(from_b);
  std::vector<Status> conflicts;
  ASSERT_OK(a->ApplyAll(1, *from_b, &conflicts));
  EXPECT_CODE(a->GetInode("d/x"), kNotFound);
  auto from_a = a->ShardPage(1, "", 100, &next);
  ASSERT_OK(from_a);
  ASSERT_OK(b->ApplyAll(1, *from_a, &conflicts));
  EXPECT_CODE(b->GetInode("d/x"), kNotFound);
  EXPECT_EQ(*a->Summaries(4), *b->Summaries(4));
  // Written again in a later epoch: collection below that epoch keeps the new record indexed.
  Inode again = InlineInode();
  ASSERT_OK(a->InsertVersioned(1, "d/x", &again, 0, kE2));
  auto collected = a->CollectTombstones(4, kE2);
  ASSERT_OK(collected);
  EXPECT_EQ(*collected, 1u);  // d/y's
  auto page = a->ShardPage(1, "", 100, &next);
  ASSERT_OK(page);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].path, "d/x");
  EXPECT_FALSE((*page)[0].tombstone);
  EXPECT_EQ((*a->Summaries(4))[1].count, 1u);
}

TEST(MetaStore, MembershipRecordAndUnversionedRecordsAreKept) {
  testing::TempDir tmp;
  {
    auto m = OpenStore(tmp.path());
    ASSERT_NE(m, nullptr);
    auto none = m->LoadMembership();
    ASSERT_OK(none);
    EXPECT_EQ(none->epoch, 0u);
    auto plan = PlanOpen({{"00000000000000000000000000000001", "n", {}, {}}}, 1, {}, 4);
    ASSERT_OK(plan);
    ASSERT_OK(m->SaveMembership(plan->next));
    Inode old = InlineInode();
    ASSERT_OK(m->InsertObject("legacy/a", &old));  // a record from before versions
  }
  auto m = OpenStore(tmp.path());  // reopened: the clean close's stamp skips the page walk
  ASSERT_NE(m, nullptr);
  auto rec = m->LoadMembership();
  ASSERT_OK(rec);
  EXPECT_EQ(rec->epoch, 1u);
  uint64_t skipped = 0;
  auto indexed = m->IndexUnversioned(4, &skipped);
  ASSERT_OK(indexed);
  EXPECT_EQ(*indexed, 1u);
  EXPECT_EQ(skipped, 0u);
  EXPECT_EQ((*m->Summaries(4))[ShardOf("legacy/a", 4)].count, 1u);
}

// Two keyspaces of one environment (a store's local objects and its shard copies): the same
// path in each is two records; a write of both commits together or not at all.
TEST(MetaStore, KeyspacesOfOneEnvironmentAreApartAndCommitTogether) {
  testing::TempDir tmp;
  {
    auto local = OpenStore(tmp.Sub("meta"));
    ASSERT_NE(local, nullptr);
    auto ring = MetaStore::OpenKeyspace(local.get(), "ring.");
    ASSERT_OK(ring);
    EXPECT_TRUE((*ring)->SharesEnvironment(*local));
    auto other = OpenStore(tmp.Sub("other"));
    EXPECT_FALSE((*ring)->SharesEnvironment(*other));

    Inode chunks = LocalInode(0, 0, 4096);
    Inode record = StripedInode(7, 1);
    uint64_t version = 0;
    ASSERT_OK(local->InsertObject("c/0000000000000007", &chunks, "origin", [&](MDB_txn* txn) {
      return (*ring)->InsertVersionedTxn(txn, 3, "c/0000000000000007", &record, 0, kE1, &version);
    }));
    EXPECT_EQ(version, kE1);
    auto a = local->GetInode("c/0000000000000007");
    auto b = (*ring)->GetInode("c/0000000000000007");
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_FALSE(a->is_striped);
    EXPECT_TRUE(b->is_striped);
    EXPECT_EQ((*(*ring)->Summaries(8))[3].count, 1u);
    EXPECT_EQ((*local->Summaries(8))[3].count, 0u) << "the shard index is the keyspace's own";

    // The record's path is taken in the shard: the second write fails, and the local object
    // it was to commit with is not there either.
    Inode chunks2 = LocalInode(0, 8192, 4096);
    Inode record2 = StripedInode(8, 1);
    EXPECT_CODE(local->InsertObject("c/0000000000000008", &chunks2, "origin", [&](MDB_txn* txn) {
      return (*ring)->InsertVersionedTxn(txn, 3, "c/0000000000000007", &record2, 0, kE1, &version);
    }), kAlreadyExists);
    EXPECT_CODE(local->GetInode("c/0000000000000008"), kNotFound);
    bool listed = false;
    ASSERT_OK(local->ForEachExtent([&](uint32_t, uint64_t offset, uint32_t) {
      listed |= offset == 8192;
    }));
    EXPECT_FALSE(listed);
  }
  // Both survive a reopen.
  auto local = OpenStore(tmp.Sub("meta"));
  ASSERT_NE(local, nullptr);
  auto ring = MetaStore::OpenKeyspace(local.get(), "ring.");
  ASSERT_OK(ring);
  ASSERT_OK(local->GetInode("c/0000000000000007"));
  ASSERT_OK((*ring)->GetInode("c/0000000000000007"));
}

// A store of the format before kept its shard in an environment of its own: the first Open
// copies it into the keyspace (what the keyspace held is replaced: an import a crash cut short
// starts over) and removes the old directory.
// A merged record whose name conflicts with another shard's record here ("k" an object, "k/x"
// merged into shard 5) is kept detached: readable by path, counted in its shard, not listed;
// removing it leaves the other record and its directory entries as they were, and the path can
// then be merged or removed again normally.
TEST(MetaStore, AMergedRecordConflictingWithAnotherShardsIsKeptDetached) {
  testing::TempDir tmp;
  auto m = OpenStore(tmp.path());
  ASSERT_NE(m, nullptr);
  Inode k = InlineInode(10);
  ASSERT_OK(m->InsertVersioned(3, "k", &k, 0, kE1));
  Inode y = InlineInode(20);
  ASSERT_OK(m->InsertVersioned(3, "d/y", &y, 0, kE1));
  Inode x = InlineInode(33);
  std::vector<MetaStore::Versioned> recs = {{"k/x", kE1 + 7, false, EncodeInode(x)},
                                            {"d/y/z", kE1 + 8, false, EncodeInode(x)}};
  std::vector<Status> conflicts;
  ASSERT_OK(m->ApplyAll(5, recs, &conflicts));
  EXPECT_TRUE(conflicts.empty());
  for (const std::string p : {"k/x", "d/y/z"}) {
    auto got = m->GetInode(p);
    ASSERT_OK(got) << p;
    EXPECT_EQ(got->size, 33u) << p;
  }
  auto sums = m->Summaries(8);
  ASSERT_OK(sums);
  EXPECT_EQ((*sums)[5].count, 2u);
  int pages = 0;
  EXPECT_EQ(Names(ListAll(m.get(), "", 1000, &pages)), (std::vector<std::string>{"d", "k"}));
  EXPECT_EQ(Names(ListAll(m.get(), "d", 1000, &pages)), (std::vector<std::string>{"y"}));
  EXPECT_CODE(m->List("k", {}), kNotFound);  // "k" is an object here
  // Removing the detached records leaves the others' entries alone.
  ASSERT_OK(m->RemoveVersioned(5, "k/x", 0, 0, kE1));
  ASSERT_OK(m->RemoveVersioned(5, "d/y/z", 0, 0, kE1));
  EXPECT_CODE(m->GetInode("k/x"), kNotFound);
  EXPECT_CODE(m->GetInode("d/y/z"), kNotFound);
  ASSERT_OK(m->GetInode("k"));
  ASSERT_OK(m->GetInode("d/y"));
  EXPECT_EQ(Names(ListAll(m.get(), "d", 1000, &pages)), (std::vector<std::string>{"y"}));
  // With "k" gone, "k/x" merges as any record (attached, listed).
  ASSERT_OK(m->RemoveVersioned(3, "k", 0, 0, kE1));
  std::vector<MetaStore::Versioned> again = {{"k/x", kE2, false, EncodeInode(x)}};
  ASSERT_OK(m->ApplyAll(5, again, &conflicts));
  EXPECT_EQ(Names(ListAll(m.get(), "k", 1000, &pages)), (std::vector<std::string>{"x"}));
}

TEST(MetaStore, AShardOfItsOwnEnvironmentIsImportedOnceThenRemoved) {
  testing::TempDir tmp;
  const std::string old_dir = tmp.Sub("ring");
  std::vector<ShardSummary> sums;
  {
    auto old = OpenStore(old_dir);
    ASSERT_NE(old, nullptr);
    auto plan = PlanOpen({{"00000000000000000000000000000001", "n", {}, {}}}, 1, {}, 8);
    ASSERT_OK(plan);
    ASSERT_OK(old->SaveMembership(plan->next));
    // More records than one import transaction copies (applied a shard at a time: one commit
    // each).
    std::vector<std::vector<MetaStore::Versioned>> by_shard(8);
    for (int i = 0; i < 25000; ++i) {
      const std::string path = fmt::format("d/{}", i);
      by_shard[ShardOf(path, 8)].push_back({path, kE1 + i, false, EncodeInode(InlineInode(3))});
    }
    for (uint32_t shard = 0; shard < 8; ++shard) {
      std::vector<Status> conflicts;
      ASSERT_OK(old->ApplyAll(shard, by_shard[shard], &conflicts));
      ASSERT_TRUE(conflicts.empty());
    }
    ASSERT_OK(old->RemoveVersioned(ShardOf("d/5", 8), "d/5", 0, 0, kE1));
    sums = *old->Summaries(8);
  }
  {
    auto local = OpenStore(tmp.Sub("meta"));
    ASSERT_NE(local, nullptr);
    // What an import cut short left in the keyspace: replaced, not merged.
    auto partial = MetaStore::OpenKeyspace(local.get(), "ring.");
    ASSERT_OK(partial);
    Inode stray = InlineInode();
    ASSERT_OK((*partial)->InsertVersioned(0, "stray", &stray, 0, kE1));
  }
  auto local = OpenStore(tmp.Sub("meta"));
  ASSERT_NE(local, nullptr);
  auto ring = MetaStore::OpenKeyspace(local.get(), "ring.", old_dir);
  ASSERT_OK(ring);
  EXPECT_FALSE(std::filesystem::exists(old_dir));
  EXPECT_FALSE(std::filesystem::exists(old_dir + ".imported"));
  EXPECT_EQ(*(*ring)->Summaries(8), sums);
  EXPECT_CODE((*ring)->GetInode("stray"), kNotFound);
  EXPECT_CODE((*ring)->GetInode("d/5"), kNotFound);
  auto got = (*ring)->GetInode("d/24999");
  ASSERT_OK(got);
  EXPECT_EQ(got->inline_data, "xxx");
  auto rec = (*ring)->LoadMembership();
  ASSERT_OK(rec);
  EXPECT_EQ(rec->epoch, 1u);
  auto page = (*ring)->List("d", ListOptions{"", 100000});
  ASSERT_OK(page);
  EXPECT_EQ(page->entries.size(), 24999u);
  // A crash after the rename left the renamed copy: removed, nothing imported from it.
  ring->reset();
  std::filesystem::create_directory(old_dir + ".imported");
  std::ofstream(old_dir + ".imported/data.mdb") << "whatever";
  auto again = MetaStore::OpenKeyspace(local.get(), "ring.", old_dir);
  ASSERT_OK(again);
  EXPECT_FALSE(std::filesystem::exists(old_dir + ".imported"));
  EXPECT_EQ(*(*again)->Summaries(8), sums);
}

// Chunk objects of the local keyspace have no directory entries and keep their origin in
// their inode (format 5); FlattenChunkObjects brings a keyspace of the layout before (origins
// in their own database, "c" and "c/<uid>" entries) to it, in batches (12,000 objects: more
// than one), and a second run finds nothing to do. Other local objects keep their entries.
// The names and origins of the chunk objects WriteFormat4ChunkObjects writes.
std::string OldChunkName(int i) { return fmt::format("c/{:016x}", 0x8000000000000000ull + i); }
std::string OldOrigin(int i) { return fmt::format("{:016x} user/{}", 7, i); }

// Writes chunk objects 0..n-1 into the local keyspace at `dir` (a MetaStore opened and closed
// there before) in the layout before format 5, with raw LMDB in one transaction: an inode
// without origin, the origin in the "origins" database, a directory entry under "c" each.
void WriteFormat4ChunkObjects(const std::string& dir, int n) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  mdb_env_set_mapsize(env, 256ull << 20);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi inodes = 0, origins = 0, dirents = 0;
  ASSERT_EQ(mdb_dbi_open(txn, "inodes", 0, &inodes), 0);
  ASSERT_EQ(mdb_dbi_open(txn, "origins", MDB_CREATE, &origins), 0);
  ASSERT_EQ(mdb_dbi_open(txn, "dirents", 0, &dirents), 0);
  auto put = [&](MDB_dbi db, const std::string& k, const std::string& v) {
    MDB_val kv{k.size(), const_cast<char*>(k.data())}, vv{v.size(), const_cast<char*>(v.data())};
    ASSERT_EQ(mdb_put(txn, db, &kv, &vv, 0), 0);
  };
  for (int i = 0; i < n; ++i) {
    Inode bare = LocalInode(1, uint64_t{4096} * i, 4096);
    put(inodes, OldChunkName(i), EncodeInode(bare));
    put(origins, OldChunkName(i), OldOrigin(i));
    std::string dk("c");
    dk.push_back('\0');
    dk += OldChunkName(i).substr(2);
    std::string dv(9, '\0');
    const uint64_t size = 4096;
    std::memcpy(dv.data() + 1, &size, 8);
    put(dirents, dk, dv);
  }
  std::string ck("\0c", 2), cv(9, '\0');
  cv[0] = 1;
  const uint64_t count = n;
  std::memcpy(cv.data() + 1, &count, 8);
  put(dirents, ck, cv);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

TEST(MetaStore, ChunkObjectsAreFlatAndAnOlderKeyspaceIsFlattenedInBatches) {
  testing::TempDir tmp;
  const std::string dir = tmp.Sub("meta");
  constexpr int kObjects = 12000;
  auto name = OldChunkName;
  auto origin = OldOrigin;
  {
    auto m = OpenStore(dir, 256ull << 20);
    ASSERT_NE(m, nullptr);
    Inode user = LocalInode(0, 0, 4096);
    ASSERT_OK(m->InsertObject("u/x", &user));
    for (int i = 0; i < kObjects; ++i) {
      Inode n = LocalInode(1, uint64_t{4096} * i, 4096);
      ASSERT_OK(m->InsertObject(name(i), &n, origin(i)));
    }
    // Format 5: no directory entry for a chunk object, its origin in the inode.
    auto top = m->List("", {});
    ASSERT_OK(top);
    ASSERT_EQ(top->entries.size(), 1u);
    EXPECT_EQ(top->entries[0].name, "u");
    auto o = m->GetOrigin(name(5));
    ASSERT_OK(o);
    EXPECT_EQ(*o, origin(5));
    EXPECT_CODE(m->GetOrigin("u/x"), kNotFound);
  }
  // Put the keyspace back into the layout before, with raw LMDB.
  ASSERT_NO_FATAL_FAILURE(WriteFormat4ChunkObjects(dir, kObjects));
  auto m = OpenStore(dir, 256ull << 20);
  ASSERT_NE(m, nullptr);
  EXPECT_CODE(m->GetOrigin(name(5)), kNotFound);  // still in the old database
  auto changed = m->FlattenChunkObjects();
  ASSERT_OK(changed);
  EXPECT_EQ(*changed, 2u * kObjects);  // every origin moved, every entry removed
  auto again = m->FlattenChunkObjects();
  ASSERT_OK(again);
  EXPECT_EQ(*again, 0u);
  for (int i : {0, 5, kObjects - 1}) {
    auto o = m->GetOrigin(name(i));
    ASSERT_OK(o);
    EXPECT_EQ(*o, origin(i));
  }
  auto top = m->List("", {});
  ASSERT_OK(top);
  ASSERT_EQ(top->entries.size(), 1u);
  EXPECT_EQ(top->entries[0].name, "u");
  // Every chunk object is listed from the inodes, in pages.
  std::string after;
  int listed = 0;
  for (;;) {
    auto page = m->ListChunkObjects(after, 5000);
    ASSERT_OK(page);
    for (const DirEntry& e : page->entries) {
      ASSERT_EQ("c/" + e.name, name(listed)) << listed;
      EXPECT_EQ(e.size, 4096u);
      listed++;
    }
    if (!page->truncated) break;
    after = page->next_start_after;
  }
  EXPECT_EQ(listed, kObjects);
  // Removing one frees its extent and leaves no entry behind.
  ASSERT_OK(m->RemoveObject(name(3)));
  EXPECT_CODE(m->GetInode(name(3)), kNotFound);
  auto page = m->ListChunkObjects("", 10);
  ASSERT_OK(page);
  EXPECT_EQ("c/" + page->entries[3].name, name(4));
}

// FlattenChunkObjects' promise that a crash mid-way leaves work the next call finishes: the
// flattening runs in a child process killed (SIGKILL) at a random instant of it; the next
// call, in this process, finishes it, and every chunk object keeps its inode and origin.
// Trials go on until three kills landed between the first and the last of its transactions.
TEST(MetaStore, AFlattenKilledAtAnyInstantIsFinishedByTheNext) {
  constexpr int kObjects = 25000;  // 3 transactions of origins, 3 of entries
  std::mt19937_64 rng(20261202);
  auto prepare = [&](const std::string& dir) {
    {
      auto m = OpenStore(dir, 256ull << 20);
      ASSERT_NE(m, nullptr);
      Inode user = LocalInode(0, 0, 4096);
      ASSERT_OK(m->InsertObject("u/x", &user));
    }
    ASSERT_NO_FATAL_FAILURE(WriteFormat4ChunkObjects(dir, kObjects));
  };
  auto flatten_in_child = [](const std::string& dir) -> pid_t {
    const pid_t pid = fork();
    if (pid == 0) {
      auto m = MetaStore::Open(dir, 256ull << 20);
      _exit(m.ok() && (*m)->FlattenChunkObjects().ok() ? 0 : 1);
    }
    return pid;
  };
  // An uninterrupted run in a child: how long the kills have to land in.
  std::chrono::microseconds whole{};
  {
    testing::TempDir tmp;
    const std::string dir = tmp.Sub("meta");
    ASSERT_NO_FATAL_FAILURE(prepare(dir));
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = flatten_in_child(dir);
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    whole = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
  }
  int trials = 0, midway = 0;
  for (; trials < 60 && midway < 3; ++trials) {
    SCOPED_TRACE(fmt::format("trial {}", trials));
    testing::TempDir tmp;
    const std::string dir = tmp.Sub("meta");
    ASSERT_NO_FATAL_FAILURE(prepare(dir));
    const pid_t pid = flatten_in_child(dir);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (whole.count() + 1)));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    auto m = OpenStore(dir, 256ull << 20);
    ASSERT_NE(m, nullptr);
    // Between the first and the last transaction: an origin moved, "c" still listed.
    auto top = m->List("", {});
    ASSERT_OK(top);
    if (m->GetOrigin(OldChunkName(0)).ok() && top->entries.size() == 2) midway++;
    ASSERT_OK(m->FlattenChunkObjects());
    auto again = m->FlattenChunkObjects();
    ASSERT_OK(again);
    EXPECT_EQ(*again, 0u);
    for (int i = 0; i < kObjects; ++i) {
      auto o = m->GetOrigin(OldChunkName(i));
      ASSERT_OK(o) << i;
      ASSERT_EQ(*o, OldOrigin(i));
    }
    top = m->List("", {});
    ASSERT_OK(top);
    ASSERT_EQ(top->entries.size(), 1u);
    EXPECT_EQ(top->entries[0].name, "u");
    EXPECT_OK(m->GetInode("u/x"));
    int listed = 0;
    std::string after;
    for (;;) {
      auto page = m->ListChunkObjects(after, 10000);
      ASSERT_OK(page);
      listed += static_cast<int>(page->entries.size());
      if (!page->truncated) break;
      after = page->next_start_after;
    }
    EXPECT_EQ(listed, kObjects);
  }
  std::printf("flatten of %d chunk objects: %lld us uninterrupted; %d kills, %d mid-way\n",
              kObjects, static_cast<long long>(whole.count()), trials, midway);
  EXPECT_GE(midway, 3) << "no kill landed mid-way in " << trials << " trials";
}

}  // namespace
}  // namespace shoal::engine
