// The shoal store commands on the stores a real `shoal run` world left (3 ranks, objects and
// checkpoints), opened together by the CLI: ls, stat, du, cat, put (a rerun skips what is
// there; changed content is refused unless --replace), get, rm, ckpt list/show/rm/retain,
// status, scrub, fsck, repair — output checked as text and as JSON. Then one store alone, a
// directory without stores and a store in use are refused with the reason; a damaged chunk is
// found and repaired by scrub. Last, the same commands on a live 4-rank job, observed with its
// job file while it runs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/process_util.h"
#include "tests/test_util.h"

namespace shoal::testing {
namespace {

namespace fs = std::filesystem;

class StoreCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    Process p = Spawn(SHOAL_CLI, {"run", "-n", "3", "--store", Stores(), "--", SHOAL_WORLD_JOB},
                      root_->path() + "/job.out", root_->path() + "/job.err",
                      {{"JOB_CKPT", "3"}});
    ASSERT_EQ(Wait(p), 0) << Slurp(root_->path() + "/job.err");
  }
  static void TearDownTestSuite() { delete root_; }
  static std::string Stores() { return root_->path() + "/stores"; }

  struct Out {
    int rc;
    std::string out, err;
  };
  Out Shoal(std::vector<std::string> args) {
    n_++;
    const std::string o = fmt::format("{}/cmd{}.out", root_->path(), n_);
    const std::string e = fmt::format("{}/cmd{}.err", root_->path(), n_);
    args.insert(args.end(), {"--store", Stores()});
    Process p = Spawn(SHOAL_CLI, args, o, e);
    int rc = Wait(p);
    return {rc, Slurp(o), Slurp(e)};
  }

  static inline TempDir* root_ = nullptr;
  int n_ = 0;
};

