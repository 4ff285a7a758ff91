/*
 * test_kill.c - a process killed (-9) at a random moment, hundreds of
 * times (make check-long; a sixth of that in make check), in the middle
 * of adds, slice writes, queue puts and gets (plain and leased, with
 * acks, nacks and touches), or while it waits: no half-done change is
 * ever visible, counts stay exact, and the locks and waits it held still
 * work for everyone else.
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static atr_scalar si(int64_t i) {
  return (atr_scalar){.i = i};
}

enum { KILLED = 128 + SIGKILL };

/* Kill trials per test: 600 in the long run, 100 in make check. */
static int kill_trials(void) {
  return tu_scaled(100, 600);
}

struct writer_arg {
  const char *path;
  int ready[2];
  int stop[2]; /* the reader: stops when this pipe gets a byte */
  int out[2];
  uint64_t seed;
  int puts;   /* queue writers: puts in 10 operations */
  int leases; /* queue writers: gets take leased items, settled at random */
};

/* Starts fn, waits until it says it is running, lets it run 0-3 ms, kills
 * it. Fails the test if it ended on its own (it found an error). */
static void run_and_kill(tu_child_fn fn, struct writer_arg *a, uint64_t *rnd) {
  a->seed = tu_rand(rnd) | 1;
  pid_t pid = tu_spawn_ready(fn, a, a->ready[0]);
  tu_sleep((double)tu_rand_below(rnd, 3001) * 1e-6);
  int status = tu_kill(pid);
  if (status != KILLED)
    print_error("writer ended by itself: status %d\n", status);
  assert_int_equal(status, KILLED);
}

/* ------------------------------------------------------------ (a) adds */

