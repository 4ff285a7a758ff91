/*
 * test_multiproc.c - several real processes on one store, each opening
 * it by its path: exact counts under contention, exact compare-and-set,
 * queues with many producers and consumers, wake-up latency, whole slices.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static atr_scalar si(int64_t i) {
  return (atr_scalar){.i = i};
}

#define MAXCHILD 8

/* One group of children started together: each blocks on `go` until
 * the parent releases them all. */
struct child_arg {
  const char *path;
  int index;
  long count;
  int go[2];
  int go2[2]; /* a second barrier, for children with two phases */
  int out[2]; /* the child's report to the parent */
};

static void release(int go[2], int n) {
  char bytes[MAXCHILD];
  memset(bytes, 'g', sizeof bytes);
  assert_int_equal(tu_write_full(go[1], bytes, (size_t)n), 0);
}

static void wait_go(struct child_arg *a) {
  char c;
  TU_CHILD_CHECK(tu_read_full(a->go[0], &c, 1, 30) == 0);
}

/* Starts n children of fn on args[0..n) (pipes made here), releases
 * them, waits for them all; returns how many did not exit 0. */
static int run_group(tu_child_fn fn, struct child_arg *args, int n,
                     double timeout) {
  int go[2];
  pid_t pids[MAXCHILD];
  tu_pipe(go);
  for (int i = 0; i < n; i++) {
    memcpy(args[i].go, go, sizeof go);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(fn, &args[i]);
  }
  release(go, n);
  int failed = 0;
  double deadline = tu_now() + timeout;
  for (int i = 0; i < n; i++) {
    double left = deadline - tu_now();
    int status = tu_wait(pids[i], left > 0.1 ? left : 0.1);
    if (status != 0) {
      print_error("child %d: status %d\n", i, status);
      failed++;
    }
  }
  tu_close_pipe(go);
  return failed;
}

static void close_outs(struct child_arg *args, int n) {
  for (int i = 0; i < n; i++)
    tu_close_pipe(args[i].out);
}

/* ------------------------------------------------------------ exact adds */

static int adder(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  char name[16];
  snprintf(name, sizeof name, a->index < 0 ? "n" : "n%d", a->index);
  TU_CHILD_CHECK(atr_value_open(s, name, 'q', 0, NULL, &h) == 0);
  wait_go(a);
  for (long i = 0; i < a->count; i++)
    TU_CHILD_CHECK(atr_value_add(&h, si(1), NULL, NULL) == 0);
  atr_store_close(s);
  return 0;
}

static void test_adds_exact(void **state) {
  tu_fixture *f = fixture(state);
  enum { PROCS = 4, ADDS = 1000000 };
  atr_handle h;
  tu_counter_new(f->store, "n", &h);
  uint64_t v0;
  tu_ok(atr_value_get(&h, NULL, &v0));
  struct child_arg args[PROCS];
  for (int i = 0; i < PROCS; i++)
    args[i] = (struct child_arg){.path = f->path, .index = -1, .count = ADDS};
  double t0 = tu_now();
  assert_int_equal(run_group(adder, args, PROCS, 120), 0);
  print_message("%d x %d adds: %.2f s\n", PROCS, ADDS, tu_now() - t0);
  close_outs(args, PROCS);
  atr_scalar v;
  uint64_t version;
  tu_ok(atr_value_get(&h, &v, &version));
  tu_assert_i64(v.i, (int64_t)PROCS * ADDS);
  tu_assert_u64(version - v0, (uint64_t)PROCS * ADDS);
}

