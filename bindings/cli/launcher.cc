#include "bindings/cli/launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>

#include "base/errno_status.h"

extern char** environ;

namespace shoal::cli {
namespace {

using Clock = std::chrono::steady_clock;

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

constexpr int kHandled[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD};

struct Stream {
  int fd = -1;  // read end of the rank's pipe; -1 at EOF
  int to = 1;   // the launcher's descriptor its lines go to
  std::string partial;
};

struct Rank {
  pid_t pid = -1;
  bool exited = false;
  int code = 0;
  Stream out, err;
};

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the launcher's own output is gone: nothing left to tell
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Forwards what `s` has to say, whole lines at a time, each behind `prefix`.
void Forward(Stream& s, const std::string& prefix, bool eof) {
  size_t start = 0;
  std::string out;
  for (size_t nl; (nl = s.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    out += prefix;
    out.append(s.partial, start, nl + 1 - start);
  }
  s.partial.erase(0, start);
  if (eof && !s.partial.empty()) {
    out += prefix + s.partial + "\n";
    s.partial.clear();
  }
  WriteAll(s.to, out);
}

Result<std::string> Token() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "getrandom");
    got += static_cast<size_t>(n);
  }
  std::string hex;
  for (unsigned char c : b) hex += fmt::format("{:02x}", c);
  return hex;
}

// A port nobody listens on, chosen below the kernel's ephemeral range: a port the kernel picked
// for bind(0) is handed out again to the next outgoing connection (UCX opens many), which would
// then hold it when rank 0 starts listening there. Random, so concurrent launches differ.
Result<uint16_t> FreePort() {
  uint32_t low = 32768;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r"); f != nullptr) {
    if (std::fscanf(f, "%u", &low) != 1) low = 32768;
    std::fclose(f);
  }
  const uint32_t first = 10000, last = std::max<uint32_t>(low, first + 1000) - 1;
  std::random_device rd;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto port = static_cast<uint16_t>(first + rd() % (last - first + 1));
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return ErrnoStatus(errno, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(port);
    const bool free = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (free) return port;
  }
  return Status::Unavailable("no free TCP port found for the rendezvous (200 tries)");
}

Status WriteJobFile(const std::string& path, const std::string& token,
                    const std::string& rendezvous, uint32_t ranks) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "creating " + tmp);
  ::fchmod(fd, 0600);  // an older file of another owner's umask
  WriteAll(fd, fmt::format("SHOAL_TOKEN={}\nSHOAL_RENDEZVOUS={}\nSHOAL_WORLD_SIZE={}\n"
                           "SHOAL_LAUNCHER_PID={}\n",
                           token, rendezvous, ranks, ::getpid()));
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "renaming " + tmp);
  return Status::OK();
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

