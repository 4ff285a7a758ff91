/*
 * test_queue.c - bounded FIFO queues: order, bounds, batches, the ring's
 * wrap-around, timeouts, a delete that wakes a waiting process, and
 * describing a queue while another process holds its locks.
 */
#include "testutil.h"

#include "internal.h" /* to hold a queue's locks as the library does */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static void qnew(atr_store *s, const char *name, uint64_t maxsize,
                 uint64_t max_bytes, uint64_t max_item, atr_handle *h) {
  atr_queue_opts o;
  atr_queue_opts_init(&o);
  o.maxsize = maxsize;
  if (max_bytes)
    o.max_bytes = max_bytes;
  o.max_item = max_item;
  tu_assert_rc(atr_queue_open(s, name, ATR_CREATE | ATR_EXCL, &o, h),
               ATR_CREATED);
}

/* A queue without a byte bound (max_bytes 0). */
static void qnew_growable(atr_store *s, const char *name, atr_handle *h) {
  atr_queue_opts o;
  atr_queue_opts_init(&o);
  o.max_bytes = 0;
  tu_assert_rc(atr_queue_open(s, name, ATR_CREATE | ATR_EXCL, &o, h),
               ATR_CREATED);
}

static void put_str(const atr_handle *h, const char *s) {
  tu_ok(atr_queue_put(h, s, strlen(s), 0));
}

static void get_str(const atr_handle *h, const char *want) {
  char buf[256];
  size_t len = 9999;
  tu_ok(atr_queue_get(h, buf, sizeof buf, &len, 0));
  tu_assert_u64(len, strlen(want));
  assert_memory_equal(buf, want, len);
}

static uint64_t qsize(const atr_handle *h) {
  uint64_t n;
  tu_ok(atr_queue_size(h, &n, NULL, NULL));
  return n;
}

static uint64_t qversion(const atr_handle *h) {
  uint64_t v;
  tu_ok(atr_queue_size(h, NULL, NULL, &v));
  return v;
}

static void test_defaults(void **state) {
  tu_fixture *f = fixture(state);
  atr_queue_opts o;
  atr_queue_opts_init(&o);
  assert_int_equal(o.maxsize, 0);
  assert_int_equal(o.max_bytes, 1 << 20);
  atr_handle h;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, NULL, &h),
               ATR_CREATED);
  atr_info info;
  tu_ok(atr_stat(f->store, "q", &info));
  assert_int_equal(info.maxsize, 0);
  assert_int_equal(info.max_bytes, 1 << 20);
  assert_int_equal(info.max_item, 1 << 18);
  assert_int_equal(info.size, 0);
  assert_int_equal(info.bytes, 0);
  /* An existing queue keeps its settings. */
  atr_handle h2;
  atr_queue_opts other;
  atr_queue_opts_init(&other);
  other.maxsize = 3;
  other.max_bytes = 4096;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &other, &h2), 0);
  tu_ok(atr_stat(f->store, "q", &info));
  assert_int_equal(info.maxsize, 0);
  assert_int_equal(info.max_bytes, 1 << 20);
  tu_assert_rc(
      atr_queue_open(f->store, "q", ATR_CREATE | ATR_EXCL, &other, &h2),
      ATR_EEXIST);
  assert_int_equal(h.kind, ATR_QUEUE);
}

static void test_fifo(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  uint64_t v0 = qversion(&h);
  put_str(&h, "a");
  put_str(&h, "bb");
  put_str(&h, "ccc");
  uint64_t v1 = qversion(&h);
  assert_true(v1 >= v0 + 3);
  uint64_t items, bytes;
  tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
  assert_int_equal(items, 3);
  assert_true(bytes >= 6);
  get_str(&h, "a");
  assert_true(qversion(&h) > v1);
  get_str(&h, "bb");
  get_str(&h, "ccc");
  tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
  assert_int_equal(items, 0);
  assert_int_equal(bytes, 0);
  char buf[4];
  size_t len;
  uint64_t v2 = qversion(&h);
  tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, &len, 0), ATR_EEMPTY);
  tu_assert_u64(qversion(&h), v2);
}