/* Two processes, each on its own value, at the same time. */
static void test_two_values(void **state) {
  tu_fixture *f = fixture(state);
  enum { ADDS = 2000000 };
  atr_handle h[2];
  struct child_arg args[2];
  for (int i = 0; i < 2; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    tu_assert_rc(atr_value_open(f->store, name, 'q', ATR_CREATE, NULL, &h[i]),
                 ATR_CREATED);
    args[i] = (struct child_arg){.path = f->path, .index = i, .count = ADDS};
  }
  double t0 = tu_now();
  assert_int_equal(run_group(adder, args, 2, 120), 0);
  print_message("2 x %d adds on two values: %.2f s\n", ADDS, tu_now() - t0);
  close_outs(args, 2);
  for (int i = 0; i < 2; i++) {
    atr_scalar v;
    tu_ok(atr_value_get(&h[i], &v, NULL));
    tu_assert_i64(v.i, ADDS);
  }
}

/* ------------------------------------------------------- compare-and-set */

static int casser(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_value_open(s, "n", 'q', 0, NULL, &h) == 0);
  wait_go(a);
  uint64_t won = 0;
  for (long i = 0; i < a->count; i++) {
    atr_scalar v;
    uint64_t version, next;
    TU_CHILD_CHECK(atr_value_get(&h, &v, &version) == 0);
    int rv = atr_value_set(&h, si(v.i + 1), version, &next);
    if (rv == 0) {
      TU_CHILD_CHECK(next > version);
      won++;
    } else {
      TU_CHILD_CHECK(rv == ATR_EVERSION);
    }
  }
  TU_CHILD_CHECK(tu_write_full(a->out[1], &won, sizeof won) == 0);
  atr_store_close(s);
  return 0;
}

static void test_cas_exact(void **state) {
  tu_fixture *f = fixture(state);
  enum { ADDS = 300000, TRIES = 300000 };
  atr_handle h;
  tu_counter_new(f->store, "n", &h);
  struct child_arg args[4];
  for (int i = 0; i < 4; i++)
    args[i] = (struct child_arg){
        .path = f->path, .index = -1, .count = i < 2 ? ADDS : TRIES};
  /* run_group takes one function: start adders and cassers apart. */
  int go[2];
  tu_pipe(go);
  pid_t pids[4];
  for (int i = 0; i < 4; i++) {
    memcpy(args[i].go, go, sizeof go);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(i < 2 ? adder : casser, &args[i]);
  }
  release(go, 4);
  int failed = 0;
  for (int i = 0; i < 4; i++)
    failed += tu_wait(pids[i], 120) != 0;
  tu_close_pipe(go);
  uint64_t won = 0;
  for (int i = 2; i < 4; i++) {
    uint64_t w = 0;
    if (failed == 0)
      assert_int_equal(tu_read_full(args[i].out[0], &w, sizeof w, 5), 0);
    won += w;
  }
  close_outs(args, 4);
  assert_int_equal(failed, 0);
  atr_scalar v;
  tu_ok(atr_value_get(&h, &v, NULL));
  print_message("compare-and-set: %llu of %d won\n", (unsigned long long)won,
                2 * TRIES);
  assert_true(won > 0);
  tu_assert_i64(v.i, 2 * ADDS + (int64_t)won);
}

/* ---------------------------------------------- producers and consumers */

enum { PRODUCERS = 3, CONSUMERS = 3, PER_PRODUCER = 30000, PAYLOAD = 200 };
#define STOP UINT32_MAX

struct item {
  uint32_t producer;
  uint32_t len; /* payload bytes after the header */
  uint64_t seq;
  uint64_t checksum;
  unsigned char payload[PAYLOAD];
};
#define ITEM_HDR offsetof(struct item, payload)

static uint64_t item_checksum(const struct item *it) {
  uint64_t x = 1469598103934665603ull;
  x = (x ^ it->producer) * 1099511628211ull;
  x = (x ^ it->len) * 1099511628211ull;
  x = (x ^ it->seq) * 1099511628211ull;
  for (uint32_t i = 0; i < it->len; i++)
    x = (x ^ it->payload[i]) * 1099511628211ull;
  return x;
}

