/*
 * core_bench.c - libatrium's hot paths beside a bare atomic on shared
 * memory. Prints one `name: value unit` line per measurement.
 *
 *   core_bench [NAME...]     run only the named measurements
 *                            (growth_times: the growth section's times)
 *
 * ATRIUM_BENCH_COUNT=N runs each measurement once with count N, with no
 * calibration: a fixed amount of work, for `perf stat`, `strace -c` and
 * per-item costs on a machine too busy for its wall times to mean much.
 *
 * Each measurement is sized (by a short calibration run) to take about
 * ATRIUM_BENCH_TIME seconds (default 1.2), runs three times, and reports
 * the best. Stores live under /dev/shm with unique names and are removed
 * afterwards. Nothing here asserts a time: the numbers are for people.
 * The growth rows (the same work among few objects and among many) are
 * timed in CPU time, the others in wall time.
 */
#include "atrium.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_REPEATS 3
#define BENCH_ITEM_SIZE 64
#define BENCH_BATCH 16
#define BENCH_VALUE "bench.counter"
#define BENCH_QUEUE "bench.queue"
#define BENCH_LOCK "bench.lock"
#define BENCH_SEM "bench.sem"
#define BENCH_BARRIER "bench.barrier"
#define BENCH_PARTIES 4

/* The store of the running measurement, removed on exit and on a signal. */
static char bench_store_path[96];
static double bench_target_s = 1.2;
static uint64_t bench_fixed_count; /* ATRIUM_BENCH_COUNT; 0: calibrate */
/* The CPU seconds (user + system) each child of the last bench_fork
 * used, and how many there were: with a fixed count, the cost per item
 * of each role, which the neighbours' load does not change much. */
static double bench_cpu[8];
static int bench_children;

static void bench_die(const char *what, int code) {
  fprintf(stderr, "core_bench: %s: %s\n", what,
          code ? atr_strerror(code) : strerror(errno));
  if (bench_store_path[0])
    unlink(bench_store_path);
  exit(1);
}

static void bench_on_signal(int sig) {
  if (bench_store_path[0])
    unlink(bench_store_path);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Wall time, but for the growth rows: their ratios compare one process's
 * costs, which the CPU time it used measures even on a shared machine
 * (wall time there says as much about the neighbours' load). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A fresh store under /dev/shm, with a name no other run uses. */
static atr_store *bench_store_new(void) {
  static int seq;
  atr_store *store;
  int rv;

  snprintf(bench_store_path, sizeof bench_store_path,
           "/dev/shm/atrium-bench-%ld-%d", (long)getpid(), seq++);
  unlink(bench_store_path);
  if ((rv = atr_store_open(bench_store_path, NULL, &store)) < 0)
    bench_die(bench_store_path, rv);
  return store;
}

static void bench_store_free(atr_store *store) {
  atr_store_close(store);
  unlink(bench_store_path);
  bench_store_path[0] = '\0';
}

static atr_store *bench_store_attach(void) {
  atr_store_opts opts;
  atr_store *store;
  int rv;

  atr_store_opts_init(&opts);
  opts.open_only = 1;
  if ((rv = atr_store_open(bench_store_path, &opts, &store)) < 0)
    bench_die(bench_store_path, rv);
  return store;
}

/* ------------------------------------------------------------ processes */

/* What a child process does: set up (filling the handle it is given),
 * then, after the start signal, run count operations on that handle.
 * With pin, child k runs on CPU k only (if there is one): two processes
 * adding to one counter then really contend for it, where the scheduler
 * could otherwise let them take turns on one CPU of a busy machine. */
typedef struct bench_role {
  void (*setup)(void *ctx);
  void (*run)(void *ctx, uint64_t count);
  int pin;
} bench_role;

static void bench_pin(int k) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) < 0 || CPU_COUNT(&set) < 2)
    return;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, &set) && seen++ == k) {
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
      return;
    }
}

/*
 * Forks one child per role (n of them, at most 8); each sets up (opening
 * the store by path, as an unrelated process would), reports ready, and
 * waits for the start. Returns the seconds from the start until all have
 * exited.
 */