static void test_zero_length_item(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  tu_ok(atr_queue_put(&h, "", 0, 0));
  put_str(&h, "x");
  tu_ok(atr_queue_put(&h, "", 0, 0));
  assert_int_equal(qsize(&h), 3);
  char buf[8];
  size_t len = 99;
  tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
  assert_int_equal(len, 0);
  get_str(&h, "x");
  len = 99;
  tu_ok(atr_queue_get(&h, buf, 0, &len, 0));
  assert_int_equal(len, 0);
  assert_int_equal(qsize(&h), 0);
}

static void test_max_item(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 65536, 1000, &h);
  static char item[1001], buf[1001];
  memset(item, 'm', sizeof item);
  tu_ok(atr_queue_put(&h, item, 1000, 0));
  tu_assert_rc(atr_queue_put(&h, item, 1001, 0), ATR_ETOOBIG);
  tu_assert_rc(atr_queue_put(&h, item, 1001, 0.2), ATR_ETOOBIG);
  assert_int_equal(qsize(&h), 1);
  size_t len;
  tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
  assert_int_equal(len, 1000);
  assert_memory_equal(buf, item, 1000);
}

static void test_maxsize(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 3, 0, 0, &h);
  put_str(&h, "1");
  put_str(&h, "2");
  put_str(&h, "3");
  uint64_t v = qversion(&h);
  tu_assert_rc(atr_queue_put(&h, "4", 1, 0), ATR_EFULL);
  assert_int_equal(qsize(&h), 3);
  tu_assert_u64(qversion(&h), v);
  get_str(&h, "1");
  put_str(&h, "4");
  tu_assert_rc(atr_queue_put(&h, "5", 1, 0), ATR_EFULL);
  get_str(&h, "2");
  get_str(&h, "3");
  get_str(&h, "4");
}

static void test_byte_bound(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 4096, 1024, &h);
  static char item[1024];
  int n = 0, rv;
  while ((rv = atr_queue_put(&h, item, sizeof item, 0)) == 0)
    assert_true(++n < 100);
  tu_assert_rc(rv, ATR_EFULL);
  /* 4096 bytes hold three or four 1 KiB items, whatever the headers. */
  assert_true(n >= 3 && n <= 4);
  atr_info info;
  tu_ok(atr_stat(f->store, "q", &info));
  assert_true(info.bytes <= info.max_bytes);
  assert_int_equal(info.size, (uint64_t)n);
  /* A small item may still fit; once it is full, one get makes room. */
  while (atr_queue_put(&h, "s", 1, 0) == 0)
    ;
  char buf[1024];
  size_t len;
  tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
  assert_int_equal(len, 1024);
  tu_ok(atr_queue_put(&h, item, sizeof item, 0));
}

static void test_too_small_buffer(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  put_str(&h, "0123456789");
  put_str(&h, "next");
  char buf[16];
  size_t len = 0;
  uint64_t v = qversion(&h);
  tu_assert_rc(atr_queue_get(&h, buf, 5, &len, 0), ATR_ETOOBIG);
  assert_int_equal(len, 10);
  assert_int_equal(qsize(&h), 2);
  tu_assert_u64(qversion(&h), v);
  tu_assert_rc(atr_queue_get(&h, buf, 9, &len, 0), ATR_ETOOBIG);
  get_str(&h, "0123456789");
  get_str(&h, "next");
}