static size_t item_make(struct item *it, uint32_t producer, uint64_t seq) {
  uint64_t r = seq * 31 + producer + 1;
  it->producer = producer;
  it->seq = seq;
  it->len = (uint32_t)tu_rand_below(&r, PAYLOAD + 1);
  for (uint32_t i = 0; i < it->len; i++)
    it->payload[i] = (unsigned char)tu_rand(&r);
  it->checksum = item_checksum(it);
  return ITEM_HDR + it->len;
}

static int producer(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  wait_go(a);
  struct item it;
  for (uint64_t seq = 0; seq < PER_PRODUCER; seq++) {
    size_t len = item_make(&it, (uint32_t)a->index, seq);
    int rv = atr_queue_put(&h, &it, len, 30);
    if (rv != 0)
      fprintf(stderr, "producer %d: %s\n", a->index, atr_errname(rv));
    TU_CHILD_CHECK(rv == 0);
  }
  atr_store_close(s);
  return 0;
}

struct consumer_state {
  uint64_t bad;
  uint64_t taken;
  uint64_t last[PRODUCERS]; /* seq + 1 of the last item of each producer */
  unsigned char seen[PRODUCERS][PER_PRODUCER / 8 + 1];
};

/* Checks one item; returns 1 for a stop item. */
static int consume(struct consumer_state *cs, const void *buf, size_t len) {
  struct item it;
  if (len < ITEM_HDR || len > sizeof it) {
    cs->bad++;
    return 0;
  }
  memcpy(&it, buf, len);
  if (it.producer == STOP)
    return 1;
  if (it.producer >= PRODUCERS || it.seq >= PER_PRODUCER ||
      ITEM_HDR + it.len != len || item_checksum(&it) != it.checksum) {
    cs->bad++;
    return 0;
  }
  /* Items of one producer keep their order, for every consumer. */
  if (it.seq + 1 <= cs->last[it.producer])
    cs->bad++;
  cs->last[it.producer] = it.seq + 1;
  cs->seen[it.producer][it.seq / 8] |= (unsigned char)(1u << (it.seq % 8));
  cs->taken++;
  return 0;
}

static int consumer(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  static struct consumer_state cs;
  memset(&cs, 0, sizeof cs);
  wait_go(a);
  int stopped = 0;
  while (!stopped) {
    if (a->index == 0) {
      /* This one takes batches; a batch may hold more than one stop
       * item: the spare ones go back for the others. */
      atr_items items = {0};
      int rv = atr_queue_get_batch(&h, 16, 30, &items);
      TU_CHILD_CHECK(rv == 0);
      for (size_t k = 0; k < items.count; k++) {
        const char *p = items.data + items.off[k];
        if (consume(&cs, p, items.len[k])) {
          if (stopped)
            TU_CHILD_CHECK(atr_queue_put(&h, p, items.len[k], 30) == 0);
          stopped = 1;
        }
      }
      atr_items_free(&items);
    } else {
      struct item it;
      size_t len;
      int rv = atr_queue_get(&h, &it, sizeof it, &len, 30);
      TU_CHILD_CHECK(rv == 0);
      stopped = consume(&cs, &it, len);
    }
  }
  TU_CHILD_CHECK(tu_write_full(a->out[1], &cs, sizeof cs) == 0);
  atr_store_close(s);
  return 0;
}

