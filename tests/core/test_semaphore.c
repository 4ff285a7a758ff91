/*
 * test_semaphore.c - semaphores: opening and describing one, exact
 * counting with 4 processes, the bound (an over-release refused with
 * nothing changed), timeouts, a signal during a wait, a delete that wakes
 * waiters, leased permits (table full, given back, given back at their
 * deadline with no gateway, given back at once when their holder is
 * killed: 500 trials) and the events.
 */
#include "testutil.h"

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

static atr_info sem_info(const atr_handle *h) {
  atr_info info;
  tu_ok(atr_handle_stat(h, &info));
  return info;
}

static void test_open_and_bound(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  uint64_t value = 99;
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, 3, 2, &h), ATR_EINVAL);
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, UINT64_MAX, 0, &h),
               ATR_EINVAL);
  sem_new(f->store, "s", 2, 3, &h);
  atr_info i0 = sem_info(&h);
  assert_int_equal(i0.kind, ATR_SEMAPHORE);
  tu_assert_u64(i0.count, 2);
  tu_assert_u64(i0.bound, 3);
  tu_assert_u64(i0.leased, 0);
  assert_string_equal(atr_kind_name(ATR_SEMAPHORE), "semaphore");
  /* An existing semaphore keeps its own settings. */
  tu_assert_rc(atr_sem_open(f->store, "s", ATR_CREATE, 7, 0, &h2), 0);
  tu_assert_u64(sem_info(&h2).bound, 3);
  tu_ok(atr_sem_acquire(&h, 0, &value));
  tu_assert_u64(value, 1);
  tu_ok(atr_sem_acquire(&h, 0, &value));
  tu_assert_u64(value, 0);
  tu_assert_rc(atr_sem_acquire(&h, 0, &value), ATR_ETIMEDOUT);
  tu_ok(atr_sem_release(&h, 3, &value));
  tu_assert_u64(value, 3);
  /* Past the bound: refused, and nothing changed. */
  uint64_t version = sem_info(&h).version;
  tu_assert_rc(atr_sem_release(&h, 1, &value), ATR_EOVERRELEASE);
  tu_ok(atr_sem_acquire(&h, 0, NULL));
  tu_assert_rc(atr_sem_release(&h, 2, NULL), ATR_EOVERRELEASE);
  atr_info i1 = sem_info(&h);
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
  atr_info info = sem_info(&h);
  tu_assert_u64(info.count, 2);
  tu_assert_u64(info.waiters, 0);
}

/* ------------------------------------------------- waiters elsewhere */

struct waiter_arg {
  const char *path;
  int ready[2];
  int expect;
  int on_sigint;
};

static void on_sigint(int sig) {
  (void)sig;
}

static int waiter_child(void *arg) {
  struct waiter_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  if (a->on_sigint) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    TU_CHILD_CHECK(sigaction(SIGINT, &sa, NULL) == 0);
  }
  TU_CHILD_CHECK(atr_sem_open(s, "s", 0, 0, 0, &h) == 0);
  tu_child_ready(a->ready[1]);
  int rv = atr_sem_acquire(&h, 30, NULL);
  if (rv != a->expect)
    fprintf(stderr, "waiter got %s\n", atr_errname(rv));
  TU_CHILD_CHECK(rv == a->expect);
  atr_store_close(s);
  return 0;
}

/* One waiter asleep in atr_sem_acquire on "s" (value 0); act wakes it;
 * it must answer expect within limit seconds. */
static void one_waiter(tu_fixture *f, int expect, int sigint,
                       void (*act)(tu_fixture *f, pid_t pid),
                       double limit) {
  struct waiter_arg a = {.path = f->path, .expect = expect,
                         .on_sigint = sigint};
  tu_pipe(a.ready);
  pid_t pid = tu_spawn_ready(waiter_child, &a, a.ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  double t0 = tu_now();
  act(f, pid);
  int status = tu_wait(pid, 10);
  double took = tu_now() - t0;
  tu_close_pipe(a.ready);
  assert_int_equal(status, 0);
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
  atr_info info = sem_info(&h);
  tu_assert_u64(info.count, 0);
  tu_assert_u64(info.waiters, 0);
}

static void test_sigint(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  sem_new(f->store, "s", 0, 0, &h);
  one_waiter(f, ATR_EINTR, 1, act_sigint, 0.5);
  tu_assert_u64(sem_info(&h).count, 0);
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
      cmocka_unit_test_setup_teardown(test_delete_wakes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeout, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
