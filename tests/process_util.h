// Child processes for multi-process tests: each runs a helper binary with its stdout and stderr
// in files, so a test can assert on exit codes and on what each member printed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace shoal::testing {

struct Process {
  pid_t pid = -1;
  std::string out, err;  // files holding its stdout and stderr
};

// Starts `binary args...` with `env` (NAME, VALUE) added to this process's environment.
inline Process Spawn(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& out, const std::string& err,
                     const std::vector<std::pair<std::string, std::string>>& env = {}) {
  Process p{-1, out, err};
  // Unflushed output of this process would be copied into the child and written to its files.
  std::fflush(stdout);
  std::fflush(stderr);
  p.pid = ::fork();
  if (p.pid == 0) {
    if (std::freopen(out.c_str(), "w", stdout) == nullptr) _exit(126);
    if (std::freopen(err.c_str(), "w", stderr) == nullptr) _exit(126);
    std::vector<std::string> a{binary};
    a.insert(a.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::setenv("SHOAL_LOG", "warn", 1);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return p;
}

// The launcher variables of one rank of a world (what torchrun's environment becomes for
// shoal), for Spawn's `env`.
inline std::vector<std::pair<std::string, std::string>> RankEnv(
    size_t rank, size_t world_size, const std::string& node, const std::string& token,
    const std::string& rendezvous) {
  return {{"SHOAL_RANK", std::to_string(rank)},
          {"SHOAL_WORLD_SIZE", std::to_string(world_size)},
          {"SHOAL_NODE", node},
          {"SHOAL_TOKEN", token},
          {"SHOAL_RENDEZVOUS", rendezvous}};
}

// Exit code, or 128 + signal number.
inline int Wait(const Process& p) {
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace shoal::testing
