// The object API end to end on real files, run once per I/O backend (io_uring and POSIX).
#include "shoal/engine.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <lmdb.h>

#include "engine/inode.h"
#include "engine/lmdb_txn.h"
#include "engine/object_store.h"
#include "engine/store_layout.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = testing::kTestChunk;

// Turns a store of this format back into format 3's layout, as a shoal of that format wrote
// it: the shard keyspace's databases ("ring.<name>" in meta/) moved into an LMDB environment of
// their own in ring/ (named "<name>"); the local chunk objects' origins moved out of their
// inodes into the "origins" database, and directory entries for them ("c", "c/<uid>"); FORMAT
// 3. Raw LMDB (and the inode codec), so nothing of the code under test writes it.
void DowngradeToFormat3(const std::string& store) {
  auto check = [](int rc, const char* what) { ASSERT_EQ(rc, 0) << what << ": " << mdb_strerror(rc); };
  std::filesystem::create_directory(store + "/ring");
  MDB_env *from = nullptr, *to = nullptr;
  for (auto [env, dir] : {std::pair{&from, store + "/meta"}, std::pair{&to, store + "/ring"}}) {
    check(mdb_env_create(env), "create");
    mdb_env_set_maxdbs(*env, 16);
    mdb_env_set_mapsize(*env, 1ull << 30);
    check(mdb_env_open(*env, dir.c_str(), 0, 0600), "open");
  }
  MDB_txn *rt = nullptr, *wt = nullptr;
  check(mdb_txn_begin(from, nullptr, 0, &rt), "begin");
  check(mdb_txn_begin(to, nullptr, 0, &wt), "begin");
  for (const char* name : {"inodes", "dirents", "extents", "meta", "shardidx", "shardsum", "origins"}) {
    MDB_dbi src = 0, dst = 0;
    check(mdb_dbi_open(rt, (std::string("ring.") + name).c_str(), 0, &src), name);
    check(mdb_dbi_open(wt, name, MDB_CREATE, &dst), name);
    MDB_cursor* cur = nullptr;
    check(mdb_cursor_open(rt, src, &cur), "cursor");
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      check(mdb_put(wt, dst, &k, &v, 0), "put");
    }
    mdb_cursor_close(cur);
    check(mdb_drop(rt, src, 1), "drop");
  }
  // The local keyspace as formats 1-4 kept it.
  MDB_dbi inodes = 0, origins = 0, dirents = 0;
  check(mdb_dbi_open(rt, "inodes", 0, &inodes), "inodes");
  check(mdb_dbi_open(rt, "origins", MDB_CREATE, &origins), "origins");
  check(mdb_dbi_open(rt, "dirents", MDB_CREATE, &dirents), "dirents");
  std::vector<std::pair<std::string, std::string>> objects;
  {
    MDB_cursor* cur = nullptr;
    check(mdb_cursor_open(rt, inodes, &cur), "cursor");
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      objects.emplace_back(std::string(static_cast<char*>(k.mv_data), k.mv_size),
                           std::string(static_cast<char*>(v.mv_data), v.mv_size));
    }
    mdb_cursor_close(cur);
  }
  uint64_t chunk_objects = 0;
  for (auto& [key, value] : objects) {
    if (!engine::IsChunkObjectName(key)) continue;
    auto inode = engine::DecodeInode(value, key);
    ASSERT_TRUE(inode.ok()) << inode.status();
    ASSERT_FALSE(inode->origin.empty()) << key;
    MDB_val ok = {key.size(), key.data()}, ov = {inode->origin.size(), inode->origin.data()};
    check(mdb_put(rt, origins, &ok, &ov, 0), "put origin");
    inode->origin.clear();
    std::string bare = engine::EncodeInode(*inode);
    MDB_val iv = {bare.size(), bare.data()};
    check(mdb_put(rt, inodes, &ok, &iv, 0), "put inode");
    std::string dk = engine::lmdb::DirentKey("c", key.substr(2)),
                dv = engine::lmdb::EncodeDirent(engine::lmdb::Dirent{false, inode->size});
    MDB_val dkv = {dk.size(), dk.data()}, dvv = {dv.size(), dv.data()};
    check(mdb_put(rt, dirents, &dkv, &dvv, 0), "put dirent");
    chunk_objects++;
  }
  ASSERT_GT(chunk_objects, 0u);
  std::string ck = engine::lmdb::DirentKey("", "c"), cv = engine::lmdb::EncodeDirent(engine::lmdb::Dirent{true, chunk_objects});
  MDB_val ckv = {ck.size(), ck.data()}, cvv = {cv.size(), cv.data()};
  check(mdb_put(rt, dirents, &ckv, &cvv, 0), "put dirent");
  check(mdb_txn_commit(wt), "commit");
  check(mdb_txn_commit(rt), "commit");
  mdb_env_close(from);
  mdb_env_close(to);
  std::ofstream(store + "/FORMAT") << "shoal-store 3\n";
}

class EngineTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  Options MakeOptions() const {
    return testing::TestOptions(dir_.Sub("store"), GetParam(), 8);
  }
  void Open() {
    engine_.reset();
    auto e = Engine::Open(MakeOptions());
    ASSERT_OK(e);
    engine_ = std::move(e).value();
  }
  void SetUp() override { Open(); }

  std::vector<std::byte> ReadAll(const std::string& path) {
    auto info = engine_->Stat(path);
    EXPECT_OK(info);
    if (!info.ok()) return {};
    std::vector<std::byte> out(info->size);
    auto n = engine_->Read(path, 0, out);
    EXPECT_OK(n);
    if (n.ok()) {
      EXPECT_EQ(*n, info->size);
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(EngineTest, ReportsBackend) {
  EXPECT_EQ(engine_->io_backend(), GetParam() == IoBackend::kPosix ? "posix" : "io_uring");
}

// One setting for every rank of a job: {rank}, {local_rank} and {node} are filled in, and
// missing parents are made.
TEST_P(EngineTest, StoreDirTemplateIsFilledAndParentsAreMade) {
  Options o = testing::TestOptions(dir_.Sub("jobs/a/{node}-r{rank}-l{local_rank}"), GetParam(), 8);
  o.rank = 0;
  o.world_size = 1;
  o.node = "n7";
  auto e = Engine::Open(o);
  ASSERT_OK(e);
  ASSERT_OK((*e)->Put("x", std::string_view("y")));
  EXPECT_TRUE(std::filesystem::is_directory(dir_.Sub("jobs/a/n7-r0-l0/meta")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("jobs/a/{node}-r{rank}-l{local_rank}")));
}

TEST_P(EngineTest, RoundTripsAtChunkBoundaries) {
  const std::vector<uint64_t> sizes = {0, 1, 100, 2048, 2049, 4096, kChunk - 1, kChunk,
                                       kChunk + 1, 7 * kChunk + 123, 16 * kChunk};
  for (uint64_t size : sizes) {
    std::string path = "rt/size-" + std::to_string(size);
    auto data = Pattern(size, size);
    ASSERT_OK(engine_->Put(path, data));
    auto info = engine_->Stat(path);
    ASSERT_OK(info);
    EXPECT_EQ(info->size, size);
    EXPECT_EQ(info->is_inline, size <= 2048);
    EXPECT_EQ(ReadAll(path), data) << "size " << size;
  }
  // Everything survives a reopen.
  Open();
  for (uint64_t size : sizes) {
    EXPECT_EQ(ReadAll("rt/size-" + std::to_string(size)), Pattern(size, size)) << size;
  }
}

TEST_P(EngineTest, ReadsArbitraryRangesIntoUnalignedBuffers) {
  const uint64_t size = 5 * kChunk + 777;
  auto data = Pattern(size, 9);
  ASSERT_OK(engine_->Put("r/obj", data));
  std::vector<std::byte> buf(size + 64);
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 1}, {1, kChunk}, {kChunk - 3, 10}, {2 * kChunk, kChunk}, {size - 5, 5},
           {12345, 3 * kChunk + 17}, {size, 10}}) {
    std::span<std::byte> dst(buf.data() + 3, len);  // deliberately misaligned
    auto n = engine_->Read("r/obj", off, dst);
    ASSERT_OK(n);
    uint64_t want = std::min(len, size - off);
    ASSERT_EQ(*n, want);
    EXPECT_TRUE(std::equal(dst.begin(), dst.begin() + want, data.begin() + off)) << off;
  }
  // Reading past the end is an error, at the end a zero-byte read.
  EXPECT_CODE(engine_->Read("r/obj", size + 1, buf), kInvalidArgument);
}

