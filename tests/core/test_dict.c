/*
 * test_dict.c - dicts: keys, per-key versions and compare-and-set,
 * multi-key updates all or none (also for concurrent readers), pages in
 * key order, the ring of key changes, growth and shrinking, reads that
 * a writer stopped holding the record lock does not stop, and a writer
 * dying at each store of a commit and at random (kill -9).
 */
#include "testutil.h"

#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KILLED = 128 + SIGKILL };

static atr_dict_op op_set(const char *key, const char *value) {
  return (atr_dict_op){key, strlen(key), value, strlen(value), 0, 0};
}

static atr_dict_op op_del(const char *key) {
  return (atr_dict_op){key, strlen(key), NULL, 0, 1, 0};
}

/* The value of key as a string ("" if absent: values here are never
 * empty), and its version. */
static const char *get_str(const atr_handle *h, const char *key,
                           uint64_t *version) {
  static char buf[4096];
  size_t len = 0;
  int rc =
      atr_dict_get(h, key, strlen(key), buf, sizeof buf - 1, &len, version);
  if (rc == ATR_ENOKEY)
    return "";
  tu_ok(rc);
  buf[len] = 0;
  return buf;
}

static const char *item_key(const atr_dict_items *it, size_t i, char *buf) {
  memcpy(buf, it->data + it->item[i].key_off, it->item[i].key_len);
  buf[it->item[i].key_len] = 0;
  return buf;
}

/* ------------------------------------------------------------- basics */