static double bench_fork(const bench_role *roles, int n, uint64_t count) {
  int ready[2], start[2];
  pid_t pids[8];
  double t0, t1;
  char byte = 0, go[8] = {0};
  int k;

  if (n > 8 || pipe(ready) < 0 || pipe(start) < 0)
    bench_die("pipe", 0);
  bench_children = n;
  for (k = 0; k < n; k++) {
    if ((pids[k] = fork()) < 0)
      bench_die("fork", 0);
    if (pids[k] == 0) {
      atr_handle handle = {0};
      close(ready[0]);
      close(start[1]);
      if (roles[k].pin)
        bench_pin(k);
      roles[k].setup(&handle);
      if (write(ready[1], &byte, 1) != 1 || read(start[0], &byte, 1) != 1)
        _exit(3);
      roles[k].run(&handle, count);
      _exit(0);
    }
  }
  close(ready[1]);
  close(start[0]);
  for (k = 0; k < n; k++)
    if (read(ready[0], &byte, 1) != 1)
      bench_die("a child failed to start", 0);
  t0 = bench_now();
  if (write(start[1], go, (size_t)n) != n)
    bench_die("write", 0);
  for (k = 0; k < n; k++) {
    int status;
    struct rusage ru;
    if (wait4(pids[k], &status, 0, &ru) < 0)
      bench_die("wait4", 0);
    bench_cpu[k] = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      errno = ECHILD;
      bench_die("a child process failed", 0);
    }
  }
  t1 = bench_now();
  close(ready[0]);
  close(start[1]);
  return t1 - t0;
}

static double bench_fork2(const bench_role roles[2], uint64_t count) {
  return bench_fork(roles, 2, count);
}

/* ------------------------------------------------------------ raw atomic */

static _Atomic int64_t *bench_raw_counter;

static void bench_raw_map(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    bench_die("mmap", 0);
  bench_raw_counter = p;
  atomic_init(bench_raw_counter, 0);
}

static void bench_raw_setup(void *ctx) {
  (void)ctx;
}

static void bench_raw_run(void *ctx, uint64_t count) {
  _Atomic int64_t *counter = bench_raw_counter;
  (void)ctx;
  for (uint64_t n = 0; n < count; n++)
    atomic_fetch_add(counter, 1);
}

static double raw_atomic_add_1p(uint64_t count) {
  double t0 = bench_now();
  bench_raw_run(NULL, count);
  return bench_now() - t0;
}

static double raw_atomic_add_2p(uint64_t count) {
  static const bench_role roles[2] = {{bench_raw_setup, bench_raw_run, 1},
                                      {bench_raw_setup, bench_raw_run, 1}};
  return bench_fork2(roles, count);
}

/* ------------------------------------------------------------ values */

static atr_store *bench_value_store;

static void bench_value_open(atr_store *store, atr_handle *h) {
  int rv = atr_value_open(store, BENCH_VALUE, 'q', ATR_CREATE, NULL, h);
  if (rv < 0)
    bench_die("atr_value_open", rv);
}

static void bench_value_run(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  atr_scalar one = {.i = 1};
  int rv;

  for (uint64_t n = 0; n < count; n++)
    if ((rv = atr_value_add(h, one, NULL, NULL)) != 0)
      bench_die("atr_value_add", rv);
}

static double core_value_add_1p(uint64_t count) {
  atr_handle h;
  double t0;

  bench_value_open(bench_value_store, &h);
  t0 = bench_now();
  bench_value_run(&h, count);
  return bench_now() - t0;
}

/* A child opens the store by path and the value by name, into ctx. */
static void bench_value_setup(void *ctx) {
  bench_value_open(bench_store_attach(), ctx);
}

static double core_value_add_2p(uint64_t count) {
  static const bench_role roles[2] = {{bench_value_setup, bench_value_run, 1},
                                      {bench_value_setup, bench_value_run, 1}};
  return bench_fork2(roles, count);
}

/* ------------------------------------------------------------ queues */

static void bench_queue_setup(void *ctx) {
  int rv = atr_queue_open(bench_store_attach(), BENCH_QUEUE, 0, NULL, ctx);
  if (rv < 0)
    bench_die("atr_queue_open", rv);
}

static void bench_queue_produce(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  char item[BENCH_ITEM_SIZE];
  int rv;

  memset(item, 'x', sizeof item);
  for (uint64_t n = 0; n < count; n++) {
    memcpy(item, &n, sizeof n);
    if ((rv = atr_queue_put(h, item, sizeof item, -1)) != 0)
      bench_die("atr_queue_put", rv);
  }
}

