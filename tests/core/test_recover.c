/*
 * test_recover.c - a process killed while it holds the store lock (in the
 * middle of creating or deleting objects, or moving a queue to a larger
 * ring) leaves a store that the next locker repairs: the object count
 * matches the objects listed, no space is lost, no item is torn, and
 * readers of the change feed are told to re-read.
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define NAMES 40

static void name_of(char *buf, size_t len, unsigned i) {
  snprintf(buf, len, "o%u", i % NAMES);
}

/* Creates and deletes objects of every kind, for ever. */
static int churn(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_queue_opts qo;
  atr_handle h;
  char name[16];
  atr_queue_opts_init(&qo);
  qo.max_bytes = 4096;
  for (unsigned i = 0;; i++) {
    name_of(name, sizeof name, i);
    switch (i % 3) {
    case 0:
      atr_array_open(s, name, 'q', 100 + i % 50, ATR_CREATE, NULL, &h);
      break;
    case 1:
      atr_queue_open(s, name, ATR_CREATE, &qo, &h);
      break;
    default:
      atr_value_open(s, name, 'i', ATR_CREATE, NULL, &h);
    }
    name_of(name, sizeof name, i * 7);
    atr_delete(s, name, ATR_ANY);
  }
  return 0;
}

static int count(const atr_info *info, void *arg) {
  (void)info;
  (*(uint64_t *)arg)++;
  return 0;
}

/* How many 1000-element arrays fit, removing them afterwards. */
static int fill_count(atr_store *s) {
  atr_handle h;
  char name[16];
  int n = 0;
  while (snprintf(name, sizeof name, "f%d", n),
         atr_array_open(s, name, 'q', 1000, ATR_CREATE, NULL, &h) ==
             ATR_CREATED)
    n++;
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%d", i);
    tu_ok(atr_delete(s, name, ATR_ARRAY));
  }
  return n;
}

static void test_kill_during_create_delete(void **state) {
  tu_fixture *f = *state;
  atr_store_stats base, st;
  uint64_t seed = tu_seed(), listed = 0;
  atr_cursor c;
  atr_event ev;
  char name[16];
  int gaps = 0, rc;

  tu_ok(atr_store_stats_get(f->store, &base));
  int capacity = fill_count(f->store);
  assert_true(capacity > 10);
  tu_ok(atr_feed_open(f->store, &c));
  for (int trial = 0; trial < 200; trial++) {
    pid_t pid = tu_spawn(churn, (void *)f->path);
    tu_sleep((double)tu_rand_below(&seed, 3000) * 1e-6);
    tu_kill(pid);
    /* Any store-lock call repairs what the dead process left. */
    tu_ok(atr_store_stats_get(f->store, &st));
  }
  listed = 0;
  tu_ok(atr_list(f->store, count, &listed));
  tu_assert_u64(st.objects, listed);
  for (unsigned i = 0; i < NAMES; i++) {
    name_of(name, sizeof name, i);
    rc = atr_delete(f->store, name, ATR_ANY);
    assert_true(rc == 0 || rc == ATR_ENOENT);
  }
  tu_ok(atr_store_stats_get(f->store, &st));
  tu_assert_u64(st.objects, 0);
  tu_assert_u64(st.used, base.used);
  tu_assert_i64(fill_count(f->store), capacity);
  /* Readers saw the events, or were told to re-read (lapped or repaired). */
  while ((rc = atr_feed_next(&c, &ev, 0)) != ATR_ETIMEDOUT) {
    if (rc == ATR_EGAP) {
      gaps++;
      tu_ok(atr_feed_resync(&c));
      continue;
    }
    tu_ok(rc);
  }
  assert_true(gaps > 0);
}

/* A process killed while it holds an array's lock, in a loop of slice
 * writes: the next lock-free reader finds the array whole. */
static int slice_writer(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_scalar vals[64];
  atr_handle h;
  TU_CHILD_CHECK(atr_array_open(s, "arr", 'q', 64, 0, NULL, &h) == 0);
  for (int64_t k = 1;; k++) {
    for (int i = 0; i < 64; i++)
      vals[i].i = k;
    atr_array_set(&h, 0, vals, 64, 0, NULL);
  }
  return 0;
}

static void test_dead_writer_repaired_by_reader(void **state) {
  tu_fixture *f = *state;
  atr_scalar out[64];
  atr_handle h;
  uint64_t n, seed = tu_seed();
  tu_assert_rc(atr_array_open(f->store, "arr", 'q', 64, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  for (int trial = 0; trial < 200; trial++) {
    pid_t pid = tu_spawn(slice_writer, (void *)f->path);
    tu_sleep((double)tu_rand_below(&seed, 2000) * 1e-6);
    tu_kill(pid);
    /* A lock-free reader meets either a whole write or a dead writer's
     * lock, which it takes and repairs. */
    tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 64, &n, NULL));
    tu_assert_u64(n, 64);
    for (int i = 1; i < 64; i++)
      tu_assert_i64(out[i].i, out[0].i);
  }
}

/* Puts numbered items of varying size into a growing queue, taking one
 * back now and then, so that the ring keeps moving to larger ones. */
static int grower(void *arg) {
  atr_store *s = tu_child_open(arg);
  uint8_t item[3000];
  atr_handle h;
  size_t len;
  TU_CHILD_CHECK(atr_queue_open(s, "grow", 0, NULL, &h) == 0);
  for (uint32_t k = 0;; k++) {
    size_t n = 8 + k % 2900;
    memcpy(item, &k, 4);
    memset(item + 4, (int)(k & 0xff), n - 4);
    if (atr_queue_put(&h, item, n, 0) == ATR_ENOSPC) {
      atr_queue_clear(&h);
      continue;
    }
    if (k % 4 == 0)
      atr_queue_get(&h, item, sizeof item, &len, 0);
  }
  return 0;
}

static void test_kill_while_growing(void **state) {
  tu_fixture *f = *state;
  atr_queue_opts qo = {0}; /* no byte bound: the ring grows */
  atr_store_stats base, st;
  uint64_t seed = tu_seed();
  uint8_t item[3000];
  atr_handle h;
  size_t len;

  tu_ok(atr_store_stats_get(f->store, &base));
  tu_assert_rc(atr_queue_open(f->store, "grow", ATR_CREATE, &qo, &h),
               ATR_CREATED);
  for (int trial = 0; trial < 200; trial++) {
    pid_t pid = tu_spawn(grower, (void *)f->path);
    tu_sleep((double)tu_rand_below(&seed, 5000) * 1e-6);
    tu_kill(pid);
    tu_ok(atr_store_stats_get(f->store, &st)); /* repairs the store */
    /* Every item is whole: its bytes match its number. */
    int rc;
    while ((rc = atr_queue_get(&h, item, sizeof item, &len, 0)) == 0) {
      uint32_t k;
      assert_true(len >= 8);
      memcpy(&k, item, 4);
      tu_assert_u64(len, 8 + k % 2900);
      for (size_t i = 4; i < len; i++)
        assert_int_equal(item[i], k & 0xff);
    }
    tu_assert_rc(rc, ATR_EEMPTY);
  }
  tu_ok(atr_delete(f->store, "grow", ATR_QUEUE));
  tu_ok(atr_store_stats_get(f->store, &st));
  tu_assert_u64(st.used, base.used);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kill_during_create_delete, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_dead_writer_repaired_by_reader,
                                      tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_while_growing, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests_name("recover", tests, NULL, NULL);
}
