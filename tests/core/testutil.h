/*
 * testutil.h - shared helpers of the core tests: a store file per test
 * (removed at teardown), child processes with deadlines, a clock, a PRNG.
 *
 * Children are fork()ed; they must never call cmocka asserts (those jump
 * back into the parent's test runner). They check with TU_CHILD_CHECK,
 * which prints the failed condition and _exit(1)s, and they end with
 * _exit through tu_spawn. A child opens the store by its path itself;
 * it never uses a store mapping inherited from the parent.
 */
#ifndef ATRIUM_TESTUTIL_H
#define ATRIUM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sys/types.h>

#include "atrium.h"

#define TU_PATH_MAX 96
#define TU_STORES_MAX 16

/* One test's stores: every path made by tu_path_new is removed and every
 * store opened by tu_store_open is closed at teardown. */
typedef struct tu_fixture {
  const char *path; /* the first path (tu_setup opens a store on it) */
  atr_store *store; /* the store tu_setup opened, or NULL          */
  char paths[TU_STORES_MAX][TU_PATH_MAX];
  int npaths;
  atr_store *stores[TU_STORES_MAX];
} tu_fixture;

/* cmocka fixtures. tu_setup: a fresh path and a store on it with
 * tu_small_opts; tu_setup_path: a fresh path only (nothing created);
 * tu_teardown: kills children left, closes stores, removes files. */
int tu_setup(void **state);
int tu_setup_path(void **state);
int tu_teardown(void **state);

/* A small store: 4 MiB, 256 objects, 1024 feed entries. */
void tu_small_opts(atr_store_opts *opts);
/* A fresh unique path "/dev/shm/atrium-test-<pid>-<n>" (not created). */
const char *tu_path_new(tu_fixture *f);
/* Opens (asserting success) and registers a store for teardown. */
atr_store *tu_store_open(tu_fixture *f, const char *path,
                         const atr_store_opts *opts);
/* Registers a store the test opened itself, for teardown to close. */
void tu_store_keep(tu_fixture *f, atr_store *store);
/* Closes a registered store now (NULL is fine). */
void tu_store_close(tu_fixture *f, atr_store *store);

/* A test, listed last in every table: no store file of this process is
 * left under /dev/shm. */
void tu_test_no_leftovers(void **state);

/* ----------------------------------------------------------- processes */

typedef int (*tu_child_fn)(void *arg);

/* Forks a child that runs fn(arg) and _exits with its result (0..255).
 * The child is registered: teardown kills it if it is still there. */
pid_t tu_spawn(tu_child_fn fn, void *arg);
/* Waits for pid up to timeout seconds. Returns its exit status, 128+sig
 * if a signal ended it, or -1 if it timed out (it is then killed -9). */
int tu_wait(pid_t pid, double timeout);
/* tu_spawn then tu_wait. */
int tu_run(tu_child_fn fn, void *arg, double timeout);
/* kill -9 and reap; returns what tu_wait returns. */
int tu_kill(pid_t pid);
/* Waits until pid sleeps in a futex wait (it is blocked in the library);
 * 0 when it does, -1 at the timeout or if it exited. */
int tu_wait_blocked(pid_t pid, double timeout);
/* Kills and reaps every child still registered. */
void tu_kill_children(void);

/* In a child: catches SIGINT with a handler that does nothing, installed
 * without SA_RESTART (as Python's is), so that a wait it interrupts
 * answers ATR_EINTR. */
void tu_catch_sigint(void);