static void bench_queue_consume(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  char item[BENCH_ITEM_SIZE];
  size_t len;
  int rv;

  for (uint64_t n = 0; n < count; n++) {
    if ((rv = atr_queue_get(h, item, sizeof item, &len, -1)) != 0)
      bench_die("atr_queue_get", rv);
    if (len != BENCH_ITEM_SIZE)
      bench_die("atr_queue_get: wrong item size", ATR_ECORRUPT);
  }
}

static void bench_queue_produce_batch(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  char items[BENCH_BATCH][BENCH_ITEM_SIZE];
  struct iovec iov[BENCH_BATCH];
  int rv;

  memset(items, 'x', sizeof items);
  for (int k = 0; k < BENCH_BATCH; k++)
    iov[k] = (struct iovec){.iov_base = items[k], .iov_len = BENCH_ITEM_SIZE};
  for (uint64_t n = 0; n < count; n += BENCH_BATCH)
    if ((rv = atr_queue_put_batch(h, iov, BENCH_BATCH, -1)) != 0)
      bench_die("atr_queue_put_batch", rv);
}

static void bench_queue_consume_batch(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  atr_items items = {0};
  uint64_t got = 0;
  int rv;

  while (got < count) {
    items.count = 0; /* reuse the arrays: take the next batch from the start */
    if ((rv = atr_queue_get_batch(h, BENCH_BATCH, -1, &items)) != 0)
      bench_die("atr_queue_get_batch", rv);
    got += items.count;
  }
  atr_items_free(&items);
}

static double core_queue_2p(uint64_t count) {
  static const bench_role roles[2] = {{bench_queue_setup, bench_queue_produce},
                                      {bench_queue_setup, bench_queue_consume}};
  return bench_fork2(roles, count);
}

static double core_queue_batch_2p(uint64_t count) {
  static const bench_role roles[2] = {
      {bench_queue_setup, bench_queue_produce_batch},
      {bench_queue_setup, bench_queue_consume_batch}};
  count -= count % BENCH_BATCH;
  return bench_fork2(roles, count);
}

/* Leased get + ack by one consumer (a process hold with a lease, as
 * JoinableQueue's get + task_done), one producer. */
static void bench_lqueue_consume(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  atr_items items = {0};
  uint64_t receipt;
  uint32_t deliveries;
  int rv;

  for (uint64_t n = 0; n < count; n++) {
    items.count = 0;
    if ((rv = atr_queue_get_leased(h, 1, 60, 0, -1, &items, &receipt,
                                   &deliveries)) != 0)
      bench_die("atr_queue_get_leased", rv);
    if ((rv = atr_queue_ack(h, &receipt, 1, NULL, NULL)) != 0)
      bench_die("atr_queue_ack", rv);
  }
  atr_items_free(&items);
}

static double core_lqueue_2p(uint64_t count) {
  static const bench_role roles[2] = {
      {bench_queue_setup, bench_queue_produce},
      {bench_queue_setup, bench_lqueue_consume}};
  return bench_fork2(roles, count);
}

/* ------------------------------------------------------------ locks */

static void bench_lock_open(atr_store *store, atr_handle *h) {
  int rv = atr_lock_open(store, BENCH_LOCK, ATR_CREATE, 0, h);
  if (rv < 0)
    bench_die("atr_lock_open", rv);
}

static void bench_lock_setup(void *ctx) {
  bench_lock_open(bench_store_attach(), ctx);
}

/* acquire + release, count times (one count = one pair). */
static void bench_lock_run(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  int rv;
  for (uint64_t n = 0; n < count; n++) {
    if ((rv = atr_lock_acquire(h, -1, NULL)) != 0)
      bench_die("atr_lock_acquire", rv);
    if ((rv = atr_lock_release(h)) != 0)
      bench_die("atr_lock_release", rv);
  }
}

static double core_lock_1p(uint64_t count) {
  atr_handle h;
  bench_lock_open(bench_value_store, &h);
  double t0 = bench_now();
  bench_lock_run(&h, count);
  return bench_now() - t0;
}

/* Two processes taking turns on one lock, not pinned (as the Python peer
 * is not): the figure includes their sleeps and wakes. */
static double core_lock_2p(uint64_t count) {
  static const bench_role roles[2] = {{bench_lock_setup, bench_lock_run, 0},
                                      {bench_lock_setup, bench_lock_run, 0}};
  return bench_fork2(roles, count);
}

/* ------------------------------------------------------------ dicts */