static void test_producers_consumers(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.maxsize = 64;
  qo.max_bytes = 16384;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &qo, &h), ATR_CREATED);
  struct child_arg args[PRODUCERS + CONSUMERS];
  pid_t pids[PRODUCERS + CONSUMERS];
  int go[2];
  tu_pipe(go);
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
    int is_producer = i < PRODUCERS;
    args[i] = (struct child_arg){.path = f->path,
                                 .index = is_producer ? i : i - PRODUCERS};
    memcpy(args[i].go, go, sizeof go);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(is_producer ? producer : consumer, &args[i]);
  }
  double t0 = tu_now();
  release(go, PRODUCERS + CONSUMERS);
  int failed = 0;
  for (int i = 0; i < PRODUCERS; i++)
    failed += tu_wait(pids[i], 120) != 0;
  /* Every item is in; one stop item per consumer. */
  struct item stop = {.producer = STOP};
  for (int i = 0; i < CONSUMERS; i++)
    tu_ok(atr_queue_put(&h, &stop, ITEM_HDR, 30));
  static struct consumer_state cs[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) {
    struct child_arg *a = &args[PRODUCERS + i];
    int got = tu_read_full(a->out[0], &cs[i], sizeof cs[i], 60);
    failed += tu_wait(pids[PRODUCERS + i], 30) != 0;
    failed += got != 0;
  }
  print_message("%d producers x %d items, %d consumers: %.2f s\n", PRODUCERS,
                PER_PRODUCER, CONSUMERS, tu_now() - t0);
  tu_close_pipe(go);
  close_outs(args, PRODUCERS + CONSUMERS);
  assert_int_equal(failed, 0);
  uint64_t total = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    tu_case("consumer %d", i);
    tu_assert_u64(cs[i].bad, 0);
    total += cs[i].taken;
  }
  tu_assert_u64(total, (uint64_t)PRODUCERS * PER_PRODUCER);
  /* Exactly once: each item seen by exactly one consumer. */
  for (int p = 0; p < PRODUCERS; p++) {
    for (int seq = 0; seq < PER_PRODUCER; seq++) {
      int times = 0;
      for (int i = 0; i < CONSUMERS; i++)
        times += (cs[i].seen[p][seq / 8] >> (seq % 8)) & 1;
      if (times != 1)
        print_error("item %d/%d taken %d times\n", p, seq, times);
      assert_int_equal(times, 1);
    }
  }
  uint64_t left;
  tu_ok(atr_queue_size(&h, &left, NULL, NULL));
  assert_int_equal(left, 0);
}

/* ----------------------------------------------------------- wake-ups */

enum { WAKE_TRIALS = 15 };

static int waker_child(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "w", 0, NULL, &h) == 0);
  for (int i = 0; i < WAKE_TRIALS; i++) {
    double sent, latency;
    size_t len;
    TU_CHILD_CHECK(tu_write_full(a->go[1], "r", 1) == 0);
    int rv = atr_queue_get(&h, &sent, sizeof sent, &len, 5);
    latency = tu_now() - sent;
    TU_CHILD_CHECK(rv == 0 && len == sizeof sent);
    TU_CHILD_CHECK(tu_write_full(a->out[1], &latency, sizeof latency) == 0);
  }
  /* No put: the timeout ends the wait. */
  double t0 = tu_now(), sent;
  size_t len;
  TU_CHILD_CHECK(atr_queue_get(&h, &sent, sizeof sent, &len, 0.3) ==
                 ATR_EEMPTY);
  double waited = tu_now() - t0;
  TU_CHILD_CHECK(tu_write_full(a->out[1], &waited, sizeof waited) == 0);
  atr_store_close(s);
  return 0;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static void test_wake_latency(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_queue_open(f->store, "w", ATR_CREATE, NULL, &h),
               ATR_CREATED);
  struct child_arg a = {.path = f->path};
  tu_pipe(a.go); /* here: the child's "about to wait" signal */
  tu_pipe(a.out);
  pid_t pid = tu_spawn(waker_child, &a);
  double lat[WAKE_TRIALS];
  for (int i = 0; i < WAKE_TRIALS; i++) {
    char c;
    assert_int_equal(tu_read_full(a.go[0], &c, 1, 10), 0);
    assert_int_equal(tu_wait_blocked(pid, 10), 0);
    double now = tu_now();
    tu_ok(atr_queue_put(&h, &now, sizeof now, 0));
    assert_int_equal(tu_read_full(a.out[0], &lat[i], sizeof lat[i], 10), 0);
  }
  double waited;
  assert_int_equal(tu_read_full(a.out[0], &waited, sizeof waited, 10), 0);
  int status = tu_wait(pid, 10);
  tu_close_pipe(a.go);
  tu_close_pipe(a.out);
  assert_int_equal(status, 0);
  qsort(lat, WAKE_TRIALS, sizeof lat[0], cmp_double);
  print_message("wake latency: min %.3f ms, median %.3f ms, max %.3f ms\n",
                lat[0] * 1e3, lat[WAKE_TRIALS / 2] * 1e3,
                lat[WAKE_TRIALS - 1] * 1e3);
  assert_true(lat[WAKE_TRIALS / 2] < 0.050);
  assert_true(lat[WAKE_TRIALS - 1] < 1.0);
  if (waited < 0.25 || waited > 1.0)
    print_error("get with timeout 0.3 took %.3f s\n", waited);
  assert_true(waited >= 0.25 && waited <= 1.0);
}

