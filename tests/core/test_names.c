/*
 * test_names.c - names, the object table, kinds, limits, space, versions
 * across delete and re-create, stale handles, and the small lookup tables
 * (errors, kinds, ops, type sizes).
 */
#include "testutil.h"

#include "internal.h" /* to write a kind byte no kind has */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

/* --------------------------------------------------------------- tables */

static void test_errors_table(void **state) {
  (void)state;
  assert_string_equal(atr_errname(0), "OK");
  assert_string_equal(atr_errname(ATR_ENOENT), "ENOENT");
  assert_string_equal(atr_errname(ATR_ESYS), "ESYS");
  assert_string_equal(atr_strerror(ATR_EFULL), "queue is full");
  assert_true(ATR_EINVAL < 0 && ATR_ESYS < ATR_EINVAL);
  for (int code = 0; code >= ATR_ESYS; code--) {
    assert_non_null(atr_strerror(code));
    assert_non_null(atr_errname(code));
    for (int other = code - 1; other >= ATR_ESYS; other--)
      assert_string_not_equal(atr_errname(code), atr_errname(other));
  }
  /* Codes outside the table still get a string. */
  assert_non_null(atr_strerror(1));
  assert_non_null(atr_strerror(-1000));
  assert_non_null(atr_errname(-1000));
}

static void test_kind_op_names(void **state) {
  (void)state;
  assert_string_equal(atr_kind_name(ATR_ANY), "any");
  assert_string_equal(atr_kind_name(ATR_VALUE), "value");
  assert_string_equal(atr_kind_name(ATR_ARRAY), "array");
  assert_string_equal(atr_kind_name(ATR_QUEUE), "queue");
  static const struct {
    atr_op op;
    const char *name;
  } ops[] = {{ATR_OP_CREATED, "created"}, {ATR_OP_DELETED, "deleted"},
             {ATR_OP_SET, "set"},         {ATR_OP_ADD, "add"},
             {ATR_OP_PUT, "put"},         {ATR_OP_POP, "pop"},
             {ATR_OP_CLEAR, "clear"}};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    assert_string_equal(atr_op_name(ops[i].op), ops[i].name);
}

static void test_type_sizes(void **state) {
  (void)state;
  static const struct {
    char type;
    size_t size;
  } types[] = {{'b', 1}, {'B', 1}, {'h', 2}, {'H', 2}, {'i', 4},
               {'I', 4}, {'l', 8}, {'L', 8}, {'q', 8}, {'Q', 8},
               {'f', 4}, {'d', 8}, {'?', 1}, {'c', 1}, {'x', 0},
               {'u', 0}, {0, 0},   {'D', 0}, {'s', 0}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (atr_type_size(types[i].type) != types[i].size)
      print_error("type '%c'\n", types[i].type);
    assert_int_equal(atr_type_size(types[i].type), types[i].size);
  }
}

/* ---------------------------------------------------------------- names */