static void test_basics(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  uint64_t v1, v2, v3, len, dver;
  tu_assert_rc(atr_dict_open(f->store, "d", 0, &h), ATR_ENOENT);
  tu_assert_rc(atr_dict_open(f->store, "d", ATR_CREATE, &h), ATR_CREATED);
  tu_ok(atr_dict_open(f->store, "d", ATR_CREATE, &h));
  atr_handle v;
  tu_assert_rc(atr_value_open(f->store, "d", 'i', ATR_CREATE, NULL, &v),
               ATR_EKIND);

  tu_case("set, get, versions");
  tu_assert_rc(atr_dict_set(&h, "a", 1, "1", 1, 0, &v1), ATR_CREATED);
  assert_string_equal(get_str(&h, "a", &v2), "1");
  tu_assert_u64(v2, v1);
  tu_ok(atr_dict_set(&h, "a", 1, "22", 2, 0, &v2));
  assert_true(v2 > v1);
  tu_ok(atr_dict_len(&h, &len, &dver));
  tu_assert_u64(len, 1);
  tu_assert_u64(dver, v2);

  tu_case("compare-and-set per key");
  tu_assert_rc(atr_dict_set(&h, "a", 1, "x", 1, v1, NULL), ATR_EVERSION);
  tu_assert_rc(atr_dict_set(&h, "a", 1, "x", 1, ATR_DICT_ABSENT, NULL),
               ATR_EEXIST);
  tu_assert_rc(atr_dict_set(&h, "zz", 2, "x", 1, 5, NULL), ATR_EVERSION);
  assert_string_equal(get_str(&h, "a", NULL), "22");
  tu_ok(atr_dict_set(&h, "a", 1, "333", 3, v2, &v3));
  tu_assert_rc(atr_dict_set(&h, "b", 1, "b", 1, ATR_DICT_ABSENT, NULL),
               ATR_CREATED);

  tu_case("pop gives the old value; a re-set key has a new version");
  atr_dict_items old = {0};
  tu_assert_rc(atr_dict_pop(&h, "a", 1, v2, &old), ATR_EVERSION);
  tu_ok(atr_dict_pop(&h, "a", 1, v3, &old));
  tu_assert_u64(old.count, 1);
  tu_assert_u64(old.item[0].version, v3);
  assert_memory_equal(old.data + old.item[0].value_off, "333", 3);
  atr_dict_items_free(&old);
  tu_assert_rc(atr_dict_pop(&h, "a", 1, 0, NULL), ATR_ENOKEY);
  tu_assert_rc(atr_dict_get(&h, "a", 1, NULL, 0, NULL, NULL), ATR_ENOKEY);
  uint64_t v4;
  tu_assert_rc(atr_dict_set(&h, "a", 1, "4", 1, 0, &v4), ATR_CREATED);
  assert_true(v4 > v3);

  tu_case("bad keys");
  char big[ATR_DICT_KEY_MAX + 1];
  memset(big, 'k', sizeof big);
  tu_assert_rc(atr_dict_set(&h, big, sizeof big, "1", 1, 0, NULL), ATR_EKEY);
  tu_assert_rc(atr_dict_set(&h, big, ATR_DICT_KEY_MAX, "1", 1, 0, NULL),
               ATR_CREATED);
  tu_assert_rc(atr_dict_set(&h, "", 0, "1", 1, 0, NULL), ATR_EKEY);
  tu_assert_rc(atr_dict_set(&h, "a\0b", 3, "1", 1, 0, NULL), ATR_EKEY);
  tu_assert_rc(atr_dict_key_check("\xc3\x28", 2), ATR_EKEY);
  tu_assert_rc(atr_dict_key_check("\xc0\xaf", 2), ATR_EKEY);     /* overlong */
  tu_assert_rc(atr_dict_key_check("\xed\xa0\x80", 3), ATR_EKEY); /* D800 */
  tu_assert_rc(atr_dict_key_check("\xe2\x82", 2), ATR_EKEY);     /* cut short */
  tu_ok(atr_dict_key_check("caf\xc3\xa9/\xf0\x9f\x98\x80", 10));

  tu_case("update: all or none");
  atr_dict_op ops[3] = {op_set("x", "1"), op_set("b", "2"), op_del("a")};
  ops[1].expect = 1; /* stale */
  uint64_t before;
  tu_ok(atr_dict_len(&h, &len, &before));
  tu_assert_rc(atr_dict_update(&h, ops, 3, NULL), ATR_EVERSION);
  tu_ok(atr_dict_len(&h, &len, &dver));
  tu_assert_u64(dver, before);
  assert_string_equal(get_str(&h, "x", NULL), "");
  ops[1].expect = 0;
  atr_dict_op dup[2] = {op_set("x", "1"), op_del("x")};
  tu_assert_rc(atr_dict_update(&h, dup, 2, NULL), ATR_EINVAL);
  tu_ok(atr_dict_update(&h, ops, 3, &dver));
  tu_assert_u64(dver, before + 1);
  assert_string_equal(get_str(&h, "x", &v1), "1");
  tu_assert_u64(v1, dver);
  assert_string_equal(get_str(&h, "b", NULL), "2");
  assert_string_equal(get_str(&h, "a", NULL), "");
  atr_dict_op gone = op_del("nothing");
  tu_ok(atr_dict_update(&h, &gone, 1, &v2));
  tu_assert_u64(v2, dver); /* nothing changed */

  tu_case("changes name the keys");
  atr_dict_items ch = {0};
  int trunc = 1;
  tu_ok(atr_dict_changes(&h, before, &ch, &trunc, NULL));
  tu_assert_i64(trunc, 0);
  tu_assert_u64(ch.count, 3);
  char kb[ATR_DICT_KEY_MAX + 1];
  int seen = 0;
  for (size_t i = 0; i < ch.count; i++) {
    const char *k = item_key(&ch, i, kb);
    seen |= !strcmp(k, "x") && !ch.item[i].deleted ? 1 : 0;
    seen |= !strcmp(k, "b") && !ch.item[i].deleted ? 2 : 0;
    seen |= !strcmp(k, "a") && ch.item[i].deleted ? 4 : 0;
  }
  tu_assert_i64(seen, 7);
  atr_dict_items_free(&ch);
  tu_ok(atr_dict_changes(&h, 0, &ch, &trunc, NULL));
  tu_assert_i64(trunc, 0); /* the ring still holds the first change */
  atr_dict_items_free(&ch);

  tu_case("read some keys");
  struct iovec keys[3] = {{"x", 1}, {"nope", 4}, {"b", 1}};
  atr_dict_items rd = {0};
  tu_ok(atr_dict_read(&h, keys, 3, &rd, NULL));
  tu_assert_u64(rd.count, 2);
  assert_string_equal(item_key(&rd, 0, kb), "x");
  assert_string_equal(rd.data + rd.item[1].value_off, "2");
  atr_dict_items_free(&rd);

  tu_case("delete the dict; versions go on above it");
  tu_ok(atr_delete(f->store, "d", ATR_DICT));
  tu_assert_rc(atr_dict_set(&h, "a", 1, "1", 1, 0, NULL), ATR_ENOENT);
  tu_assert_rc(atr_dict_open(f->store, "d", ATR_CREATE, &h), ATR_CREATED);
  tu_assert_rc(atr_dict_set(&h, "x", 1, "1", 1, 0, &v3), ATR_CREATED);
  assert_true(v3 > v1);
}