TEST_P(EngineTest, ParallelWritersFillDisjointRanges) {
  const uint64_t size = 8 * kChunk + 1000;
  auto data = Pattern(size, 3);
  ASSERT_OK(engine_->Create("p/obj", {.size = size}));
  // 7 writers, each a stripe of odd-sized pieces crossing chunk boundaries.
  const uint64_t piece = 10007;
  std::vector<std::thread> ts;
  for (int t = 0; t < 7; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t off = t * piece; off < size; off += 7 * piece) {
        uint64_t n = std::min(piece, size - off);
        EXPECT_OK(engine_->Write("p/obj", off, data.data() + off, n));
      }
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_OK(engine_->Seal("p/obj"));
  EXPECT_EQ(ReadAll("p/obj"), data);
}

TEST_P(EngineTest, UnknownSizeObjectsAndHoles) {
  ASSERT_OK(engine_->Create("h/obj"));
  auto a = Pattern(100, 1);
  ASSERT_OK(engine_->Write("h/obj", 3 * kChunk + 50, a));  // chunks 0..2 never written
  ASSERT_OK(engine_->Write("h/obj", 10, a.data(), 20));
  ASSERT_OK(engine_->Seal("h/obj"));
  auto got = ReadAll("h/obj");
  ASSERT_EQ(got.size(), 3 * kChunk + 150);
  std::vector<std::byte> want(got.size());
  std::copy(a.begin(), a.begin() + 20, want.begin() + 10);
  std::copy(a.begin(), a.end(), want.begin() + 3 * kChunk + 50);
  EXPECT_EQ(got, want);
}

TEST_P(EngineTest, UnsealedObjectsAreInvisible) {
  ASSERT_OK(engine_->Create("u/obj"));
  ASSERT_OK(engine_->Write("u/obj", 0, Pattern(3 * kChunk, 1)));
  EXPECT_CODE(engine_->Stat("u/obj"), kNotFound);
  std::vector<std::byte> buf(10);
  EXPECT_CODE(engine_->Read("u/obj", 0, buf), kNotFound);
  EXPECT_CODE(engine_->List("u"), kNotFound);
  ASSERT_OK(engine_->Seal("u/obj"));
  EXPECT_OK(engine_->Stat("u/obj"));
  auto page = engine_->List("u");
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].size, 3 * kChunk);
}

TEST_P(EngineTest, SealedObjectsAreImmutable) {
  ASSERT_OK(engine_->Put("i/obj", "content"));
  EXPECT_CODE(engine_->Write("i/obj", 0, "x", 1), kFailedPrecondition);
  EXPECT_CODE(engine_->Create("i/obj"), kAlreadyExists);
  EXPECT_CODE(engine_->Put("i/obj", "other"), kAlreadyExists);
  EXPECT_CODE(engine_->Seal("i/obj"), kFailedPrecondition);
  std::vector<std::byte> buf(7);
  ASSERT_OK(engine_->Read("i/obj", 0, buf));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data()), 7), "content");
}

TEST_P(EngineTest, RefusesBadWrites) {
  ASSERT_OK(engine_->Create("w/obj", {.size = 1000}));
  EXPECT_CODE(engine_->Write("w/obj", 990, Pattern(20, 1)), kInvalidArgument);  // past size
  ASSERT_OK(engine_->Write("w/obj", 100, Pattern(100, 1)));
  EXPECT_CODE(engine_->Write("w/obj", 150, Pattern(10, 1)), kInvalidArgument);  // overlap
  EXPECT_CODE(engine_->Write("w/obj", 50, Pattern(51, 1)), kInvalidArgument);   // overlap
  EXPECT_OK(engine_->Write("w/obj", 50, Pattern(50, 1)));                       // adjacent
  EXPECT_CODE(engine_->Write("w/obj", UINT64_MAX - 5, Pattern(10, 1)), kInvalidArgument);
  EXPECT_CODE(engine_->Write("never/created", 0, Pattern(10, 1)), kFailedPrecondition);
  EXPECT_CODE(engine_->Write("/bad", 0, Pattern(10, 1)), kInvalidArgument);
  EXPECT_CODE(engine_->Create("bad//name"), kInvalidArgument);
  EXPECT_CODE(engine_->Create("w/obj"), kAlreadyExists);  // being written
  EXPECT_CODE(engine_->Create("c/obj", {.chunk_size = 1000}), kInvalidArgument);
  ASSERT_OK(engine_->Abort("w/obj"));
  EXPECT_CODE(engine_->Stat("w/obj"), kNotFound);
  EXPECT_OK(engine_->Create("w/obj"));  // the name is free again
}

