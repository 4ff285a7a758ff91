/*
 * test_store.c - the store file: create, open, close, refusal of foreign
 * and damaged files, a full tmpfs, racing creators, stats.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static int value_get_i(atr_store *store, const char *name, int64_t *v,
                       uint64_t *version) {
  atr_handle h;
  atr_scalar s;
  int rv = atr_value_open(store, name, 0, 0, NULL, &h);
  if (rv < 0)
    return rv;
  rv = atr_value_get(&h, &s, version);
  *v = s.i;
  return rv;
}

static void value_new(atr_store *store, const char *name, int64_t init) {
  atr_handle h;
  atr_scalar s = {.i = init};
  tu_assert_rc(atr_value_open(store, name, 'q', ATR_CREATE | ATR_EXCL, &s, &h),
               ATR_CREATED);
}

static void test_opts_defaults(void **state) {
  (void)state;
  atr_store_opts o;
  memset(&o, 0xA5, sizeof o);
  atr_store_opts_init(&o);
  assert_int_equal(o.size, ATR_DEFAULT_SIZE);
  assert_int_equal(o.max_objects, 0);  /* from the size */
  assert_int_equal(o.feed_entries, 0); /* from the size */
  assert_int_equal(o.mode, 0600);
  assert_int_equal(o.open_only, 0);
  assert_true(o.init_timeout == 5.0);
}

static void test_create_open_close(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = tu_store_open(f, f->path, &o);
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal((uint64_t)st.st_size, o.size);
  tu_store_close(f, s);
  atr_store_close(NULL); /* destructors accept NULL */
  o.open_only = 1;
  s = tu_store_open(f, f->path, &o);
  atr_store_stats stats;
  tu_ok(atr_store_stats_get(s, &stats));
  assert_int_equal(stats.capacity, o.size);
  assert_int_equal(stats.objects, 0);
}

/* NULL options: the defaults (16 MiB). */
static void test_null_opts(void **state) {
  tu_fixture *f = fixture(state);
  atr_store *s = tu_store_open(f, f->path, NULL);
  atr_store_stats stats;
  tu_ok(atr_store_stats_get(s, &stats));
  assert_int_equal(stats.capacity, ATR_DEFAULT_SIZE);
  assert_int_equal(stats.max_objects, 4096);
  /* A smaller store gets fewer objects by default: one per 4 KiB. */
  atr_store_opts o;
  atr_store_opts_init(&o);
  o.size = (size_t)2 << 20;
  s = tu_store_open(f, tu_path_new(f), &o);
  tu_ok(atr_store_stats_get(s, &stats));
  assert_int_equal(stats.max_objects, 512);
}

static void test_reopen_keeps_objects(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = tu_store_open(f, f->path, &o);
  value_new(s, "kept", 42);
  atr_handle h;
  atr_scalar v = {.i = 5};
  uint64_t version;
  tu_ok(atr_value_open(s, "kept", 'q', 0, NULL, &h));
  tu_ok(atr_value_add(&h, v, NULL, &version));
  atr_handle q;
  tu_assert_rc(atr_queue_open(s, "jobs", ATR_CREATE, NULL, &q), ATR_CREATED);
  tu_ok(atr_queue_put(&q, "hello", 5, 0));
  tu_store_close(f, s);

  /* Other options at reopen do not matter: the file keeps its own. */
  o.size = 1 << 20;
  s = tu_store_open(f, f->path, &o);
  int64_t got;
  uint64_t got_version;
  tu_ok(value_get_i(s, "kept", &got, &got_version));
  assert_int_equal(got, 47);
  assert_int_equal(got_version, version);
  tu_ok(atr_queue_open(s, "jobs", 0, NULL, &q));
  char buf[16];
  size_t len;
  tu_ok(atr_queue_get(&q, buf, sizeof buf, &len, 0));
  assert_int_equal(len, 5);
  assert_memory_equal(buf, "hello", 5);
  atr_store_stats stats;
  tu_ok(atr_store_stats_get(s, &stats));
  assert_int_equal(stats.capacity, (uint64_t)4 << 20);
  assert_int_equal(stats.objects, 2);
}

static void test_mode_0600(void **state) {
  tu_fixture *f = fixture(state);
  mode_t old = umask(0);
  atr_store *s = NULL;
  int rv = atr_store_open(f->path, NULL, &s);
  umask(old);
  tu_ok(rv);
  tu_store_keep(f, s);
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

static void fill_random(unsigned char *buf, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)tu_rand(&seed);
}

