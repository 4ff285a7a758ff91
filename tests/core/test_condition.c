/*
 * test_condition.c - conditions: notify(1) wakes the oldest waiter,
 * notify_all every one, a killed waiter never takes a notify, a timeout
 * or a signal still gives the lock back to the waiter, lease waiters
 * (the gateway's), and the errors.
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

struct waiter_arg {
  const char *path;
  int ready[2];
  int out[2];
  int index;
  double timeout;
};

/* What a waiter reports: its index, the wait's result, whether it was
 * notified, and whether it held the lock afterwards. */
struct report {
  int index, rc, notified, held;
};

/* Takes the lock, waits on the condition, reports, lets go. */
static int waiter_child(void *arg) {
  struct waiter_arg *a = arg;
  tu_catch_sigint();
  atr_store *s = tu_child_open(a->path);
  atr_handle l, c;
  atr_grant g;
  TU_CHILD_CHECK(atr_lock_open(s, "l", 0, 0, &l) == 0);
  TU_CHILD_CHECK(atr_cond_open(s, "c", 0, NULL, &c) == 0);
  TU_CHILD_CHECK(atr_lock_acquire(&l, -1, NULL) == 0);
  tu_child_ready(a->ready[1]);
  struct report r = {a->index, 0, 0, 0};
  r.rc = atr_cond_wait(&c, a->timeout, &r.notified, &g);
  r.held = atr_lock_release(&l) == 0;
  TU_CHILD_CHECK(tu_write_full(a->out[1], &r, sizeof r) == 0);
  return 0;
}

static void setup_pair(atr_store *s, atr_handle *l, atr_handle *c) {
  tu_assert_rc(atr_lock_open(s, "l", ATR_CREATE, 0, l), ATR_CREATED);
  tu_assert_rc(atr_cond_open(s, "c", ATR_CREATE, "l", c), ATR_CREATED);
}

static uint64_t cond_waiters(atr_store *s) {
  atr_info info;
  tu_ok(atr_stat(s, "c", &info));
  return info.waiters;
}

/* Starts waiter `index` and returns once it sleeps in its wait (it
 * registered before it let the lock go: its place is in the line). */
