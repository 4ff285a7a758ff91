/*
 * test_semaphore.c - semaphores: opening and describing one, exact
 * counting with 4 processes, the bound (an over-release refused with
 * nothing changed), timeouts, a signal during a wait, a delete that wakes
 * waiters, leased permits (table full, given back, given back at their
 * deadline with no gateway, given back at once when their holder is
 * killed: 500 trials in make check-long, 100 in make check) and the
 * events.
 *
 * tests/run.sh: alone (the kill trials time how soon the waiter gets the
 * permit: another test's load beside them would be timed too).
 */
#include "testutil.h"

#include "internal.h" /* to die half-way through a lease as one could */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROCS 4

static tu_fixture *fixture(void **state) {
  return *state;
}

static void sem_new(atr_store *s, const char *name, uint64_t value,
                    uint64_t bound, atr_handle *h) {
  tu_assert_rc(atr_sem_open(s, name, ATR_CREATE | ATR_EXCL, value, bound, h),
               ATR_CREATED);
}

static void test_open_and_bound(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  uint64_t value = 99;
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, 3, 2, &h), ATR_EINVAL);
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, UINT64_MAX, 0, &h),
               ATR_EINVAL);
  sem_new(f->store, "s", 2, 3, &h);
  atr_info i0 = tu_info(&h);
  assert_int_equal(i0.kind, ATR_SEMAPHORE);
  tu_assert_u64(i0.count, 2);
  tu_assert_u64(i0.bound, 3);
  tu_assert_u64(i0.leased, 0);
  assert_string_equal(atr_kind_name(ATR_SEMAPHORE), "semaphore");
  /* An existing semaphore keeps its own settings. */
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, 7, 0, &h2), 0);
  tu_assert_u64(tu_info(&h2).bound, 3);
  tu_ok(atr_sem_acquire(&h, 0, &value));
  tu_assert_u64(value, 1);
  tu_ok(atr_sem_acquire(&h, 0, &value));
  tu_assert_u64(value, 0);
  tu_assert_rc(atr_sem_acquire(&h, 0, &value), ATR_ETIMEDOUT);
  tu_ok(atr_sem_release(&h, 3, &value));
  tu_assert_u64(value, 3);
  /* Past the bound: refused, and nothing changed. */
  uint64_t version = tu_info(&h).version;
  tu_assert_rc(atr_sem_release(&h, 1, &value), ATR_EOVERRELEASE);
  tu_ok(atr_sem_acquire(&h, 0, NULL));
  tu_assert_rc(atr_sem_release(&h, 2, NULL), ATR_EOVERRELEASE);
  atr_info i1 = tu_info(&h);
  tu_assert_u64(i1.count, 2);
  tu_assert_u64(i1.version, version + 1); /* the acquire only */
  tu_assert_rc(atr_sem_release(&h, 0, NULL), ATR_EINVAL);
  /* Unbounded: any release is fine. */
  sem_new(f->store, "u", 0, 0, &h2);
  tu_ok(atr_sem_release(&h2, 1000, &value));
  tu_assert_u64(value, 1000);
  atr_handle v;
  tu_counter_new(f->store, "v", &v);
  tu_assert_rc(atr_sem_open(f->store, "v", 0, 0, 0, &h2), ATR_EKIND);
  tu_assert_rc(atr_sem_acquire(&v, 0, NULL), ATR_ENOENT);
}

static void test_events(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  atr_event ev;
  tu_ok(atr_feed_open(f->store, &c));
  sem_new(f->store, "s", 1, 0, &h);
  tu_ok(atr_sem_acquire(&h, 0, NULL));
  tu_ok(atr_sem_release(&h, 1, NULL));
  static const atr_op want[] = {ATR_OP_CREATED, ATR_OP_ACQUIRED,
                                ATR_OP_RELEASED};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    tu_ok(atr_feed_next(&c, &ev, 1));
    assert_int_equal(ev.kind, ATR_SEMAPHORE);
    assert_string_equal(atr_op_name(ev.op), atr_op_name(want[i]));
  }
  tu_assert_rc(atr_feed_next(&c, &ev, 0), ATR_ETIMEDOUT);
}