static void test_batch_put(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 5, 0, 100, &h);
  put_str(&h, "a");
  put_str(&h, "b");
  put_str(&h, "c");
  struct iovec three[3] = {{"d", 1}, {"e", 1}, {"f", 1}};
  uint64_t v = qversion(&h);
  tu_assert_rc(atr_queue_put_batch(&h, three, 3, 0), ATR_EFULL);
  tu_assert_rc(atr_queue_put_batch(&h, three, 3, 0.1), ATR_EFULL);
  assert_int_equal(qsize(&h), 3);
  tu_assert_u64(qversion(&h), v);
  tu_ok(atr_queue_put_batch(&h, three, 2, 0));
  assert_int_equal(qsize(&h), 5);
  tu_ok(atr_queue_put_batch(&h, three, 0, 0));
  assert_int_equal(qsize(&h), 5);
  static const char *const order[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++)
    get_str(&h, order[i]);

  /* One item too big: nothing of the batch goes in. */
  static char big[101];
  struct iovec mixed[3] = {{"x", 1}, {big, sizeof big}, {"y", 1}};
  assert_true(atr_queue_put_batch(&h, mixed, 3, 0) < 0);
  assert_int_equal(qsize(&h), 0);

  /* More than maxsize can ever hold: ATR_EFULL at once, not after the
   * timeout. */
  struct iovec six[6] = {{"1", 1}, {"2", 1}, {"3", 1},
                         {"4", 1}, {"5", 1}, {"6", 1}};
  double t0 = tu_now();
  tu_assert_rc(atr_queue_put_batch(&h, six, 6, 5.0), ATR_EFULL);
  assert_true(tu_now() - t0 < 1.0);
  assert_int_equal(qsize(&h), 0);
}

/* A batch larger than the ring's bytes: it can never fit. */
static void test_batch_bytes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 4096, 1024, &h);
  static char item[1000];
  struct iovec many[8];
  for (int i = 0; i < 8; i++)
    many[i] = (struct iovec){item, sizeof item};
  double t0 = tu_now();
  tu_assert_rc(atr_queue_put_batch(&h, many, 8, 5.0), ATR_EFULL);
  assert_true(tu_now() - t0 < 1.0);
  assert_int_equal(qsize(&h), 0);
  tu_ok(atr_queue_put_batch(&h, many, 3, 0));
  assert_int_equal(qsize(&h), 3);
  /* Room for one more but not for two: all or none. */
  tu_assert_rc(atr_queue_put_batch(&h, many, 2, 0), ATR_EFULL);
  assert_int_equal(qsize(&h), 3);
}

static void test_get_batch(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  char item[32];
  for (int i = 0; i < 10; i++) {
    int n = snprintf(item, sizeof item, "item-%d%.*s", i, i, "xxxxxxxxxx");
    tu_ok(atr_queue_put(&h, item, (size_t)n, 0));
  }
  atr_items got = {0};
  tu_ok(atr_queue_get_batch(&h, 4, 0, &got));
  assert_int_equal(got.count, 4);
  assert_int_equal(qsize(&h), 6);
  tu_ok(atr_queue_get_batch(&h, 100, 0, &got));
  assert_int_equal(got.count, 10); /* appended */
  for (size_t i = 0; i < got.count; i++) {
    int n =
        snprintf(item, sizeof item, "item-%zu%.*s", i, (int)i, "xxxxxxxxxx");
    tu_assert_u64(got.len[i], (uint64_t)n);
    assert_memory_equal(got.data + got.off[i], item, (size_t)n);
  }
  tu_assert_rc(atr_queue_get_batch(&h, 4, 0, &got), ATR_EEMPTY);
  assert_int_equal(got.count, 10);
  atr_items_free(&got);

  /* Many items, grown arrays. */
  atr_items big = {0};
  for (int i = 0; i < 1000; i++)
    tu_ok(atr_queue_put(&h, &i, sizeof i, 0));
  tu_ok(atr_queue_get_batch(&h, 2000, 0, &big));
  assert_int_equal(big.count, 1000);
  for (int i = 0; i < 1000; i++) {
    int v;
    assert_int_equal(big.len[i], sizeof v);
    memcpy(&v, big.data + big.off[i], sizeof v);
    assert_int_equal(v, i);
  }
  atr_items_free(&big);
  atr_items_free(NULL);
}

/* A batch get takes every item committed before it started, up to max:
 * not only those the getters' last look at the putters' side counted. */
