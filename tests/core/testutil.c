/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TU_CHILDREN_MAX 64

static unsigned tu_path_counter;
static pid_t tu_children[TU_CHILDREN_MAX];
static char tu_case_text[256];

/* ------------------------------------------------------------- stores */

void tu_small_opts(atr_store_opts *opts) {
  atr_store_opts_init(opts);
  opts->size = (size_t)4 << 20;
  opts->max_objects = 256;
  opts->feed_entries = 1024;
}

const char *tu_path_new(tu_fixture *f) {
  assert_true(f->npaths < TU_STORES_MAX);
  char *path = f->paths[f->npaths++];
  snprintf(path, TU_PATH_MAX, "/dev/shm/atrium-test-%ld-%u", (long)getpid(),
           tu_path_counter++);
  unlink(path);
  return path;
}

void tu_store_keep(tu_fixture *f, atr_store *store) {
  for (int i = 0; i < TU_STORES_MAX; i++) {
    if (f->stores[i] == NULL) {
      f->stores[i] = store;
      return;
    }
  }
  atr_store_close(store);
  fail_msg("too many stores in one test");
}

atr_store *tu_store_open(tu_fixture *f, const char *path,
                         const atr_store_opts *opts) {
  atr_store *store = NULL;
  int rv = atr_store_open(path, opts, &store);
  if (rv != 0)
    print_error("atr_store_open(%s): %s\n", path, atr_errname(rv));
  assert_int_equal(rv, 0);
  assert_non_null(store);
  tu_store_keep(f, store);
  return store;
}

void tu_store_close(tu_fixture *f, atr_store *store) {
  if (store == NULL)
    return;
  for (int i = 0; i < TU_STORES_MAX; i++)
    if (f->stores[i] == store)
      f->stores[i] = NULL;
  if (f->store == store)
    f->store = NULL;
  atr_store_close(store);
}

static tu_fixture *tu_fixture_new(void) {
  tu_case_text[0] = 0;
  tu_fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->path = tu_path_new(f);
  return f;
}

int tu_setup_path(void **state) {
  *state = tu_fixture_new();
  return 0;
}

int tu_setup(void **state) {
  tu_fixture *f = tu_fixture_new();
  atr_store_opts opts;
  tu_small_opts(&opts);
  *state = f;
  f->store = tu_store_open(f, f->path, &opts);
  return 0;
}

int tu_teardown(void **state) {
  tu_fixture *f = *state;
  tu_kill_children();
  if (f == NULL)
    return 0;
  for (int i = 0; i < TU_STORES_MAX; i++)
    atr_store_close(f->stores[i]);
  for (int i = 0; i < f->npaths; i++)
    unlink(f->paths[i]);
  free(f);
  *state = NULL;
  return 0;
}

void tu_test_no_leftovers(void **state) {
  (void)state;
  char prefix[64];
  int n = snprintf(prefix, sizeof prefix, "atrium-test-%ld-", (long)getpid());
  DIR *dir = opendir("/dev/shm");
  assert_non_null(dir);
  int left = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (strncmp(de->d_name, prefix, (size_t)n) == 0) {
      print_error("left behind: /dev/shm/%s\n", de->d_name);
      left++;
    }
  }
  closedir(dir);
  assert_int_equal(left, 0);
}

/* ---------------------------------------------------------- processes */

static void tu_child_register(pid_t pid) {
  for (int i = 0; i < TU_CHILDREN_MAX; i++) {
    if (tu_children[i] == 0) {
      tu_children[i] = pid;
      return;
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  fail_msg("too many children");
}

static void tu_child_unregister(pid_t pid) {
  for (int i = 0; i < TU_CHILDREN_MAX; i++)
    if (tu_children[i] == pid)
      tu_children[i] = 0;
}

pid_t tu_spawn(tu_child_fn fn, void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* cmocka's handlers would jump back into the runner: a crash in a
     * child must end the child. */
    static const int sigs[] = {SIGSEGV, SIGBUS,  SIGFPE,
                               SIGILL,  SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
      signal(sigs[i], SIG_DFL);
    _exit(fn(arg) & 0xff);
  }
  tu_child_register(pid);
  return pid;
}

static int tu_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

int tu_wait(pid_t pid, double timeout) {
  int status = 0;
  double deadline = tu_now() + timeout;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  for (;;) {
    pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid)
      break;
    if (got < 0 && errno != EINTR) {
      if (pidfd >= 0)
        close(pidfd);
      tu_child_unregister(pid);
      return -1;
    }
    double left = deadline - tu_now();
    if (left <= 0) {
      print_error("child %ld timed out: killing it\n", (long)pid);
      if (pidfd >= 0)
        close(pidfd);
      tu_kill(pid);
      return -1;
    }
    if (pidfd >= 0) {
      struct pollfd p = {.fd = pidfd, .events = POLLIN};
      poll(&p, 1, (int)(left * 1000) + 1);
    } else {
      tu_sleep(0.0005); /* no pidfd: poll the child's state */
    }
  }
  if (pidfd >= 0)
    close(pidfd);
  tu_child_unregister(pid);
  return tu_status(status);
}

int tu_run(tu_child_fn fn, void *arg, double timeout) {
  return tu_wait(tu_spawn(fn, arg), timeout);
}

int tu_kill(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  tu_child_unregister(pid);
  return tu_status(status);
}

void tu_kill_children(void) {
  for (int i = 0; i < TU_CHILDREN_MAX; i++)
    if (tu_children[i] != 0)
      tu_kill(tu_children[i]);
}

/* State letter of /proc/<pid>/stat and, where readable, the syscall it
 * is in (-1 if running or unknown). */
static int tu_proc_state(pid_t pid, char *state, long *sysno) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *paren = strrchr(buf, ')');
  if (paren == NULL || paren[1] == 0 || paren[2] == 0)
    return -1;
  *state = paren[2];
  *sysno = -1;
  snprintf(path, sizeof path, "/proc/%ld/syscall", (long)pid);
  f = fopen(path, "r");
  if (f != NULL) {
    if (fscanf(f, "%ld", sysno) != 1)
      *sysno = -1;
    fclose(f);
  }
  return 0;
}

