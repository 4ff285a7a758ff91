/*
 * test_feed.c - the change feed: events for every kind of change, from
 * any process; coalescing never hides the latest state; gaps and resync;
 * timeouts and wake-ups.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static atr_scalar si(int64_t i) {
  return (atr_scalar){.i = i};
}

/* The next event must be (kind, op, name), with seq one past *seq (when
 * *seq is non-zero); *seq gets its seq. */
static void expect_event(atr_cursor *c, atr_kind kind, atr_op op,
                         const char *name, uint64_t *seq, uint64_t *id) {
  atr_event ev;
  memset(&ev, 0, sizeof ev);
  tu_case("expecting %s/%s/%s", atr_kind_name(kind), name, atr_op_name(op));
  tu_ok(atr_feed_next(c, &ev, 1.0));
  if (ev.kind != kind || ev.op != op || strcmp(ev.name, name) != 0)
    print_error("got %s/%s/%s seq %llu\n", atr_kind_name(ev.kind), ev.name,
                atr_op_name(ev.op), (unsigned long long)ev.seq);
  assert_int_equal(ev.kind, kind);
  assert_int_equal(ev.op, op);
  assert_string_equal(ev.name, name);
  if (*seq != 0)
    tu_assert_u64(ev.seq, *seq + 1);
  *seq = ev.seq;
  if (id != NULL)
    *id = ev.id;
}

static void expect_nothing(atr_cursor *c) {
  atr_event ev;
  int rv = atr_feed_next(c, &ev, 0);
  if (rv == 0)
    print_error("unexpected event %s/%s/%s\n", atr_kind_name(ev.kind), ev.name,
                atr_op_name(ev.op));
  tu_assert_rc(rv, ATR_ETIMEDOUT);
}

static uint64_t id_of(atr_store *s, const char *name) {
  atr_info info;
  tu_ok(atr_stat(s, name, &info));
  return info.id;
}