/* --------------------------------------------------- whole array slices */

enum { SLICE_LEN = 64 };

static int slice_writer(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_array_open(s, "a", 'q', SLICE_LEN, 0, NULL, &h) == 0);
  atr_scalar v[SLICE_LEN];
  wait_go(a);
  for (long k = 1; k <= a->count; k++) {
    for (int i = 0; i < SLICE_LEN; i++)
      v[i] = si(k);
    TU_CHILD_CHECK(atr_array_set(&h, 0, v, SLICE_LEN, 0, NULL) == 0);
  }
  atr_store_close(s);
  return 0;
}

static int slice_reader(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_array_open(s, "a", 'q', SLICE_LEN, 0, NULL, &h) == 0);
  atr_scalar v[SLICE_LEN];
  int64_t last = 0;
  uint64_t last_version = 0;
  wait_go(a);
  while (last < a->count) {
    uint64_t n, version;
    TU_CHILD_CHECK(
        atr_array_get(&h, 0, INT64_MAX, v, SLICE_LEN, &n, &version) == 0);
    TU_CHILD_CHECK(n == SLICE_LEN);
    for (int i = 1; i < SLICE_LEN; i++)
      if (v[i].i != v[0].i) {
        fprintf(stderr, "torn read: [0]=%lld [%d]=%lld\n", (long long)v[0].i, i,
                (long long)v[i].i);
        return 1;
      }
    /* Values and versions move forward together. */
    TU_CHILD_CHECK(v[0].i >= last);
    TU_CHILD_CHECK(version >= last_version);
    TU_CHILD_CHECK((v[0].i > last) == (version > last_version) ||
                   last_version == 0);
    last = v[0].i;
    last_version = version;
  }
  atr_store_close(s);
  return 0;
}

static void test_whole_slices(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(
      atr_array_open(f->store, "a", 'q', SLICE_LEN, ATR_CREATE, NULL, &h),
      ATR_CREATED);
  struct child_arg args[3];
  pid_t pids[3];
  int go[2];
  tu_pipe(go);
  for (int i = 0; i < 3; i++) {
    args[i] = (struct child_arg){.path = f->path, .index = i, .count = 100000};
    memcpy(args[i].go, go, sizeof go);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(i == 0 ? slice_writer : slice_reader, &args[i]);
  }
  release(go, 3);
  int failed = 0;
  for (int i = 0; i < 3; i++)
    failed += tu_wait(pids[i], 120) != 0;
  tu_close_pipe(go);
  close_outs(args, 3);
  assert_int_equal(failed, 0);
}

/* ------------------------------------------- racing creates and deletes */

enum { RACE_NAMES = 64, RACERS = 6 };

struct race_report {
  unsigned char created[RACE_NAMES];
  unsigned char deleted[RACE_NAMES];
  uint64_t ids[RACE_NAMES];
};

/* Every racer get-or-creates every name, then (after a second barrier)
 * deletes every name: each name is created once and deleted once. */