static void test_get_batch_stale_hint(void **state) {
  tu_fixture *f = fixture(state);
  atr_items got = {0};
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  for (int i = 0; i < 10; i++)
    tu_ok(atr_queue_put(&h, &i, sizeof i, 0));
  tu_ok(atr_queue_get_batch(&h, 1, 0, &got));
  assert_int_equal(got.count, 1);
  for (int i = 10; i < 20; i++)
    tu_ok(atr_queue_put(&h, &i, sizeof i, 0));
  tu_ok(atr_queue_get_batch(&h, 100, 0, &got));
  assert_int_equal(got.count, 20); /* 1 + the 19 waiting */
  for (size_t i = 0; i < got.count; i++) {
    int v;
    memcpy(&v, got.data + got.off[i], sizeof v);
    tu_assert_i64(v, (int64_t)i);
  }
  tu_assert_u64(qsize(&h), 0);
  atr_items_free(&got);
}

static void test_clear(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 0, 0, 0, &h);
  for (int i = 0; i < 5; i++)
    put_str(&h, "zzz");
  uint64_t v = qversion(&h);
  tu_ok(atr_queue_clear(&h));
  assert_true(qversion(&h) > v);
  uint64_t items, bytes;
  tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
  assert_int_equal(items, 0);
  assert_int_equal(bytes, 0);
  char buf[8];
  size_t len;
  tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, &len, 0), ATR_EEMPTY);
  put_str(&h, "after");
  get_str(&h, "after");
  tu_ok(atr_queue_clear(&h)); /* an empty queue too */
}

/* Item k of a run: its length and bytes follow from k. */
static size_t pattern(uint64_t k, uint64_t max, unsigned char *buf) {
  uint64_t r = k * 0x9E3779B97F4A7C15ull + 1;
  size_t len = (size_t)tu_rand_below(&r, max + 1);
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)(k + i * 7);
  return len;
}

static void test_wrap_around(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  enum { MAX_ITEM = 700 };
  qnew(f->store, "q", 0, 4096, MAX_ITEM, &h);
  uint64_t r = tu_seed();
  uint64_t next_put = 0, next_get = 0, payload = 0;
  static unsigned char item[MAX_ITEM], want[MAX_ITEM], buf[MAX_ITEM];
  for (int step = 0; step < 40000; step++) {
    int put = tu_rand_below(&r, 100) < 55;
    if (put) {
      size_t len = pattern(next_put, MAX_ITEM, item);
      int rv = atr_queue_put(&h, item, len, 0);
      if (rv == 0) {
        next_put++;
        payload += len;
        continue;
      }
      tu_assert_rc(rv, ATR_EFULL);
      assert_true(next_put > next_get); /* full means not empty */
    }
    size_t len = 0;
    int rv = atr_queue_get(&h, buf, sizeof buf, &len, 0);
    if (next_get == next_put) {
      tu_assert_rc(rv, ATR_EEMPTY);
      continue;
    }
    tu_ok(rv);
    size_t wlen = pattern(next_get, MAX_ITEM, want);
    tu_assert_u64(len, wlen);
    assert_memory_equal(buf, want, len);
    next_get++;
    payload -= len;
    uint64_t items, bytes;
    tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
    tu_assert_u64(items, next_put - next_get);
    assert_true(bytes >= payload && bytes <= 4096);
  }
  assert_true(next_get > 5000);
}