// The environment of a rank: this process's, with the launcher's variables set over it.
std::vector<std::string> Environment(const std::vector<std::pair<std::string, std::string>>& set) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : set) vars[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// The launch itself: ranks started, output forwarded, signals and failures handled.
class Launch {
 public:
  explicit Launch(const LaunchSpec& spec) : spec_(spec) {}

  Result<int> Run(const std::string& token, const std::string& rendezvous, uint16_t port) {
    for (uint32_t r = 0; r < spec_.ranks; ++r) {
      Status s = Start(r, token, rendezvous, port);
      if (!s.ok()) {
        StopOthers(-1, SIGKILL);
        (void)Wait(true);  // the failed start is what is reported
        return s;
      }
    }
    return Wait(false);
  }

 private:
  Status Start(uint32_t r, const std::string& token, const std::string& rendezvous,
               uint16_t port) {
    std::vector<std::string> env =
        Environment(RankEnvironment(spec_, r, token, rendezvous, port));
    std::vector<std::string> args = spec_.argv;
    std::vector<char*> envp = Pointers(env);
    std::vector<char*> argv = Pointers(args);
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (spec_.prefix_output &&
        (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)) {
      Status s = ErrnoStatus(errno, "pipe");
      for (int fd : {out[0], out[1], err[0], err[1]}) {
        if (fd >= 0) ::close(fd);
      }
      return s;
    }
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus(errno, "fork");
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int sig : kHandled) ::signal(sig, SIG_DFL);
      if (spec_.prefix_output) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
      }
      ::execvpe(argv[0], argv.data(), envp.data());
      std::string why = fmt::format("shoal run: cannot start {}: {}\n", spec_.argv[0],
                                    std::strerror(errno));
      WriteAll(2, why);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // both sides: whichever runs first
    Rank rank;
    rank.pid = pid;
    if (spec_.prefix_output) {
      ::close(out[1]);
      ::close(err[1]);
      rank.out = {out[0], 1, {}};
      rank.err = {err[0], 2, {}};
    }
    ranks_.push_back(std::move(rank));
    prefixes_.push_back(fmt::format("[rank {}] ", r));
    return Status::OK();
  }

  void StopOthers(int except, int sig) {
    for (size_t i = 0; i < ranks_.size(); ++i) {
      if (static_cast<int>(i) != except && !ranks_[i].exited) ::kill(ranks_[i].pid, sig);
    }
  }

  void Reap() {
    for (size_t i = 0; i < ranks_.size(); ++i) {
      Rank& r = ranks_[i];
      if (r.exited) continue;
      int st = 0;
      pid_t got = ::waitpid(r.pid, &st, WNOHANG);
      if (got != r.pid) continue;
      r.exited = true;
      r.code = ExitCode(st);
      if (r.code != 0 && !first_failure_) {
        first_failure_ = r.code;
        if (spec_.ranks > 1) {
          WriteAll(2, fmt::format("shoal run: rank {} exited with {}; stopping the others\n", i,
                                  r.code));
        }
        StopOthers(static_cast<int>(i), SIGTERM);
        kill_at_ = Clock::now() + spec_.grace;
      }
    }
  }

  bool AllExited() const {
    for (const Rank& r : ranks_) {
      if (!r.exited) return false;
    }
    return true;
  }

  // Forwards output until every rank has exited and its pipes are drained (or, once all have
  // exited, a second passes without output: a child of a rank may hold a pipe open).
  Result<int> Wait(bool quiet) {
    for (;;) {
      const bool all_exited = AllExited();
      std::vector<pollfd> fds{{g_signal_pipe[0], POLLIN, 0}};
      std::vector<Stream*> streams;
      for (size_t i = 0; i < ranks_.size(); ++i) {
        for (Stream* s : {&ranks_[i].out, &ranks_[i].err}) {
          if (s->fd < 0) continue;
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
        }
      }
      if (all_exited && streams.empty()) break;
      int timeout = all_exited ? 1000 : -1;
      if (kill_at_ && !all_exited) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at_ -
                                                                          Clock::now());
        timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
      }
      int n = ::poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
      if (n == 0 && all_exited) break;
      if (kill_at_ && Clock::now() >= *kill_at_) {
        StopOthers(-1, SIGKILL);
        kill_at_.reset();
      }
      if (n > 0 && (fds[0].revents & POLLIN)) {
        unsigned char sigs[64];
        ssize_t got = ::read(g_signal_pipe[0], sigs, sizeof sigs);
        for (ssize_t k = 0; k < got; ++k) {
          if (sigs[k] == SIGCHLD) continue;
          StopOthers(-1, sigs[k]);  // forwarded to every rank
        }
        Reap();
      }
      for (size_t k = 1; n > 0 && k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        Stream& s = *streams[k - 1];
        char buf[65536];
        ssize_t got = ::read(s.fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        const size_t rank = RankOf(&s);
        if (got > 0) {
          if (!quiet) {
            s.partial.append(buf, static_cast<size_t>(got));
            Forward(s, prefixes_[rank], false);
          }
          continue;
        }
        if (!quiet) Forward(s, prefixes_[rank], true);
        ::close(s.fd);
        s.fd = -1;
      }
      Reap();
    }
    for (Rank& r : ranks_) {
      for (Stream* s : {&r.out, &r.err}) {
        if (s->fd >= 0) ::close(s->fd);
        s->fd = -1;
      }
    }
    return first_failure_.value_or(0);
  }

  size_t RankOf(const Stream* s) const {
    for (size_t i = 0; i < ranks_.size(); ++i) {
      if (&ranks_[i].out == s || &ranks_[i].err == s) return i;
    }
    return 0;
  }

  const LaunchSpec& spec_;
  std::vector<Rank> ranks_;
  std::vector<std::string> prefixes_;
  std::optional<int> first_failure_;
  std::optional<Clock::time_point> kill_at_;
};

}  // namespace

std::string JobFilePath(const std::string& store) { return store + "/shoal-job"; }