TEST_F(StoreCommandsTest, ListStatDuCatSeeTheJobsNames) {
  Out ls = Shoal({"ls", "job/0"});
  ASSERT_EQ(ls.rc, 0) << ls.err;
  EXPECT_EQ(ls.out, "r0/\nr1/\nr2/\n");
  Out all = Shoal({"ls", "-l", "-R", "--json", "job"});
  ASSERT_EQ(all.rc, 0) << all.err;
  auto j = nlohmann::json::parse(all.out);
  size_t objects = 0;
  for (const auto& x : j) {
    if (x["type"] == "object") {
      objects++;
      EXPECT_EQ(x["size"], 64 << 10);
      EXPECT_GT(x["sealed_ns"].get<int64_t>(), 0);
    }
  }
  EXPECT_EQ(objects, 24u);
  Out du = Shoal({"du", "--json", "job", "checkpoints"});
  ASSERT_EQ(du.rc, 0) << du.err;
  auto d = nlohmann::json::parse(du.out);
  EXPECT_EQ(d[0]["objects"], 24);
  EXPECT_EQ(d[0]["bytes"], 24 * (64 << 10));
  Out stat = Shoal({"stat", "job/0/r2/5"});
  ASSERT_EQ(stat.rc, 0) << stat.err;
  EXPECT_NE(stat.out.find("size:       65536"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("chunk 0 on members"), std::string::npos) << stat.out;
  Out cat = Shoal({"cat", "job/0/r1/3"});
  ASSERT_EQ(cat.rc, 0) << cat.err;
  ASSERT_EQ(cat.out.size(), 64u << 10);
  for (size_t k = 0; k < cat.out.size(); ++k) {
    ASSERT_EQ(static_cast<uint8_t>(cat.out[k]), (k * 31 + 1 * 7 + 3) & 0xff) << k;
  }
  Out missing = Shoal({"stat", "job/0/r9/0"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("NotFound"), std::string::npos) << missing.err;
}

TEST_F(StoreCommandsTest, PutSkipsWhatIsThereGetCopiesBackRmRemoves) {
  const std::string src = root_->path() + "/tree";
  fs::create_directories(src + "/sub");
  for (int i = 0; i < 5; ++i) {
    std::ofstream(fmt::format("{}/{}f{}", src, i % 2 ? "sub/" : "", i)) << std::string(1000 * i + 1, 'a' + i);
  }
  Out put = Shoal({"put", src, "up"});
  ASSERT_EQ(put.rc, 0) << put.err;
  EXPECT_NE(put.err.find("5 written, 0 already there"), std::string::npos) << put.err;
  Out again = Shoal({"put", src, "up"});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.err.find("0 written, 5 already there"), std::string::npos) << again.err;
  std::ofstream(src + "/f0") << "changed";
  Out refused = Shoal({"put", src, "up"});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_NE(refused.err.find("--replace"), std::string::npos) << refused.err;
  Out replaced = Shoal({"put", "--replace", src, "up"});
  ASSERT_EQ(replaced.rc, 0) << replaced.err;
  EXPECT_NE(replaced.err.find("1 written, 4 already there"), std::string::npos) << replaced.err;

  const std::string back = root_->path() + "/back";
  Out get = Shoal({"get", "up", back});
  ASSERT_EQ(get.rc, 0) << get.err;
  for (auto& f : fs::recursive_directory_iterator(src)) {
    if (!f.is_regular_file()) continue;
    EXPECT_EQ(Slurp(f.path().string()), Slurp(back + "/" + fs::relative(f.path(), src).string()))
        << f.path();
  }
  Out get_again = Shoal({"get", "up", back});
  EXPECT_NE(get_again.err.find("0 copied, 5 already there"), std::string::npos) << get_again.err;

  Out rm_dir = Shoal({"rm", "up"});
  EXPECT_EQ(rm_dir.rc, 1);
  EXPECT_NE(rm_dir.err.find("-r"), std::string::npos);
  Out rm = Shoal({"rm", "-r", "up"});
  ASSERT_EQ(rm.rc, 0) << rm.err;
  EXPECT_EQ(Shoal({"ls", "up"}).rc, 1);
}

TEST_F(StoreCommandsTest, CheckpointsListShowRemoveRetain) {
  Out list = Shoal({"ckpt", "list", "--json"});
  ASSERT_EQ(list.rc, 0) << list.err;
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j.size(), 3u) << list.out;
  EXPECT_EQ(j[0]["tag"], "step-1");
  EXPECT_EQ(j[2]["world_size"], 3);
  EXPECT_EQ(j[2]["bytes"], 3 * (64 << 10));
  Out show = Shoal({"ckpt", "show", "step-2"});
  ASSERT_EQ(show.rc, 0) << show.err;
  EXPECT_NE(show.out.find("metadata:   {\"step\": 2}"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("rank-2"), std::string::npos);
  ASSERT_EQ(Shoal({"ckpt", "rm", "step-1"}).rc, 0);
  Out retain = Shoal({"ckpt", "retain", "1"});
  ASSERT_EQ(retain.rc, 0) << retain.err;
  EXPECT_NE(retain.out.find("removed 1 checkpoint(s)"), std::string::npos) << retain.out;
  Out left = Shoal({"ckpt", "list"});
  EXPECT_NE(left.out.find("step-3"), std::string::npos);
  EXPECT_EQ(left.out.find("step-2"), std::string::npos) << left.out;
  EXPECT_EQ(Shoal({"ckpt", "show", "step-1"}).rc, 1);
}

TEST_F(StoreCommandsTest, StatusRepairAndStoresAloneAbsentOrInUse) {
  Out status = Shoal({"status", "--json"});
  ASSERT_EQ(status.rc, 0) << status.err;
  auto j = nlohmann::json::parse(status.out);
  ASSERT_EQ(j["members"].size(), 3u);
  uint64_t held = 0;
  for (const auto& m : j["members"]) held += m["held_bytes"].get<uint64_t>();
  EXPECT_GE(held, 2u * 24 * (64 << 10));  // two replicas of every job object
  Out repair = Shoal({"repair"});
  EXPECT_EQ(repair.rc, 0) << repair.err;
  EXPECT_NE(repair.out.find("0 unreadable"), std::string::npos) << repair.out;

  // One store alone is not the world: status, ls and du show its own part and say so; the
  // other commands are refused, naming what they need.
  std::string one;
  for (auto& d : fs::recursive_directory_iterator(Stores())) {
    if (d.path().filename() == "FORMAT") {
      one = d.path().parent_path().string();
      break;
    }
  }
  ASSERT_FALSE(one.empty());
  Process p = Spawn(SHOAL_CLI, {"ls", "-l", "--store", one}, root_->path() + "/one.out",
                    root_->path() + "/one.err");
  EXPECT_EQ(Wait(p), 0) << Slurp(root_->path() + "/one.err");
  EXPECT_NE(Slurp(root_->path() + "/one.err").find("alone it is not the world: showing its own part"),
            std::string::npos) << Slurp(root_->path() + "/one.err");
  EXPECT_NE(Slurp(root_->path() + "/one.out").find("job/0/r"), std::string::npos)
      << Slurp(root_->path() + "/one.out");
  Process ps = Spawn(SHOAL_CLI, {"status", "--json", "--store", one}, root_->path() + "/ones.out",
                     root_->path() + "/ones.err");
  EXPECT_EQ(Wait(ps), 0) << Slurp(root_->path() + "/ones.err");
  auto part = nlohmann::json::parse(Slurp(root_->path() + "/ones.out"));
  EXPECT_TRUE(part["part"].get<bool>());
  EXPECT_EQ(part["members"].size(), 3u);
  EXPECT_GT(part["objects"].get<uint64_t>(), 0u);
  Process pc = Spawn(SHOAL_CLI, {"cat", "--store", one, "job/0/r0/0"}, root_->path() + "/onec.out",
                     root_->path() + "/onec.err");
  EXPECT_EQ(Wait(pc), 2);
  EXPECT_NE(Slurp(root_->path() + "/onec.err").find("only status, ls and du"), std::string::npos)
      << Slurp(root_->path() + "/onec.err");
  Process q = Spawn(SHOAL_CLI, {"ls", "--store", root_->path() + "/nothing-here"},
                    root_->path() + "/none.out", root_->path() + "/none.err");
  EXPECT_EQ(Wait(q), 2);
  EXPECT_NE(Slurp(root_->path() + "/none.err").find("no such directory"), std::string::npos);

  // A store in use (its LOCK held, as a running job's rank holds it) is refused, and the other
  // commands' view is unchanged afterwards.
  const int fd = ::open((one + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  Out busy = Shoal({"ls", "job/0"});
  EXPECT_EQ(busy.rc, 2);
  EXPECT_NE(busy.err.find("PermissionDenied"), std::string::npos) << busy.err;
  ::close(fd);
  Out free = Shoal({"ls", "job/0"});
  EXPECT_EQ(free.rc, 0) << free.err;
  EXPECT_EQ(free.out, "r0/\nr1/\nr2/\n");
}

TEST_F(StoreCommandsTest, ScrubFindsADamagedChunkAndRepairsItFromAReplicaFsckSeesAllWell) {
  Out clean = Shoal({"scrub", "--json"});
  ASSERT_EQ(clean.rc, 0) << clean.err;
  auto c = nlohmann::json::parse(clean.out);
  EXPECT_EQ(c["damaged"], 0);
  EXPECT_GE(c["bytes"].get<uint64_t>(), 2u * 24 * (64 << 10));
  ASSERT_EQ(c["members"].size(), 3u);
  // Flip bytes in the middle of one store's chunk segment: a chunk's CRC32C no longer matches.
  std::string segment;
  for (auto& d : fs::recursive_directory_iterator(Stores())) {
    if (d.path().filename().string().rfind("seg-", 0) == 0 && fs::file_size(d.path()) > 200000) {
      segment = d.path().string();
      break;
    }
  }
  ASSERT_FALSE(segment.empty());
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100000);
    f.write("\xAA\xBB\xCC\xDD", 4);
  }
  Out scrub = Shoal({"scrub"});
  EXPECT_EQ(scrub.rc, 0) << scrub.out << scrub.err;
  EXPECT_NE(scrub.out.find("1 damaged, 1 repaired from replicas, 0 left damaged"),
            std::string::npos) << scrub.out << scrub.err;
  EXPECT_NE(scrub.err.find("CRC32C mismatch"), std::string::npos) << scrub.err;
  Out again = Shoal({"scrub"});
  EXPECT_NE(again.out.find("0 damaged"), std::string::npos) << again.out;
  Out fsck = Shoal({"fsck", "--json"});
  ASSERT_EQ(fsck.rc, 0) << fsck.out << fsck.err;
  auto f = nlohmann::json::parse(fsck.out);
  EXPECT_GE(f["objects"].get<uint64_t>(), 24u);
  EXPECT_EQ(f["degraded_chunks"], 0);
  EXPECT_TRUE(f["unreadable"].empty());
  // Every job object still reads bit-exact.
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 8; ++i) {
      Out cat = Shoal({"cat", fmt::format("job/0/r{}/{}", r, i)});
      ASSERT_EQ(cat.rc, 0) << cat.err;
      ASSERT_EQ(cat.out.size(), 64u << 10);
      for (size_t k = 0; k < cat.out.size(); k += 997) {
        ASSERT_EQ(static_cast<uint8_t>(cat.out[k]), (k * 31 + r * 7 + i) & 0xff) << r << i << k;
      }
    }
  }
}