static void test_timeouts(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 1, 0, 0, &h);
  char buf[8];
  size_t len;
  double t0 = tu_now();
  tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, &len, 0), ATR_EEMPTY);
  assert_true(tu_now() - t0 < 0.1);
  t0 = tu_now();
  tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, &len, 0.2), ATR_EEMPTY);
  double waited = tu_now() - t0;
  if (waited < 0.15 || waited > 1.0)
    print_error("get waited %.3f s\n", waited);
  assert_true(waited >= 0.15 && waited <= 1.0);

  atr_items items = {0};
  t0 = tu_now();
  tu_assert_rc(atr_queue_get_batch(&h, 5, 0.2, &items), ATR_EEMPTY);
  waited = tu_now() - t0;
  assert_true(waited >= 0.15 && waited <= 1.0);
  atr_items_free(&items);

  put_str(&h, "x");
  t0 = tu_now();
  tu_assert_rc(atr_queue_put(&h, "y", 1, 0.2), ATR_EFULL);
  waited = tu_now() - t0;
  if (waited < 0.15 || waited > 1.0)
    print_error("put waited %.3f s\n", waited);
  assert_true(waited >= 0.15 && waited <= 1.0);
  assert_int_equal(qsize(&h), 1);
}

/* max_bytes 0: the ring grows as needed, up to the store's space. */
static void test_growable(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_stats base, st;
  tu_ok(atr_store_stats_get(f->store, &base));
  atr_handle h;
  qnew_growable(f->store, "g", &h);
  atr_info info;
  tu_ok(atr_stat(f->store, "g", &info));
  assert_int_equal(info.max_bytes, 0);
  assert_int_equal(info.max_item, 1 << 20);

  /* Far past the first ring: everything goes in, in order. */
  enum { ITEM = 500 };
  static unsigned char item[ITEM], buf[ITEM];
  uint64_t n = 0;
  for (; n < 3000; n++) {
    memset(item, (int)(n & 0xff), ITEM);
    memcpy(item, &n, sizeof n);
    tu_ok(atr_queue_put(&h, item, ITEM, 0));
  }
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_true(st.used >= base.used + 3000 * ITEM);
  /* A batch grows it too. */
  struct iovec batch[50];
  for (int i = 0; i < 50; i++)
    batch[i] = (struct iovec){item, ITEM};
  memset(item, (int)(n & 0xff), ITEM);
  memcpy(item, &n, sizeof n);
  tu_ok(atr_queue_put_batch(&h, batch, 50, 0));
  n += 50;
  /* Until the store is full: ATR_ENOSPC at once, nothing changed. */
  int rv;
  for (;;) {
    memset(item, (int)(n & 0xff), ITEM);
    memcpy(item, &n, sizeof n);
    if ((rv = atr_queue_put(&h, item, ITEM, 0)) != 0)
      break;
    assert_true(++n < 100000);
  }
  tu_assert_rc(rv, ATR_ENOSPC);
  double t0 = tu_now();
  tu_assert_rc(atr_queue_put(&h, item, ITEM, 5.0), ATR_ENOSPC);
  assert_true(tu_now() - t0 < 1.0);
  tu_assert_u64(qsize(&h), n);
  /* Everything comes back whole and in order. */
  for (uint64_t k = 0; k < n; k++) {
    size_t len;
    tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
    assert_int_equal(len, ITEM);
    uint64_t first = k < 3000 ? k : k < 3050 ? 3000 : k;
    uint64_t got;
    memcpy(&got, buf, sizeof got);
    tu_assert_u64(got, first);
    assert_int_equal(buf[ITEM - 1], (unsigned char)(first & 0xff));
  }
  tu_ok(atr_delete(f->store, "g", ATR_QUEUE));
  tu_ok(atr_store_stats_get(f->store, &st));
  tu_assert_u64(st.used, base.used);
}

/* A growing ring grows into free space next to it (after it, then before
 * it), so one queue fills most of the store; gets keep it wrapping on
 * the way, so wrapped items move too, and all come back in order. With
 * no free space next to it, it moves to a new ring. */
struct fill_case {
  const char *name;
  int after;       /* free space after the ring too, not only before */
  int walled;      /* objects on both sides of the first ring        */
  size_t item;     /* bytes per item (56: items fill rings exactly)  */
  double min_fill; /* the queue's share of the free space, at least  */
};

static const struct fill_case fill_cases[] = {
    {"free space before the ring", 0, 0, 700, 0.75},
    {"free space after and before the ring", 1, 0, 700, 0.75},
    {"items that fill a ring exactly", 1, 0, 56, 0.75},
    {"no free space next to the first ring", 0, 1, 700, 0.75},
};