/* A set then a get of a small value (8 bytes) under one of 64 short keys,
 * count times (one count = one set + one get), one process: what
 * Manager().dict()'s d[k] = v; d[k] costs two round trips for. */
static double core_dict_setget_1p(uint64_t count) {
  static const char keys[64][8] = {
      "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09",
      "k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19",
      "k20", "k21", "k22", "k23", "k24", "k25", "k26", "k27", "k28", "k29",
      "k30", "k31", "k32", "k33", "k34", "k35", "k36", "k37", "k38", "k39",
      "k40", "k41", "k42", "k43", "k44", "k45", "k46", "k47", "k48", "k49",
      "k50", "k51", "k52", "k53", "k54", "k55", "k56", "k57", "k58", "k59",
      "k60", "k61", "k62", "k63"};
  atr_handle h;
  uint64_t v, got;
  size_t len;
  int rv = atr_dict_open(bench_value_store, "bench.dict", ATR_CREATE, &h);
  if (rv < 0)
    bench_die("atr_dict_open", rv);
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    const char *k = keys[n % 64];
    v = n;
    if ((rv = atr_dict_set(&h, k, 3, &v, sizeof v, 0, NULL)) < 0)
      bench_die("atr_dict_set", rv);
    if ((rv = atr_dict_get(&h, k, 3, &got, sizeof got, &len, NULL)) != 0 ||
        got != n)
      bench_die("atr_dict_get", rv);
  }
  return bench_now() - t0;
}

/* ------------------------------------------------------------ growth */

/* The same work in a store holding few objects and in one holding many
 * (ATRIUM_BENCH_GROW, default 1,000,000): the costs must stay flat with
 * the count. Both stores are made for the many, so their tables (the
 * feed's ring, the index) are the same size: what differs is only what
 * is in them. */
#define BENCH_FEW 10u
static unsigned bench_grow_n = 1000000u;

/* A fresh store made for bench_grow_n objects besides the benchmark's
 * own, holding n values (g-0000000, ...). */
static atr_store *bench_store_grown(unsigned n) {
  atr_store_opts opts;
  atr_store *store;
  atr_handle h;
  char name[32];
  int rv;

  atr_store_opts_init(&opts);
  opts.max_objects = bench_grow_n + 1024;
  opts.size = (size_t)opts.max_objects * 768 + ((size_t)16 << 20);
  snprintf(bench_store_path, sizeof bench_store_path,
           "/dev/shm/atrium-bench-%ld-grown", (long)getpid());
  unlink(bench_store_path);
  if ((rv = atr_store_open(bench_store_path, &opts, &store)) < 0)
    bench_die(bench_store_path, rv);
  for (unsigned i = 0; i < n; i++) {
    snprintf(name, sizeof name, "g-%07u", i);
    if ((rv = atr_value_open(store, name, 'q', ATR_CREATE, NULL, &h)) < 0)
      bench_die("atr_value_open", rv);
  }
  return store;
}

/* A create then a delete of a value, each under a name never used
 * before (as new keys come and go): count pairs. */
static double core_create_delete(uint64_t count) {
  static uint64_t serial;
  atr_handle h;
  char name[32];
  int rv;
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    snprintf(name, sizeof name, "cd-%llu", (unsigned long long)serial++);
    if ((rv = atr_value_open(bench_value_store, name, 'q', ATR_CREATE, NULL,
                             &h)) != ATR_CREATED)
      bench_die("atr_value_open", rv);
    if ((rv = atr_delete(bench_value_store, name, ATR_ANY)) != 0)
      bench_die("atr_delete", rv);
  }
  return bench_now() - t0;
}

/* One count: a walk of every object by pages of limit. */
static int bench_page_one(const atr_info *info, void *arg) {
  snprintf(arg, ATR_NAME_MAX + 1, "%s", info->name);
  return 0;
}

static double bench_walk(size_t limit, uint64_t count) {
  char last[ATR_NAME_MAX + 1];
  int more, rv;
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    more = 1;
    for (int first = 1; more; first = 0)
      if ((rv = atr_list_page(bench_value_store, NULL, ATR_ANY,
                              first ? NULL : last, limit, bench_page_one, last,
                              &more)) != 0)
        bench_die("atr_list_page", rv);
  }
  return bench_now() - t0;
}

static double core_walk_pages_1000(uint64_t count) {
  return bench_walk(1000, count);
}

static double core_walk_pages_100(uint64_t count) {
  return bench_walk(100, count);
}