static int racer(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  static struct race_report r;
  char name[16];
  memset(&r, 0, sizeof r);
  wait_go(a);
  for (int k = 0; k < RACE_NAMES; k++) {
    int i = (k + a->index * 7) % RACE_NAMES; /* each racer its own order */
    atr_handle h;
    snprintf(name, sizeof name, "r%d", i);
    int rv = i % 2 ? atr_value_open(s, name, 'q', ATR_CREATE, NULL, &h)
                   : atr_array_open(s, name, 'q', 8, ATR_CREATE, NULL, &h);
    TU_CHILD_CHECK(rv == ATR_CREATED || rv == 0);
    r.created[i] = rv == ATR_CREATED;
    r.ids[i] = h.id;
  }
  TU_CHILD_CHECK(tu_write_full(a->out[1], "c", 1) == 0);
  char c;
  TU_CHILD_CHECK(tu_read_full(a->go2[0], &c, 1, 30) == 0);
  for (int k = 0; k < RACE_NAMES; k++) {
    int i = (k + a->index * 11) % RACE_NAMES;
    snprintf(name, sizeof name, "r%d", i);
    int rv = atr_delete(s, name, ATR_ANY);
    TU_CHILD_CHECK(rv == 0 || rv == ATR_ENOENT);
    r.deleted[i] = rv == 0;
  }
  TU_CHILD_CHECK(tu_write_full(a->out[1], &r, sizeof r) == 0);
  atr_store_close(s);
  return 0;
}

static void test_racing_creates_deletes(void **state) {
  tu_fixture *f = fixture(state);
  struct child_arg args[RACERS];
  pid_t pids[RACERS];
  int go[2], go2[2];
  tu_pipe(go);
  tu_pipe(go2);
  for (int i = 0; i < RACERS; i++) {
    args[i] = (struct child_arg){.path = f->path, .index = i};
    memcpy(args[i].go, go, sizeof go);
    memcpy(args[i].go2, go2, sizeof go2);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(racer, &args[i]);
  }
  static struct race_report r[RACERS];
  int failed = 0;
  release(go, RACERS);
  for (int i = 0; i < RACERS; i++) {
    char c;
    failed += tu_read_full(args[i].out[0], &c, 1, 30) != 0;
  }
  release(go2, RACERS);
  for (int i = 0; i < RACERS; i++) {
    failed += tu_read_full(args[i].out[0], &r[i], sizeof r[i], 30) != 0;
    failed += tu_wait(pids[i], 30) != 0;
  }
  tu_close_pipe(go);
  tu_close_pipe(go2);
  close_outs(args, RACERS);
  assert_int_equal(failed, 0);
  for (int n = 0; n < RACE_NAMES; n++) {
    int created = 0, deleted = 0;
    for (int i = 0; i < RACERS; i++) {
      created += r[i].created[n];
      deleted += r[i].deleted[n];
      /* Everyone opened the one object that was made. */
      tu_assert_u64(r[i].ids[n], r[0].ids[n]);
    }
    tu_case("name r%d", n);
    tu_assert_i64(created, 1);
    tu_assert_i64(deleted, 1);
  }
  atr_store_stats st;
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 0);
}

/* ------------------------------------------------- listing under churn */

static int churner(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  char name[16];
  wait_go(a);
  for (long i = 0; i < a->count; i++) {
    snprintf(name, sizeof name, "c%d_%ld", a->index, i % 20);
    int rv = i % 40 < 20 ? atr_value_open(s, name, 'q', ATR_CREATE, NULL, &h)
                         : atr_delete(s, name, ATR_ANY);
    TU_CHILD_CHECK(rv >= 0);
  }
  atr_store_close(s);
  return 0;
}

struct list_check {
  atr_store *store;
  long bad;
  long seen;
};