static void test_growable_fills_store(void **state) {
  tu_fixture *f = fixture(state);
  static unsigned char item[1000], buf[1000];
  for (size_t c = 0; c < sizeof fill_cases / sizeof fill_cases[0]; c++) {
    const struct fill_case *fc = &fill_cases[c];
    atr_store_stats base, st;
    atr_handle h, a;
    tu_case("%s", fc->name);
    tu_ok(atr_store_stats_get(f->store, &base));
    /* Blocks are carved from the top of the free space down. */
    if (fc->after || fc->walled)
      tu_assert_rc(
          atr_array_open(f->store, "above", 'q', 40000, ATR_CREATE, NULL, &a),
          ATR_CREATED);
    qnew_growable(f->store, "g", &h);
    if (fc->walled)
      tu_assert_rc(
          atr_array_open(f->store, "below", 'q', 100, ATR_CREATE, NULL, &a),
          ATR_CREATED);
    if (fc->after)
      tu_ok(atr_delete(f->store, "above", ATR_ARRAY));
    uint64_t put = 0, got = 0;
    int rv;
    for (;;) {
      memset(item, (int)(put & 0xff), fc->item);
      memcpy(item, &put, sizeof put);
      if ((rv = atr_queue_put(&h, item, fc->item, 0)) != 0)
        break;
      if (++put % 3 == 0) { /* two in, one out */
        size_t len;
        tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
        uint64_t k;
        memcpy(&k, buf, sizeof k);
        tu_assert_u64(k, got);
        assert_int_equal(buf[fc->item - 1], (unsigned char)(got & 0xff));
        got++;
      }
    }
    tu_assert_rc(rv, ATR_ENOSPC);
    tu_ok(atr_store_stats_get(f->store, &st));
    double fill =
        (double)(st.used - base.used) / (double)(st.capacity - base.used);
    print_message("%s: %.0f%% of the free space\n", fc->name, 100 * fill);
    assert_true(fill >= fc->min_fill);
    for (; got < put; got++) {
      size_t len;
      uint64_t k;
      tu_ok(atr_queue_get(&h, buf, sizeof buf, &len, 0));
      tu_assert_u64(len, fc->item);
      memcpy(&k, buf, sizeof k);
      tu_assert_u64(k, got);
      assert_int_equal(buf[fc->item - 1], (unsigned char)(got & 0xff));
    }
    tu_assert_rc(atr_queue_get(&h, buf, sizeof buf, NULL, 0), ATR_EEMPTY);
    tu_ok(atr_delete(f->store, "g", ATR_QUEUE));
    atr_delete(f->store, "above", ATR_ARRAY);
    atr_delete(f->store, "below", ATR_ARRAY);
    tu_ok(atr_store_stats_get(f->store, &st));
    tu_assert_u64(st.used, base.used);
  }
}

static void test_growable_big_items(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew_growable(f->store, "g", &h);
  static unsigned char big[(1 << 20) + 1], out[1 << 20];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (unsigned char)(i * 13);
  tu_assert_rc(atr_queue_put(&h, big, sizeof big, 0), ATR_ETOOBIG);
  tu_ok(atr_queue_put(&h, big, 1 << 20, 0));
  tu_ok(atr_queue_put(&h, "small", 5, 0));
  size_t len;
  tu_ok(atr_queue_get(&h, out, sizeof out, &len, 0));
  assert_int_equal(len, 1 << 20);
  assert_memory_equal(out, big, len);
  get_str(&h, "small");
}

/* ---------------------------------------------- delete wakes a waiter */

struct waiter_arg {
  const char *path;
  int ready[2];
  int put; /* 0: wait in get on an empty queue; 1: in put on a full one */
};