/* --------------------------------------------------------------- pages */

static void test_pages(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  enum { N = 250 };
  char key[32], kb[ATR_DICT_KEY_MAX + 1], prev[ATR_DICT_KEY_MAX + 1] = "";
  tu_assert_rc(atr_dict_open(f->store, "p", ATR_CREATE, &h), ATR_CREATED);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "k%d", i * 7919 % 1000);
    tu_ok(atr_dict_set(&h, key, strlen(key), "v", 1, 0, NULL) < 0);
  }
  uint64_t len;
  tu_ok(atr_dict_len(&h, &len, NULL));
  tu_assert_u64(len, N);
  int got = 0, more = 1, pages = 0;
  while (more) {
    atr_dict_items it = {0};
    tu_ok(atr_dict_page(&h, got ? prev : NULL, strlen(prev), 100, &it, &more,
                        NULL));
    pages++;
    for (size_t i = 0; i < it.count; i++) {
      item_key(&it, i, kb);
      assert_true(strcmp(kb, prev) > 0);
      strcpy(prev, kb);
      got++;
    }
    atr_dict_items_free(&it);
  }
  tu_assert_i64(got, N);
  tu_assert_i64(pages, 3);
  atr_dict_items all = {0};
  tu_ok(atr_dict_page(&h, NULL, 0, 0, &all, &more, NULL));
  tu_assert_u64(all.count, N);
  tu_assert_i64(more, 0);
  assert_string_equal(item_key(&all, 0, kb), "k0");
  atr_dict_items_free(&all);
  /* A prefix comes first. */
  tu_ok(atr_dict_set(&h, "k", 1, "v", 1, 0, NULL) < 0);
  tu_ok(atr_dict_page(&h, NULL, 0, 2, &all, &more, NULL));
  assert_string_equal(item_key(&all, 0, kb), "k");
  assert_string_equal(item_key(&all, 1, kb), "k0");
  tu_assert_i64(more, 1);
  atr_dict_items_free(&all);
}

/* ------------------------------------------------- 100,000 keys, space */

static void test_many_keys(void **state) {
  tu_fixture *f = *state;
  atr_store_opts o;
  atr_store_opts_init(&o);
  o.size = 64u << 20;
  atr_store *s = tu_store_open(f, tu_path_new(f), &o);
  atr_store_stats base, empty, full, after;
  atr_handle h;
  atr_info info;
  enum { N = 100000 };
  char key[32], val[32];
  tu_ok(atr_store_stats_get(s, &base));
  tu_assert_rc(atr_dict_open(s, "big", ATR_CREATE, &h), ATR_CREATED);
  tu_ok(atr_store_stats_get(s, &empty));
  tu_ok(atr_stat(s, "big", &info));
  uint64_t bytes0 = info.bytes;
  for (int i = 0; i < N; i++) {
    int kl = snprintf(key, sizeof key, "key-%d", i);
    int vl = snprintf(val, sizeof val, "%d", i * 3);
    tu_assert_rc(atr_dict_set(&h, key, (size_t)kl, val, (size_t)vl, 0, NULL),
                 ATR_CREATED);
  }
  tu_ok(atr_stat(s, "big", &info));
  tu_assert_u64(info.size, N);
  assert_true(info.bytes > bytes0); /* it grew */
  tu_ok(atr_store_stats_get(s, &full));
  for (int i = 0; i < N; i += 997) {
    snprintf(key, sizeof key, "key-%d", i);
    snprintf(val, sizeof val, "%d", i * 3);
    assert_string_equal(get_str(&h, key, NULL), val);
  }
  print_message("100000 keys: %llu bytes of store\n",
                (unsigned long long)(full.used - empty.used));
  for (int i = 0; i < N; i++) {
    int kl = snprintf(key, sizeof key, "key-%d", i);
    tu_ok(atr_dict_pop(&h, key, (size_t)kl, 0, NULL));
  }
  tu_ok(atr_stat(s, "big", &info));
  tu_assert_u64(info.size, 0);
  tu_ok(atr_store_stats_get(s, &after));
  tu_assert_u64(after.used, empty.used); /* no space lost */
  tu_assert_u64(info.bytes, bytes0);
  tu_ok(atr_delete(s, "big", ATR_DICT));
  tu_ok(atr_store_stats_get(s, &after));
  tu_assert_u64(after.used, base.used);
}