TEST_P(EngineTest, FilesAndDirectoriesDoNotCollide) {
  ASSERT_OK(engine_->Put("d/file", "x"));
  EXPECT_CODE(engine_->Create("d/file/child"), kInvalidArgument);  // ancestor is an object
  EXPECT_CODE(engine_->Create("d"), kAlreadyExists);               // is a directory
  EXPECT_CODE(engine_->Stat("d"), kNotFound);
  EXPECT_CODE(engine_->List("d/file"), kNotFound);
}

TEST_P(EngineTest, ListsWithSizesAndPages) {
  for (int i = 0; i < 25; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "ls/f%03d", i);
    ASSERT_OK(engine_->Put(name, Pattern(i * 1000, i)));
  }
  ASSERT_OK(engine_->Put("ls/sub/deep/x", "1"));
  ASSERT_OK(engine_->Put("ls/sub/y", "22"));
  std::vector<DirEntry> all;
  ListOptions lo{.start_after = "", .limit = 7};
  int pages = 0;
  while (true) {
    auto page = engine_->List("ls", lo);
    ASSERT_OK(page);
    ++pages;
    all.insert(all.end(), page->entries.begin(), page->entries.end());
    if (!page->truncated) break;
    lo.start_after = page->next_start_after;
  }
  EXPECT_EQ(pages, 4);
  ASSERT_EQ(all.size(), 26u);
  EXPECT_EQ(all[3].name, "f003");
  EXPECT_EQ(all[3].size, 3000u);
  EXPECT_FALSE(all[3].is_dir);
  EXPECT_EQ(all[25].name, "sub");
  EXPECT_TRUE(all[25].is_dir);
  EXPECT_EQ(all[25].size, 2u);  // "deep" and "y"
  auto root = engine_->List("");
  ASSERT_OK(root);
  ASSERT_EQ(root->entries.size(), 1u);
  EXPECT_EQ(root->entries[0].name, "ls");
  EXPECT_CODE(engine_->List("ls", {.start_after = "", .limit = 0}), kInvalidArgument);
  EXPECT_CODE(engine_->List("/ls"), kInvalidArgument);
}