static int waiter_child(void *arg) {
  struct waiter_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  char buf[16];
  size_t len;
  int rv = a->put ? atr_queue_put(&h, "z", 1, 30)
                  : atr_queue_get(&h, buf, sizeof buf, &len, 30);
  if (rv != ATR_ENOENT)
    fprintf(stderr, "waiter got %s\n", atr_errname(rv));
  TU_CHILD_CHECK(rv == ATR_ENOENT);
  atr_store_close(s);
  return 0;
}

/* recreate: the name comes back at once as a new queue holding one item;
 * the old waiter must still get ATR_ENOENT and leave the new queue
 * alone (neither take its item nor add one). */
static void delete_wakes(tu_fixture *f, int put, int recreate) {
  atr_handle h;
  qnew(f->store, "q", 1, 0, 0, &h);
  if (put)
    put_str(&h, "full");
  struct waiter_arg a = {.path = f->path, .put = put};
  tu_pipe(a.ready);
  pid_t pid = tu_spawn_ready(waiter_child, &a, a.ready[0]);
  assert_int_equal(tu_wait_blocked(pid, 10), 0);
  double t0 = tu_now();
  tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
  if (recreate) {
    qnew(f->store, "q", 1, 0, 0, &h);
    put_str(&h, "new");
  }
  int status = tu_wait(pid, 10);
  double took = tu_now() - t0;
  tu_close_pipe(a.ready);
  assert_int_equal(status, 0);
  if (took > 1.0)
    print_error("waiter took %.3f s to notice the delete\n", took);
  assert_true(took < 1.0);
  if (recreate) {
    assert_int_equal(qsize(&h), 1);
    get_str(&h, "new");
  }
}

static void test_delete_wakes_get(void **state) {
  delete_wakes(fixture(state), 0, 0);
}

static void test_delete_wakes_put(void **state) {
  delete_wakes(fixture(state), 1, 0);
}

static void test_delete_recreate_wakes_get(void **state) {
  delete_wakes(fixture(state), 0, 1);
}

static void test_delete_recreate_wakes_put(void **state) {
  delete_wakes(fixture(state), 1, 1);
}

/* ---------------------------------------------- a signal in a wait */

struct sig_arg {
  const char *path;
  int put;
  int ready[2];
  int out[2];
};

/* Waits in a get on an empty queue (or a put on a full one) with a
 * SIGINT handler installed without SA_RESTART; reports the result. */
static int sig_waiter(void *arg) {
  struct sig_arg *a = arg;
  tu_catch_sigint();
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  char buf[8];
  size_t len;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  tu_child_ready(a->ready[1]);
  int rc = a->put ? atr_queue_put(&h, "x", 1, -1)
                  : atr_queue_get(&h, buf, sizeof buf, &len, -1);
  TU_CHILD_CHECK(tu_write_full(a->out[1], &rc, sizeof rc) == 0);
  return 0;
}

static void test_signal_interrupts_wait(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  qnew(f->store, "q", 1, 0, 0, &h);
  for (int put = 0; put < 2; put++) {
    struct sig_arg a = {.path = f->path, .put = put};
    tu_case("%s", put ? "put on a full queue" : "get on an empty queue");
    if (put)
      put_str(&h, "full");
    tu_pipe(a.ready);
    tu_pipe(a.out);
    pid_t pid = tu_spawn_ready(sig_waiter, &a, a.ready[0]);
    assert_int_equal(tu_wait_blocked(pid, 10), 0);
    double t0 = tu_now();
    kill(pid, SIGINT);
    int rc;
    assert_int_equal(tu_read_full(a.out[0], &rc, sizeof rc, 10), 0);
    assert_true(tu_now() - t0 < 0.1);
    tu_assert_rc(rc, ATR_EINTR);
    assert_int_equal(tu_wait(pid, 10), 0);
    tu_close_pipe(a.ready);
    tu_close_pipe(a.out);
    assert_int_equal(qsize(&h), (uint64_t)put); /* nothing put or taken */
  }
}

/* ------------------------------------------- describing a busy queue */

struct lock_case {
  const char *name;
  int put_side, get_side; /* the holder takes the putters', getters' lock */
};