static int add_writer(void *arg) {
  struct writer_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_value_open(s, "n", 'q', 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  for (;;)
    TU_CHILD_CHECK(atr_value_add(&h, si(1), NULL, NULL) == 0);
}

/* Reads every waiting event; after a gap, resyncs. */
static void drain_feed(atr_cursor *c) {
  atr_event ev;
  int rv;
  while ((rv = atr_feed_next(c, &ev, 0)) != ATR_ETIMEDOUT) {
    if (rv == ATR_EGAP)
      tu_ok(atr_feed_resync(c));
    else
      tu_ok(rv);
  }
}

static void test_kill_adder(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  tu_counter_new(f->store, "n", &h);
  tu_ok(atr_feed_open(f->store, &c));
  uint64_t version0;
  tu_ok(atr_value_get(&h, NULL, &version0));
  struct writer_arg a = {.path = f->path};
  tu_pipe(a.ready);
  uint64_t rnd = tu_seed();
  int trials = kill_trials();
  for (int trial = 0; trial < trials; trial++) {
    tu_case("trial %d", trial);
    run_and_kill(add_writer, &a, &rnd);
    atr_scalar v;
    uint64_t version;
    tu_ok(atr_value_get(&h, &v, &version));
    /* Each add moved the value and the version by one, together. */
    tu_assert_u64((uint64_t)v.i, version - version0);
    /* Adds still work at once, and the feed still tells of them. */
    drain_feed(&c);
    double t0 = tu_now();
    atr_scalar after;
    uint64_t version_after;
    tu_ok(atr_value_add(&h, si(1), &after, &version_after));
    assert_true(tu_now() - t0 < 0.5);
    tu_assert_i64(after.i, v.i + 1);
    tu_assert_u64(version_after, version + 1);
    atr_event ev;
    int rv;
    while ((rv = atr_feed_next(&c, &ev, 1.0)) == ATR_EGAP)
      tu_ok(atr_feed_resync(&c));
    tu_ok(rv);
    assert_string_equal(ev.name, "n");
    assert_int_equal(ev.op, ATR_OP_ADD);
  }
  tu_close_pipe(a.ready);
}

/* ------------------------------------------------------ (b) whole slices */

enum { ALEN = 64 };

static int slice_writer(void *arg) {
  struct writer_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_scalar v[ALEN];
  TU_CHILD_CHECK(atr_array_open(s, "a", 'q', ALEN, 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  for (int64_t k = (int64_t)(a->seed % 1000000) * 1000000;; k++) {
    for (int i = 0; i < ALEN; i++)
      v[i] = si(k);
    TU_CHILD_CHECK(atr_array_set(&h, 0, v, ALEN, 0, NULL) == 0);
  }
}

/* Reads whole slices until told to stop; reports how many it read. */
static int slice_reader(void *arg) {
  struct writer_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_scalar v[ALEN];
  uint64_t reads = 0;
  TU_CHILD_CHECK(atr_array_open(s, "a", 'q', ALEN, 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  for (;;) {
    uint64_t n;
    TU_CHILD_CHECK(atr_array_get(&h, 0, INT64_MAX, v, ALEN, &n, NULL) == 0);
    TU_CHILD_CHECK(n == ALEN);
    for (int i = 1; i < ALEN; i++) {
      if (v[i].i != v[0].i) {
        fprintf(stderr, "reader: torn slice: [0]=%lld [%d]=%lld\n",
                (long long)v[0].i, i, (long long)v[i].i);
        return 2;
      }
    }
    if (++reads % 64 == 0 && tu_readable(a->stop[0]))
      break;
  }
  TU_CHILD_CHECK(tu_write_full(a->out[1], &reads, sizeof reads) == 0);
  atr_store_close(s);
  return 0;
}

static void assert_all_equal(const atr_handle *h, int64_t *value) {
  atr_scalar v[ALEN];
  uint64_t n;
  tu_ok(atr_array_get(h, 0, INT64_MAX, v, ALEN, &n, NULL));
  assert_int_equal(n, ALEN);
  for (int i = 1; i < ALEN; i++) {
    if (v[i].i != v[0].i)
      print_error("torn slice: [0]=%lld [%d]=%lld\n", (long long)v[0].i, i,
                  (long long)v[i].i);
    tu_assert_i64(v[i].i, v[0].i);
  }
  if (value != NULL)
    *value = v[0].i;
}

static void test_kill_slice_writer(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "a", 'q', ALEN, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  struct writer_arg a = {.path = f->path}, r = {.path = f->path};
  tu_pipe(a.ready);
  tu_pipe(r.ready);
  tu_pipe(r.stop);
  tu_pipe(r.out);
  pid_t reader = tu_spawn_ready(slice_reader, &r, r.ready[0]);
  uint64_t rnd = tu_seed();
  double slowest = 0;
  int trials = kill_trials();
  for (int trial = 0; trial < trials; trial++) {
    tu_case("trial %d", trial);
    run_and_kill(slice_writer, &a, &rnd);
    assert_all_equal(&h, NULL);
    /* The lock the writer may have died holding is recovered at once. */
    atr_scalar v[ALEN];
    for (int i = 0; i < ALEN; i++)
      v[i] = si(-trial - 1);
    double t0 = tu_now();
    tu_ok(atr_array_set(&h, 0, v, ALEN, 0, NULL));
    double took = tu_now() - t0;
    slowest = took > slowest ? took : slowest;
    assert_true(took < 1.0);
    int64_t now;
    assert_all_equal(&h, &now);
    tu_assert_i64(now, -trial - 1);
  }
  assert_int_equal(tu_write_full(r.stop[1], "s", 1), 0);
  uint64_t reads = 0;
  int got = tu_read_full(r.out[0], &reads, sizeof reads, 30);
  int status = tu_wait(reader, 30);
  tu_close_pipe(a.ready);
  tu_close_pipe(r.ready);
  tu_close_pipe(r.stop);
  tu_close_pipe(r.out);
  print_message("reader: %llu whole reads; slowest recovering set %.3f ms\n",
                (unsigned long long)reads, slowest * 1e3);
  assert_int_equal(status, 0);
  assert_int_equal(got, 0);
  assert_true(reads > 0);
}

/* ------------------------------------------------------------ (c) queues */

enum { MAX_LEN = 2000 };

/* An item: [u32 length][u32 seed][bytes from the seed...]. */
static size_t item_make(unsigned char *buf, uint64_t *rnd) {
  uint32_t len = 8 + (uint32_t)tu_rand_below(rnd, MAX_LEN - 8 + 1);
  uint64_t seed = tu_rand(rnd) | 1;
  uint32_t seed32 = (uint32_t)seed | 1;
  memcpy(buf, &len, 4);
  memcpy(buf + 4, &seed32, 4);
  uint64_t r = seed32;
  for (uint32_t i = 8; i < len; i++)
    buf[i] = (unsigned char)tu_rand(&r);
  return len;
}

static int item_valid(const unsigned char *buf, size_t len) {
  uint32_t want, seed32;
  if (len < 8)
    return 0;
  memcpy(&want, buf, 4);
  memcpy(&seed32, buf + 4, 4);
  if (want != len || seed32 == 0)
    return 0;
  uint64_t r = seed32;
  for (size_t i = 8; i < len; i++)
    if (buf[i] != (unsigned char)tu_rand(&r))
      return 0;
  return 1;
}

static int queue_writer(void *arg) {
  struct writer_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  static unsigned char items[4][MAX_LEN], buf[MAX_LEN];
  uint64_t rnd = a->seed;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  for (;;) {
    int put = tu_rand_below(&rnd, 10) < (uint64_t)a->puts;
    int batch = tu_rand_below(&rnd, 3) == 0;
    int rv;
    if (put && !batch) {
      size_t len = item_make(items[0], &rnd);
      rv = atr_queue_put(&h, items[0], len, 0);
    } else if (put) {
      struct iovec iov[4];
      size_t n = 1 + (size_t)tu_rand_below(&rnd, 4);
      for (size_t i = 0; i < n; i++)
        iov[i] = (struct iovec){items[i], item_make(items[i], &rnd)};
      rv = atr_queue_put_batch(&h, iov, n, 0);
    } else if (a->leases) {
      /* Leased: then ack, nack, touch or nothing (the items come back
       * when the holder dies). */
      atr_items got = {0};
      uint64_t r[3];
      uint32_t d[3];
      rv = atr_queue_get_leased(&h, 3, 60, 0, 0, &got, r, d);
      for (size_t k = 0; k < got.count; k++)
        if (!item_valid((unsigned char *)got.data + got.off[k], got.len[k]))
          return 3;
      uint64_t how = tu_rand_below(&rnd, 4);
      if (rv == 0 && how == 0)
        rv = atr_queue_ack(&h, r, got.count, NULL, NULL);
      else if (rv == 0 && how == 1)
        rv = atr_queue_nack(&h, r, got.count, 0, NULL, NULL);
      else if (rv == 0 && how == 2)
        rv = atr_queue_touch(&h, r, got.count, 30, NULL, NULL);
      atr_items_free(&got);
    } else if (!batch) {
      size_t len;
      rv = atr_queue_get(&h, buf, sizeof buf, &len, 0);
      if (rv == 0 && !item_valid(buf, len)) {
        fprintf(stderr, "writer: bad item of %zu bytes\n", len);
        return 3;
      }
    } else {
      atr_items got = {0};
      rv = atr_queue_get_batch(&h, 3, 0, &got);
      for (size_t k = 0; k < got.count; k++)
        if (!item_valid((unsigned char *)got.data + got.off[k], got.len[k]))
          return 3;
      /* Killed here, this leaks the process's heap: that is fine. */
      atr_items_free(&got);
    }
    TU_CHILD_CHECK(rv == 0 || rv == ATR_EFULL || rv == ATR_EEMPTY ||
                   rv == ATR_ENOSPC);
  }
}

/* Kills queue writers on a queue made with max_bytes; drains and checks
 * after each kill. */
static void kill_queue_writers(tu_fixture *f, uint64_t max_bytes, int puts,
                               int leases, int trials) {
  atr_handle h;
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = max_bytes;
  qo.max_item = 4096;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &qo, &h), ATR_CREATED);
  struct writer_arg a = {.path = f->path, .puts = puts, .leases = leases};
  tu_pipe(a.ready);
  uint64_t rnd = tu_seed();
  uint64_t drained = 0;
  static unsigned char buf[4096], item[MAX_LEN];
  for (int trial = 0; trial < trials; trial++) {
    tu_case("trial %d", trial);
    run_and_kill(queue_writer, &a, &rnd);
    uint64_t items, bytes;
    /* What the dead writer held under a lease is back (a sweep now; a
     * getter's own comes within 10 ms). */
    assert_true(atr_sync_expire(&h) >= 0);
    tu_assert_u64(tu_info(&h).leased, 0);
    tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
    uint64_t n = 0;
    size_t len;
    int rv;
    while ((rv = atr_queue_get(&h, buf, sizeof buf, &len, 0)) == 0) {
      if (!item_valid(buf, len))
        print_error("bad item of %zu bytes\n", len);
      assert_true(item_valid(buf, len));
      n++;
    }
    tu_assert_rc(rv, ATR_EEMPTY);
    tu_assert_u64(n, items);
    drained += n;
    tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
    tu_assert_u64(items, 0);
    if (!leases) /* (a place's block is not in the ring's bytes) */
      tu_assert_u64(bytes, 0);
    /* Put and get still work. */
    size_t ilen = item_make(item, &rnd);
    tu_ok(atr_queue_put(&h, item, ilen, 0));
    tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
    tu_assert_u64(len, ilen);
    assert_memory_equal(buf, item, ilen);
  }
  tu_close_pipe(a.ready);
  print_message("%llu whole items drained after kills\n",
                (unsigned long long)drained);
}

static void test_kill_queue_writer(void **state) {
  kill_queue_writers(fixture(state), 32768, 6, 0, kill_trials());
}

/* The same with leased gets, acks, nacks and touches: items are whole,
 * and the dead writer's leased ones come back. */
static void test_kill_leased_queue(void **state) {
  kill_queue_writers(fixture(state), 32768, 5, 1, kill_trials() / 2);
}

/* A queue without a byte bound grows (store lock, new ring, copy, free
 * the old one) while writers die: items stay whole and no space is lost. */
static void test_kill_growing_queue(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_stats base, st;
  tu_ok(atr_store_stats_get(f->store, &base));
  kill_queue_writers(f, 0, 9, 0, kill_trials() / 2);
  tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
  tu_ok(atr_store_stats_get(f->store, &st));
  tu_assert_u64(st.objects, base.objects);
  tu_assert_u64(st.used, base.used);
}

/* ----------------------------------------------------- (d) killed waiters */

struct waiter_arg {
  const char *path;
  int ready[2];
  int put;        /* wait in put on a full queue rather than in get */
  double timeout; /* < 0: for ever */
  int expect;     /* the result it must get */
};

static int waiter(void *arg) {
  struct waiter_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "w", 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  char buf[16];
  size_t len = 0;
  int rv = a->put ? atr_queue_put(&h, "p", 1, a->timeout)
                  : atr_queue_get(&h, buf, sizeof buf, &len, a->timeout);
  if (rv != a->expect)
    fprintf(stderr, "waiter: %s\n", atr_errname(rv));
  TU_CHILD_CHECK(rv == a->expect);
  TU_CHILD_CHECK(a->put || (len == 4 && memcmp(buf, "item", 4) == 0));
  atr_store_close(s);
  return 0;
}

static pid_t start_waiter(struct waiter_arg *a) {
  pid_t pid = tu_spawn_ready(waiter, a, a->ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  return pid;
}

static void test_kill_waiters(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.maxsize = 1;
  qo.max_bytes = 4096;
  tu_assert_rc(atr_queue_open(f->store, "w", ATR_CREATE, &qo, &h), ATR_CREATED);
  struct waiter_arg a = {.path = f->path};
  tu_pipe(a.ready);
  char buf[16];
  size_t len;
  for (int trial = 0; trial < 20; trial++) {
    tu_case("trial %d", trial);
    /* A getter killed while it waits on the empty queue... */
    a.put = 0;
    a.timeout = -1;
    a.expect = 0;
    assert_int_equal(tu_kill(start_waiter(&a)), KILLED);
    /* ...does not stop the next getter from waking on a put. */
    a.timeout = 10;
    pid_t pid = start_waiter(&a);
    double t0 = tu_now();
    tu_ok(atr_queue_put(&h, "item", 4, 0));
    assert_int_equal(tu_wait(pid, 10), 0);
    assert_true(tu_now() - t0 < 1.0);
    tu_ok(atr_queue_put(&h, "item", 4, 0));
    tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));

    /* The same for a putter killed while the queue is full. */
    tu_ok(atr_queue_put(&h, "item", 4, 0));
    a.put = 1;
    a.timeout = -1;
    assert_int_equal(tu_kill(start_waiter(&a)), KILLED);
    a.timeout = 10;
    pid = start_waiter(&a);
    t0 = tu_now();
    tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
    assert_int_equal(tu_wait(pid, 10), 0);
    assert_true(tu_now() - t0 < 1.0);
    tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], 'p');
    /* And a timed wait still times out. */
    t0 = tu_now();
    tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, &len, 0.05), ATR_EEMPTY);
    assert_true(tu_now() - t0 >= 0.04);
  }
  tu_close_pipe(a.ready);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kill_adder, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_slice_writer, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_queue_writer, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_leased_queue, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_growing_queue, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_waiters, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