static int list_one(const atr_info *info, void *arg) {
  struct list_check *lc = arg;
  atr_info again;
  lc->seen++;
  size_t len = strnlen(info->name, sizeof info->name);
  if (len == sizeof info->name || atr_name_check(info->name, len) != 0 ||
      info->kind != ATR_VALUE || info->type != 'q') {
    lc->bad++;
    return 0;
  }
  /* Deleted meanwhile, or the same object (or a later incarnation). */
  int rv = atr_stat(lc->store, info->name, &again);
  if (rv != ATR_ENOENT && (rv != 0 || again.id < info->id))
    lc->bad++;
  return 0;
}

static int lister(void *arg) {
  struct child_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  struct list_check lc = {.store = s};
  wait_go(a);
  for (long i = 0; i < a->count; i++) {
    TU_CHILD_CHECK(atr_list(s, list_one, &lc) == 0);
    atr_store_stats st;
    TU_CHILD_CHECK(atr_store_stats_get(s, &st) == 0);
    TU_CHILD_CHECK(st.objects <= 40);
  }
  if (lc.bad != 0)
    fprintf(stderr, "lister: %ld bad entries of %ld\n", lc.bad, lc.seen);
  TU_CHILD_CHECK(lc.bad == 0);
  atr_store_close(s);
  return 0;
}

static void test_list_under_churn(void **state) {
  tu_fixture *f = fixture(state);
  struct child_arg args[3];
  pid_t pids[3];
  int go[2];
  tu_pipe(go);
  for (int i = 0; i < 3; i++) {
    args[i] = (struct child_arg){
        .path = f->path, .index = i, .count = i < 2 ? 200000 : 2000};
    memcpy(args[i].go, go, sizeof go);
    tu_pipe(args[i].out);
    pids[i] = tu_spawn(i < 2 ? churner : lister, &args[i]);
  }
  release(go, 3);
  int failed = 0;
  for (int i = 0; i < 3; i++)
    failed += tu_wait(pids[i], 120) != 0;
  tu_close_pipe(go);
  close_outs(args, 3);
  assert_int_equal(failed, 0);
  /* Each churner ends with all its names deleted. */
  atr_store_stats st;
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 0);
}

/* ------------------------------------------------------------- threads */

struct thread_arg {
  atr_store *store;
  long count;
  long errors;
};

static void *thread_adder(void *arg) {
  struct thread_arg *t = arg;
  atr_handle h;
  if (atr_value_open(t->store, "n", 'q', 0, NULL, &h) != 0) {
    t->errors++;
    return NULL;
  }
  for (long i = 0; i < t->count; i++)
    if (atr_value_add(&h, si(1), NULL, NULL) != 0)
      t->errors++;
  return NULL;
}

/* Threads of one process and another process, on one value. */
static void test_threads(void **state) {
  tu_fixture *f = fixture(state);
  enum { THREADS = 3, ADDS = 300000 };
  atr_handle h;
  tu_counter_new(f->store, "n", &h);
  struct child_arg child = {.path = f->path, .index = -1, .count = ADDS};
  int go[2];
  tu_pipe(go);
  memcpy(child.go, go, sizeof go);
  tu_pipe(child.out);
  pid_t pid = tu_spawn(adder, &child);
  release(go, 1);
  pthread_t tids[THREADS];
  struct thread_arg targs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    targs[i] = (struct thread_arg){.store = f->store, .count = ADDS};
    assert_int_equal(pthread_create(&tids[i], NULL, thread_adder, &targs[i]),
                     0);
  }
  long errors = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tids[i], NULL);
    errors += targs[i].errors;
  }
  int status = tu_wait(pid, 60);
  tu_close_pipe(go);
  tu_close_pipe(child.out);
  assert_int_equal(status, 0);
  assert_int_equal(errors, 0);
  atr_scalar v;
  tu_ok(atr_value_get(&h, &v, NULL));
  tu_assert_i64(v.i, (int64_t)(THREADS + 1) * ADDS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_adds_exact, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_two_values, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_cas_exact, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_producers_consumers, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_wake_latency, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_whole_slices, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_racing_creates_deletes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_list_under_churn, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_threads, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