/* Opening path must fail with expected and leave its bytes as they were. */
static void assert_refused(const char *path, int expected, int open_only) {
  size_t len_before, len_after;
  unsigned char *before = tu_read_file(path, &len_before);
  atr_store_opts o;
  tu_small_opts(&o);
  o.open_only = open_only;
  o.init_timeout = 0.5;
  atr_store *s = NULL;
  int rv = atr_store_open(path, &o, &s);
  if (rv == 0)
    atr_store_close(s);
  tu_assert_rc(rv, expected);
  unsigned char *after = tu_read_file(path, &len_after);
  assert_int_equal(len_after, len_before);
  assert_memory_equal(after, before, len_before);
  free(before);
  free(after);
}

static void test_foreign_random(void **state) {
  tu_fixture *f = fixture(state);
  size_t len = (size_t)1 << 20;
  unsigned char *buf = malloc(len);
  assert_non_null(buf);
  fill_random(buf, len, 12345);
  tu_write_file(f->path, buf, len);
  free(buf);
  assert_refused(f->path, ATR_ENOTSTORE, 0);
  assert_refused(f->path, ATR_ENOTSTORE, 1);
}

static void test_foreign_text(void **state) {
  tu_fixture *f = fixture(state);
  char text[8192];
  size_t len = 0;
  for (int i = 0; len + 64 < sizeof text; i++)
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "line %d: not a store, just some text\n", i);
  tu_write_file(f->path, text, len);
  assert_refused(f->path, ATR_ENOTSTORE, 0);
  assert_refused(f->path, ATR_ENOTSTORE, 1);
}

static void test_layout_version(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  tu_store_close(f, tu_store_open(f, f->path, &o));
  size_t len;
  unsigned char *buf = tu_read_file(f->path, &len);
  assert_true(len > 12);
  uint32_t layout = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 |
                    (uint32_t)buf[10] << 16 | (uint32_t)buf[11] << 24;
  /* Sanity: this is the layout field (a small number, not 999). */
  assert_true(layout >= 1 && layout < 999);
  buf[8] = 999 & 0xff;
  buf[9] = 999 >> 8;
  buf[10] = buf[11] = 0;
  tu_write_file(f->path, buf, len);
  free(buf);
  assert_refused(f->path, ATR_ELAYOUT, 0);
  assert_refused(f->path, ATR_ELAYOUT, 1);
}

struct truncated_arg {
  const char *path;
};

/* In a child, so a SIGBUS shows as a crash rather than killing the run. */
static int open_truncated_child(void *arg) {
  struct truncated_arg *a = arg;
  atr_store_opts o;
  atr_store_opts_init(&o);
  o.init_timeout = 0.5;
  atr_store *s = NULL;
  int rv = atr_store_open(a->path, &o, &s);
  if (rv == 0) {
    fprintf(stderr, "truncated store opened\n");
    atr_store_close(s);
    return 2;
  }
  return 0;
}

static void test_truncated(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = tu_store_open(f, f->path, &o);
  value_new(s, "x", 1);
  tu_store_close(f, s);
  size_t len;
  unsigned char *buf = tu_read_file(f->path, &len);
  static const size_t cuts[] = {12, 100, 4096, 65536, (size_t)2 << 20};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    tu_write_file(f->path, buf, cuts[i]);
    struct truncated_arg a = {f->path};
    int status = tu_run(open_truncated_child, &a, 10);
    if (status != 0)
      print_error("store cut to %zu bytes: child status %d\n", cuts[i], status);
    assert_int_equal(status, 0);
    /* The file is left as it is. */
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal((size_t)st.st_size, cuts[i]);
  }
  free(buf);
}

static void test_full_tmpfs(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.size = (size_t)1 << 40;
  atr_store *s = NULL;
  int rv = atr_store_open(f->path, &o, &s);
  if (rv == 0)
    atr_store_close(s);
  tu_assert_rc(rv, ATR_ENOSPC);
  assert_int_equal(access(f->path, F_OK), -1);
  assert_int_equal(errno, ENOENT);
}

static void test_open_only_missing(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.open_only = 1;
  atr_store *s = NULL;
  tu_assert_rc(atr_store_open(f->path, &o, &s), ATR_ENOENT);
  assert_int_equal(access(f->path, F_OK), -1);
}