/* ------------------------------------------------------ exact counting */

struct count_arg {
  const char *path;
  uint64_t rounds;
};

/* Each round: take a permit (waiting), count itself in "inside", check
 * that at most 2 are in, count the round, leave, give the permit back. */
static int count_child(void *arg) {
  struct count_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h, inside, done;
  atr_scalar one = {.i = 1}, minus = {.i = -1}, now;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  TU_CHILD_CHECK(atr_value_open(s, "inside", 'q', 0, NULL, &inside) == 0);
  TU_CHILD_CHECK(atr_value_open(s, "done", 'q', 0, NULL, &done) == 0);
  for (uint64_t r = 0; r < a->rounds; r++) {
    TU_CHILD_CHECK(atr_sem_acquire(&h, 10, NULL) == 0);
    TU_CHILD_CHECK(atr_value_add(&inside, one, &now, NULL) == 0);
    TU_CHILD_CHECK(now.i >= 1 && now.i <= 2);
    TU_CHILD_CHECK(atr_value_add(&done, one, NULL, NULL) == 0);
    TU_CHILD_CHECK(atr_value_add(&inside, minus, NULL, NULL) == 0);
    TU_CHILD_CHECK(atr_sem_release(&h, 1, NULL) == 0);
  }
  atr_store_close(s);
  return 0;
}

static void test_counting_4_processes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, inside, done;
  atr_scalar v;
  sem_new(f->store, "s", 2, 2, &h);
  tu_counter_new(f->store, "inside", &inside);
  tu_counter_new(f->store, "done", &done);
  struct count_arg a = {f->path, 20000};
  pid_t pids[PROCS];
  for (int i = 0; i < PROCS; i++)
    pids[i] = tu_spawn(count_child, &a);
  for (int i = 0; i < PROCS; i++)
    assert_int_equal(tu_wait(pids[i], 120), 0);
  tu_ok(atr_value_get(&done, &v, NULL));
  tu_assert_i64(v.i, PROCS * (int64_t)a.rounds);
  tu_ok(atr_value_get(&inside, &v, NULL));
  tu_assert_i64(v.i, 0);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 2);
  tu_assert_u64(info.waiters, 0);
}

/* ------------------------------------------------- waiters elsewhere */

/* A waiter: a plain acquire on "s". */
static int sem_waiter(atr_store *s) {
  atr_handle h;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  return atr_sem_acquire(&h, 30, NULL);
}

/* One waiter asleep in atr_sem_acquire on "s" (value 0); act wakes it;
 * it must answer expect within limit seconds. */
static void one_waiter(tu_fixture *f, int expect, int sigint,
                       void (*act)(tu_fixture *f, pid_t pid), double limit) {
  tu_waiters w;
  tu_waiters_start(&w, f->path, 1, sem_waiter, sigint);
  double t0 = tu_now();
  act(f, w.pids[0]);
  double took = tu_waiters_end(&w, expect, t0);
  limit = tu_load_bound(limit);
  if (took > limit)
    print_error("the waiter took %.1f ms\n", took * 1e3);
  assert_true(took <= limit);
}

static void act_release(tu_fixture *f, pid_t pid) {
  atr_handle h;
  (void)pid;
  tu_ok(atr_sem_open(f->store, "s", 0, 0, 0, &h));
  tu_ok(atr_sem_release(&h, 1, NULL));
}

static void act_sigint(tu_fixture *f, pid_t pid) {
  (void)f;
  assert_int_equal(kill(pid, SIGINT), 0);
}

static void act_delete(tu_fixture *f, pid_t pid) {
  (void)pid;
  tu_ok(atr_delete(f->store, "s", ATR_SEMAPHORE));
}

static void test_release_wakes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  sem_new(f->store, "s", 0, 0, &h);
  one_waiter(f, 0, 0, act_release, 0.05);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 0);
  tu_assert_u64(info.waiters, 0);
}

static void test_sigint(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  sem_new(f->store, "s", 0, 0, &h);
  one_waiter(f, ATR_EINTR, 1, act_sigint, 0.5);
  tu_assert_u64(tu_info(&h).count, 0);
}