/* -------------------------------------- 4 processes x 50,000 CAS incs */

enum { INC_PROCS = 4, INC_EACH = 50000 };

static int incrementer(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_handle h;
  TU_CHILD_CHECK(atr_dict_open(s, "c", 0, &h) == 0);
  for (int i = 0; i < INC_EACH; i++) {
    for (;;) {
      uint64_t n, ver;
      size_t len;
      TU_CHILD_CHECK(atr_dict_get(&h, "n", 1, &n, sizeof n, &len, &ver) == 0);
      n++;
      int rc = atr_dict_set(&h, "n", 1, &n, sizeof n, ver, NULL);
      if (rc == 0)
        break;
      TU_CHILD_CHECK(rc == ATR_EVERSION);
    }
  }
  return 0;
}

static void test_cas_increments(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  uint64_t n = 0, ver0, ver;
  pid_t pids[INC_PROCS];
  tu_assert_rc(atr_dict_open(f->store, "c", ATR_CREATE, &h), ATR_CREATED);
  tu_assert_rc(atr_dict_set(&h, "n", 1, &n, sizeof n, 0, &ver0), ATR_CREATED);
  double t0 = tu_now();
  for (int i = 0; i < INC_PROCS; i++)
    pids[i] = tu_spawn(incrementer, (void *)f->path);
  for (int i = 0; i < INC_PROCS; i++)
    tu_assert_i64(tu_wait(pids[i], 120), 0);
  size_t len;
  tu_ok(atr_dict_get(&h, "n", 1, &n, sizeof n, &len, &ver));
  tu_assert_u64(n, INC_PROCS * INC_EACH);
  tu_assert_u64(ver - ver0, INC_PROCS * INC_EACH);
  print_message("%d CAS increments in %.2f s\n", INC_PROCS * INC_EACH,
                tu_now() - t0);
}

/* ---------------------------------------- multi-key: all or none seen */

enum { MK_KEYS = 4, MK_ROUNDS = 20000 };
static const char *const mk_keys[MK_KEYS] = {"a", "b", "c", "d"};

static int mk_reader(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_handle h;
  struct iovec keys[MK_KEYS];
  TU_CHILD_CHECK(atr_dict_open(s, "m", 0, &h) == 0);
  for (int i = 0; i < MK_KEYS; i++)
    keys[i] = (struct iovec){(void *)mk_keys[i], 1};
  for (int r = 0; r < MK_ROUNDS; r++) {
    atr_dict_items it = {0};
    uint64_t ver;
    TU_CHILD_CHECK(atr_dict_read(&h, keys, MK_KEYS, &it, &ver) == 0);
    TU_CHILD_CHECK(it.count == MK_KEYS);
    for (size_t i = 1; i < it.count; i++)
      TU_CHILD_CHECK(it.item[i].value_len == it.item[0].value_len &&
                     memcmp(it.data + it.item[i].value_off,
                            it.data + it.item[0].value_off,
                            it.item[0].value_len) == 0 &&
                     it.item[i].version == it.item[0].version);
    atr_dict_items_free(&it);
  }
  return 0;
}

/* Sets every key to one value per commit, for ever (killed). */
static int mk_writer(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_handle h;
  atr_dict_op ops[MK_KEYS];
  char val[32];
  TU_CHILD_CHECK(atr_dict_open(s, "m", 0, &h) == 0);
  for (int r = 1;; r++) {
    /* Values of varying length, so a torn read shows. */
    snprintf(val, sizeof val, "%d%.*s", r, r % 13, "xxxxxxxxxxxxx");
    for (int i = 0; i < MK_KEYS; i++)
      ops[i] = op_set(mk_keys[i], val);
    TU_CHILD_CHECK(atr_dict_update(&h, ops, MK_KEYS, NULL) == 0);
  }
}