static const struct name_case {
  const char *label;
  const char *name;
  size_t len; /* 0: strlen(name) */
  int valid;
} name_cases[] = {
    {"one letter", "a", 0, 1},
    {"all classes", "a.b-c_D9", 0, 1},
    {"dots only", "...", 0, 1},
    {"digits", "0123456789", 0, 1},
    {"64 bytes",
     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.", 0, 1},
    {"empty", "", 0, 0},
    {"65 bytes",
     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", 0, 0},
    {"space", "a b", 0, 0},
    {"slash", "a/b", 0, 0},
    {"percent", "a%20b", 0, 0},
    {"nul inside", "ab\0cd", 5, 0},
    {"unicode", "caf\xc3\xa9", 0, 0},
    {"high byte", "\xff", 0, 0},
    {"colon", "a:b", 0, 0},
    {"star", "*", 0, 0},
    {"newline", "a\n", 0, 0},
    {"tab", "\t", 0, 0},
    {"plus", "a+b", 0, 0},
};

static void test_name_check(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
    const struct name_case *c = &name_cases[i];
    size_t len = c->len ? c->len : strlen(c->name);
    int rv = atr_name_check(c->name, len);
    if (rv != (c->valid ? 0 : ATR_ENAME))
      print_error("case '%s'\n", c->label);
    tu_assert_rc(rv, c->valid ? 0 : ATR_ENAME);
  }
  /* The length counts, not a terminating NUL. */
  tu_ok(atr_name_check("abc/def", 3));
  tu_assert_rc(atr_name_check("abc", 0), ATR_ENAME);
}

/* The same table through every open call and atr_stat / atr_delete. */
static void test_names_in_calls(void **state) {
  tu_fixture *f = fixture(state);
  for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
    const struct name_case *c = &name_cases[i];
    if (c->len != 0)
      continue; /* a C string cannot carry a NUL inside */
    int want = c->valid ? ATR_CREATED : ATR_ENAME;
    atr_handle h;
    atr_info info;
    int rv = atr_value_open(f->store, c->name, 'i', ATR_CREATE, NULL, &h);
    if (rv != want)
      print_error("case '%s'\n", c->label);
    tu_assert_rc(rv, want);
    if (c->valid) {
      tu_ok(atr_stat(f->store, c->name, &info));
      assert_string_equal(info.name, c->name);
      tu_ok(atr_delete(f->store, c->name, ATR_VALUE));
    } else {
      tu_assert_rc(atr_stat(f->store, c->name, &info), ATR_ENAME);
      tu_assert_rc(atr_delete(f->store, c->name, ATR_ANY), ATR_ENAME);
    }
    tu_assert_rc(
        atr_array_open(f->store, c->name, 'i', 3, ATR_CREATE, NULL, &h), want);
    if (c->valid)
      tu_ok(atr_delete(f->store, c->name, ATR_ARRAY));
    tu_assert_rc(atr_queue_open(f->store, c->name, ATR_CREATE, NULL, &h), want);
    if (c->valid)
      tu_ok(atr_delete(f->store, c->name, ATR_QUEUE));
  }
  atr_store_stats st;
  tu_ok(atr_store_stats_get(f->store, &st));
  assert_int_equal(st.objects, 0);
}

/* ---------------------------------------------------------- stat, list */

static void test_stat(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle hv, ha, hq;
  atr_scalar init = {.f = 2.5};
  tu_assert_rc(atr_value_open(f->store, "v", 'd', ATR_CREATE, &init, &hv),
               ATR_CREATED);
  tu_assert_rc(atr_array_open(f->store, "a", 'h', 7, ATR_CREATE, NULL, &ha),
               ATR_CREATED);
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.maxsize = 10;
  qo.max_bytes = 8192;
  qo.max_item = 100;
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &qo, &hq),
               ATR_CREATED);
  tu_ok(atr_queue_put(&hq, "abc", 3, 0));

  atr_info v, a, q;
  tu_ok(atr_stat(f->store, "v", &v));
  tu_ok(atr_stat(f->store, "a", &a));
  tu_ok(atr_stat(f->store, "q", &q));
  assert_string_equal(v.name, "v");
  assert_int_equal(v.kind, ATR_VALUE);
  assert_int_equal(v.type, 'd');
  assert_true(v.version >= 1);
  assert_int_equal(a.kind, ATR_ARRAY);
  assert_int_equal(a.type, 'h');
  assert_int_equal(a.length, 7);
  assert_int_equal(a.bytes, 14);
  assert_int_equal(q.kind, ATR_QUEUE);
  assert_int_equal(q.type, 0);
  assert_int_equal(q.size, 1);
  /* "bytes waiting": at least the payload, at most the ring. */
  assert_true(q.bytes >= 3 && q.bytes <= q.max_bytes);
  assert_int_equal(q.maxsize, 10);
  assert_int_equal(q.max_item, 100);
  assert_true(q.max_bytes >= 8192);
  /* Ids: distinct, and the handles carry them. */
  assert_true(v.id != a.id && a.id != q.id && v.id != q.id);
  assert_int_equal(hv.id, v.id);
  assert_int_equal(ha.id, a.id);
  assert_int_equal(hq.id, q.id);
  /* The version of stat is the version of the object's own calls. */
  uint64_t version;
  tu_ok(atr_value_get(&hv, NULL, &version));
  assert_int_equal(version, v.version);
  uint64_t qversion;
  tu_ok(atr_queue_size(&hq, NULL, NULL, &qversion));
  assert_int_equal(qversion, q.version);

  tu_assert_rc(atr_stat(f->store, "missing", &v), ATR_ENOENT);
}