int tu_wait_blocked(pid_t pid, double timeout) {
  double deadline = tu_now() + timeout;
  do {
    char state;
    long sysno;
    if (tu_proc_state(pid, &state, &sysno) != 0 || state == 'Z')
      return -1;
    /* 449: futex_waitv, which older headers do not name. */
    if (state == 'S' && (sysno == -1 || sysno == SYS_futex || sysno == 449))
      return 0;
    tu_sleep(0.0002);
  } while (tu_now() < deadline);
  return -1;
}

static void tu_on_sigint(int sig) {
  (void)sig;
}

void tu_catch_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = tu_on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

_Noreturn void tu_child_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "child %ld: %s:%d: check failed: %s\n", (long)getpid(), file,
          line, what);
  _exit(1);
}

atr_store *tu_child_open(const char *path) {
  atr_store *store = NULL;
  int rv = atr_store_open(path, NULL, &store);
  if (rv != 0) {
    fprintf(stderr, "child %ld: atr_store_open(%s): %s\n", (long)getpid(), path,
            atr_errname(rv));
    _exit(1);
  }
  return store;
}

void tu_pipe(int fds[2]) {
  assert_int_equal(pipe(fds), 0);
}

void tu_close_pipe(int fds[2]) {
  close(fds[0]);
  close(fds[1]);
}