static pid_t start_waiter(tu_fixture *f, struct waiter_arg *a, int index) {
  a->index = index;
  uint64_t before = cond_waiters(f->store);
  pid_t pid = tu_spawn_ready(waiter_child, a, a->ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  tu_assert_u64(cond_waiters(f->store), before + 1);
  return pid;
}

/* The lock "l", the condition "c" on it, and the pipes of waiters. */
static void waiters_begin(tu_fixture *f, atr_handle *l, atr_handle *c,
                          struct waiter_arg *a, double timeout) {
  setup_pair(f->store, l, c);
  *a = (struct waiter_arg){.path = f->path, .timeout = timeout};
  tu_pipe(a->ready);
  tu_pipe(a->out);
}

/* The last waiter ended well, and the line is empty. */
static void waiters_end(tu_fixture *f, struct waiter_arg *a, pid_t last) {
  assert_int_equal(tu_wait(last, 10), 0);
  tu_assert_u64(cond_waiters(f->store), 0);
  tu_close_pipe(a->ready);
  tu_close_pipe(a->out);
}

static struct report read_report(struct waiter_arg *a) {
  struct report r;
  assert_int_equal(tu_read_full(a->out[0], &r, sizeof r, 10), 0);
  return r;
}

static uint64_t notify(atr_handle *l, atr_handle *c, uint64_t n) {
  uint64_t woken;
  tu_ok(atr_lock_acquire(l, 5, NULL));
  tu_ok(atr_cond_notify(c, 0, n, &woken));
  tu_ok(atr_lock_release(l));
  return woken;
}

static void test_errors_and_timeout(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c, v;
  atr_grant g, g2;
  int notified = 5;
  tu_assert_rc(atr_cond_open(f->store, "c", ATR_CREATE, "nolock", &c),
               ATR_ENOENT);
  tu_assert_rc(atr_value_open(f->store, "v", 'q', ATR_CREATE, NULL, &v),
               ATR_CREATED);
  tu_assert_rc(atr_cond_open(f->store, "c", ATR_CREATE, "v", &c), ATR_EKIND);
  tu_assert_rc(atr_cond_open(f->store, "c", ATR_CREATE, NULL, &c), ATR_EINVAL);
  setup_pair(f->store, &l, &c);
  atr_info info;
  tu_ok(atr_stat(f->store, "c", &info));
  assert_string_equal(info.lock, "l");
  assert_int_equal(info.kind, ATR_CONDITION);
  /* Not holding the lock. */
  tu_assert_rc(atr_cond_wait(&c, 0, &notified, NULL), ATR_ENOTHELD);
  tu_assert_rc(atr_cond_notify(&c, 0, 1, NULL), ATR_ENOTHELD);
  /* The timeout path gives the lock back, with a new fence. */
  tu_ok(atr_lock_acquire(&l, 0, &g));
  double t0 = tu_now();
  tu_assert_rc(atr_cond_wait(&c, 0.05, &notified, &g2), ATR_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.045);
  assert_int_equal(notified, 0);
  assert_true(g2.fence > g.fence);
  tu_assert_u64(cond_waiters(f->store), 0);
  uint64_t woken = 9;
  tu_ok(atr_cond_notify(&c, 0, 1, &woken)); /* nobody waits */
  tu_assert_u64(woken, 0);
  tu_ok(atr_lock_release(&l));
  tu_assert_rc(atr_lock_release(&l), ATR_ENOTHELD);
  /* A reentrant lock comes back at its depth. */
  atr_handle r, rc;
  tu_assert_rc(atr_lock_open(f->store, "r", ATR_CREATE, 1, &r), ATR_CREATED);
  tu_assert_rc(atr_cond_open(f->store, "rc", ATR_CREATE, "r", &rc),
               ATR_CREATED);
  tu_ok(atr_lock_acquire(&r, 0, NULL));
  tu_ok(atr_lock_acquire(&r, 0, NULL));
  tu_assert_rc(atr_cond_wait(&rc, 0.01, NULL, &g), ATR_ETIMEDOUT);
  assert_int_equal(g.count, 2);
  tu_ok(atr_lock_release(&r));
  tu_ok(atr_lock_release(&r));
  tu_assert_rc(atr_lock_release(&r), ATR_ENOTHELD);
  /* A deleted lock: the condition answers ATR_ENOENT. */
  tu_ok(atr_delete(f->store, "r", ATR_LOCK));
  tu_assert_rc(atr_cond_notify(&rc, 0, 1, NULL), ATR_ENOENT);
  tu_assert_rc(atr_cond_wait(&rc, 0, NULL, NULL), ATR_ENOENT);
}

static void test_notify_oldest_first(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  struct waiter_arg a;
  waiters_begin(f, &l, &c, &a, 30);
  pid_t pids[3];
  for (int i = 0; i < 3; i++)
    pids[i] = start_waiter(f, &a, i);
  for (int i = 0; i < 2; i++) {
    tu_assert_u64(notify(&l, &c, 1), 1);
    struct report r = read_report(&a);
    assert_int_equal(r.index, i);
    tu_ok(r.rc);
    assert_int_equal(r.notified, 1);
    assert_int_equal(r.held, 1);
    assert_int_equal(tu_wait(pids[i], 10), 0);
    /* The others still wait. */
    assert_int_equal(tu_readable(a.out[0]), 0);
  }
  tu_assert_u64(notify(&l, &c, UINT64_MAX), 1);
  assert_int_equal(read_report(&a).index, 2);
  waiters_end(f, &a, pids[2]);
}

static void test_notify_all(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  atr_cursor cur;
  struct waiter_arg a;
  waiters_begin(f, &l, &c, &a, -1);
  tu_ok(atr_feed_open(f->store, &cur));
  pid_t pids[4];
  for (int i = 0; i < 4; i++)
    pids[i] = start_waiter(f, &a, i);
  tu_assert_u64(notify(&l, &c, UINT64_MAX), 4);
  int seen = 0;
  for (int i = 0; i < 4; i++) {
    struct report r = read_report(&a);
    tu_ok(r.rc);
    assert_int_equal(r.held, 1);
    seen |= 1 << r.index;
  }
  assert_int_equal(seen, 15);
  for (int i = 0; i < 3; i++)
    assert_int_equal(tu_wait(pids[i], 10), 0);
  waiters_end(f, &a, pids[3]);
  atr_event ev;
  int notifies = 0;
  while (atr_feed_next(&cur, &ev, 0) == 0)
    notifies += ev.op == ATR_OP_NOTIFY && strcmp(ev.name, "c") == 0;
  assert_int_equal(notifies, 1);
}

static void test_killed_waiter_skipped(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  struct waiter_arg a;
  waiters_begin(f, &l, &c, &a, 30);
  pid_t first = start_waiter(f, &a, 0);
  pid_t second = start_waiter(f, &a, 1);
  assert_int_equal(tu_kill(first), 128 + SIGKILL);
  tu_assert_u64(notify(&l, &c, 1), 1);
  struct report r = read_report(&a);
  assert_int_equal(r.index, 1);
  tu_ok(r.rc);
  waiters_end(f, &a, second);
}

static void test_sigint_in_wait(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  struct waiter_arg a;
  waiters_begin(f, &l, &c, &a, -1);
  pid_t pid = start_waiter(f, &a, 0);
  double t0 = tu_now();
  kill(pid, SIGINT);
  struct report r = read_report(&a);
  assert_true(tu_now() - t0 < 0.1);
  tu_assert_rc(r.rc, ATR_EINTR);
  assert_int_equal(r.notified, 0);
  assert_int_equal(r.held, 1); /* the lock came back */
  waiters_end(f, &a, pid);
}

static void test_delete_wakes_waiter(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  struct waiter_arg a;
  waiters_begin(f, &l, &c, &a, -1);
  pid_t pid = start_waiter(f, &a, 0);
  tu_ok(atr_delete(f->store, "c", ATR_CONDITION));
  struct report r = read_report(&a);
  tu_assert_rc(r.rc, ATR_ENOENT);
  assert_int_equal(r.held, 1);
  assert_int_equal(tu_wait(pid, 10), 0);
  tu_close_pipe(a.ready);
  tu_close_pipe(a.out);
  /* Made again over the same name, it works. */
  tu_assert_rc(atr_cond_open(f->store, "c", ATR_CREATE, "l", &c), ATR_CREATED);
  tu_ok(atr_lock_acquire(&l, 0, NULL));
  tu_assert_rc(atr_cond_wait(&c, 0, NULL, NULL), ATR_ETIMEDOUT);
  tu_ok(atr_lock_release(&l));
}

/* Lease waiters, as the gateway drives them. */
static void test_lease_waiters(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle l, c;
  atr_grant g;
  uint64_t ticket, ticket2, count, woken;
  setup_pair(f->store, &l, &c);
  tu_ok(atr_lock_lease(&l, 5, 0, 0, &g));
  tu_assert_rc(atr_cond_wait_begin(&c, g.token + 1, 5, &ticket, &count),
               ATR_ENOTHELD);
  tu_ok(atr_cond_wait_begin(&c, g.token, 5, &ticket, &count));
  assert_int_equal(count, 1);
  tu_assert_rc(atr_lock_unlease(&l, g.token), ATR_ENOTHELD); /* let go */
  tu_assert_rc(atr_cond_wait_poll(&c, ticket), ATR_ETIMEDOUT);
  /* A second lease waiter whose place runs out. */
  tu_ok(atr_lock_lease(&l, 5, 0, 0, &g));
  tu_ok(atr_cond_wait_begin(&c, g.token, 0.01, &ticket2, &count));
  tu_assert_u64(cond_waiters(f->store), 2);
  tu_sleep(0.02);
  /* A process notifies one: the oldest live one, not the expired. */
  tu_ok(atr_lock_acquire(&l, 0, NULL));
  tu_ok(atr_cond_notify(&c, 0, 2, &woken));
  tu_assert_u64(woken, 1);
  tu_ok(atr_lock_release(&l));
  tu_ok(atr_cond_wait_poll(&c, ticket));
  tu_assert_rc(atr_cond_wait_poll(&c, ticket2), ATR_ENOTHELD);
  tu_ok(atr_cond_wait_end(&c, ticket));
  tu_assert_rc(atr_cond_wait_end(&c, ticket), ATR_ENOTHELD);
  tu_assert_u64(cond_waiters(f->store), 0);
  /* A lease holder notifies with its token. */
  tu_ok(atr_lock_lease(&l, 5, 0, 0, &g));
  tu_ok(atr_cond_notify(&c, g.token, 1, &woken));
  tu_assert_rc(atr_cond_notify(&c, g.token + 1, 1, &woken), ATR_ENOTHELD);
  tu_ok(atr_lock_unlease(&l, g.token));
  /* atr_sync_expire ends lease places that ran out. */
  tu_ok(atr_lock_lease(&l, 5, 0, 0, &g));
  tu_ok(atr_cond_wait_begin(&c, g.token, 0.01, &ticket, &count));
  tu_sleep(0.02);
  tu_assert_i64(atr_sync_expire(&c), 1);
  tu_assert_u64(cond_waiters(f->store), 0);
  /* A place whose lock is deleted: its poll says so, its end leaves. */
  tu_ok(atr_lock_lease(&l, 5, 0, 0, &g));
  tu_ok(atr_cond_wait_begin(&c, g.token, 5, &ticket, &count));
  tu_ok(atr_delete(f->store, "l", ATR_LOCK));
  tu_assert_rc(atr_cond_wait_poll(&c, ticket), ATR_ENOENT);
  tu_ok(atr_cond_wait_end(&c, ticket));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_errors_and_timeout, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_notify_oldest_first, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_notify_all, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_killed_waiter_skipped, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_sigint_in_wait, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes_waiter, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_lease_waiters, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