static void test_every_op(void **state) {
  tu_fixture *f = fixture(state);
  atr_store *s = f->store;
  atr_handle v, a, q;
  atr_cursor c;
  uint64_t seq = 0, id;
  atr_scalar one = si(1);
  tu_ok(atr_feed_open(s, &c));
  expect_nothing(&c);

  tu_assert_rc(atr_value_open(s, "v", 'b', ATR_CREATE, NULL, &v), ATR_CREATED);
  expect_event(&c, ATR_VALUE, ATR_OP_CREATED, "v", &seq, &id);
  tu_assert_u64(id, id_of(s, "v"));
  tu_ok(atr_value_set(&v, si(5), 0, NULL));
  expect_event(&c, ATR_VALUE, ATR_OP_SET, "v", &seq, &id);
  tu_assert_u64(id, v.id);
  tu_ok(atr_value_add(&v, one, NULL, NULL));
  expect_event(&c, ATR_VALUE, ATR_OP_ADD, "v", &seq, NULL);
  /* Calls that change nothing publish nothing. */
  tu_assert_rc(atr_value_set(&v, si(1000), 0, NULL), ATR_ERANGE);
  tu_assert_rc(atr_value_add(&v, si(1000), NULL, NULL), ATR_EOVERFLOW);
  tu_assert_rc(atr_value_set(&v, si(1), 1, NULL), ATR_EVERSION);
  tu_assert_rc(atr_value_open(s, "v", 'b', ATR_CREATE, NULL, &v), 0);
  expect_nothing(&c);

  tu_assert_rc(atr_array_open(s, "a", 'q', 4, ATR_CREATE, NULL, &a),
               ATR_CREATED);
  expect_event(&c, ATR_ARRAY, ATR_OP_CREATED, "a", &seq, NULL);
  atr_scalar vals[2] = {si(1), si(2)};
  tu_ok(atr_array_set(&a, 1, vals, 2, 0, NULL));
  expect_event(&c, ATR_ARRAY, ATR_OP_SET, "a", &seq, NULL);
  tu_ok(atr_array_add(&a, 0, one, NULL, NULL));
  expect_event(&c, ATR_ARRAY, ATR_OP_ADD, "a", &seq, NULL);
  tu_assert_rc(atr_array_set(&a, 3, vals, 2, 0, NULL), ATR_EBOUNDS);
  expect_nothing(&c);

  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.maxsize = 2;
  qo.max_bytes = 4096;
  tu_assert_rc(atr_queue_open(s, "q", ATR_CREATE, &qo, &q), ATR_CREATED);
  expect_event(&c, ATR_QUEUE, ATR_OP_CREATED, "q", &seq, NULL);
  tu_ok(atr_queue_put(&q, "x", 1, 0));
  expect_event(&c, ATR_QUEUE, ATR_OP_PUT, "q", &seq, NULL);
  char buf[8];
  size_t len;
  tu_ok(atr_queue_get(&q, buf, sizeof buf, &len, 0));
  expect_event(&c, ATR_QUEUE, ATR_OP_POP, "q", &seq, NULL);
  struct iovec two[2] = {{"y", 1}, {"z", 1}};
  tu_ok(atr_queue_put_batch(&q, two, 2, 0));
  tu_assert_rc(atr_queue_put(&q, "w", 1, 0), ATR_EFULL);
  tu_ok(atr_queue_clear(&q));
  /* The batch: one put event, or one per item (a run may coalesce). */
  expect_event(&c, ATR_QUEUE, ATR_OP_PUT, "q", &seq, NULL);
  atr_event ev;
  tu_ok(atr_feed_next(&c, &ev, 1.0));
  if (ev.op == ATR_OP_PUT) {
    seq = ev.seq;
    tu_ok(atr_feed_next(&c, &ev, 1.0));
  }
  assert_int_equal(ev.op, ATR_OP_CLEAR);
  assert_string_equal(ev.name, "q");
  tu_assert_u64(ev.seq, seq + 1);
  seq = ev.seq;
  tu_assert_rc(atr_queue_get(&q, buf, sizeof buf, &len, 0), ATR_EEMPTY);
  expect_nothing(&c);

  uint64_t vid = v.id;
  tu_ok(atr_delete(s, "v", ATR_ANY));
  expect_event(&c, ATR_VALUE, ATR_OP_DELETED, "v", &seq, &id);
  tu_assert_u64(id, vid);
  tu_ok(atr_delete(s, "a", ATR_ARRAY));
  expect_event(&c, ATR_ARRAY, ATR_OP_DELETED, "a", &seq, NULL);
  tu_ok(atr_delete(s, "q", ATR_QUEUE));
  expect_event(&c, ATR_QUEUE, ATR_OP_DELETED, "q", &seq, NULL);
  tu_assert_rc(atr_delete(s, "q", ATR_ANY), ATR_ENOENT);
  expect_nothing(&c);

  /* The longest name travels whole. */
  const char *longest =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";
  tu_assert_rc(atr_value_open(s, longest, 'q', ATR_CREATE, NULL, &v),
               ATR_CREATED);
  expect_event(&c, ATR_VALUE, ATR_OP_CREATED, longest, &seq, NULL);
}

/* A cursor opened later sees only what comes after it. */
static void test_open_at_end(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_counter_new(f->store, "early", &h);
  tu_ok(atr_value_set(&h, si(3), 0, NULL));
  atr_cursor c;
  tu_ok(atr_feed_open(f->store, &c));
  expect_nothing(&c);
  tu_ok(atr_value_set(&h, si(4), 0, NULL));
  uint64_t seq = 0;
  expect_event(&c, ATR_VALUE, ATR_OP_SET, "early", &seq, NULL);
}

/* Changes made while nobody read the feed must not silence a cursor
 * opened afterwards (a gateway that restarts, for instance). */
static void test_unread_events_do_not_silence_later_cursor(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_counter_new(f->store, "n", &h);
  for (int i = 0; i < 10; i++)
    tu_ok(atr_value_add(&h, si(1), NULL, NULL));
  atr_cursor c;
  tu_ok(atr_feed_open(f->store, &c));
  uint64_t seq = 0;
  tu_ok(atr_value_add(&h, si(1), NULL, NULL));
  expect_event(&c, ATR_VALUE, ATR_OP_ADD, "n", &seq, NULL);
  atr_scalar v;
  tu_ok(atr_value_get(&h, &v, NULL));
  tu_assert_i64(v.i, 11);
}

