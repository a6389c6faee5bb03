// PlanBootstrap on its own: Options and a launcher environment (a map, not setenv) in, a plan
// out. Nothing here opens a socket: the plan only describes the rendezvous.
#include "lib/bootstrap.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tests/test_util.h"

namespace shoal {
namespace {

using Env = std::map<std::string, std::string>;

transport::EnvLookup Lookup(const Env& env) {
  return [env](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

Options WithStore(std::string dir) {
  Options o;
  o.store_dir = std::move(dir);
  return o;
}

std::string HostName() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

// The message of a failed plan (which must have failed with InvalidArgument).
std::string Refusal(const Options& o, const Env& env) {
  auto plan = PlanBootstrap(o, Lookup(env));
  EXPECT_CODE(plan, kInvalidArgument);
  return plan.status().ToString();
}

TEST(Bootstrap, NothingSetIsAWorldOfOne) {
  auto plan = PlanBootstrap(WithStore("/s/{rank}-{local_rank}-{node}"), Lookup({}));
  ASSERT_OK(plan);
  EXPECT_TRUE(plan->alone);
  EXPECT_EQ(plan->world.rank, 0u);
  EXPECT_EQ(plan->world.world_size, 1u);
  EXPECT_EQ(plan->world.node, HostName());
  EXPECT_EQ(plan->store_dir, "/s/0-0-" + HostName());
  EXPECT_EQ(plan->rendezvous, nullptr);
  EXPECT_EQ(plan->rendezvous_address, "");
}

// A rank serves its own store and the node's stores no rank of this job opens: local rank l of
// L takes {local_rank} = l + L, l + 2L, ... wherever a store (its FORMAT file) exists.
TEST(Bootstrap, ARankServesTheStoresOfItsNodeThatNoRankOfThisJobOpens) {
  testing::TempDir dir;
  for (int i : {0, 1, 2, 3, 4, 6, 9}) {
    std::filesystem::create_directories(dir.Sub("s/" + std::to_string(i)));
    std::ofstream(dir.Sub("s/" + std::to_string(i) + "/FORMAT")) << "3\n";
  }
  std::filesystem::create_directories(dir.Sub("s/5"));  // no store in it: not served
  const std::string tmpl = dir.Sub("s") + "/{local_rank}";
  auto plan_of = [&](int local, int locals, bool serve = true) {
    Options o = WithStore(tmpl);
    o.serve_node_stores = serve;
    auto plan = PlanBootstrap(
        o, Lookup({{"RANK", std::to_string(local)}, {"WORLD_SIZE", std::to_string(locals)},
                   {"LOCAL_RANK", std::to_string(local)},
                   {"LOCAL_WORLD_SIZE", std::to_string(locals)}, {"MASTER_PORT", "29500"},
                   {"SHOAL_TOKEN", "t"}}));
    EXPECT_OK(plan);
    std::vector<std::string> all{plan->store_dir};
    for (auto& d : plan->more_store_dirs) all.push_back(d.substr(dir.Sub("s/").size()));
    all[0] = all[0].substr(dir.Sub("s/").size());
    return all;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(plan_of(0, 2), (V{"0", "2", "4", "6"}));
  EXPECT_EQ(plan_of(1, 2), (V{"1", "3", "9"}));  // 5 holds no store
  EXPECT_EQ(plan_of(0, 1), (V{"0", "1", "2", "3", "4", "6", "9"}));
  EXPECT_EQ(plan_of(2, 4), (V{"2", "6"}));
  EXPECT_EQ(plan_of(0, 2, false), (V{"0"}));
  // Without a local world size from the launcher, or without {local_rank}, only its own.
  auto plain = PlanBootstrap(WithStore(tmpl), Lookup({{"SHOAL_RANK", "0"},
                                                      {"SHOAL_WORLD_SIZE", "2"},
                                                      {"SHOAL_MASTER_PORT", "1"},
                                                      {"SHOAL_TOKEN", "t"}}));
  ASSERT_OK(plain);
  EXPECT_TRUE(plain->more_store_dirs.empty());
  auto by_rank = PlanBootstrap(WithStore(dir.Sub("s") + "/{rank}"), Lookup({}));
  ASSERT_OK(by_rank);
  EXPECT_TRUE(by_rank->more_store_dirs.empty());
  // A local rank at or above the local world size is refused.
  Refusal(WithStore(tmpl), {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "2"},
                           {"LOCAL_WORLD_SIZE", "2"}});
}

TEST(Bootstrap, TorchrunEnvironment) {
  Options o = WithStore("/nvme/{node}/r{rank}/l{local_rank}");
  o.join_timeout_ms = 1234;
  auto plan = PlanBootstrap(o, Lookup({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                       {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29500"},
                                       {"SHOAL_TOKEN", "s3cret"}, {"SHOAL_NODE", "n7"}}));
  ASSERT_OK(plan);
  EXPECT_FALSE(plan->alone);
  EXPECT_EQ(plan->world.rank, 3u);
  EXPECT_EQ(plan->world.world_size, 4u);
  EXPECT_EQ(plan->world.node, "n7");
  EXPECT_EQ(plan->world.timeout, std::chrono::milliseconds(1234));
  EXPECT_EQ(plan->store_dir, "/nvme/n7/r3/l1");
  ASSERT_NE(plan->rendezvous, nullptr);
  // torch's own store listens on MASTER_PORT: shoal takes the next one.
  EXPECT_EQ(plan->rendezvous_address, "tcp:10.1.2.3:29501");
}

TEST(Bootstrap, OpenMpiEnvironment) {
  auto plan = PlanBootstrap(
      WithStore("/d/{local_rank}"),
      Lookup({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "6"},
              {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"SHOAL_MASTER_ADDR", "head"},
              {"SHOAL_RENDEZVOUS_PORT", "29600"}, {"SHOAL_TOKEN", "t"}}));
  ASSERT_OK(plan);
  EXPECT_EQ(plan->world.rank, 5u);
  EXPECT_EQ(plan->world.world_size, 6u);
  EXPECT_EQ(plan->store_dir, "/d/2");
  EXPECT_EQ(plan->rendezvous_address, "tcp:head:29600");
  // Without SHOAL_RENDEZVOUS_PORT: the port after SHOAL_MASTER_PORT, on 127.0.0.1 by default.
  auto next = PlanBootstrap(
      WithStore("/d"), Lookup({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                               {"SHOAL_MASTER_PORT", "29700"}, {"SHOAL_TOKEN", "t"}}));
  ASSERT_OK(next);
  EXPECT_EQ(next->rendezvous_address, "tcp:127.0.0.1:29701");
  // A torchrun environment wins over Open MPI's when both are present.
  auto both = PlanBootstrap(
      WithStore("/d"), Lookup({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "6"},
                               {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "100"},
                               {"SHOAL_TOKEN", "t"}}));
  ASSERT_OK(both);
  EXPECT_EQ(both->world.rank, 1u);
  EXPECT_EQ(both->world.world_size, 2u);
}

TEST(Bootstrap, OptionsWinOverTheEnvironmentFieldByField) {
  Options o = WithStore("/x/{rank}/{node}");
  o.rank = 1;
  o.world_size = 2;
  o.node = "mine";
  o.rendezvous = "tcp:rdzv.example:1234";
  o.token = "from-options";
  Env env = {{"RANK", "0"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "7"}, {"MASTER_PORT", "29500"},
             {"SHOAL_NODE", "theirs"}, {"SHOAL_RENDEZVOUS", "file:/elsewhere"}};
  auto plan = PlanBootstrap(o, Lookup(env));
  ASSERT_OK(plan) << "Options::token makes SHOAL_TOKEN unnecessary";
  EXPECT_EQ(plan->world.rank, 1u);
  EXPECT_EQ(plan->world.world_size, 2u);
  EXPECT_EQ(plan->world.node, "mine");
  EXPECT_EQ(plan->store_dir, "/x/1/mine");
  EXPECT_EQ(plan->rendezvous_address, "tcp:rdzv.example:1234");
  // Only the rank from Options: the world size still comes from the launcher.
  Options r = WithStore("/x");
  r.rank = 6;
  env["SHOAL_TOKEN"] = "t";
  auto partial = PlanBootstrap(r, Lookup(env));
  ASSERT_OK(partial);
  EXPECT_EQ(partial->world.rank, 6u);
  EXPECT_EQ(partial->world.world_size, 8u);
  EXPECT_EQ(partial->rendezvous_address, "file:/elsewhere");
}

TEST(Bootstrap, OtherRendezvousKinds) {
  Options o = WithStore("/x");
  o.token = "t";
  auto file = PlanBootstrap(o, Lookup({{"SHOAL_RANK", "0"}, {"SHOAL_WORLD_SIZE", "3"},
                                       {"SHOAL_RENDEZVOUS", "file:/shared/job-7"}}));
  ASSERT_OK(file);
  EXPECT_EQ(file->rendezvous_address, "file:/shared/job-7");
  ASSERT_NE(file->rendezvous, nullptr);

  Options g = o;
  g.allgather = [](const std::vector<std::byte>& mine)
      -> Result<std::vector<std::vector<std::byte>>> {
    return std::vector<std::vector<std::byte>>{mine};
  };
  auto gather = PlanBootstrap(g, Lookup({}));
  ASSERT_OK(gather);
  EXPECT_FALSE(gather->alone) << "an all-gather means joining, even a world of one";
  EXPECT_EQ(gather->rendezvous_address, "allgather");
  ASSERT_NE(gather->rendezvous, nullptr);
  // A rendezvous named for a world of one also joins (through it).
  auto one = PlanBootstrap(o, Lookup({{"SHOAL_RENDEZVOUS", "tcp:h:5"}}));
  ASSERT_OK(one);
  EXPECT_FALSE(one->alone);
  EXPECT_EQ(one->rendezvous_address, "tcp:h:5");
  // IPv6: the last colon separates the port; brackets are accepted and removed.
  Options v6 = o;
  v6.rendezvous = "tcp:[fd00::1]:29600";
  auto bracketed = PlanBootstrap(v6, Lookup({}));
  ASSERT_OK(bracketed);
  EXPECT_EQ(bracketed->rendezvous_address, "tcp:fd00::1:29600");
  v6.rendezvous = "tcp:::1:29600";
  auto bare = PlanBootstrap(v6, Lookup({}));
  ASSERT_OK(bare);
  EXPECT_EQ(bare->rendezvous_address, "tcp:::1:29600");
}

TEST(Bootstrap, StoreDirTemplating) {
  Env env = {{"SHOAL_RANK", "2"}, {"SHOAL_WORLD_SIZE", "4"}, {"SHOAL_LOCAL_RANK", "0"},
             {"SHOAL_NODE", "gpu-{rank}"}, {"SHOAL_TOKEN", "t"}, {"SHOAL_RENDEZVOUS_PORT", "9"}};
  auto dir = [&](std::string tmpl) {
    auto plan = PlanBootstrap(WithStore(std::move(tmpl)), Lookup(env));
    EXPECT_OK(plan);
    return plan.ok() ? plan->store_dir : std::string("<failed>");
  };
  EXPECT_EQ(dir("/a/{rank}/{rank}"), "/a/2/2");
  EXPECT_EQ(dir("{rank}{local_rank}"), "20");
  // The node is filled in last and not expanded again.
  EXPECT_EQ(dir("/n/{node}"), "/n/gpu-{rank}");
  EXPECT_EQ(dir("/plain"), "/plain");
  EXPECT_EQ(dir("/{RANK}/{foo}/{rank"), "/{RANK}/{foo}/{rank");
  EXPECT_EQ(dir(""), "");
}

TEST(Bootstrap, IncompleteWorldsAreRefusedNamingWhatToSet) {
  Options o = WithStore("/x");
  EXPECT_NE(Refusal(o, {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}})
                .find("SHOAL_TOKEN"),
            std::string::npos);
  // No port anywhere: MASTER_PORT unset, or 65535 (no port after it).
  EXPECT_NE(Refusal(o, {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SHOAL_TOKEN", "t"}})
                .find("SHOAL_RENDEZVOUS_PORT"),
            std::string::npos);
  EXPECT_NE(Refusal(o, {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SHOAL_TOKEN", "t"},
                        {"MASTER_PORT", "65535"}})
                .find("SHOAL_RENDEZVOUS_PORT"),
            std::string::npos);
  // A rank outside the world, with where each number came from.
  Options r = o;
  r.rank = 4;
  std::string m = Refusal(r, {});
  EXPECT_NE(m.find("Options::rank"), std::string::npos) << m;
  EXPECT_NE(m.find("the default"), std::string::npos) << m;
  Options w = o;
  w.world_size = 1;
  m = Refusal(w, {{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  EXPECT_NE(m.find("RANK"), std::string::npos) << m;
  EXPECT_NE(m.find("Options::world_size"), std::string::npos) << m;
}

TEST(Bootstrap, MalformedVariablesAndRendezvousAreRefused) {
  Options o = WithStore("/x");
  for (const Env& env : std::vector<Env>{
           {{"RANK", "x"}, {"WORLD_SIZE", "2"}},
           {{"RANK", "2"}, {"WORLD_SIZE", "2"}},
           {{"RANK", "1"}},
           {{"OMPI_COMM_WORLD_SIZE", "2"}},
           {{"SHOAL_RANK", "0"}, {"SHOAL_WORLD_SIZE", "0"}},
           {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "-1"}},
           {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "65536"}},
           {{"SHOAL_RENDEZVOUS_PORT", " 1"}},
           {{"SHOAL_RENDEZVOUS_PORT", "1 "}},
       }) {
    std::string m = Refusal(o, env);
    EXPECT_NE(m.find(env.begin()->first), std::string::npos) << m;  // names a variable of it
  }
  // Explicit Options do not hide a launcher variable that does not parse.
  Options full = o;
  full.rank = 0;
  full.world_size = 1;
  Refusal(full, {{"RANK", "zero"}, {"WORLD_SIZE", "1"}});

  Options t = o;
  t.token = "t";
  for (const char* rdzv : {"tcp:host", "tcp::5000", "tcp:host:", "tcp:host:0", "tcp:host:65536",
                           "tcp:host:x", "udp:host:1", "file:", "host:5000"}) {
    t.rendezvous = rdzv;
    std::string m = Refusal(t, {});
    EXPECT_NE(m.find("rendezvous"), std::string::npos) << rdzv << ": " << m;
  }
}

TEST(LaunchInfo, EmptyNodeFallsBackToTheHostName) {
  auto li = transport::LaunchInfoFromEnv(Lookup({{"SHOAL_NODE", ""}}));
  ASSERT_OK(li);
  EXPECT_EQ(li->node, HostName());
  EXPECT_EQ(li->source, "default");
  auto sh = transport::LaunchInfoFromEnv(
      Lookup({{"SHOAL_RANK", "1"}, {"SHOAL_WORLD_SIZE", "2"}, {"SHOAL_LOCAL_RANK", "1"},
              {"SHOAL_MASTER_ADDR", "a"}, {"SHOAL_MASTER_PORT", "10"}}));
  ASSERT_OK(sh);
  EXPECT_EQ(sh->source, "shoal");
  EXPECT_EQ(sh->master_addr, "a");
  EXPECT_EQ(sh->master_port, 10);
  EXPECT_EQ(sh->rendezvous_port, 11);
}

}  // namespace
}  // namespace shoal