static void test_two_stores(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *a = tu_store_open(f, f->path, &o);
  o.size = (size_t)2 << 20;
  atr_store *b = tu_store_open(f, tu_path_new(f), &o);
  value_new(a, "x", 1);
  value_new(b, "x", 100);
  value_new(b, "only_b", 7);
  atr_handle ha, hb;
  atr_scalar one = {.i = 1}, v;
  tu_ok(atr_value_open(a, "x", 'q', 0, NULL, &ha));
  tu_ok(atr_value_open(b, "x", 'q', 0, NULL, &hb));
  tu_ok(atr_value_add(&ha, one, NULL, NULL));
  tu_ok(atr_value_get(&ha, &v, NULL));
  assert_int_equal(v.i, 2);
  tu_ok(atr_value_get(&hb, &v, NULL));
  assert_int_equal(v.i, 100);
  atr_info info;
  tu_assert_rc(atr_stat(a, "only_b", &info), ATR_ENOENT);
  tu_ok(atr_delete(a, "x", ATR_ANY));
  tu_ok(atr_value_get(&hb, &v, NULL));
  assert_int_equal(v.i, 100);
  atr_store_stats sa, sb;
  tu_ok(atr_store_stats_get(a, &sa));
  tu_ok(atr_store_stats_get(b, &sb));
  assert_int_equal(sa.objects, 0);
  assert_int_equal(sb.objects, 2);
  assert_int_equal(sa.capacity, (uint64_t)4 << 20);
  assert_int_equal(sb.capacity, (uint64_t)2 << 20);
}

/* One path opened twice in one process: two mappings of one store. */
static void test_same_path_twice(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *a = tu_store_open(f, f->path, &o);
  atr_store *b = tu_store_open(f, f->path, &o);
  value_new(a, "shared", 3);
  int64_t v;
  tu_ok(value_get_i(b, "shared", &v, NULL));
  assert_int_equal(v, 3);
  tu_store_close(f, a);
  tu_ok(value_get_i(b, "shared", &v, NULL));
  assert_int_equal(v, 3);
}

/* ------------------------------------------------------ racing creators */

#define RACERS 8

struct race_arg {
  const char *path;
  int go[2];   /* the parent writes one byte per child: start    */
  int done[2]; /* each child writes one byte: created its value  */
  int check[2];
  int index;
};

static int race_child(void *arg) {
  struct race_arg *a = arg;
  char c;
  TU_CHILD_CHECK(tu_read_full(a->go[0], &c, 1, 10) == 0);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = NULL;
  int rv = atr_store_open(a->path, &o, &s);
  if (rv != 0)
    fprintf(stderr, "racer %d: %s\n", a->index, atr_errname(rv));
  TU_CHILD_CHECK(rv == 0);
  char name[16];
  snprintf(name, sizeof name, "p%d", a->index);
  atr_handle h;
  atr_scalar init = {.i = a->index};
  TU_CHILD_CHECK(atr_value_open(s, name, 'q', ATR_CREATE | ATR_EXCL, &init,
                                &h) == ATR_CREATED);
  TU_CHILD_CHECK(tu_write_full(a->done[1], "d", 1) == 0);
  TU_CHILD_CHECK(tu_read_full(a->check[0], &c, 1, 10) == 0);
  for (int i = 0; i < RACERS; i++) {
    snprintf(name, sizeof name, "p%d", i);
    int64_t v;
    TU_CHILD_CHECK(value_get_i(s, name, &v, NULL) == 0);
    TU_CHILD_CHECK(v == i);
  }
  atr_store_stats stats;
  TU_CHILD_CHECK(atr_store_stats_get(s, &stats) == 0);
  TU_CHILD_CHECK(stats.objects == RACERS);
  atr_store_close(s);
  return 0;
}

static void test_racing_creators(void **state) {
  tu_fixture *f = fixture(state);
  for (int round = 0; round < 12; round++) {
    struct race_arg a[RACERS];
    int go[2], done[2], check[2];
    const char *path = round == 0 ? f->path : tu_path_new(f);
    tu_pipe(go);
    tu_pipe(done);
    tu_pipe(check);
    pid_t pids[RACERS];
    for (int i = 0; i < RACERS; i++) {
      a[i] = (struct race_arg){.path = path, .index = i};
      memcpy(a[i].go, go, sizeof go);
      memcpy(a[i].done, done, sizeof done);
      memcpy(a[i].check, check, sizeof check);
      pids[i] = tu_spawn(race_child, &a[i]);
    }
    char bytes[RACERS];
    memset(bytes, 'g', sizeof bytes);
    assert_int_equal(tu_write_full(go[1], bytes, RACERS), 0);
    int created = tu_read_full(done[0], bytes, RACERS, 20);
    assert_int_equal(tu_write_full(check[1], bytes, RACERS), 0);
    int failed = 0;
    for (int i = 0; i < RACERS; i++) {
      int status = tu_wait(pids[i], 20);
      if (status != 0) {
        print_error("round %d racer %d: status %d\n", round, i, status);
        failed++;
      }
    }
    tu_close_pipe(go);
    tu_close_pipe(done);
    tu_close_pipe(check);
    assert_int_equal(created, 0);
    assert_int_equal(failed, 0);
    /* And the parent, opening it afterwards, sees the same. */
    atr_store_opts o;
    tu_small_opts(&o);
    o.open_only = 1;
    atr_store *s = tu_store_open(f, path, &o);
    atr_store_stats stats;
    tu_ok(atr_store_stats_get(s, &stats));
    assert_int_equal(stats.objects, RACERS);
    tu_store_close(f, s);
    unlink(path);
  }
}