static void test_multi_all_or_none(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  atr_dict_op ops[MK_KEYS];
  uint64_t v0, v1;
  tu_assert_rc(atr_dict_open(f->store, "m", ATR_CREATE, &h), ATR_CREATED);
  for (int i = 0; i < MK_KEYS; i++)
    ops[i] = op_set(mk_keys[i], "0");
  tu_ok(atr_dict_update(&h, ops, MK_KEYS, &v0));
  pid_t w = tu_spawn(mk_writer, (void *)f->path);
  pid_t r1 = tu_spawn(mk_reader, (void *)f->path);
  pid_t r2 = tu_spawn(mk_reader, (void *)f->path);
  tu_assert_i64(tu_wait(r1, 60), 0);
  tu_assert_i64(tu_wait(r2, 60), 0);
  tu_assert_i64(tu_kill(w), KILLED);
  tu_ok(atr_dict_len(&h, NULL, &v1));
  print_message("readers saw %llu commits go by\n",
                (unsigned long long)(v1 - v0));
  assert_true(v1 > v0);
}

/* ----------------------- a writer stopped holding the record lock */

struct stop_arg {
  const char *path;
  int ready[2];
};

/* Begins an update that stops before its commit point, holding the
 * record lock, and stops itself there (SIGSTOP) until killed. */
static int stop_writer(void *arg) {
  struct stop_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  atr_dict_op op = {"a", 1, "never", 5, 0, 0};
  TU_CHILD_CHECK(atr_dict_open(s, "st", 0, &h) == 0);
  TU_CHILD_CHECK(atr__dict_update_cut(&h, &op, 1, NULL, 0) == 0);
  tu_child_ready(a->ready[1]);
  raise(SIGSTOP);
  return 0;
}

static void test_stopped_writer(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  struct stop_arg a = {.path = f->path};
  atr_dict_op init[2] = {op_set("a", "old-a"), op_set("b", "old-b")};
  uint64_t ver0, ver;
  tu_assert_rc(atr_dict_open(f->store, "st", ATR_CREATE, &h), ATR_CREATED);
  tu_ok(atr_dict_update(&h, init, 2, &ver0));
  tu_pipe(a.ready);
  pid_t pid = tu_spawn_ready(stop_writer, &a, a.ready[0]);

  tu_case("a writer holds the record lock: writes wait, reads do not");
  atr_set_lock_patience(0.05);
  tu_assert_rc(atr_dict_set(&h, "c", 1, "c", 1, 0, NULL), ATR_ELOCKED);
  assert_string_equal(get_str(&h, "a", &ver), "old-a");
  tu_assert_u64(ver, ver0);
  struct iovec keys[2] = {{"a", 1}, {"b", 1}};
  atr_dict_items it = {0};
  int more = 1;
  tu_ok(atr_dict_read(&h, keys, 2, &it, &ver));
  tu_assert_u64(it.count, 2);
  tu_assert_u64(ver, ver0);
  atr_dict_items_free(&it);
  tu_ok(atr_dict_page(&h, NULL, 0, 10, &it, &more, &ver));
  tu_assert_u64(it.count, 2);
  tu_assert_i64(more, 0);
  atr_dict_items_free(&it);
  tu_ok(atr_dict_changes(&h, ver0 - 1, &it, NULL, &ver));
  tu_assert_u64(it.count, 2);
  atr_dict_items_free(&it);
  /* (The lock path would have answered ATR_ELOCKED after 50 ms.) */
  atr_set_lock_patience(-1);

  tu_case("its death gives the lock back, nothing committed");
  tu_assert_i64(tu_kill(pid), KILLED);
  tu_close_pipe(a.ready);
  tu_assert_rc(atr_dict_set(&h, "c", 1, "c", 1, 0, NULL), ATR_CREATED);
  assert_string_equal(get_str(&h, "a", NULL), "old-a");
  tu_ok(atr_delete(f->store, "st", ATR_DICT));
}

/* ------------------------------------ a commit cut after each store */

struct cut_arg {
  const char *path;
  int stores;
};

static const atr_dict_op cut_ops[3] = {
    {"a", 1, "new-a", 5, 0, 0},
    {"new", 3, "n", 1, 0, 0},
    {"b", 1, NULL, 0, 1, 0},
};