static void test_delete_wakes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  sem_new(f->store, "s", 0, 0, &h);
  one_waiter(f, ATR_ENOENT, 0, act_delete, 0.5);
  tu_assert_rc(atr_sem_release(&h, 1, NULL), ATR_ENOENT);
}

static void test_timeout(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  sem_new(f->store, "s", 0, 0, &h);
  double t0 = tu_now();
  tu_assert_rc(atr_sem_acquire(&h, 0.1, NULL), ATR_ETIMEDOUT);
  double took = tu_now() - t0;
  assert_true(took >= 0.1 && took < 2.0);
}

/* ------------------------------------------------------ leased permits */

static void test_leases(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_grant g1, g2, g3;
  uint64_t value;
  sem_new(f->store, "s", 2, 2, &h);
  tu_ok(atr_sem_lease(&h, -1, 0, &g1));
  assert_true(g1.token != 0);
  tu_assert_u64(g1.count, 1);
  tu_ok(atr_sem_lease(&h, 30, 0, &g2));
  assert_true(g2.token != 0 && g2.token != g1.token);
  assert_true(g2.ttl == 30);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 0);
  tu_assert_u64(info.leased, 2);
  tu_assert_rc(atr_sem_lease(&h, 30, 0, &g3), ATR_ETIMEDOUT);
  tu_assert_rc(atr_sem_acquire(&h, 0, NULL), ATR_ETIMEDOUT);
  /* Leased permits count toward the bound. */
  tu_assert_rc(atr_sem_release(&h, 1, NULL), ATR_EOVERRELEASE);
  tu_assert_rc(atr_sem_unlease(&h, g1.token ^ 1, NULL), ATR_ENOTHELD);
  tu_assert_rc(atr_sem_unlease(&h, 0, NULL), ATR_ENOTHELD);
  tu_ok(atr_sem_unlease(&h, g1.token, &value));
  tu_assert_u64(value, 1);
  tu_assert_rc(atr_sem_unlease(&h, g1.token, NULL), ATR_ENOTHELD);
  tu_ok(atr_sem_unlease(&h, g2.token, &value));
  tu_assert_u64(value, 2);
  info = tu_info(&h);
  tu_assert_u64(info.leased, 0);
  tu_assert_rc(atr_sem_lease(&h, 0, 0, &g3), ATR_EINVAL);
  /* The table holds max(value, bound, 1) places: plain releases past
   * that leave permits that cannot be leased. */
  sem_new(f->store, "u", 1, 0, &h);
  tu_ok(atr_sem_release(&h, 1, NULL));
  tu_ok(atr_sem_lease(&h, 10, 0, &g1));
  tu_assert_rc(atr_sem_lease(&h, 10, 0, &g2), ATR_ETOOMANY);
  tu_assert_u64(tu_info(&h).count, 1);
}

struct unlease_arg {
  const char *path;
  uint64_t token;
};

/* Another process may not give back a process hold. */
static int unlease_child(void *arg) {
  struct unlease_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  TU_CHILD_CHECK(atr_sem_unlease(&h, a->token, NULL) == ATR_ENOTHELD);
  atr_store_close(s);
  return 0;
}

static void test_unlease_elsewhere(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_grant g;
  sem_new(f->store, "s", 1, 0, &h);
  tu_ok(atr_sem_lease(&h, -1, 0, &g));
  struct unlease_arg a = {f->path, g.token};
  assert_int_equal(tu_run(unlease_child, &a, 10), 0);
  tu_ok(atr_sem_unlease(&h, g.token, NULL));
}

struct taker_arg {
  const char *path;
  int ready[2];
  int report[2];
  double ttl;
  int expect;
};

/* Takes a leased permit as a process hold and sleeps until killed. */
static int holder_child(void *arg) {
  struct taker_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_grant g;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  TU_CHILD_CHECK(atr_sem_lease(&h, -1, 10, &g) == 0);
  tu_child_ready(a->ready[1]);
  for (;;)
    pause();
}

/* Waits for a permit (leased with a->ttl, or plain for ttl 0) and
 * reports when it got it. */