static const struct lock_case lock_cases[] = {
    {"a producer holds the putters' lock", 1, 0},
    {"a consumer holds the getters' lock", 0, 1},
    {"one process holds both", 1, 1},
};

struct holder_arg {
  const char *path;
  const struct lock_case *c;
  int ready[2];
};

/* Takes the queue's locks as a putter or getter does and keeps them
 * until it is killed. */
static int holder_child(void *arg) {
  struct holder_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  uint32_t slot;
  uint64_t id;
  TU_CHILD_CHECK(atr__lookup(s, "q", 1, &slot, &id) == 0);
  struct atr__obj *o = atr__slot(s, slot);
  if (a->c->put_side)
    TU_CHILD_CHECK(atr__mutex_lock(&o->u.q.put_lock, NULL, NULL) == 0);
  if (a->c->get_side)
    TU_CHILD_CHECK(atr__record_lock(s, o) == 0);
  tu_child_ready(a->ready[1]);
  for (;;)
    pause();
}

struct describe_arg {
  const char *path;
  uint64_t items, bytes, version;
};

static int list_count(const atr_info *info, void *arg) {
  (void)info;
  ++*(int *)arg;
  return 0;
}

/* Describes "q" every way there is; each must answer at once. */
static int describer_child(void *arg) {
  struct describe_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_info by_name, by_handle;
  uint64_t items, bytes, version;
  int listed = 0;
  TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
  TU_CHILD_CHECK(atr_queue_size(&h, &items, &bytes, &version) == 0);
  TU_CHILD_CHECK(items == a->items && bytes == a->bytes &&
                 version == a->version);
  TU_CHILD_CHECK(atr_handle_stat(&h, &by_handle) == 0);
  TU_CHILD_CHECK(atr_stat(s, "q", &by_name) == 0);
  TU_CHILD_CHECK(atr_list(s, list_count, &listed) == 0 && listed == 1);
  TU_CHILD_CHECK(by_handle.size == a->items && by_name.size == a->items);
  TU_CHILD_CHECK(by_handle.bytes == a->bytes && by_name.bytes == a->bytes);
  TU_CHILD_CHECK(by_handle.version == a->version &&
                 by_name.version == a->version);
  atr_store_close(s);
  return 0;
}

static void test_describe_while_locked(void **state) {
  tu_fixture *f = fixture(state);
  for (size_t k = 0; k < sizeof lock_cases / sizeof lock_cases[0]; k++) {
    const struct lock_case *c = &lock_cases[k];
    struct describe_arg d = {.path = f->path};
    atr_handle h;
    tu_case("%s", c->name);
    qnew(f->store, "q", 0, 4096, 0, &h);
    put_str(&h, "first");
    put_str(&h, "second");
    get_str(&h, "first");
    tu_ok(atr_queue_size(&h, &d.items, &d.bytes, &d.version));
    tu_assert_u64(d.items, 1);
    struct holder_arg a = {.path = f->path, .c = c};
    tu_pipe(a.ready);
    pid_t pid = tu_spawn_ready(holder_child, &a, a.ready[0]);
    /* A describe that waited for the holder would time out here. */
    tu_assert_i64(tu_run(describer_child, &d, 10), 0);
    /* The holder dies with the locks; the next putter and getter
     * repair what it held and go on. */
    tu_kill(pid);
    tu_close_pipe(a.ready);
    put_str(&h, "third");
    get_str(&h, "second");
    get_str(&h, "third");
    tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_fifo, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_zero_length_item, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_max_item, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_maxsize, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_byte_bound, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_too_small_buffer, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_batch_put, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_batch_bytes, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_get_batch, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_get_batch_stale_hint, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_clear, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_wrap_around, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeouts, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_growable, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_growable_fills_store, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_growable_big_items, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes_get, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes_put, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_recreate_wakes_get, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_recreate_wakes_put, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_signal_interrupts_wait, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_describe_while_locked, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