/* The growth rows besides the rated ones: a reopen of the store (what a
 * restart of atriumd costs the core) and a walk of every object by
 * pages, at bench_grow_n objects, printed once (seconds, not rates). */
static void bench_growth_times(void) {
  atr_store_opts opts;
  atr_store *store = bench_store_grown(bench_grow_n), *again;
  double t0, best = 1e9;
  char last_seen[ATR_NAME_MAX + 1];
  int rv;

  atr_store_close(store);
  atr_store_opts_init(&opts);
  opts.open_only = 1;
  for (int rep = 0; rep < BENCH_REPEATS; rep++) {
    t0 = bench_now();
    if ((rv = atr_store_open(bench_store_path, &opts, &again)) < 0)
      bench_die("atr_store_open", rv);
    double t = bench_now() - t0;
    best = t < best ? t : best;
    atr_store_close(again);
  }
  printf("core_open_at_grown: %.0f us\n", best * 1e6);
  if ((rv = atr_store_open(bench_store_path, &opts, &bench_value_store)) < 0)
    bench_die("atr_store_open", rv);
  /* In CPU time (see bench_clock); the first walk after an open also
   * maps the tables' pages in. atr_list of every object: what one page
   * costs when it must scan (the store lock held by a stopped process),
   * and what the gateway's scans at its start cost. */
  bench_clock = CLOCK_PROCESS_CPUTIME_ID;
  printf("core_walk_1000_cold_at_grown: %.0f ms\n",
         core_walk_pages_1000(1) * 1e3);
  printf("core_walk_1000_at_grown: %.0f ms\n", core_walk_pages_1000(1) * 1e3);
  printf("core_walk_100_at_grown: %.0f ms\n", core_walk_pages_100(1) * 1e3);
  t0 = bench_now();
  if ((rv = atr_list(bench_value_store, bench_page_one, last_seen)) != 0)
    bench_die("atr_list", rv);
  printf("core_list_all_at_grown: %.0f ms\n", (bench_now() - t0) * 1e3);
  bench_clock = CLOCK_MONOTONIC;
  fflush(stdout);
  bench_store_free(bench_value_store);
  bench_value_store = NULL;
}

/* The peers in C: a process-shared POSIX semaphore (what
 * multiprocessing's SemLock does under its Python layer) and a robust
 * process-shared pthread mutex, in a shared page. */
static struct bench_sync {
  sem_t sem;
  pthread_mutex_t mutex;
  _Alignas(64) uint32_t word; /* raw_lock_1p's */
} * bench_sync;

static void bench_sync_map(void) {
  pthread_mutexattr_t attr;
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    bench_die("mmap", 0);
  bench_sync = p;
  if (sem_init(&bench_sync->sem, 1, 1) != 0)
    bench_die("sem_init", 0);
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (pthread_mutex_init(&bench_sync->mutex, &attr) != 0)
    bench_die("pthread_mutex_init", 0);
  pthread_mutexattr_destroy(&attr);
}

static double posix_sem_1p(uint64_t count) {
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    if (sem_wait(&bench_sync->sem) != 0)
      bench_die("sem_wait", 0);
    sem_post(&bench_sync->sem);
  }
  return bench_now() - t0;
}

/* The floor of any lock whose holder's death the kernel reports (the
 * word must hold the TID: a CAS takes it; the give must see waiters
 * atomically: an exchange): those two locked instructions alone on a
 * word in shared memory, in a function of their own as the library's
 * are. What core_lock_1p adds to this is the robust list's upkeep and
 * the lock's own bookkeeping (docs/ARCHITECTURE.md, "Locks"). */
static __attribute__((noinline)) void bench_cas_xchg(_Atomic uint32_t *w) {
  uint32_t free_word = 0;
  if (!atomic_compare_exchange_strong(w, &free_word, 1))
    bench_die("raw_lock_1p: word taken", 0);
  atomic_exchange(w, 0);
}

static double raw_lock_1p(uint64_t count) {
  _Atomic uint32_t *w = (_Atomic uint32_t *)(void *)&bench_sync->word;
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++)
    bench_cas_xchg(w);
  return bench_now() - t0;
}

/* glibc's robust process-shared mutex, one process: the same guarantee
 * as the lock's (the kernel's robust list), without fences or events. */
static double robust_mutex_1p(uint64_t count) {
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    if (pthread_mutex_lock(&bench_sync->mutex) != 0)
      bench_die("pthread_mutex_lock", 0);
    pthread_mutex_unlock(&bench_sync->mutex);
  }
  return bench_now() - t0;
}