/* --------------------------------------------- bad options, dead creator */

static void test_bad_opts(void **state) {
  tu_fixture *f = fixture(state);
  static const struct {
    const char *label;
    size_t size;
    uint32_t max_objects, feed_entries;
  } cases[] = {
      {"size 0", 0, 16, 64},
      {"size 1000", 1000, 16, 64},
      {"tables larger than the file", (size_t)1 << 20, 1u << 20, 64},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_case("%s", cases[i].label);
    atr_store_opts o;
    atr_store_opts_init(&o);
    o.size = cases[i].size;
    o.max_objects = cases[i].max_objects;
    o.feed_entries = cases[i].feed_entries;
    atr_store *s = NULL;
    int rv = atr_store_open(f->path, &o, &s);
    if (rv == 0)
      atr_store_close(s);
    tu_assert_rc(rv, ATR_EINVAL);
    /* A refused create leaves no file. */
    assert_int_equal(access(f->path, F_OK), -1);
  }
}

struct creator_arg {
  const char *path;
  size_t size;
};

static int slow_creator(void *arg) {
  struct creator_arg *a = arg;
  atr_store_opts o;
  tu_small_opts(&o);
  o.size = a->size;
  atr_store *s = NULL;
  atr_store_open(a->path, &o, &s);
  return 0;
}

/* A creator killed while it initialises the file (reserving 512 MiB takes
 * a while) must not leave a file that every later open refuses with
 * ATR_EBUSY for ever: no process is initialising it any more. */
static void test_creator_killed_while_initialising(void **state) {
  tu_fixture *f = fixture(state);
  struct creator_arg a = {.path = f->path, .size = (size_t)512 << 20};
  pid_t pid = tu_spawn(slow_creator, &a);
  double deadline = tu_now() + 10;
  while (access(f->path, F_OK) != 0 && tu_now() < deadline)
    sched_yield();
  assert_int_equal(access(f->path, F_OK), 0);
  assert_int_equal(tu_kill(pid), 128 + SIGKILL);

  atr_store_opts o;
  tu_small_opts(&o);
  o.init_timeout = 1.0;
  atr_store *s = NULL;
  int rv = atr_store_open(f->path, &o, &s);
  if (rv == 0)
    tu_store_keep(f, s);
  tu_ok(rv);
  atr_handle h;
  tu_assert_rc(atr_value_open(s, "after", 'q', ATR_CREATE, NULL, &h),
               ATR_CREATED);
}

/* ---------------------------------------------------------------- stats */

static void test_stats(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_stats base, st;
  tu_ok(atr_store_stats_get(f->store, &base));
  assert_int_equal(base.capacity, (uint64_t)4 << 20);
  assert_int_equal(base.objects, 0);
  assert_int_equal(base.max_objects, 256);
  assert_true(base.used > 0 && base.used < base.capacity);

  atr_handle h;
  tu_assert_rc(
      atr_array_open(f->store, "arr", 'd', 10000, ATR_CREATE, NULL, &h),
      ATR_CREATED);
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 1);
  assert_true(st.used >= base.used + 10000 * 8);
  uint64_t used_one = st.used;

  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 100000;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &qo, &h), ATR_CREATED);
  value_new(f->store, "v", 0);
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 3);
  assert_true(st.used >= used_one + 100000);
  assert_int_equal(st.capacity, base.capacity);

  tu_ok(atr_delete(f->store, "arr", ATR_ANY));
  tu_ok(atr_delete(f->store, "q", ATR_ANY));
  tu_ok(atr_delete(f->store, "v", ATR_ANY));
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 0);
  assert_int_equal(st.used, base.used);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opts_defaults),
      cmocka_unit_test_setup_teardown(test_create_open_close, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_null_opts, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_reopen_keeps_objects, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_mode_0600, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_foreign_random, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_foreign_text, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_layout_version, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_truncated, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_full_tmpfs, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_open_only_missing, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_two_stores, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_same_path_twice, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_racing_creators, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_bad_opts, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_creator_killed_while_initialising,
                                      tu_setup_path, tu_teardown),
      cmocka_unit_test_setup_teardown(test_stats, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