/* The same after the store is closed and opened again. */
static void test_seq_and_marks_across_reopen(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = tu_store_open(f, f->path, &o);
  atr_cursor c;
  atr_handle h;
  uint64_t seq = 0;
  tu_ok(atr_feed_open(s, &c));
  tu_assert_rc(atr_value_open(s, "n", 'q', ATR_CREATE, NULL, &h), ATR_CREATED);
  expect_event(&c, ATR_VALUE, ATR_OP_CREATED, "n", &seq, NULL);
  tu_ok(atr_value_add(&h, si(1), NULL, NULL));
  tu_ok(atr_value_add(&h, si(1), NULL, NULL)); /* left unread */
  tu_store_close(f, s);

  s = tu_store_open(f, f->path, &o);
  tu_ok(atr_feed_open(s, &c));
  tu_ok(atr_value_open(s, "n", 'q', 0, NULL, &h));
  uint64_t before = seq;
  seq = 0;
  tu_ok(atr_value_add(&h, si(1), NULL, NULL));
  expect_event(&c, ATR_VALUE, ATR_OP_ADD, "n", &seq, NULL);
  assert_true(seq > before);
}

/* ------------------------------------------------------ other processes */

struct feed_child_arg {
  const char *path;
  int ready[2];
  int result[2];
  int stop[2];
};

static int change_child(void *arg) {
  struct feed_child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_value_open(s, "remote", 'q', ATR_CREATE, NULL, &h) ==
                 ATR_CREATED);
  TU_CHILD_CHECK(atr_value_set(&h, si(42), 0, NULL) == 0);
  atr_store_close(s);
  return 0;
}

static void test_other_process(void **state) {
  tu_fixture *f = fixture(state);
  atr_cursor c;
  tu_ok(atr_feed_open(f->store, &c));
  struct feed_child_arg a = {.path = f->path};
  assert_int_equal(tu_run(change_child, &a, 10), 0);
  uint64_t seq = 0;
  expect_event(&c, ATR_VALUE, ATR_OP_CREATED, "remote", &seq, NULL);
  expect_event(&c, ATR_VALUE, ATR_OP_SET, "remote", &seq, NULL);
  expect_nothing(&c);
}

/* A process waiting in atr_feed_next wakes for a change by another. */
static int waiting_reader_child(void *arg) {
  struct feed_child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_cursor c;
  atr_event ev;
  TU_CHILD_CHECK(atr_feed_open(s, &c) == 0);
  tu_child_ready(a->ready[1]);
  int rv = atr_feed_next(&c, &ev, 10);
  double at = tu_now();
  TU_CHILD_CHECK(rv == 0);
  TU_CHILD_CHECK(strcmp(ev.name, "wake") == 0 && ev.op == ATR_OP_CREATED);
  TU_CHILD_CHECK(tu_write_full(a->result[1], &at, sizeof at) == 0);
  atr_store_close(s);
  return 0;
}