int tu_write_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int tu_read_full(int fd, void *buf, size_t len, double timeout) {
  char *p = buf;
  double deadline = tu_now() + timeout;
  while (len > 0) {
    double left = deadline - tu_now();
    if (left <= 0)
      return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue;
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

pid_t tu_spawn_ready(tu_child_fn fn, void *arg, int ready_fd) {
  char byte;
  pid_t pid = tu_spawn(fn, arg);
  assert_int_equal(tu_read_full(ready_fd, &byte, 1, 10), 0);
  return pid;
}

void tu_child_ready(int ready_fd) {
  TU_CHILD_CHECK(tu_write_full(ready_fd, "r", 1) == 0);
}

int tu_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

/* --------------------------------------------------------------- misc */

double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tu_sleep(double seconds) {
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

uint64_t tu_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

uint64_t tu_rand_below(uint64_t *state, uint64_t n) {
  return n == 0 ? 0 : tu_rand(state) % n;
}

uint64_t tu_seed(void) {
  const char *env = getenv("ATRIUM_TEST_SEED");
  uint64_t seed;
  if (env != NULL && *env != 0) {
    seed = strtoull(env, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed =
        (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
  }
  if (seed == 0)
    seed = 1;
  print_message("seed %" PRIu64 " (ATRIUM_TEST_SEED to repeat)\n", seed);
  return seed;
}

unsigned char *tu_read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  size_t size = (size_t)st.st_size;
  unsigned char *buf = malloc(size + 1);
  assert_non_null(buf);
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    assert_true(n > 0);
    got += (size_t)n;
  }
  close(fd);
  *len = size;
  return buf;
}

void tu_write_file(const char *path, const void *buf, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(tu_write_full(fd, buf, len), 0);
  close(fd);
}

void tu_case(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tu_case_text, sizeof tu_case_text, fmt, ap);
  va_end(ap);
}

static void tu_print_case(void) {
  if (tu_case_text[0] != 0)
    print_error("case: %s\n", tu_case_text);
}

/* A failed tu_assert: the case, what differed, then cmocka's failure. */
__attribute__((format(printf, 3, 4))) static void
tu_fail_at(const char *file, int line, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tu_print_case();
  print_error("%s\n", msg);
  _fail(file, line);
}

void tu_assert_rc_at(int got, int expected, const char *what, const char *file,
                     int line) {
  if (got != expected)
    tu_fail_at(file, line, "%s: got %d (%s), expected %d (%s)", what, got,
               atr_errname(got), expected, atr_errname(expected));
}

void tu_assert_i64_at(int64_t got, int64_t expected, const char *what,
                      const char *file, int line) {
  if (got != expected)
    tu_fail_at(file, line, "%s: got %" PRId64 ", expected %" PRId64, what, got,
               expected);
}

void tu_assert_u64_at(uint64_t got, uint64_t expected, const char *what,
                      const char *file, int line) {
  if (got != expected)
    tu_fail_at(file, line, "%s: got %" PRIu64 ", expected %" PRIu64, what, got,
               expected);
}

void tu_assert_f64_at(double got, double expected, const char *what,
                      const char *file, int line) {
  if (got != expected)
    tu_fail_at(file, line, "%s: got %.17g, expected %.17g", what, got,
               expected);
}

void tu_counter_new(atr_store *store, const char *name, atr_handle *h) {
  tu_assert_rc(atr_value_open(store, name, 'q', ATR_CREATE, NULL, h),
               ATR_CREATED);
}

int tu_long(void) {
  const char *env = getenv("ATRIUM_CHECK_LONG");
  return env != NULL && *env != 0 && strcmp(env, "0") != 0;
}

int tu_scaled(int short_count, int full_count) {
  return tu_long() ? full_count : short_count;
}

int tu_kill_trials(void) {
  const char *env = getenv("ATRIUM_TEST_TRIALS");
  if (env != NULL && atoi(env) > 0)
    return atoi(env);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 100;
#else
  return tu_scaled(100, 500);
#endif
}

static int tu_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double tu_load_bound(double seconds) {
  double load = 0;
  if (getloadavg(&load, 1) != 1 ||
      load <= (double)sysconf(_SC_NPROCESSORS_ONLN))
    return seconds;
  print_message("load average %.1f: bound %.0f ms, not %.0f\n", load,
                seconds * 1e4, seconds * 1e3);
  return 10 * seconds;
}

void tu_latency_check(const char *what, double *lat, double *late, int n) {
  assert_true(n > 0);
  qsort(lat, (size_t)n, sizeof *lat, tu_cmp_double);
  qsort(late, (size_t)n, sizeof *late, tu_cmp_double);
  int p99 = n - 1 - n / 100;
  print_message("%d trials, %s: after the kill median %.3f ms, 99%% within "
                "%.3f ms, max %.3f ms; after the death median %.3f ms, 99%% "
                "within %.3f ms, max %.3f ms\n",
                n, what, lat[n / 2] * 1e3, lat[p99] * 1e3, lat[n - 1] * 1e3,
                late[n / 2] * 1e3, late[p99] * 1e3, late[n - 1] * 1e3);
  double bound = tu_load_bound(0.010);
  assert_true(lat[n / 2] < 0.010);
  assert_true(late[p99] < bound);
  assert_true(lat[n - 1] < 2.0);
}

static int tu_waiter_child(void *arg) {
  tu_waiters *w = arg;
  atr_store *s = tu_child_open(w->path);
  tu_report r;
  if (w->sigint)
    tu_catch_sigint();
  tu_child_ready(w->ready[1]);
  r.rc = w->wait(s);
  r.at = tu_now();
  TU_CHILD_CHECK(tu_write_full(w->report[1], &r, sizeof r) == 0);
  atr_store_close(s);
  return 0;
}

void tu_waiters_start(tu_waiters *w, const char *path, int n, tu_wait_fn wait,
                      int sigint) {
  assert_true(n > 0 && n <= TU_WAITERS_MAX);
  w->path = path;
  w->wait = wait;
  w->sigint = sigint;
  w->n = n;
  tu_pipe(w->ready);
  tu_pipe(w->report);
  for (int i = 0; i < n; i++)
    w->pids[i] = tu_spawn_ready(tu_waiter_child, w, w->ready[0]);
  for (int i = 0; i < n; i++)
    assert_int_equal(tu_wait_blocked(w->pids[i], 10), 0);
}

double tu_waiters_end(tu_waiters *w, int expect, double t0) {
  double worst = 0;
  for (int i = 0; i < w->n; i++) {
    tu_report r;
    assert_int_equal(tu_read_full(w->report[0], &r, sizeof r, 10), 0);
    tu_assert_rc(r.rc, expect);
    if (r.at - t0 > worst)
      worst = r.at - t0;
  }
  for (int i = 0; i < w->n; i++)
    assert_int_equal(tu_wait(w->pids[i], 10), 0);
  tu_close_pipe(w->ready);
  tu_close_pipe(w->report);
  return worst;
}

atr_info tu_info(const atr_handle *h) {
  atr_info info;
  tu_ok(atr_handle_stat(h, &info));
  return info;
}