#define LIST_N 60

struct list_seen {
  int count[LIST_N];
  atr_kind kind[LIST_N];
  int others;
  atr_store *store;
  int stat_failed;
};

static int list_collect(const atr_info *info, void *arg) {
  struct list_seen *seen = arg;
  int i;
  if (sscanf(info->name, "obj%d", &i) != 1 || i < 0 || i >= LIST_N) {
    seen->others++;
    return 0;
  }
  seen->count[i]++;
  seen->kind[i] = info->kind;
  /* No lock is held while fn runs: it may call the API. */
  atr_info again;
  if (atr_stat(seen->store, info->name, &again) != 0 ||
      again.kind != info->kind)
    seen->stat_failed++;
  return 0;
}

static int list_stop(const atr_info *info, void *arg) {
  (void)info;
  int *calls = arg;
  return ++*calls == 3 ? 77 : 0;
}

static void test_list(void **state) {
  tu_fixture *f = fixture(state);
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 4096;
  for (int i = 0; i < LIST_N; i++) {
    char name[16];
    atr_handle h;
    snprintf(name, sizeof name, "obj%d", i);
    switch (i % 3) {
    case 0:
      tu_assert_rc(atr_value_open(f->store, name, 'q', ATR_CREATE, NULL, &h),
                   ATR_CREATED);
      break;
    case 1:
      tu_assert_rc(atr_array_open(f->store, name, 'B', 5, ATR_CREATE, NULL, &h),
                   ATR_CREATED);
      break;
    default:
      tu_assert_rc(atr_queue_open(f->store, name, ATR_CREATE, &qo, &h),
                   ATR_CREATED);
    }
  }
  /* Delete a few: they must not be listed. */
  tu_ok(atr_delete(f->store, "obj0", ATR_ANY));
  tu_ok(atr_delete(f->store, "obj31", ATR_ANY));
  tu_ok(atr_delete(f->store, "obj59", ATR_ANY));

  struct list_seen seen;
  memset(&seen, 0, sizeof seen);
  seen.store = f->store;
  tu_ok(atr_list(f->store, list_collect, &seen));
  assert_int_equal(seen.others, 0);
  assert_int_equal(seen.stat_failed, 0);
  for (int i = 0; i < LIST_N; i++) {
    int deleted = i == 0 || i == 31 || i == 59;
    if (seen.count[i] != !deleted)
      print_error("obj%d seen %d times\n", i, seen.count[i]);
    assert_int_equal(seen.count[i], !deleted);
    if (!deleted)
      assert_int_equal(seen.kind[i], i % 3 == 0   ? ATR_VALUE
                                     : i % 3 == 1 ? ATR_ARRAY
                                                  : ATR_QUEUE);
  }
  int calls = 0;
  assert_int_equal(atr_list(f->store, list_stop, &calls), 77);
  assert_int_equal(calls, 3);
}

/* --------------------------------------------------------- kinds, delete */