static int taker_child(void *arg) {
  struct taker_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_grant g;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  tu_child_ready(a->ready[1]);
  int rv = a->ttl != 0 ? atr_sem_lease(&h, a->ttl, 10, &g)
                       : atr_sem_acquire(&h, 10, NULL);
  double got = tu_now();
  if (rv != a->expect)
    fprintf(stderr, "taker got %s\n", atr_errname(rv));
  TU_CHILD_CHECK(rv == a->expect);
  TU_CHILD_CHECK(tu_write_full(a->report[1], &got, sizeof got) == 0);
  /* A leased permit goes with the thread when it exits, but only while
   * the store is mapped (the kernel then marks its word). */
  if (a->ttl >= 0)
    atr_store_close(s);
  return 0;
}

/* The waiter of test_holder_killed: a process that stays for every
 * trial (a process forked for each would start behind every runnable
 * task of a loaded machine, and measure the scheduler). For each byte
 * on its go pipe ('p': a plain acquire, 'l': a leased permit) it waits
 * for a permit, reports, and gives it back. */
static int steady_taker_child(void *arg) {
  struct taker_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_grant g;
  char mode;
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  while (tu_read_full(a->ready[0], &mode, 1, 60) == 0 && mode != 'q') {
    tu_report r;
    r.rc = mode == 'l' ? atr_sem_lease(&h, -1, 10, &g)
                       : atr_sem_acquire(&h, 10, NULL);
    r.at = tu_now();
    TU_CHILD_CHECK(tu_write_full(a->report[1], &r, sizeof r) == 0);
    if (mode == 'l' && r.rc >= 0)
      TU_CHILD_CHECK(atr_sem_unlease(&h, g.token, NULL) == 0);
    else if (r.rc >= 0)
      TU_CHILD_CHECK(atr_sem_release(&h, 1, NULL) == 0);
  }
  atr_store_close(s);
  return 0;
}

/* A process killed holding a leased permit: a process waiting for one
 * gets it within 10 ms, told ATR_ABANDONED. The waiter alternates
 * between a plain acquire and a lease. */
static void test_holder_killed(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  int trials = tu_kill_trials();
  double *lat = calloc((size_t)trials, sizeof *lat);
  double *late = calloc((size_t)trials, sizeof *late);
  assert_non_null(lat);
  assert_non_null(late);
  sem_new(f->store, "s", 1, 0, &h);
  struct taker_arg a = {.path = f->path}, w = {.path = f->path};
  tu_pipe(w.ready); /* the taker's go pipe */
  tu_pipe(w.report);
  pid_t taker = tu_spawn(steady_taker_child, &w);
  for (int trial = 0; trial < trials; trial++) {
    tu_report r;
    tu_case("trial %d", trial);
    tu_pipe(a.ready);
    pid_t holder = tu_spawn_ready(holder_child, &a, a.ready[0]);
    tu_close_pipe(a.ready);
    assert_int_equal(tu_write_full(w.ready[1], trial % 2 ? "l" : "p", 1), 0);
    assert_int_equal(tu_wait_blocked(taker, 10), 0);
    double t0 = tu_now();
    tu_kill(holder);
    double dead = tu_now();
    assert_int_equal(tu_read_full(w.report[0], &r, sizeof r, 10), 0);
    tu_assert_rc(r.rc, ATR_ABANDONED);
    lat[trial] = r.at - t0;
    late[trial] = r.at > dead ? r.at - dead : 0;
  }
  assert_int_equal(tu_write_full(w.ready[1], "q", 1), 0);
  assert_int_equal(tu_wait(taker, 10), 0);
  tu_close_pipe(w.ready);
  tu_close_pipe(w.report);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 1);
  tu_assert_u64(info.leased, 0);
  tu_latency_check("the waiter's permit", lat, late, trials);
  free(lat);
  free(late);
}

/* A thread that ends holding a leased permit gives it back (the kernel
 * marks it as it would at a kill), as long as the store is mapped. */