static void test_waiting_reader_wakes(void **state) {
  tu_fixture *f = fixture(state);
  struct feed_child_arg a = {.path = f->path};
  tu_pipe(a.ready);
  tu_pipe(a.result);
  pid_t pid = tu_spawn_ready(waiting_reader_child, &a, a.ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  atr_handle h;
  double t0 = tu_now(), at = 0;
  tu_counter_new(f->store, "wake", &h);
  int got = tu_read_full(a.result[0], &at, sizeof at, 10);
  int status = tu_wait(pid, 10);
  tu_close_pipe(a.ready);
  tu_close_pipe(a.result);
  assert_int_equal(got, 0);
  assert_int_equal(status, 0);
  if (at - t0 > 0.5)
    print_error("reader woke after %.3f s\n", at - t0);
  assert_true(at - t0 < 0.5);
}

static int wake_child(void *arg) {
  struct feed_child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_cursor c;
  atr_event ev;
  TU_CHILD_CHECK(atr_feed_open(s, &c) == 0);
  tu_child_ready(a->ready[1]);
  double t0 = tu_now();
  int rv = atr_feed_next(&c, &ev, 10);
  TU_CHILD_CHECK(rv == ATR_ETIMEDOUT);
  TU_CHILD_CHECK(tu_now() - t0 < 9);
  atr_store_close(s);
  return 0;
}

static void test_feed_wake(void **state) {
  tu_fixture *f = fixture(state);
  struct feed_child_arg a = {.path = f->path};
  tu_pipe(a.ready);
  pid_t pid = tu_spawn_ready(wake_child, &a, a.ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  double t0 = tu_now();
  atr_feed_wake(f->store);
  int status = tu_wait(pid, 10);
  tu_close_pipe(a.ready);
  assert_int_equal(status, 0);
  assert_true(tu_now() - t0 < 1.0);
  atr_feed_wake(NULL);
}

/* A wake that comes before the reader sleeps is not lost: the next wait
 * returns at once, after the events already there. */
static void test_feed_wake_before_wait(void **state) {
  tu_fixture *f = fixture(state);
  atr_cursor c;
  atr_event ev;
  atr_handle h;
  tu_ok(atr_feed_open(f->store, &c));
  tu_counter_new(f->store, "w", &h);
  atr_feed_wake(f->store);
  tu_ok(atr_feed_next(&c, &ev, 5.0)); /* the event first */
  double t0 = tu_now();
  tu_assert_rc(atr_feed_next(&c, &ev, 5.0), ATR_ETIMEDOUT);
  assert_true(tu_now() - t0 < 1.0);
  /* Heard once: the next wait waits. */
  t0 = tu_now();
  tu_assert_rc(atr_feed_next(&c, &ev, 0.2), ATR_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.15);
}

/* ------------------------------------------------------------ coalescing */

/* Reads every event now waiting, or the first `most` (0: no limit); on
 * an event for "n" (or a gap) reads the value into *seen. */
static void drain(atr_cursor *c, const atr_handle *h, int64_t *seen,
                  double timeout, int *gaps, int most) {
  for (int n = 0; most == 0 || n < most; n++) {
    atr_event ev;
    int rv = atr_feed_next(c, &ev, timeout);
    if (rv == ATR_ETIMEDOUT)
      return;
    if (rv == ATR_EGAP) {
      ++*gaps;
      tu_ok(atr_feed_resync(c));
    } else {
      tu_ok(rv);
      if (strcmp(ev.name, "n") != 0)
        continue;
      assert_int_equal(ev.op, ATR_OP_ADD);
    }
    atr_scalar v;
    tu_ok(atr_value_get(h, &v, NULL));
    *seen = v.i;
  }
}

/* One process: adds, and now and then drains. After the last add and a
 * drain, the value read on the last event is the final one. */
static void test_coalesce_in_process(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  tu_counter_new(f->store, "n", &h);
  tu_ok(atr_feed_open(f->store, &c));
  uint64_t r = tu_seed();
  int64_t seen = -1;
  int gaps = 0;
  for (int64_t i = 1; i <= 20000; i++) {
    tu_ok(atr_value_add(&h, si(1), NULL, NULL));
    if (tu_rand_below(&r, 8) == 0) {
      drain(&c, &h, &seen, 0, &gaps, 0);
      tu_assert_i64(seen, i);
    }
  }
  drain(&c, &h, &seen, 0, &gaps, 0);
  tu_assert_i64(seen, 20000);
  assert_int_equal(gaps, 0);
}

/* Adds as fast as it can until a byte comes on `stop`; then writes how
 * many adds it made on `result`. */
static int adder_child(void *arg) {
  struct feed_child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  long n = 0;
  TU_CHILD_CHECK(atr_value_open(s, "n", 'q', 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  do {
    for (int k = 0; k < 1024; k++, n++)
      TU_CHILD_CHECK(atr_value_add(&h, si(1), NULL, NULL) == 0);
  } while (!tu_readable(a->stop[0]));
  TU_CHILD_CHECK(tu_write_full(a->result[1], &n, sizeof n) == 0);
  atr_store_close(s);
  return 0;
}

/* Another process adds as fast as it can while this one follows the
 * feed: the value read on the last event is the final value. The adder
 * stops only once this reader has taken 100 of its events, so the two
 * surely overlap. */
static void test_coalesce_concurrent(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  tu_counter_new(f->store, "n", &h);
  tu_ok(atr_feed_open(f->store, &c));
  for (int round = 0; round < 5; round++) {
    struct feed_child_arg a = {.path = f->path};
    tu_pipe(a.ready);
    tu_pipe(a.result);
    tu_pipe(a.stop);
    atr_scalar start;
    tu_ok(atr_value_get(&h, &start, NULL));
    pid_t pid = tu_spawn_ready(adder_child, &a, a.ready[0]);
    long adds;
    int64_t seen = -1;
    int gaps = 0;
    drain(&c, &h, &seen, 10, &gaps, 100); /* while the adds go on */
    assert_int_equal(tu_write_full(a.stop[1], "s", 1), 0);
    assert_int_equal(tu_read_full(a.result[0], &adds, sizeof adds, 30), 0);
    assert_int_equal(tu_wait(pid, 30), 0);
    tu_close_pipe(a.ready);
    tu_close_pipe(a.result);
    tu_close_pipe(a.stop);
    drain(&c, &h, &seen, 0.05, &gaps, 0);
    tu_assert_i64(seen, start.i + adds);
  }
}

/* ------------------------------------------------------------ gap, resync */

static void test_gap_and_resync(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.feed_entries = 64;
  atr_store *s = tu_store_open(f, f->path, &o);
  atr_cursor c;
  atr_handle keep;
  tu_assert_rc(atr_value_open(s, "keep", 'q', ATR_CREATE, NULL, &keep),
               ATR_CREATED);
  tu_ok(atr_feed_open(s, &c));
  char name[16];
  for (int round = 0; round < 3; round++) {
    /* An unread add on "keep", then more than a ring of events. */
    tu_ok(atr_value_add(&keep, si(1), NULL, NULL));
    for (int i = 0; i < 100; i++) {
      atr_handle h;
      snprintf(name, sizeof name, "r%d_%d", round, i);
      tu_assert_rc(atr_value_open(s, name, 'i', ATR_CREATE, NULL, &h),
                   ATR_CREATED);
    }
    atr_event ev;
    tu_assert_rc(atr_feed_next(&c, &ev, 0), ATR_EGAP);
    tu_ok(atr_feed_resync(&c));
    expect_nothing(&c);
    /* Every change from now on yields its event. */
    uint64_t seq = 0;
    tu_ok(atr_value_add(&keep, si(1), NULL, NULL));
    expect_event(&c, ATR_VALUE, ATR_OP_ADD, "keep", &seq, NULL);
    for (int i = 0; i < 100; i++) {
      atr_handle h;
      snprintf(name, sizeof name, "r%d_%d", round, i);
      tu_ok(atr_value_open(s, name, 'i', 0, NULL, &h));
      tu_ok(atr_value_add(&h, si(1), NULL, NULL));
      expect_event(&c, ATR_VALUE, ATR_OP_ADD, name, &seq, NULL);
      tu_ok(atr_value_add(&keep, si(1), NULL, NULL));
      expect_event(&c, ATR_VALUE, ATR_OP_ADD, "keep", &seq, NULL);
      tu_ok(atr_value_set(&h, si(9), 0, NULL));
      expect_event(&c, ATR_VALUE, ATR_OP_SET, name, &seq, NULL);
      tu_ok(atr_delete(s, name, ATR_VALUE));
      expect_event(&c, ATR_VALUE, ATR_OP_DELETED, name, &seq, NULL);
    }
    expect_nothing(&c);
  }
}

static void test_timeout(void **state) {
  tu_fixture *f = fixture(state);
  atr_cursor c;
  atr_event ev;
  tu_ok(atr_feed_open(f->store, &c));
  double t0 = tu_now();
  tu_assert_rc(atr_feed_next(&c, &ev, 0), ATR_ETIMEDOUT);
  assert_true(tu_now() - t0 < 0.1);
  t0 = tu_now();
  tu_assert_rc(atr_feed_next(&c, &ev, 0.2), ATR_ETIMEDOUT);
  double waited = tu_now() - t0;
  if (waited < 0.15 || waited > 1.0)
    print_error("waited %.3f s\n", waited);
  assert_true(waited >= 0.15 && waited <= 1.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_op, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_open_at_end, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(
          test_unread_events_do_not_silence_later_cursor, tu_setup,
          tu_teardown),
      cmocka_unit_test_setup_teardown(test_seq_and_marks_across_reopen,
                                      tu_setup_path, tu_teardown),
      cmocka_unit_test_setup_teardown(test_other_process, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_waiting_reader_wakes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_feed_wake, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_feed_wake_before_wait, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_coalesce_in_process, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_coalesce_concurrent, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_gap_and_resync, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeout, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
