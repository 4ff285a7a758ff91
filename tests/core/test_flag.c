/*
 * test_flag.c - flags (Python's Event): set and clear, describing one,
 * their events, a set that wakes waiters of several processes at once,
 * timeouts, a signal during a wait, and a delete that wakes waiters.
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAITERS 4

static tu_fixture *fixture(void **state) {
  return *state;
}

static void flag_new(atr_store *s, const char *name, int set, atr_handle *h) {
  tu_assert_rc(atr_flag_open(s, name, ATR_CREATE | ATR_EXCL, set, h),
               ATR_CREATED);
}

static void test_set_clear(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  int set = -1;
  flag_new(f->store, "f", 0, &h);
  atr_info i0 = tu_info(&h);
  assert_int_equal(i0.kind, ATR_FLAG);
  assert_int_equal(i0.set, 0);
  tu_assert_rc(atr_flag_wait(&h, 0, &set), ATR_ETIMEDOUT);
  assert_int_equal(set, 0);
  tu_ok(atr_flag_set(&h));
  atr_info i1 = tu_info(&h);
  assert_int_equal(i1.set, 1);
  assert_true(i1.version > i0.version);
  tu_ok(atr_flag_wait(&h, 0, &set));
  assert_int_equal(set, 1);
  tu_ok(atr_flag_wait(&h, -1, NULL));
  /* A set flag set again changes nothing, not even its version. */
  tu_ok(atr_flag_set(&h));
  tu_assert_u64(tu_info(&h).version, i1.version);
  tu_ok(atr_flag_clear(&h));
  atr_info i2 = tu_info(&h);
  assert_int_equal(i2.set, 0);
  assert_true(i2.version > i1.version);
  tu_ok(atr_flag_clear(&h));
  tu_assert_u64(tu_info(&h).version, i2.version);
  /* An existing flag keeps its state; a new one may start set. */
  tu_assert_rc(atr_flag_open(f->store, "f", ATR_CREATE, 1, &h2), 0);
  assert_int_equal(tu_info(&h2).set, 0);
  flag_new(f->store, "g", 1, &h2);
  assert_int_equal(tu_info(&h2).set, 1);
  tu_assert_rc(atr_flag_open(f->store, "f", ATR_CREATE | ATR_EXCL, 0, &h2),
               ATR_EEXIST);
  tu_assert_rc(atr_flag_open(f->store, "nope", 0, 0, &h2), ATR_ENOENT);
  atr_handle v;
  tu_counter_new(f->store, "v", &v);
  tu_assert_rc(atr_flag_open(f->store, "v", 0, 0, &h2), ATR_EKIND);
  tu_assert_rc(atr_flag_set(&v), ATR_ENOENT);
  assert_string_equal(atr_kind_name(ATR_FLAG), "flag");
}

static void test_events(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  atr_event ev;
  tu_ok(atr_feed_open(f->store, &c));
  flag_new(f->store, "f", 0, &h);
  tu_ok(atr_flag_set(&h));
  tu_ok(atr_flag_set(&h)); /* no change: no event */
  tu_ok(atr_flag_clear(&h));
  tu_ok(atr_delete(f->store, "f", ATR_FLAG));
  static const atr_op want[] = {ATR_OP_CREATED, ATR_OP_SET, ATR_OP_CLEAR,
                                ATR_OP_DELETED};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    tu_ok(atr_feed_next(&c, &ev, 1));
    assert_int_equal(ev.kind, ATR_FLAG);
    assert_string_equal(ev.name, "f");
    assert_string_equal(atr_op_name(ev.op), atr_op_name(want[i]));
  }
  tu_assert_rc(atr_feed_next(&c, &ev, 0), ATR_ETIMEDOUT);
}

static void test_timeout(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  flag_new(f->store, "f", 0, &h);
  double t0 = tu_now();
  tu_assert_rc(atr_flag_wait(&h, 0.1, NULL), ATR_ETIMEDOUT);
  double took = tu_now() - t0;
  assert_true(took >= 0.1 && took < 2.0);
  assert_int_equal(tu_info(&h).waiters, 0);
}

/* ------------------------------------------- waiters in other processes */

/* A waiter: atr_flag_wait on "f" (it says set exactly when it answers
 * 0). */
static int flag_waiter(atr_store *s) {
  atr_handle h;
  int set = -1;
  TU_CHILD_CHECK(atr_flag_open(s, "f", 0, 0, &h) == 0);
  int rv = atr_flag_wait(&h, 30, &set);
  TU_CHILD_CHECK(set == (rv == 0));
  return rv;
}

/* Every waiter answers expect within limit seconds of t0. */
static void end_waiters(tu_waiters *w, int expect, double t0, double limit) {
  double took = tu_waiters_end(w, expect, t0);
  limit = tu_load_bound(limit);
  if (took > limit)
    print_error("a waiter woke %.1f ms after the change\n", took * 1e3);
  assert_true(took <= limit);
}

static void test_set_wakes_all(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters w;
  flag_new(f->store, "f", 0, &h);
  for (int round = 0; round < 5; round++) {
    tu_case("round %d", round);
    tu_waiters_start(&w, f->path, WAITERS, flag_waiter, 0);
    tu_assert_u64(tu_info(&h).waiters, WAITERS);
    double t0 = tu_now();
    /* A clear at once after the set still lets everyone through. */
    tu_ok(atr_flag_set(&h));
    if (round % 2)
      tu_ok(atr_flag_clear(&h));
    tu_assert_u64(tu_info(&h).waiters, 0);
    end_waiters(&w, 0, t0, 0.05);
    if (round % 2 == 0)
      tu_ok(atr_flag_clear(&h));
  }
}

static void test_sigint(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters w;
  flag_new(f->store, "f", 0, &h);
  tu_waiters_start(&w, f->path, 1, flag_waiter, 1);
  double t0 = tu_now();
  assert_int_equal(kill(w.pids[0], SIGINT), 0);
  end_waiters(&w, ATR_EINTR, t0, 0.5);
  /* Its registration went with it. */
  tu_assert_u64(tu_info(&h).waiters, 0);
}

static void delete_wakes(tu_fixture *f, int recreate) {
  atr_handle h;
  tu_waiters w;
  flag_new(f->store, "f", 0, &h);
  tu_waiters_start(&w, f->path, 2, flag_waiter, 0);
  double t0 = tu_now();
  tu_ok(atr_delete(f->store, "f", ATR_FLAG));
  if (recreate)
    flag_new(f->store, "f", 0, &h);
  end_waiters(&w, ATR_ENOENT, t0, 0.5);
  tu_assert_rc(atr_flag_set(&h), recreate ? 0 : ATR_ENOENT);
  tu_assert_rc(atr_flag_wait(&h, 0, NULL), recreate ? 0 : ATR_ENOENT);
}

static void test_delete_wakes(void **state) {
  delete_wakes(fixture(state), 0);
}

static void test_delete_recreate_wakes(void **state) {
  delete_wakes(fixture(state), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_set_clear, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_events, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeout, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_set_wakes_all, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_sigint, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_recreate_wakes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