static int cut_writer(void *arg) {
  const struct cut_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_dict_open(s, "cut", 0, &h) == 0);
  TU_CHILD_CHECK(atr__dict_update_cut(&h, cut_ops, 3, NULL, a->stores) == 0);
  return 0; /* _exit holding the record lock (when cut short) */
}

static void test_commit_cut(void **state) {
  tu_fixture *f = *state;
  for (int k = 0; k <= ATR__DICT_STORES(3); k++) {
    atr_handle h;
    uint64_t ver0, ver, len;
    tu_case("a commit of 3 bucket stores cut after %d stores", k);
    tu_assert_rc(atr_dict_open(f->store, "cut", ATR_CREATE, &h), ATR_CREATED);
    atr_dict_op init[2] = {op_set("a", "old-a"), op_set("b", "old-b")};
    tu_ok(atr_dict_update(&h, init, 2, &ver0));
    struct cut_arg a = {f->path, k};
    tu_assert_i64(tu_run(cut_writer, &a, 10), 0);
    /* The next caller repairs: nothing (k == 0) or all of it. */
    bool made = k >= 1;
    assert_string_equal(get_str(&h, "a", &ver), made ? "new-a" : "old-a");
    tu_assert_u64(ver, made ? ver0 + 1 : ver0);
    assert_string_equal(get_str(&h, "new", NULL), made ? "n" : "");
    assert_string_equal(get_str(&h, "b", NULL), made ? "" : "old-b");
    tu_ok(atr_dict_len(&h, &len, &ver));
    tu_assert_u64(len, 2);
    tu_assert_u64(ver, made ? ver0 + 1 : ver0);
    tu_assert_rc(atr_dict_set(&h, "z", 1, "z", 1, 0, NULL), ATR_CREATED);
    tu_ok(atr_delete(f->store, "cut", ATR_DICT));
  }
}

/* ------------------------------------- a move cut after each step */

static int move_writer(void *arg) {
  const struct cut_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_dict_open(s, "mv", 0, &h) == 0);
  TU_CHILD_CHECK(atr__dict_resize_cut(&h, a->stores) == 0);
  return 0; /* _exit holding the store's and the record's locks */
}

static void test_move_cut(void **state) {
  tu_fixture *f = *state;
  atr_store_stats base, st;
  char key[16], val[16];
  tu_ok(atr_store_stats_get(f->store, &base));
  for (int k = 0; k < ATR__DICT_MOVE_STEPS; k++) {
    atr_handle h;
    uint64_t len;
    tu_case("a move to a new arena cut after %d of its steps", k);
    tu_assert_rc(atr_dict_open(f->store, "mv", ATR_CREATE, &h), ATR_CREATED);
    for (int i = 0; i < 8; i++) {
      snprintf(key, sizeof key, "k%d", i);
      tu_assert_rc(atr_dict_set(&h, key, strlen(key), "x", 1, 0, NULL),
                   ATR_CREATED);
    }
    for (int i = 0; i < 8; i += 2) { /* garbage for the move to drop */
      snprintf(key, sizeof key, "k%d", i);
      snprintf(val, sizeof val, "v%d", i);
      tu_ok(atr_dict_set(&h, key, strlen(key), val, strlen(val), 0, NULL));
    }
    struct cut_arg a = {f->path, k};
    tu_assert_i64(tu_run(move_writer, &a, 10), 0);
    /* The next callers recover the store (the heap, from the records)
     * and the dict (a committed move finished): every key as it was. */
    tu_ok(atr_store_stats_get(f->store, &st));
    for (int i = 0; i < 8; i++) {
      snprintf(key, sizeof key, "k%d", i);
      snprintf(val, sizeof val, "v%d", i);
      assert_string_equal(get_str(&h, key, NULL), i % 2 ? "x" : val);
    }
    tu_ok(atr_dict_len(&h, &len, NULL));
    tu_assert_u64(len, 8);
    tu_assert_rc(atr_dict_set(&h, "z", 1, "z", 1, 0, NULL), ATR_CREATED);
    tu_ok(atr_delete(f->store, "mv", ATR_DICT));
    tu_ok(atr_store_stats_get(f->store, &st));
    tu_assert_u64(st.used, base.used); /* no block left behind */
  }
}

/* ------------------------------------------------ kill -9 mid-update */