std::vector<std::pair<std::string, std::string>> RankEnvironment(const LaunchSpec& spec,
                                                                 uint32_t rank,
                                                                 const std::string& token,
                                                                 const std::string& rendezvous,
                                                                 uint16_t master_port) {
  const uint32_t nodes = spec.nodes == 0 ? spec.ranks : spec.nodes;
  const uint32_t per_node = (spec.ranks + nodes - 1) / nodes;
  const uint32_t node = rank / per_node;
  const uint32_t local_rank = rank % per_node;
  const uint32_t local_size = std::min(per_node, spec.ranks - node * per_node);
  const std::string node_name = spec.node_prefix + std::to_string(node);
  std::vector<std::pair<std::string, std::string>> env = {
      {"SHOAL_RANK", std::to_string(rank)},
      {"SHOAL_WORLD_SIZE", std::to_string(spec.ranks)},
      {"SHOAL_LOCAL_RANK", std::to_string(local_rank)},
      {"SHOAL_LOCAL_WORLD_SIZE", std::to_string(local_size)},
      {"RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(spec.ranks)},
      {"LOCAL_RANK", std::to_string(local_rank)},
      {"LOCAL_WORLD_SIZE", std::to_string(local_size)},
      {"SHOAL_NODE", node_name},
      {"SHOAL_TOKEN", token},
      {"SHOAL_RENDEZVOUS", rendezvous},
      {"MASTER_ADDR", "127.0.0.1"},
      {"MASTER_PORT", std::to_string(master_port)},
  };
  if (!spec.store.empty()) {
    env.emplace_back("SHOAL_STORE", spec.store + "/" + node_name + "/{local_rank}");
  }
  // The engine listens on PORT + local rank; the launcher's node names share this one host, so
  // it shifts each rank's base to make that PORT + rank.
  if (const char* m = std::getenv("SHOAL_METRICS_LISTEN"); m != nullptr) {
    const std::string listen(m);
    const size_t colon = listen.rfind(':');
    unsigned long port = 0;
    if (colon != std::string::npos) port = std::strtoul(listen.c_str() + colon + 1, nullptr, 10);
    if (port > 0 && port + rank <= 65535) {
      env.emplace_back("SHOAL_METRICS_LISTEN",
                       listen.substr(0, colon + 1) + std::to_string(port + rank - local_rank));
    }
  }
  for (const auto& kv : spec.env) env.push_back(kv);
  return env;
}

Result<int> RunRanks(const LaunchSpec& spec) {
  if (spec.ranks == 0 || spec.ranks > 4096) {
    return Status::InvalidArgument(fmt::format("{} ranks: give 1 .. 4096", spec.ranks));
  }
  if (spec.nodes > spec.ranks) {
    return Status::InvalidArgument(
        fmt::format("{} nodes for {} ranks: give at most one node per rank", spec.nodes,
                    spec.ranks));
  }
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return Status::InvalidArgument("no program to run: shoal run -n N -- PROGRAM [ARGS]");
  }
  SHOAL_ASSIGN_OR_RETURN(std::string token, Token());
  SHOAL_ASSIGN_OR_RETURN(uint16_t master_port, FreePort());
  uint16_t rendezvous_port = master_port;
  while (rendezvous_port == master_port) {
    SHOAL_ASSIGN_OR_RETURN(rendezvous_port, FreePort());
  }
  const std::string rendezvous = fmt::format("tcp:127.0.0.1:{}", rendezvous_port);
  std::error_code ec;
  std::string job_file;
  if (!spec.store.empty()) {
    std::filesystem::create_directories(spec.store, ec);
    if (ec) return Status::IOError(fmt::format("creating {}: {}", spec.store, ec.message()));
    job_file = JobFilePath(spec.store);
    SHOAL_RETURN_IF_ERROR(WriteJobFile(job_file, token, rendezvous, spec.ranks));
  }

  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (!job_file.empty()) std::filesystem::remove(job_file, ec);
    return ErrnoStatus(errno, "pipe");
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  struct sigaction old[std::size(kHandled)];
  for (size_t i = 0; i < std::size(kHandled); ++i) ::sigaction(kHandled[i], &sa, &old[i]);

  Launch launch(spec);
  Result<int> rc = launch.Run(token, rendezvous, master_port);

  for (size_t i = 0; i < std::size(kHandled); ++i) ::sigaction(kHandled[i], &old[i], nullptr);
  ::close(g_signal_pipe[0]);
  ::close(g_signal_pipe[1]);
  g_signal_pipe[0] = g_signal_pipe[1] = -1;
  if (!job_file.empty()) std::filesystem::remove(job_file, ec);
  return rc;
}

}  // namespace shoal::cli