static void test_kinds(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_value_open(f->store, "x", 'i', ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_assert_rc(atr_array_open(f->store, "x", 'i', 4, ATR_CREATE, NULL, &h),
               ATR_EKIND);
  tu_assert_rc(atr_array_open(f->store, "x", 0, 0, 0, NULL, &h), ATR_EKIND);
  tu_assert_rc(atr_queue_open(f->store, "x", ATR_CREATE, NULL, &h), ATR_EKIND);
  tu_assert_rc(atr_queue_open(f->store, "x", 0, NULL, &h), ATR_EKIND);
  tu_assert_rc(atr_array_open(f->store, "y", 'i', 4, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_assert_rc(atr_value_open(f->store, "y", 'i', ATR_CREATE, NULL, &h),
               ATR_EKIND);
  tu_assert_rc(atr_queue_open(f->store, "y", 0, NULL, &h), ATR_EKIND);
  tu_assert_rc(atr_queue_open(f->store, "z", ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_assert_rc(atr_value_open(f->store, "z", 0, 0, NULL, &h), ATR_EKIND);
  tu_assert_rc(atr_array_open(f->store, "z", 'i', 4, ATR_CREATE, NULL, &h),
               ATR_EKIND);

  /* Missing without ATR_CREATE. */
  tu_assert_rc(atr_value_open(f->store, "none", 'i', 0, NULL, &h), ATR_ENOENT);
  tu_assert_rc(atr_array_open(f->store, "none", 'i', 4, 0, NULL, &h),
               ATR_ENOENT);
  tu_assert_rc(atr_queue_open(f->store, "none", 0, NULL, &h), ATR_ENOENT);
  atr_info info;
  tu_assert_rc(atr_stat(f->store, "none", &info), ATR_ENOENT);

  /* Delete checks the kind and changes nothing on a mismatch. */
  tu_assert_rc(atr_delete(f->store, "x", ATR_ARRAY), ATR_EKIND);
  tu_assert_rc(atr_delete(f->store, "x", ATR_QUEUE), ATR_EKIND);
  tu_assert_rc(atr_delete(f->store, "y", ATR_VALUE), ATR_EKIND);
  tu_assert_rc(atr_delete(f->store, "z", ATR_ARRAY), ATR_EKIND);
  tu_ok(atr_stat(f->store, "x", &info));
  tu_ok(atr_delete(f->store, "x", ATR_VALUE));
  tu_ok(atr_delete(f->store, "y", ATR_ARRAY));
  tu_ok(atr_delete(f->store, "z", ATR_ANY));
  tu_assert_rc(atr_delete(f->store, "x", ATR_ANY), ATR_ENOENT);
  tu_assert_rc(atr_delete(f->store, "x", ATR_VALUE), ATR_ENOENT);
  tu_assert_rc(atr_delete(f->store, "never", ATR_ANY), ATR_ENOENT);
  tu_assert_rc(atr_stat(f->store, "x", &info), ATR_ENOENT);
  /* A freed name can become another kind. */
  tu_assert_rc(atr_queue_open(f->store, "x", ATR_CREATE, NULL, &h),
               ATR_CREATED);
}

/* Dies holding the store lock: the next locker runs recovery. */
static int die_holding_store(void *arg) {
  atr_store *s = tu_child_open(arg);
  TU_CHILD_CHECK(atr__store_lock(s) == 0);
  return 0;
}

static int count_listed(const atr_info *info, void *arg) {
  (void)info;
  ++*(int *)arg;
  return 0;
}

/* The store file is untrusted: a record whose kind byte names no kind
 * is never described (ATR_ECORRUPT) or deleted, lists skip it, and
 * recovery passes it by. */
static void test_unknown_kind(void **state) {
  tu_fixture *f = fixture(state);
  static const uint8_t bad[] = {ATR_ANY, ATR_DICT + 1, 0xff};
  atr_handle v, q;
  atr_info info;
  atr_store_stats st;
  tu_assert_rc(atr_value_open(f->store, "v", 'q', ATR_CREATE, NULL, &v),
               ATR_CREATED);
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, NULL, &q),
               ATR_CREATED);
  struct atr__obj *o = atr__slot(f->store, v.slot);
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    int listed = 0;
    tu_case("kind byte %u", bad[k]);
    o->kind = bad[k];
    assert_string_equal(atr_kind_name((atr_kind)bad[k]), "any");
    tu_assert_rc(atr_stat(f->store, "v", &info), ATR_ECORRUPT);
    tu_assert_rc(atr_handle_stat(&v, &info), ATR_ECORRUPT);
    tu_ok(atr_list(f->store, count_listed, &listed));
    tu_assert_i64(listed, 1);
    tu_assert_rc(atr_delete(f->store, "v", ATR_ANY), ATR_ECORRUPT);
    tu_assert_i64(tu_run(die_holding_store, (void *)f->path, 10), 0);
    tu_ok(atr_store_stats_get(f->store, &st)); /* recovers */
    tu_assert_u64(st.objects, 2);
  }
  o->kind = ATR_VALUE;
  tu_ok(atr_stat(f->store, "v", &info));
  tu_ok(atr_delete(f->store, "v", ATR_VALUE));
  tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
}

/* ---------------------------------------------------------------- limits */

static void test_too_many(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.max_objects = 16;
  atr_store *s = tu_store_open(f, f->path, &o);
  atr_handle h;
  char name[16];
  for (int i = 0; i < 16; i++) {
    snprintf(name, sizeof name, "v%d", i);
    tu_assert_rc(atr_value_open(s, name, 'q', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
  }
  atr_store_stats st;
  tu_ok(atr_store_stats_get(s, &st));
  assert_int_equal(st.objects, 16);
  assert_int_equal(st.max_objects, 16);
  tu_assert_rc(atr_value_open(s, "one_more", 'q', ATR_CREATE, NULL, &h),
               ATR_ETOOMANY);
  tu_assert_rc(atr_array_open(s, "one_more", 'q', 2, ATR_CREATE, NULL, &h),
               ATR_ETOOMANY);
  tu_assert_rc(atr_queue_open(s, "one_more", ATR_CREATE, NULL, &h),
               ATR_ETOOMANY);
  atr_info info;
  tu_assert_rc(atr_stat(s, "one_more", &info), ATR_ENOENT);
  /* Existing ones still open. */
  tu_ok(atr_value_open(s, "v3", 'q', ATR_CREATE, NULL, &h));
  tu_ok(atr_delete(s, "v3", ATR_ANY));
  tu_assert_rc(atr_value_open(s, "one_more", 'q', ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_assert_rc(atr_value_open(s, "two_more", 'q', ATR_CREATE, NULL, &h),
               ATR_ETOOMANY);
}

static void test_no_space(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.size = (size_t)1 << 20;
  o.max_objects = 1024;
  atr_store *s = tu_store_open(f, f->path, &o);
  atr_handle h;
  char name[16];
  int n = 0, rv;
  for (;;) {
    snprintf(name, sizeof name, "a%d", n);
    rv = atr_array_open(s, name, 'q', 1000, ATR_CREATE, NULL, &h);
    if (rv != ATR_CREATED)
      break;
    n++;
    assert_true(n < 1000);
  }
  tu_assert_rc(rv, ATR_ENOSPC);
  assert_true(n > 10); /* 1 MiB holds more than ten 8 KB arrays */
  atr_store_stats before, after;
  tu_ok(atr_store_stats_get(s, &before));
  assert_int_equal(before.objects, (uint64_t)n);
  atr_info info;
  tu_assert_rc(atr_stat(s, name, &info), ATR_ENOENT);
  /* Failing again, with every kind, changes nothing either. */
  tu_assert_rc(atr_array_open(s, name, 'q', 1000, ATR_CREATE, NULL, &h),
               ATR_ENOSPC);
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 1 << 19;
  tu_assert_rc(atr_queue_open(s, name, ATR_CREATE, &qo, &h), ATR_ENOSPC);
  tu_ok(atr_store_stats_get(s, &after));
  assert_int_equal(after.objects, before.objects);
  assert_int_equal(after.used, before.used);
  tu_assert_rc(atr_stat(s, name, &info), ATR_ENOENT);
  /* Freeing one makes room for one. */
  tu_ok(atr_delete(s, "a0", ATR_ANY));
  tu_assert_rc(atr_array_open(s, name, 'q', 1000, ATR_CREATE, NULL, &h),
               ATR_CREATED);
}

/* Creates objects of the sizes seq gives until ENOSPC; returns how many. */
static int fill(atr_store *s, uint64_t seed, int max, char *names,
                size_t name_len) {
  uint64_t r = seed;
  int n;
  for (n = 0; n < max; n++) {
    char *name = names + (size_t)n * name_len;
    snprintf(name, name_len, "f%d", n);
    atr_handle h;
    int rv;
    uint64_t size = 1 + tu_rand_below(&r, 3000);
    if (tu_rand(&r) & 1) {
      rv = atr_array_open(s, name, 'd', size, ATR_CREATE, NULL, &h);
    } else {
      atr_queue_opts qo;
      atr_queue_opts_init(&qo);
      qo.max_bytes = 64 + size * 8;
      qo.max_item = size;
      rv = atr_queue_open(s, name, ATR_CREATE, &qo, &h);
    }
    if (rv == ATR_ENOSPC)
      break;
    tu_assert_rc(rv, ATR_CREATED);
  }
  return n;
}

static void test_fill_delete_cycles(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  o.size = (size_t)1 << 20;
  o.max_objects = 512;
  atr_store *s = tu_store_open(f, f->path, &o);
  enum { NAME = 16, MAX = 500 };
  char *names = calloc(MAX, NAME);
  assert_non_null(names);
  atr_store_stats base, st;
  tu_ok(atr_store_stats_get(s, &base));

  int full = fill(s, 99, MAX, names, NAME);
  print_message("%d objects fill the store\n", full);
  assert_true(full > 5 && full < MAX);
  tu_ok(atr_store_stats_get(s, &st));
  uint64_t used_full = st.used;
  for (int i = 0; i < full; i++)
    tu_ok(atr_delete(s, names + (size_t)i * NAME, ATR_ANY));
  tu_ok(atr_store_stats_get(s, &st));
  assert_int_equal(st.used, base.used);

  uint64_t r = tu_seed();
  for (int cycle = 1; cycle <= 1000; cycle++) {
    int max = 1 + (int)tu_rand_below(&r, (uint64_t)full);
    int n = fill(s, tu_rand(&r) | 1, max, names, NAME);
    assert_true(n >= 1);
    /* Delete in a shuffled order, so free blocks meet in every way. */
    int order[MAX];
    for (int i = 0; i < n; i++)
      order[i] = i;
    for (int i = n - 1; i > 0; i--) {
      int j = (int)tu_rand_below(&r, (uint64_t)i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    for (int i = 0; i < n; i++)
      tu_ok(atr_delete(s, names + (size_t)order[i] * NAME, ATR_ANY));
    tu_ok(atr_store_stats_get(s, &st));
    if (st.used != base.used || st.objects != 0)
      print_error("cycle %d: used %llu, baseline %llu\n", cycle,
                  (unsigned long long)st.used, (unsigned long long)base.used);
    assert_int_equal(st.used, base.used);
    assert_int_equal(st.objects, 0);
    /* The same fill fits again, to the same object. */
    int again = fill(s, 99, MAX, names, NAME);
    assert_int_equal(again, full);
    tu_ok(atr_store_stats_get(s, &st));
    assert_int_equal(st.used, used_full);
    for (int i = 0; i < again; i++)
      tu_ok(atr_delete(s, names + (size_t)i * NAME, ATR_ANY));
  }
  free(names);
}

/* ------------------------------------------------------------- versions */

static void test_versions_never_repeat(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_scalar one = {.i = 1};
  uint64_t last = 0, version, id_last = 0;
  for (int round = 0; round < 20; round++) {
    atr_info info;
    tu_counter_new(f->store, "v", &h);
    tu_ok(atr_value_get(&h, NULL, &version));
    assert_true(version > last);
    tu_ok(atr_stat(f->store, "v", &info));
    assert_true(info.id > id_last || round == 0);
    assert_true(info.id != id_last);
    id_last = info.id;
    for (int i = 0; i < round * 7; i++) {
      uint64_t next;
      tu_ok(atr_value_add(&h, one, NULL, &next));
      assert_int_equal(next, version + 1);
      version = next;
    }
    last = version;
    tu_ok(atr_delete(f->store, "v", ATR_ANY));
  }
}

/* Arrays and queues too, and a re-create as another kind. */
static void test_versions_across_kinds(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  uint64_t last = 0;
  atr_info info;
  for (int round = 0; round < 30; round++) {
    int kind = round % 3;
    if (kind == 0) {
      tu_assert_rc(atr_value_open(f->store, "k", 'i', ATR_CREATE, NULL, &h),
                   ATR_CREATED);
      atr_scalar v = {.i = round};
      for (int i = 0; i < round; i++)
        tu_ok(atr_value_set(&h, v, 0, NULL));
    } else if (kind == 1) {
      tu_assert_rc(atr_array_open(f->store, "k", 'i', 4, ATR_CREATE, NULL, &h),
                   ATR_CREATED);
      atr_scalar v[4] = {{.i = 1}, {.i = 2}, {.i = 3}, {.i = 4}};
      for (int i = 0; i < round; i++)
        tu_ok(atr_array_set(&h, 0, v, 4, 0, NULL));
    } else {
      tu_assert_rc(atr_queue_open(f->store, "k", ATR_CREATE, NULL, &h),
                   ATR_CREATED);
      for (int i = 0; i < round; i++)
        tu_ok(atr_queue_put(&h, "x", 1, 0));
    }
    tu_ok(atr_stat(f->store, "k", &info));
    assert_true(info.version > last);
    last = info.version;
    tu_ok(atr_delete(f->store, "k", ATR_ANY));
  }
}

/* Versions keep growing across closing and reopening the store. */
static void test_versions_across_reopen(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts o;
  tu_small_opts(&o);
  atr_store *s = tu_store_open(f, f->path, &o);
  atr_handle h;
  atr_scalar v = {.i = 9};
  uint64_t version;
  tu_assert_rc(atr_value_open(s, "v", 'q', ATR_CREATE, NULL, &h), ATR_CREATED);
  for (int i = 0; i < 100; i++)
    tu_ok(atr_value_set(&h, v, 0, &version));
  tu_ok(atr_delete(s, "v", ATR_ANY));
  tu_store_close(f, s);
  s = tu_store_open(f, f->path, &o);
  tu_assert_rc(atr_value_open(s, "v", 'q', ATR_CREATE, NULL, &h), ATR_CREATED);
  uint64_t again;
  tu_ok(atr_value_get(&h, NULL, &again));
  assert_true(again > version);
}

/* ---------------------------------------------------------- stale handles */

static void assert_value_handle_gone(const atr_handle *h) {
  atr_scalar v = {.i = 1};
  uint64_t version;
  tu_assert_rc(atr_value_get(h, &v, &version), ATR_ENOENT);
  tu_assert_rc(atr_value_set(h, v, 0, NULL), ATR_ENOENT);
  tu_assert_rc(atr_value_add(h, v, NULL, NULL), ATR_ENOENT);
}

static void test_stale_value_handle(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle old, fresh;
  atr_scalar init = {.i = 10}, v;
  tu_assert_rc(atr_value_open(f->store, "v", 'q', ATR_CREATE, &init, &old),
               ATR_CREATED);
  tu_ok(atr_delete(f->store, "v", ATR_ANY));
  assert_value_handle_gone(&old);

  /* Same name, same kind and type: the old handle stays dead. */
  init.i = 500;
  tu_assert_rc(atr_value_open(f->store, "v", 'q', ATR_CREATE, &init, &fresh),
               ATR_CREATED);
  uint64_t version;
  tu_ok(atr_value_get(&fresh, NULL, &version));
  assert_value_handle_gone(&old);
  tu_ok(atr_value_get(&fresh, &v, NULL));
  assert_int_equal(v.i, 500);
  uint64_t version2;
  tu_ok(atr_value_get(&fresh, NULL, &version2));
  assert_int_equal(version2, version);

  /* Many creates and deletes reuse the old record for other names. */
  for (int i = 0; i < 300; i++) {
    char name[16];
    atr_handle h;
    snprintf(name, sizeof name, "n%d", i % 40);
    tu_assert_rc(atr_value_open(f->store, name, 'q', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
    tu_ok(atr_delete(f->store, name, ATR_ANY));
    assert_value_handle_gone(&old);
  }
  tu_ok(atr_value_get(&fresh, &v, NULL));
  assert_int_equal(v.i, 500);
}

static void test_stale_array_queue_handles(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle a, q, a2, q2;
  atr_scalar v[3] = {{.i = 1}, {.i = 2}, {.i = 3}}, out[3];
  uint64_t n, len;
  tu_assert_rc(atr_array_open(f->store, "a", 'i', 3, ATR_CREATE, v, &a),
               ATR_CREATED);
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, NULL, &q),
               ATR_CREATED);
  tu_ok(atr_queue_put(&q, "old", 3, 0));
  tu_ok(atr_delete(f->store, "a", ATR_ARRAY));
  tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
  tu_assert_rc(atr_array_open(f->store, "a", 'i', 3, ATR_CREATE, NULL, &a2),
               ATR_CREATED);
  tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, NULL, &q2),
               ATR_CREATED);

  tu_assert_rc(atr_array_length(&a, &len), ATR_ENOENT);
  tu_assert_rc(atr_array_get(&a, 0, INT64_MAX, out, 3, &n, NULL), ATR_ENOENT);
  tu_assert_rc(atr_array_set(&a, 0, v, 3, 0, NULL), ATR_ENOENT);
  tu_assert_rc(atr_array_add(&a, 0, v[0], NULL, NULL), ATR_ENOENT);
  char buf[8];
  size_t got;
  tu_assert_rc(atr_queue_put(&q, "x", 1, 0), ATR_ENOENT);
  tu_assert_rc(atr_queue_get(&q, buf, sizeof buf, &got, 0), ATR_ENOENT);
  tu_assert_rc(atr_queue_size(&q, NULL, NULL, NULL), ATR_ENOENT);
  tu_assert_rc(atr_queue_clear(&q), ATR_ENOENT);
  struct iovec iov = {.iov_base = "y", .iov_len = 1};
  tu_assert_rc(atr_queue_put_batch(&q, &iov, 1, 0), ATR_ENOENT);
  atr_items items = {0};
  tu_assert_rc(atr_queue_get_batch(&q, 4, 0, &items), ATR_ENOENT);
  atr_items_free(&items);

  /* The new objects were not touched. */
  tu_ok(atr_array_get(&a2, 0, INT64_MAX, out, 3, &n, NULL));
  assert_int_equal(n, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(out[i].i, 0);
  uint64_t items_n;
  tu_ok(atr_queue_size(&q2, &items_n, NULL, NULL));
  assert_int_equal(items_n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors_table),
      cmocka_unit_test(test_kind_op_names),
      cmocka_unit_test(test_type_sizes),
      cmocka_unit_test(test_name_check),
      cmocka_unit_test_setup_teardown(test_names_in_calls, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_stat, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_list, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_kinds, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_unknown_kind, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_too_many, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_no_space, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_fill_delete_cycles, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_versions_never_repeat, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_versions_across_kinds, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_versions_across_reopen,
                                      tu_setup_path, tu_teardown),
      cmocka_unit_test_setup_teardown(test_stale_value_handle, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_stale_array_queue_handles, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
