#include "base/fork_closed_fds.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shoal {
namespace {

// Forks a child that reports whether `fd` is open there (exit 0: open, 1: closed).
bool OpenInAForkedChild(int fd) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(::fcntl(fd, F_GETFD) == -1 ? 1 : 0);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  return WEXITSTATUS(status) == 0;
}

TEST(ForkClosedFds, AChildClosesWhatIsRegisteredAndOnlyThat) {
  int a[2], b[2];
  ASSERT_EQ(::pipe(a), 0);
  ASSERT_EQ(::pipe(b), 0);
  EXPECT_TRUE(OpenInAForkedChild(a[0]));
  CloseInForkedChildren(a[0]);
  CloseInForkedChildren(-1);  // ignored
  EXPECT_FALSE(OpenInAForkedChild(a[0]));
  EXPECT_TRUE(OpenInAForkedChild(a[1]));
  EXPECT_TRUE(OpenInAForkedChild(b[0]));
  EXPECT_NE(::fcntl(a[0], F_GETFD), -1);  // the parent's is untouched
  ForgetInForkedChildren(a[0]);
  EXPECT_TRUE(OpenInAForkedChild(a[0]));
  for (int fd : {a[0], a[1], b[0], b[1]}) ::close(fd);
}

}  // namespace
}  // namespace shoal