uint64_t AllocatedBytes(const std::string& dir) {
  uint64_t allocated = 0;
  for (auto& f : std::filesystem::directory_iterator(dir)) {
    struct stat st {};
    if (::stat(f.path().c_str(), &st) == 0) allocated += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return allocated;
}

TEST_P(EngineTest, RemoveFreesNamesDirectoriesAndSpace) {
  ASSERT_OK(engine_->Put("rm/a/big", Pattern(40 * kChunk, 1)));
  ASSERT_OK(engine_->Put("rm/b", "small"));
  const uint64_t before = AllocatedBytes(dir_.Sub("store/chunks"));
  ASSERT_OK(engine_->Remove("rm/a/big"));
  EXPECT_CODE(engine_->Stat("rm/a/big"), kNotFound);
  EXPECT_CODE(engine_->List("rm/a"), kNotFound);  // empty directory vanished
  auto page = engine_->List("rm");
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_CODE(engine_->Remove("rm/a/big"), kNotFound);
  // The 2.5 MiB of chunks were punched out of the segment file at once.
  const uint64_t after = AllocatedBytes(dir_.Sub("store/chunks"));
  EXPECT_GE(before - after, 40 * kChunk) << before << " -> " << after;
  ASSERT_OK(engine_->Remove("rm/b"));
  EXPECT_CODE(engine_->List("rm"), kNotFound);
  ASSERT_OK(engine_->Put("rm/a/big", "reborn"));  // names are reusable
  // After a reopen, segments without live chunks are gone entirely.
  ASSERT_OK(engine_->Remove("rm/a/big"));
  Open();
  EXPECT_EQ(AllocatedBytes(dir_.Sub("store/chunks")), 0u);
}

TEST_P(EngineTest, ReadBatchReportsEachRequest) {
  ASSERT_OK(engine_->Put("b/1", Pattern(3 * kChunk, 1)));
  ASSERT_OK(engine_->Put("b/2", Pattern(100, 2)));
  std::vector<std::byte> b1(3 * kChunk), b2(100), b3(10);
  std::vector<ReadRequest> reqs = {{"b/1", 0, b1, {}, 0}, {"b/2", 0, b2, {}, 0},
                                   {"b/missing", 0, b3, {}, 0}, {"b/2", 200, b3, {}, 0}};
  ASSERT_OK(engine_->ReadBatch(reqs));
  EXPECT_OK(reqs[0].status);
  EXPECT_EQ(reqs[0].bytes_read, 3 * kChunk);
  EXPECT_EQ(b1, Pattern(3 * kChunk, 1));
  EXPECT_OK(reqs[1].status);
  EXPECT_EQ(b2, Pattern(100, 2));
  EXPECT_CODE(reqs[2].status, kNotFound);
  EXPECT_CODE(reqs[3].status, kInvalidArgument);
}

TEST_P(EngineTest, SecondOpenOfAStoreIsRefused) {
  auto second = Engine::Open(MakeOptions());
  EXPECT_CODE(second, kPermissionDenied);
  Options missing = MakeOptions();
  missing.store_dir = dir_.Sub("nope");
  missing.create_if_missing = false;
  EXPECT_CODE(Engine::Open(missing), kNotFound);
  Options bad = MakeOptions();
  bad.chunk_size = 3000;
  EXPECT_CODE(Engine::Open(bad), kInvalidArgument);
  bad = MakeOptions();
  bad.queue_depth = 0;
  EXPECT_CODE(Engine::Open(bad), kInvalidArgument);
  for (uint32_t p : {0u, 257u}) {
    bad = MakeOptions();
    bad.repair_parallelism = p;
    auto opened = Engine::Open(bad);
    EXPECT_CODE(opened, kInvalidArgument);
    EXPECT_NE(opened.status().message().find("repair_parallelism"), std::string::npos);
  }
}

TEST_P(EngineTest, StoreIsPrivateToItsUser) {
  struct stat st {};
  ASSERT_EQ(::stat(MakeOptions().store_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_P(EngineTest, LongPathsAreDistinct) {
  std::string base(250, 'a');
  std::string deep = base + "/" + base + "/" + base;  // keys beyond LMDB's 511 bytes
  ASSERT_OK(engine_->Put(deep + "/one", "1"));
  ASSERT_OK(engine_->Put(deep + "/two", "22"));
  ASSERT_OK(engine_->Put(base + "/" + base + "/" + std::string(250, 'b') + "/one", "333"));
  EXPECT_EQ(engine_->Stat(deep + "/one")->size, 1u);
  EXPECT_EQ(engine_->Stat(deep + "/two")->size, 2u);
  auto page = engine_->List(deep);
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[1].name, "two");
}

TEST_P(EngineTest, AForkedChildIsRefusedAtOnceAndTheParentGoesOn) {
  auto data = Pattern(3 * kChunk, 9);
  ASSERT_OK(engine_->Put("f/x", data));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: every call fails with FailedPrecondition naming the fork; none may block.
    std::vector<std::byte> buf(data.size());
    auto n = engine_->Read("f/x", 0, buf);
    Status put = engine_->Put("f/y", "child");
    auto stat = engine_->Stat("f/x");
    bool ok = n.status().code() == Code::kFailedPrecondition &&
              put.code() == Code::kFailedPrecondition &&
              stat.status().code() == Code::kFailedPrecondition &&
              n.status().message().find("fork") != std::string::npos;
    engine_.reset();  // releases nothing of the parent's
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of a signal";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a call in the forked child did not fail as documented";
  EXPECT_EQ(ReadAll("f/x"), data);
  EXPECT_CODE(engine_->Stat("f/y"), kNotFound);
  ASSERT_OK(engine_->Put("f/z", "parent"));
}

TEST_P(EngineTest, StatsCountCallsBytesErrorsAndLatencies) {
  auto data = Pattern(2 * kChunk + 5, 3);
  ASSERT_OK(engine_->Put("m/x", data));
  std::vector<std::byte> buf(data.size());
  ASSERT_OK(engine_->Read("m/x", 0, buf));
  ASSERT_OK(engine_->Read("m/x", 0, buf));
  EXPECT_CODE(engine_->Stat("m/none"), kNotFound);
  EXPECT_CODE(engine_->Create("../bad"), kInvalidArgument);
  Stats s = engine_->GetStats();
  EXPECT_EQ(s.counters["engine.write.bytes"], data.size());
  EXPECT_EQ(s.counters["engine.read.ops"], 2u);
  EXPECT_EQ(s.counters["engine.read.bytes"], 2 * data.size());
  EXPECT_EQ(s.counters["engine.seal.ops"], 1u);
  EXPECT_EQ(s.counters["engine.stat.ops"], 1u);
  EXPECT_EQ(s.counters["engine.errors.NotFound"], 1u);
  EXPECT_EQ(s.counters["engine.errors.InvalidArgument"], 1u);
  EXPECT_EQ(s.histograms["engine.read.latency_ns"].count, 2u);
  EXPECT_GT(s.histograms["engine.seal.latency_ns"].p50, 0u);
  EXPECT_EQ(s.counters["member.remote.chunk-read.calls"], 0u);  // a world of one: all local
  EXPECT_EQ(s.counters["member.local.chunk_bytes_read"], 2 * data.size());
}

TEST_P(EngineTest, StoreFormatsOlderOrNewerAreAdoptedOrRefusedNeverMisread) {
  ASSERT_OK(engine_->Put("keep/x", "world layout"));
  engine_.reset();
  const std::string store = dir_.Sub("store");
  // Format 1 with the world layout (no FORMAT file, only chunk objects locally): adopted.
  std::filesystem::remove(store + "/FORMAT");
  Open();
  std::vector<std::byte> buf(12);
  ASSERT_OK(engine_->Read("keep/x", 0, buf));
  engine_.reset();
  EXPECT_TRUE(std::filesystem::exists(store + "/FORMAT"));  // stamped again
  // A newer format: refused, and the store is left as it is.
  { std::ofstream(store + "/FORMAT") << "shoal-store " << engine::kStoreFormat + 1 << "\n"; }
  auto newer = Engine::Open(MakeOptions());
  EXPECT_CODE(newer, kFailedPrecondition);
  // Format 1 written by a one-rank job (user paths in meta/): refused with the reason.
  const std::string old = dir_.Sub("old");
  {
    auto local = engine::ObjectStore::Open(testing::TestOptions(old, GetParam(), 8));
    ASSERT_OK(local);
    ASSERT_OK((*local)->Create("user/file", {}));
    ASSERT_OK((*local)->Write("user/file", 0, Pattern(10, 1)));
    ASSERT_OK((*local)->Seal("user/file"));
  }
  std::filesystem::remove(old + "/FORMAT");
  auto legacy = Engine::Open(testing::TestOptions(old, GetParam(), 8));
  EXPECT_CODE(legacy, kFailedPrecondition);
  EXPECT_NE(legacy.status().message().find("one-rank job"), std::string::npos) << legacy.status();
}

// A store of format 3 (the shard's metadata in an environment of its own, <store>/ring) is
// upgraded at its first Open: everything reads back, what was removed stays removed, the
// directory goes, and the store says format 4.
TEST_P(EngineTest, AFormat3StoreIsUpgradedWithEverythingInIt) {
  auto big = Pattern(3 * kChunk + 5, 9);
  ASSERT_OK(engine_->Put("keep/big", big));
  ASSERT_OK(engine_->Put("keep/small", "inline"));
  ASSERT_OK(engine_->Put("gone/x", "removed before"));
  ASSERT_OK(engine_->Remove("gone/x"));
  engine_.reset();
  const std::string store = dir_.Sub("store");
  DowngradeToFormat3(store);
  ASSERT_TRUE(std::filesystem::exists(store + "/ring/data.mdb"));
  Open();
  EXPECT_EQ(ReadAll("keep/big"), big);
  const std::string_view text = "inline";
  const auto* t = reinterpret_cast<const std::byte*>(text.data());
  EXPECT_EQ(ReadAll("keep/small"), std::vector<std::byte>(t, t + text.size()));
  EXPECT_CODE(engine_->Stat("gone/x"), kNotFound);
  auto page = engine_->List("", {});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].name, "keep");
  EXPECT_FALSE(std::filesystem::exists(store + "/ring"));
  std::ifstream format(store + "/FORMAT");
  std::string line;
  std::getline(format, line);
  EXPECT_EQ(line, "shoal-store " + std::to_string(engine::kStoreFormat));
  // New objects and removes work, and a reopen (nothing to import) keeps them.
  ASSERT_OK(engine_->Put("keep/new", "after"));
  ASSERT_OK(engine_->Remove("keep/small"));
  Open();
  EXPECT_EQ(ReadAll("keep/big"), big);
  ASSERT_OK(engine_->Stat("keep/new"));
  EXPECT_CODE(engine_->Stat("keep/small"), kNotFound);
  // The local keyspace is format 5's: chunk objects without directory entries, listed from
  // their inodes, each with its origin (the world path it belongs to).
  engine_.reset();
  auto local = engine::ObjectStore::Open(MakeOptions());
  ASSERT_OK(local);
  auto top = (*local)->List("", {});
  ASSERT_OK(top);
  EXPECT_TRUE(top->entries.empty()) << top->entries[0].name;
  auto chunk_objects = (*local)->ListChunkObjects("", 100);
  ASSERT_OK(chunk_objects);
  ASSERT_EQ(chunk_objects->entries.size(), 1u);  // keep/big's
  auto origin = (*local)->OriginOf("c/" + chunk_objects->entries[0].name);
  ASSERT_OK(origin);
  EXPECT_NE(origin->find("keep/big"), std::string::npos) << *origin;
}

// A world of one seals a striped object's chunks and its record in one LMDB transaction: when
// that transaction finds the metadata map full, the Seal fails NoSpace and seals neither (the
// object is not visible, a second Seal fails again rather than half-sealing it, Abort frees it),
// everything sealed before reads back, and once space is freed the same path seals.
TEST_P(EngineTest, ASealThatFindsTheMetadataMapFullSealsNothingAndLosesNothing) {
  Options o = MakeOptions();
  o.metadata_map_size = 16ull << 20;
  o.inline_threshold = 65536;
  engine_.reset();
  auto e = Engine::Open(o);
  ASSERT_OK(e);
  engine_ = std::move(e).value();
  // Fill the map with inline objects (their bytes are in the records) until one no longer fits.
  std::vector<std::string> inline_paths;
  Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) {
    std::string p = "fill/" + std::to_string(i);
    s = engine_->Put(p, Pattern(60000, i));
    if (s.ok()) inline_paths.push_back(p);
  }
  ASSERT_TRUE(s.IsNoSpace()) << s;
  ASSERT_GT(inline_paths.size(), 10u);
  // Striped objects (chunks on disk, a small record) until the record no longer fits.
  const auto data = Pattern(2 * kChunk + 1, 77);
  std::vector<std::string> striped;
  std::string failed;
  for (int i = 0; i < 4000 && failed.empty(); ++i) {
    std::string p = "striped/" + std::to_string(i);
    ASSERT_OK(engine_->Create(p));
    ASSERT_OK(engine_->Write(p, 0, data));
    s = engine_->Seal(p);
    if (s.ok()) striped.push_back(p);
    else failed = p;
  }
  ASSERT_FALSE(failed.empty()) << "the map never filled";
  EXPECT_TRUE(s.IsNoSpace()) << s;
  EXPECT_CODE(engine_->Stat(failed), kNotFound);
  EXPECT_FALSE(engine_->Seal(failed).ok()) << "a failed seal is not retried into half a seal";
  EXPECT_CODE(engine_->Stat(failed), kNotFound);
  ASSERT_OK(engine_->Abort(failed));
  for (size_t i = 0; i < inline_paths.size(); i += 17) {
    EXPECT_EQ(ReadAll(inline_paths[i]), Pattern(60000, i)) << inline_paths[i];
  }
  for (const std::string& p : striped) EXPECT_EQ(ReadAll(p), data) << p;
  // Space freed: the same path seals, and survives a reopen.
  for (size_t i = 0; i < 8 && i < inline_paths.size(); ++i) ASSERT_OK(engine_->Remove(inline_paths[i]));
  ASSERT_OK(engine_->Put(failed, data));
  engine_.reset();
  e = Engine::Open(o);
  ASSERT_OK(e);
  engine_ = std::move(e).value();
  EXPECT_EQ(ReadAll(failed), data);
  if (!striped.empty()) {
    EXPECT_EQ(ReadAll(striped.back()), data);
  }
  EXPECT_CODE(engine_->Stat(inline_paths[0]), kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, EngineTest,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix), testing::BackendName());

}  // namespace
}  // namespace shoal