static void bench_mutex_run(void *ctx, uint64_t count) {
  (void)ctx;
  for (uint64_t n = 0; n < count; n++) {
    if (pthread_mutex_lock(&bench_sync->mutex) != 0)
      bench_die("pthread_mutex_lock", 0);
    pthread_mutex_unlock(&bench_sync->mutex);
  }
}

static double robust_mutex_2p(uint64_t count) {
  static const bench_role roles[2] = {{bench_raw_setup, bench_mutex_run, 0},
                                      {bench_raw_setup, bench_mutex_run, 0}};
  return bench_fork2(roles, count);
}

/* ------------------------------------------- semaphores and barriers */

static void bench_sem_open(atr_store *store, atr_handle *h) {
  int rv = atr_sem_open(store, BENCH_SEM, ATR_CREATE, 1, 0, h);
  if (rv < 0)
    bench_die("atr_sem_open", rv);
}

/* acquire + release of a plain permit, count times. */
static double core_sem_1p(uint64_t count) {
  atr_handle h;
  int rv;
  bench_sem_open(bench_value_store, &h);
  double t0 = bench_now();
  for (uint64_t n = 0; n < count; n++) {
    if ((rv = atr_sem_acquire(&h, -1, NULL)) != 0)
      bench_die("atr_sem_acquire", rv);
    if ((rv = atr_sem_release(&h, 1, NULL)) != 0)
      bench_die("atr_sem_release", rv);
  }
  return bench_now() - t0;
}

static void bench_barrier_open(atr_store *store, atr_handle *h) {
  int rv = atr_barrier_open(store, BENCH_BARRIER, ATR_CREATE, BENCH_PARTIES, h);
  if (rv < 0)
    bench_die("atr_barrier_open", rv);
}

static void bench_barrier_setup(void *ctx) {
  bench_barrier_open(bench_store_attach(), ctx);
}

static void bench_barrier_run(void *ctx, uint64_t count) {
  const atr_handle *h = ctx;
  int rv;
  for (uint64_t n = 0; n < count; n++)
    if ((rv = atr_barrier_wait(h, -1, NULL, NULL)) != 0)
      bench_die("atr_barrier_wait", rv);
}

/* A barrier of 4 processes, not pinned (as the Python peer is not):
 * rounds per second. */
static double core_barrier_4p(uint64_t count) {
  static const bench_role roles[BENCH_PARTIES] = {
      {bench_barrier_setup, bench_barrier_run, 0},
      {bench_barrier_setup, bench_barrier_run, 0},
      {bench_barrier_setup, bench_barrier_run, 0},
      {bench_barrier_setup, bench_barrier_run, 0}};
  return bench_fork(roles, BENCH_PARTIES, count);
}

/* ------------------------------------------------------------ driver */

typedef struct bench_case {
  const char *name;
  double (*fn)(uint64_t count); /* seconds for count (per process) */
  double ops_per_count;         /* operations counted per unit of count */
  const char *unit;
  int store; /* 1: needs a store with the value; 2: with the queue;
                3: with the lock; 4: the semaphore; 5: the barrier;
                6: with the value among BENCH_FEW others; 7: among
                bench_grow_n others */
} bench_case;

static const bench_case bench_cases[] = {
    {"raw_atomic_add_1p", raw_atomic_add_1p, 1, "ops/s", 0},
    {"core_value_add_1p", core_value_add_1p, 1, "ops/s", 1},
    {"raw_atomic_add_2p", raw_atomic_add_2p, 2, "ops/s", 0},
    {"core_value_add_2p", core_value_add_2p, 2, "ops/s", 1},
    {"core_queue_2p", core_queue_2p, 1, "items/s", 2},
    {"core_queue_batch_2p", core_queue_batch_2p, 1, "items/s", 2},
    {"core_lqueue_2p", core_lqueue_2p, 1, "items/s", 2},
    {"core_lock_1p", core_lock_1p, 1, "pairs/s", 3},
    {"posix_sem_1p", posix_sem_1p, 1, "pairs/s", 0},
    {"raw_lock_1p", raw_lock_1p, 1, "pairs/s", 0},
    {"robust_mutex_1p", robust_mutex_1p, 1, "pairs/s", 0},
    {"core_lock_2p", core_lock_2p, 2, "pairs/s", 3},
    {"robust_mutex_2p", robust_mutex_2p, 2, "pairs/s", 0},
    {"core_sem_1p", core_sem_1p, 1, "pairs/s", 4},
    {"core_barrier_4p", core_barrier_4p, 1, "rounds/s", 5},
    {"core_dict_setget_1p", core_dict_setget_1p, 1, "pairs/s", 1},
    {"core_add_at_few", core_value_add_1p, 1, "ops/s", 6},
    {"core_add_at_grown", core_value_add_1p, 1, "ops/s", 7},
    {"core_create_delete_at_few", core_create_delete, 1, "pairs/s", 6},
    {"core_create_delete_at_grown", core_create_delete, 1, "pairs/s", 7},
};