/* In a child: print where and what failed, then _exit(1). */
_Noreturn void tu_child_fail(const char *file, int line, const char *what);
#define TU_CHILD_CHECK(cond)                                                   \
  ((cond) ? (void)0 : tu_child_fail(__FILE__, __LINE__, #cond))
/* In a child: atr_store_open(path) with defaults, or _exit(1). */
atr_store *tu_child_open(const char *path);

/* Pipes: tu_pipe asserts; read/write whole buffers (read waits up to
 * timeout seconds; both return 0 or -1). */
void tu_pipe(int fds[2]);
int tu_write_full(int fd, const void *buf, size_t len);
int tu_read_full(int fd, void *buf, size_t len, double timeout);
void tu_close_pipe(int fds[2]);
/* A child that says when it runs: tu_spawn, then wait up to 10 s for the
 * byte it writes on ready_fd's pipe with tu_child_ready (asserts). */
pid_t tu_spawn_ready(tu_child_fn fn, void *arg, int ready_fd);
/* In a child: tells the parent it is running, or _exit(1)s. */
void tu_child_ready(int ready_fd);
/* Whether a byte waits on fd (never waits). */
int tu_readable(int fd);

/* What a waiting child reports to its parent: the call's result and when
 * it returned (tu_now). */
typedef struct tu_report {
  int rc;
  double at;
} tu_report;

/* Children that wait: each opens the store by path, installs the SIGINT
 * handler of tu_catch_sigint if asked, says it runs, calls wait(store)
 * (which opens its object and waits) and reports (tu_report) on the
 * report pipe. */
typedef int (*tu_wait_fn)(atr_store *store);
#define TU_WAITERS_MAX 8
typedef struct tu_waiters {
  const char *path;
  tu_wait_fn wait;
  int sigint;
  int n;
  pid_t pids[TU_WAITERS_MAX];
  int ready[2], report[2];
} tu_waiters;
/* Starts n waiters; returns once every one sleeps in a futex wait. */
void tu_waiters_start(tu_waiters *w, const char *path, int n, tu_wait_fn wait,
                      int sigint);
/* Every waiter reports expect and exits 0; returns the latest report's
 * time minus t0 (seconds). Closes the pipes. */
double tu_waiters_end(tu_waiters *w, int expect, double t0);
/* atr_handle_stat, asserting success. */
atr_info tu_info(const atr_handle *h);

/* Whether this is the long run: ATRIUM_CHECK_LONG=1 in the environment
 * (make check-long), where loops run their full length. */
int tu_long(void);
/* A loop's count: full in the long run, else short (make check's, still
 * enough to fail on a real bug). */
int tu_scaled(int short_count, int full_count);
/* How many kill trials a latency test runs: ATRIUM_TEST_TRIALS, else 500
 * in the long run (100 under the sanitizers, whose forks and exits are
 * slow) and 100 in make check. */
int tu_kill_trials(void);
/* A bound on how soon a woken waiter runs: seconds, or ten times that
 * while the load average is above the CPUs (more runnable tasks than
 * CPUs: the scheduler alone can take longer), as test_lock allows. */
double tu_load_bound(double seconds);
/*
 * Judges a kill test's n trials (seconds, sorted here): lat from the
 * kill to the waiters' return, late from the victim's reaping (it had
 * died: the kernel walks its robust list before it is a zombie) to their
 * return, 0 if they came back first. Prints medians, 99th percentiles
 * and maxima; asserts the median within 10 ms of the kill, 99 in 100
 * back within 10 ms of the death (100 ms while the load average is above
 * the CPUs), and every one within 2 s of the kill (nothing hangs). The kill is
 * asynchronous: on a loaded machine the dying process waits for a CPU to run
 * its exit, which is the scheduler's time, not the library's (as test_lock).
 */
void tu_latency_check(const char *what, double *lat, double *late, int n);

/* --------------------------------------------------------------- misc */

/* Monotonic seconds (CLOCK_MONOTONIC is system-wide: comparable between
 * processes). */
double tu_now(void);
/* Sleeps; only for random kill delays, never to synchronise. */
void tu_sleep(double seconds);
/* xorshift64* PRNG; a state must not be 0. */
uint64_t tu_rand(uint64_t *state);
uint64_t tu_rand_below(uint64_t *state, uint64_t n);
uint64_t tu_seed(void);

/* Reads a whole file (small files) into a malloc'ed buffer. */
unsigned char *tu_read_file(const char *path, size_t *len);
/* Writes a whole file (mode 0600), replacing it. */
void tu_write_file(const char *path, const void *buf, size_t len);

/* Creates name as a new 'q' value (0), asserting it was created. */
void tu_counter_new(atr_store *store, const char *name, atr_handle *h);

/* Assert a core call returned the expected code, naming both codes. */
#define tu_assert_rc(call, expected)                                           \
  tu_assert_rc_at((call), (expected), #call, __FILE__, __LINE__)
void tu_assert_rc_at(int got, int expected, const char *what, const char *file,
                     int line);
#define tu_ok(call) tu_assert_rc((call), 0)

/* Names the case a table-driven test is on; failures of the tu_assert
 * macros print it. Reset by the fixtures. */
void tu_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define tu_assert_i64(got, expected)                                           \
  tu_assert_i64_at((int64_t)(got), (int64_t)(expected), #got, __FILE__,        \
                   __LINE__)
#define tu_assert_u64(got, expected)                                           \
  tu_assert_u64_at((uint64_t)(got), (uint64_t)(expected), #got, __FILE__,      \
                   __LINE__)
#define tu_assert_f64(got, expected)                                           \
  tu_assert_f64_at((double)(got), (double)(expected), #got, __FILE__, __LINE__)
void tu_assert_i64_at(int64_t got, int64_t expected, const char *what,
                      const char *file, int line);
void tu_assert_u64_at(uint64_t got, uint64_t expected, const char *what,
                      const char *file, int line);
/* Exact equality (NaN never equals). */
void tu_assert_f64_at(double got, double expected, const char *what,
                      const char *file, int line);

#endif /* ATRIUM_TESTUTIL_H */
