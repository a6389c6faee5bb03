// shoal: the command line of shoal (docs/cli.md). Subcommands:
//   run                 start the N ranks of a job on this machine (bindings/cli/launcher.h)
//   ls stat du cat get put rm ckpt status scrub fsck repair
//                       on the stores of a world, opened together in this process, or on a
//                       running job, observed as a guest with its token
//                       (bindings/cli/session.h, bindings/cli/commands.h)
// Each subcommand's --help lists its own options with their defaults.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <cstdio>
#include <string>
#include <vector>

#include "bindings/cli/commands.h"
#include "bindings/cli/launcher.h"
#include "bindings/cli/session.h"
#include "bindings/cli/store_part.h"

namespace {

std::string HostName() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "host";
  return buf;
}

int Fail(const shoal::Status& s) {
  std::fprintf(stderr, "shoal: %s\n", s.ToString().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything after the first "--" is the program `shoal run` starts, untouched by parsing.
  std::vector<std::string> program;
  int parsed = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      parsed = i;
      program.assign(argv + i + 1, argv + argc);
      break;
    }
  }

  CLI::App app{"shoal: storage for distributed training jobs (docs/cli.md)", "shoal"};
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);

  shoal::cli::LaunchSpec spec;
  spec.node_prefix = HostName() + "-";
  double grace_s = 10;
  bool dry_run = false, no_prefix = false;
  CLI::App* run = app.add_subcommand(
      "run", "Start N ranks of PROGRAM on this machine: shoal run -n N [options] -- PROGRAM ARGS");
  run->add_option("-n,--ranks", spec.ranks, "Ranks to start")->required()->check(
      CLI::Range(1, 4096));
  run->add_option("--nodes", spec.nodes,
                  "Node names to deal the ranks to, in contiguous blocks (0: one per rank, so "
                  "replicas land on distinct nodes)")
      ->default_val(0)->check(CLI::Range(0, 4096));
  run->add_option("--node-prefix", spec.node_prefix, "Node k is named PREFIX<k>")
      ->capture_default_str();
  run->add_option("--store", spec.store,
                  "Store root: each rank gets SHOAL_STORE=ROOT/<node>/{local_rank}");
  run->add_option("--grace", grace_s,
                  "Seconds between SIGTERM and SIGKILL of the other ranks after one fails")
      ->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  run->add_flag("--no-prefix", no_prefix,
                "Pass the ranks' output through untouched instead of prefixing lines with "
                "[rank R]");
  run->add_flag("--dry-run", dry_run, "Print each rank's variables and command; start nothing");
  run->footer(
      "Sets SHOAL_RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE, torchrun's RANK/WORLD_SIZE/"
      "LOCAL_RANK/LOCAL_WORLD_SIZE, SHOAL_NODE, a fresh SHOAL_TOKEN, SHOAL_RENDEZVOUS (tcp, rank 0 hosts "
      "it), MASTER_ADDR/MASTER_PORT, and SHOAL_STORE with --store (ROOT/shoal-job then names the "
      "live job to the other shoal commands). Forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT; "
      "stops every rank when one fails; exits with the first failure's code.");

  // ---- the store commands: every one names its stores with --store ----
  shoal::cli::SessionSpec where;
  std::vector<std::string>& stores = where.stores;
  bool counters = false;
  bool json = false, long_format = false, recursive = false, progress = false, replace = false;
  std::vector<std::string> paths;
  std::string src, dst, root = "checkpoints", tag;
  uint32_t keep_last = 0;
  auto stores_opt = [&](CLI::App* c) {
    c->add_option("-s,--store", stores,
                  "A store directory, or a directory holding a world's stores (shoal run "
                  "--store ROOT); repeat for several. Every store of the world must be given. "
                  "A root whose job is running (ROOT/shoal-job) is observed live")
        ->allow_extra_args(false)->envname("SHOAL_STORES");
    c->add_option("--job", where.job_file,
                  "Observe the running job this job file names (shoal run --store ROOT writes "
                  "ROOT/shoal-job: its token and rendezvous)")
        ->envname("SHOAL_JOB");
    c->add_flag("--offline", where.offline,
                "Open the stores in this process even when ROOT/shoal-job names a job");
  };
  auto json_opt = [&](CLI::App* c) { c->add_flag("--json", json, "Print one JSON document"); };
  CLI::App* ls = app.add_subcommand("ls", "List a directory (or name one object)");
  stores_opt(ls);
  ls->add_option("path", src, "Directory or object; default the root")->default_val("");
  ls->add_flag("-l", long_format, "Sizes and seal times");
  ls->add_flag("-R", recursive, "Recurse into directories");
  json_opt(ls);
  CLI::App* stat = app.add_subcommand("stat", "An object's size, chunks and the members holding them");
  stores_opt(stat);
  stat->add_option("paths", paths, "Objects")->required();
  json_opt(stat);
  CLI::App* du = app.add_subcommand("du", "Objects and bytes at or below each path");
  stores_opt(du);
  du->add_option("paths", paths, "Directories or objects; default the root");
  json_opt(du);
  CLI::App* cat = app.add_subcommand("cat", "Write objects' bytes to stdout");
  stores_opt(cat);
  cat->add_option("paths", paths, "Objects")->required();
  CLI::App* get = app.add_subcommand("get", "Copy an object or a directory's objects to local files");
  stores_opt(get);
  get->add_option("src", src, "Object or directory")->required();
  get->add_option("dst", dst, "File or directory")->required();
  get->add_flag("--progress", progress, "Show progress on a terminal");
  CLI::App* put = app.add_subcommand(
      "put", "Store a local file or tree; a rerun skips objects already stored with the same "
             "size and CRC32C");
  stores_opt(put);
  put->add_option("src", src, "File or directory")->required();
  put->add_option("dst", dst, "Object or directory name")->required();
  put->add_flag("--replace", replace, "Overwrite objects whose content differs");
  put->add_flag("--progress", progress, "Show progress on a terminal");
  CLI::App* rm = app.add_subcommand("rm", "Remove objects (a directory's with -r)");
  stores_opt(rm);
  rm->add_option("paths", paths, "Objects or directories")->required();
  rm->add_flag("-r", recursive, "Remove every object below a directory");
  CLI::App* ckpt = app.add_subcommand("ckpt", "Checkpoints: list, show, rm, retain");
  ckpt->require_subcommand(1);
  auto root_opt = [&](CLI::App* c) {
    c->add_option("--root", root, "The checkpoints' directory (CheckpointOptions::root)")
        ->capture_default_str();
  };
  CLI::App* ck_list = ckpt->add_subcommand("list", "Committed checkpoints, oldest first");
  stores_opt(ck_list);
  root_opt(ck_list);
  json_opt(ck_list);
  CLI::App* ck_show = ckpt->add_subcommand("show", "A checkpoint's manifest: blobs, sizes, CRCs");
  stores_opt(ck_show);
  root_opt(ck_show);
  ck_show->add_option("tag", tag, "Checkpoint tag")->required();
  json_opt(ck_show);
  CLI::App* ck_rm = ckpt->add_subcommand("rm", "Remove committed checkpoints");
  stores_opt(ck_rm);
  root_opt(ck_rm);
  ck_rm->add_option("tags", paths, "Checkpoint tags")->required();
  CLI::App* ck_retain = ckpt->add_subcommand("retain", "Keep the newest N checkpoints");
  stores_opt(ck_retain);
  root_opt(ck_retain);
  ck_retain->add_option("keep_last", keep_last, "How many to keep")->required();
  CLI::App* status = app.add_subcommand(
      "status", "The members: nodes, epoch, what each holds, space, background work, counters");
  stores_opt(status);
  json_opt(status);
  status->add_flag("--counters", counters, "Every counter and latency of every member");
  CLI::App* scrub = app.add_subcommand(
      "scrub", "Every member re-reads its chunks and checks their CRC32C now; damaged copies "
               "are repaired from replicas");
  stores_opt(scrub);
  json_opt(scrub);
  CLI::App* fsck = app.add_subcommand(
      "fsck", "Check every object's replicas (live holders per chunk) and that chunks without "
              "one still read; changes nothing");
  stores_opt(fsck);
  json_opt(fsck);
  CLI::App* repair = app.add_subcommand(
      "repair", "Rebuild missing replicas of every object; report the unreadable ones");
  stores_opt(repair);
  json_opt(repair);

  try {
    app.parse(parsed, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (run->parsed()) {
    spec.argv = program;
    spec.prefix_output = !no_prefix;
    spec.grace = std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
    if (program.empty()) {
      std::fprintf(stderr, "shoal run: no program: shoal run -n N [options] -- PROGRAM ARGS\n");
      return 2;
    }
    if (dry_run) {
      for (uint32_t r = 0; r < spec.ranks; ++r) {
        std::string line = fmt::format("rank {}:", r);
        for (const auto& [k, v] : shoal::cli::RankEnvironment(spec, r, "<token>",
                                                              "file:<dir>", 0)) {
          line += fmt::format(" {}={}", k, v);
        }
        for (const std::string& a : program) line += " " + a;
        std::puts(line.c_str());
      }
      return 0;
    }
    auto rc = shoal::cli::RunRanks(spec);
    if (!rc.ok()) return Fail(rc.status());
    return *rc;
  }

  // One store of a world of several, alone: its own part, said as such (unless a running job's
  // file is beside it: that job is observed).
  bool job_beside = false;
  for (const std::string& root : stores) {
    std::error_code ec;
    job_beside = job_beside || std::filesystem::is_regular_file(root + "/shoal-job", ec);
  }
  if (where.job_file.empty() && !stores.empty() && (!job_beside || where.offline)) {
    auto found = shoal::cli::FindStores(stores);
    if (found.ok() && found->size() == 1) {
      auto part = shoal::cli::ReadStorePart((*found)[0].dir);
      if (!part.ok()) return Fail(part.status());
      if (part->has_value()) {
        const shoal::cli::StorePart& p = **part;
        if (status->parsed()) return shoal::cli::PartStatus(p, json);
        if (ls->parsed()) return shoal::cli::PartLs(p, shoal::cli::EnginePath(src), long_format, json);
        if (du->parsed()) return shoal::cli::PartDu(p, json);
        std::fprintf(stderr,
                     "shoal: %s is one of the %zu stores of its world; alone it is not the world, "
                     "so only status, ls and du show its own part. Give every store (or their "
                     "root).\n",
                     p.dir.c_str(), p.membership.members.size());
        return 2;
      }
    }
  }
  auto session = shoal::cli::Session::Open(where);
  if (!session.ok()) return Fail(session.status());
  shoal::cli::Session& w = **session;
  shoal::Engine& e = w.engine();
  for (CLI::App* writing : {put, rm, ck_rm, ck_retain, repair}) {
    if (writing->parsed() && w.live()) {
      std::fprintf(stderr,
                   "shoal %s: %s\nA live world is read-only to the CLI: change it from the job, "
                   "or run this once the job stopped (or with --offline after it did).\n",
                   writing->get_name().c_str(), w.description().c_str());
      return 2;
    }
  }
  namespace c = shoal::cli;
  if (ls->parsed()) return c::Ls(e, src, long_format, recursive, json);
  if (stat->parsed()) return c::StatCmd(e, paths, json);
  if (du->parsed()) return c::Du(e, paths.empty() ? std::vector<std::string>{""} : paths, json);
  if (cat->parsed()) return c::Cat(e, paths);
  if (get->parsed()) return c::Get(e, src, dst, progress);
  if (put->parsed()) return c::Put(e, src, dst, replace, progress);
  if (rm->parsed()) return c::Rm(e, paths, recursive);
  if (ck_list->parsed()) return c::CkptList(e, root, json);
  if (ck_show->parsed()) return c::CkptShow(e, root, tag, json);
  if (ck_rm->parsed()) return c::CkptRm(e, root, paths);
  if (ck_retain->parsed()) return c::CkptRetain(e, root, keep_last);
  if (status->parsed()) return c::StatusCmd(w, json, counters);
  if (scrub->parsed()) return c::ScrubCmd(w, json);
  if (fsck->parsed()) return c::FsckCmd(w, json);
  if (repair->parsed()) return c::RepairCmd(e, json);
  return 2;
}