/* Grows count until a run takes 0.1 s, then scales it to the target. */
static uint64_t bench_calibrate(const bench_case *c) {
  uint64_t count = 4096;
  double t;

  for (;;) {
    t = c->fn(count);
    if (t >= 0.1 || count >= ((uint64_t)1 << 40))
      break;
    count *= t < 0.01 ? 16 : 4;
  }
  return (uint64_t)((double)count * bench_target_s / t) + BENCH_BATCH;
}

static void bench_measure(const bench_case *c) {
  atr_store *store = NULL;
  double best = 0;
  uint64_t count;

  if (c->store >= 6) {
    store = bench_store_grown(c->store == 7 ? bench_grow_n : BENCH_FEW);
    atr_handle h;
    bench_value_open(store, &h);
  } else if (c->store) {
    store = bench_store_new();
    if (c->store == 1) {
      atr_handle h;
      bench_value_open(store, &h);
    } else if (c->store == 3) {
      atr_handle h;
      bench_lock_open(store, &h);
    } else if (c->store == 4) {
      atr_handle h;
      bench_sem_open(store, &h);
    } else if (c->store == 5) {
      atr_handle h;
      bench_barrier_open(store, &h);
    } else {
      atr_handle h;
      int rv = atr_queue_open(store, BENCH_QUEUE, ATR_CREATE, NULL, &h);
      if (rv < 0)
        bench_die("atr_queue_open", rv);
    }
  }
  bench_value_store = store;
  bench_clock = c->store >= 6 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
  count = bench_fixed_count != 0 ? bench_fixed_count : bench_calibrate(c);
  for (int rep = 0; rep < (bench_fixed_count != 0 ? 1 : BENCH_REPEATS); rep++) {
    double rate = c->ops_per_count * (double)count / c->fn(count);
    best = rate > best ? rate : best;
  }
  bench_clock = CLOCK_MONOTONIC;
  if (store)
    bench_store_free(store);
  printf("%s: %.0f %s\n", c->name, best, c->unit);
  if (bench_fixed_count != 0 && bench_children > 0) {
    printf("%s_cpu_ns:", c->name);
    for (int k = 0; k < bench_children; k++)
      printf(" %.0f", bench_cpu[k] * 1e9 / (double)count);
    printf(" per count, child by child (user + system)\n");
  }
  bench_children = 0;
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *target = getenv("ATRIUM_BENCH_TIME");
  size_t k;
  int found = 0;

  const char *grow = getenv("ATRIUM_BENCH_GROW");
  const char *fixed = getenv("ATRIUM_BENCH_COUNT");
  if (fixed && strtoull(fixed, NULL, 10) > 0)
    bench_fixed_count = strtoull(fixed, NULL, 10);
  if (target && atof(target) > 0)
    bench_target_s = atof(target);
  if (grow && atoi(grow) > 0)
    bench_grow_n = (unsigned)atoi(grow);
  signal(SIGINT, bench_on_signal);
  signal(SIGTERM, bench_on_signal);
  bench_raw_map();
  bench_sync_map();
  for (k = 0; k < sizeof bench_cases / sizeof bench_cases[0]; k++) {
    int wanted = argc < 2;
    for (int a = 1; a < argc; a++)
      wanted |= !strcmp(argv[a], bench_cases[k].name);
    if (wanted) {
      bench_measure(&bench_cases[k]);
      found++;
    }
  }
  for (int a = 1; a < argc || argc < 2; a++)
    if (argc < 2 || !strcmp(argv[a], "growth_times")) {
      bench_growth_times();
      found++;
      break;
    }
  if (!found) {
    fprintf(stderr, "core_bench: no such measurement\n");
    return 2;
  }
  return 0;
}