enum { KW_KEYS = 6 };

struct kill_arg {
  const char *path;
  int ready[2];
  uint64_t seed;
};

/* Sets all KW_KEYS keys to one generation in each commit, with a big
 * value of random size that comes and goes (growth, garbage, shrink). */
static int kill_writer(void *arg) {
  struct kill_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  static char big[8192];
  char val[KW_KEYS][32], key[KW_KEYS][8];
  atr_dict_op ops[KW_KEYS + 1];
  uint64_t rnd = a->seed;
  TU_CHILD_CHECK(atr_dict_open(s, "k", 0, &h) == 0);
  memset(big, 'B', sizeof big);
  tu_child_ready(a->ready[1]);
  for (uint64_t g = tu_rand(&rnd) % 1000000;; g++) {
    for (int i = 0; i < KW_KEYS; i++) {
      snprintf(key[i], sizeof key[i], "k%d", i);
      snprintf(val[i], sizeof val[i], "%llu", (unsigned long long)g);
      ops[i] = op_set(key[i], val[i]);
    }
    ops[KW_KEYS] = (atr_dict_op){
        "big",        3, big, (size_t)tu_rand_below(&rnd, sizeof big),
        (int)(g & 1), 0};
    TU_CHILD_CHECK(atr_dict_update(&h, ops, KW_KEYS + 1, NULL) == 0);
  }
}

static void test_kill_writer(void **state) {
  tu_fixture *f = *state;
  atr_handle h;
  struct kill_arg a = {.path = f->path};
  uint64_t rnd = tu_seed();
  int trials = tu_kill_trials(), commits = 0;
  tu_assert_rc(atr_dict_open(f->store, "k", ATR_CREATE, &h), ATR_CREATED);
  tu_pipe(a.ready);
  double t0 = tu_now();
  for (int t = 0; t < trials; t++) {
    uint64_t ver0, ver1;
    tu_case("trial %d", t);
    tu_ok(atr_dict_len(&h, NULL, &ver0));
    a.seed = tu_rand(&rnd) | 1;
    pid_t pid = tu_spawn_ready(kill_writer, &a, a.ready[0]);
    tu_sleep((double)tu_rand_below(&rnd, 3001) * 1e-6);
    tu_assert_i64(tu_kill(pid), KILLED);
    /* Every key old or new: all of one generation. */
    struct iovec keys[KW_KEYS];
    char kn[KW_KEYS][8];
    for (int i = 0; i < KW_KEYS; i++) {
      snprintf(kn[i], sizeof kn[i], "k%d", i);
      keys[i] = (struct iovec){kn[i], strlen(kn[i])};
    }
    atr_dict_items it = {0};
    uint64_t len;
    tu_ok(atr_dict_read(&h, keys, KW_KEYS, &it, NULL));
    tu_ok(atr_dict_len(&h, &len, &ver1));
    commits += ver1 != ver0; /* the writer committed before its death */
    if (it.count > 0) {
      tu_assert_u64(it.count, KW_KEYS);
      for (size_t i = 1; i < it.count; i++) {
        tu_assert_u64(it.item[i].value_len, it.item[0].value_len);
        assert_memory_equal(it.data + it.item[i].value_off,
                            it.data + it.item[0].value_off,
                            it.item[0].value_len);
      }
      assert_true(len == KW_KEYS || len == KW_KEYS + 1);
    }
    atr_dict_items_free(&it);
    /* And usable at once. */
    tu_ok(atr_dict_set(&h, "probe", 5, "p", 1, 0, NULL) < 0);
    tu_ok(atr_dict_pop(&h, "probe", 5, 0, NULL));
  }
  tu_close_pipe(a.ready);
  print_message("%d kills in %.1f s, %d of them after the writer committed\n",
                trials, tu_now() - t0, commits);
  assert_true(commits > 0);
  atr_store_stats st0, st1;
  tu_ok(atr_store_stats_get(f->store, &st0));
  tu_ok(atr_delete(f->store, "k", ATR_DICT));
  tu_ok(atr_store_stats_get(f->store, &st1));
  assert_true(st1.used < st0.used);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_basics, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_pages, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_many_keys, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_cas_increments, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_multi_all_or_none, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_stopped_writer, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_commit_cut, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_move_cut, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_kill_writer, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