static void test_exit_gives_back(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  double got;
  sem_new(f->store, "s", 1, 0, &h);
  struct taker_arg a = {.path = f->path, .ttl = -1, .expect = 0};
  tu_pipe(a.ready);
  tu_pipe(a.report);
  pid_t taker = tu_spawn_ready(taker_child, &a, a.ready[0]);
  assert_int_equal(tu_read_full(a.report[0], &got, sizeof got, 10), 0);
  assert_int_equal(tu_wait(taker, 10), 0);
  tu_close_pipe(a.ready);
  tu_close_pipe(a.report);
  tu_assert_rc(atr_sem_acquire(&h, 1, NULL), ATR_ABANDONED);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 0);
  tu_assert_u64(info.leased, 0);
}

/* A lease that runs out with nobody to end it (no gateway): the waiter
 * gets the permit at its deadline, not told it was abandoned. */
static void test_lease_expires(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_grant g;
  sem_new(f->store, "s", 1, 0, &h);
  double t0 = tu_now();
  tu_ok(atr_sem_lease(&h, 0.2, 0, &g));
  struct taker_arg a = {.path = f->path, .ttl = 0, .expect = 0};
  double got;
  tu_pipe(a.ready);
  tu_pipe(a.report);
  pid_t taker = tu_spawn_ready(taker_child, &a, a.ready[0]);
  assert_int_equal(tu_read_full(a.report[0], &got, sizeof got, 10), 0);
  assert_int_equal(tu_wait(taker, 10), 0);
  tu_close_pipe(a.ready);
  tu_close_pipe(a.report);
  /* Its sleep ends at the lease's deadline (not at the 10 s timeout); the
   * slack is for a loaded machine's scheduler. */
  double slack = tu_load_bound(0.1);
  assert_true(got >= t0 + 0.2);
  if (got > t0 + 0.2 + slack)
    print_error("the waiter got the permit %.1f ms late\n",
                (got - t0 - 0.2) * 1e3);
  assert_true(got <= t0 + 0.2 + slack);
  tu_assert_rc(atr_sem_unlease(&h, g.token, NULL), ATR_ENOTHELD);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.leased, 0);
  tu_assert_u64(info.count, 0);
  /* atr_sync_expire ends one that ran out, with nobody waiting. */
  tu_ok(atr_sem_release(&h, 1, NULL));
  tu_ok(atr_sem_lease(&h, 0.05, 0, &g));
  tu_assert_i64(atr_sync_expire(&h), 0);
  tu_sleep(0.06);
  tu_assert_i64(atr_sync_expire(&h), 1);
  info = tu_info(&h);
  tu_assert_u64(info.leased, 0);
  tu_assert_u64(info.count, 1);
}

/* ----------------------------------------------- a death half-way */

/* Takes the record lock as a leaser does, makes the first store of a
 * lease's take (value - 1, leased + 1) and dies before taking a place. */
static int half_lease_child(void *arg) {
  atr_store *s = tu_child_open(arg);
  uint32_t slot;
  uint64_t id;
  TU_CHILD_CHECK(atr__lookup(s, "s", 1, &slot, &id) == 0);
  struct atr__obj *o = atr__slot(s, slot);
  TU_CHILD_CHECK(atr__record_lock(s, o) == 0);
  atomic_fetch_add(&o->u.sem.state, (UINT64_C(1) << 32) - 1);
  _exit(0); /* holding the record lock */
}

static void test_death_mid_lease(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_grant g;
  sem_new(f->store, "s", 2, 2, &h);
  tu_assert_i64(tu_run(half_lease_child, (void *)f->path, 10), 0);
  atr_info info = tu_info(&h);
  tu_assert_u64(info.count, 1);
  tu_assert_u64(info.leased, 1); /* a permit leased to no place */
  /* The next holder of the record lock gives it back, then leases. */
  tu_ok(atr_sem_lease(&h, 10, 0, &g));
  info = tu_info(&h);
  tu_assert_u64(info.count, 1);
  tu_assert_u64(info.leased, 1);
  tu_ok(atr_sem_unlease(&h, g.token, NULL));
  tu_assert_u64(tu_info(&h).count, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_and_bound, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_events, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_counting_4_processes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_release_wakes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_sigint, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeout, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_leases, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_unlease_elsewhere, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_lease_expires, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_holder_killed, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_exit_gives_back, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_death_mid_lease, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