// A running 4-rank job, observed: the CLI finds ROOT/shoal-job, joins as a guest with the
// job's token and shows the live world (its counters included) without changing it — no epoch
// started (the next Open's epoch is the job's + 1), nothing written, no warning in the job's
// output; writing commands are refused; a wrong token is refused.
TEST(LiveWorld, CommandsObserveARunningJobWithoutChangingIt) {
  TempDir root;
  const std::string stores = root.path() + "/stores", hold = root.path() + "/hold";
  fs::create_directories(hold);
  Process job = Spawn(SHOAL_CLI, {"run", "-n", "4", "--store", stores, "--", SHOAL_WORLD_JOB},
                      root.path() + "/job.out", root.path() + "/job.err",
                      {{"JOB_CKPT", "2"}, {"JOB_HOLD", hold}});
  // A failed assertion must not leave the job holding its ranks (and port) for 300 s.
  bool waited = false;
  struct Stop {
    Process& p;
    bool& waited;
    ~Stop() {
      if (waited) return;
      ::kill(p.pid, SIGTERM);
      (void)Wait(p);
    }
  } stop{job, waited};
  auto ready = [&] {
    for (int r = 0; r < 4; ++r) {
      if (!fs::exists(fmt::format("{}/ready-{}", hold, r))) return false;
    }
    return true;
  };
  for (int i = 0; i < 6000 && !ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(ready()) << Slurp(root.path() + "/job.err");
  int n = 0;
  auto shoal = [&](std::vector<std::string> args) {
    n++;
    const std::string o = fmt::format("{}/c{}.out", root.path(), n);
    const std::string e = fmt::format("{}/c{}.err", root.path(), n);
    args.insert(args.end(), {"--store", stores});
    Process p = Spawn(SHOAL_CLI, args, o, e);
    const int rc = Wait(p);
    return std::tuple<int, std::string, std::string>{rc, Slurp(o), Slurp(e)};
  };

  auto [rc, out, err] = shoal({"status", "--json"});
  ASSERT_EQ(rc, 0) << err;
  auto st = nlohmann::json::parse(out);
  EXPECT_TRUE(st["live"].get<bool>()) << out;
  const uint64_t epoch = st["epoch"].get<uint64_t>();
  ASSERT_EQ(st["members"].size(), 4u);
  for (const auto& m : st["members"]) {
    EXPECT_TRUE(m["up"].get<bool>());
    // The job's own counters, from its ranks: 8 objects written by each, 32 read.
    EXPECT_GE(m["stats"]["counters"]["engine.write.ops"].get<uint64_t>(), 8u) << m.dump();
    EXPECT_GE(m["stats"]["counters"]["engine.read.ops"].get<uint64_t>(), 32u) << m.dump();
    EXPECT_GT(m["held_bytes"].get<uint64_t>(), 0u);
  }
  auto [rc2, text, err2] = shoal({"status", "--counters"});
  ASSERT_EQ(rc2, 0) << err2;
  EXPECT_NE(text.find("live: the job at tcp:"), std::string::npos) << text;
  EXPECT_NE(text.find("checkpoint.saves"), std::string::npos) << text;
  EXPECT_NE(text.find("engine.write.latency_ns"), std::string::npos) << text;

  auto [rc3, ls, err3] = shoal({"ls", "-l", "-R", "--json", "job"});
  ASSERT_EQ(rc3, 0) << err3;
  size_t objects = 0;
  for (const auto& x : nlohmann::json::parse(ls)) objects += x["type"] == "object";
  EXPECT_EQ(objects, 32u);
  auto [rc4, ck, err4] = shoal({"ckpt", "list", "--json"});
  ASSERT_EQ(rc4, 0) << err4;
  ASSERT_EQ(nlohmann::json::parse(ck).size(), 2u) << ck;
  auto [rc5, du, err5] = shoal({"du", "--json", "job"});
  ASSERT_EQ(rc5, 0) << err5;
  EXPECT_EQ(nlohmann::json::parse(du)[0]["bytes"], 32 * (64 << 10));
  auto [rc6, cat, err6] = shoal({"cat", "job/0/r3/5"});
  ASSERT_EQ(rc6, 0) << err6;
  ASSERT_EQ(cat.size(), 64u << 10);
  for (size_t k = 0; k < cat.size(); ++k) {
    ASSERT_EQ(static_cast<uint8_t>(cat[k]), (k * 31 + 3 * 7 + 5) & 0xff) << k;
  }
  auto [rc7, scrub, err7] = shoal({"scrub", "--json"});
  ASSERT_EQ(rc7, 0) << err7;
  auto sc = nlohmann::json::parse(scrub);
  EXPECT_EQ(sc["members"].size(), 4u);
  EXPECT_GE(sc["bytes"].get<uint64_t>(), 2u * 32 * (64 << 10));
  EXPECT_EQ(sc["damaged"], 0);
  auto [rc8, fsck, err8] = shoal({"fsck"});
  EXPECT_EQ(rc8, 0) << fsck << err8;
  EXPECT_NE(fsck.find("0 unreadable"), std::string::npos) << fsck;

  // Read-only: refused before anything is done.
  auto [rc9, rm_out, rm_err] = shoal({"rm", "job/0/r3/5"});
  EXPECT_EQ(rc9, 2);
  EXPECT_NE(rm_err.find("read-only"), std::string::npos) << rm_err;
  // A job file with another token: refused, not a world shown.
  const std::string forged = root.path() + "/forged-job";
  {
    std::ofstream f(forged);
    std::ifstream in(stores + "/shoal-job");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("SHOAL_TOKEN=", 0) == 0) line = "SHOAL_TOKEN=" + std::string(32, 'f');
      f << line << "\n";
    }
  }
  Process bad = Spawn(SHOAL_CLI, {"status", "--job", forged}, root.path() + "/bad.out",
                      root.path() + "/bad.err");
  EXPECT_EQ(Wait(bad), 2);
  EXPECT_NE(Slurp(root.path() + "/bad.err").find("PermissionDenied"), std::string::npos)
      << Slurp(root.path() + "/bad.err");

  std::ofstream(hold + "/release") << "go\n";
  waited = true;
  ASSERT_EQ(Wait(job), 0) << Slurp(root.path() + "/job.err");
  // Observers print nothing in the job and started no epoch: the next Open records epoch + 1.
  EXPECT_EQ(Slurp(root.path() + "/job.err"), "");
  EXPECT_FALSE(fs::exists(stores + "/shoal-job"));
  auto [rc10, after, err10] = shoal({"status", "--json"});
  ASSERT_EQ(rc10, 0) << err10;
  auto off = nlohmann::json::parse(after);
  EXPECT_FALSE(off["live"].get<bool>());
  EXPECT_EQ(off["epoch"].get<uint64_t>(), epoch + 1);
  auto [rc11, still, err11] = shoal({"stat", "job/0/r3/5"});
  EXPECT_EQ(rc11, 0) << err11;
  // A job file its launcher could not remove (SIGKILLed): stale, said, the stores opened.
  {
    std::ofstream f(stores + "/shoal-job");
    f << "SHOAL_TOKEN=" << std::string(32, 'a') << "\nSHOAL_RENDEZVOUS=tcp:127.0.0.1:9\n"
      << "SHOAL_WORLD_SIZE=4\nSHOAL_LAUNCHER_PID=" << job.pid << "\n";
  }
  auto [rc12, stale, err12] = shoal({"status", "--json"});
  ASSERT_EQ(rc12, 0) << err12;
  EXPECT_FALSE(nlohmann::json::parse(stale)["live"].get<bool>());
  EXPECT_NE(err12.find("is stale"), std::string::npos) << err12;
}

}  // namespace
}  // namespace shoal::testing
