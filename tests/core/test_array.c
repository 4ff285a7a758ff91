/*
 * test_array.c - typed arrays: Python slices, get and set of slices,
 * bounds, range checks (nothing written on failure), add, versions.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

static atr_scalar si(int64_t i) {
  return (atr_scalar){.i = i};
}
static atr_scalar su(uint64_t u) {
  return (atr_scalar){.u = u};
}
static atr_scalar sf(double f) {
  return (atr_scalar){.f = f};
}

/* a[start:stop] as Python resolves it (slice.indices, then lo <= hi). */
static const struct slice_case {
  int64_t start, stop;
  uint64_t length, lo, hi;
} slice_cases[] = {
    {0, INT64_MAX, 5, 0, 5},
    {-2, INT64_MAX, 5, 3, 5},
    {1, -1, 5, 1, 4},
    {-100, 2, 5, 0, 2},
    {4, 2, 5, 4, 4},
    {7, 9, 5, 5, 5},
    {-5, -6, 5, 0, 0},
    {INT64_MIN, INT64_MAX, 5, 0, 5},
    {0, 0, 5, 0, 0},
    {-1, INT64_MAX, 5, 4, 5},
    {3, -100, 5, 3, 3},
    {2, 3, 5, 2, 3},
    {5, INT64_MAX, 5, 5, 5},
    {-6, -5, 5, 0, 0},
    {INT64_MIN, INT64_MIN, 5, 0, 0},
    {INT64_MAX, INT64_MAX, 5, 5, 5},
    {-1, -1, 5, 4, 4},
    {-3, -1, 5, 2, 4},
    {0, -5, 5, 0, 0},
    {0, -4, 5, 0, 1},
    {-1, 1, 5, 4, 4},
    {INT64_MAX, INT64_MIN, 5, 5, 5},
    {0, INT64_MAX, 0, 0, 0},
    {-1, 1, 0, 0, 0},
    {INT64_MIN, INT64_MAX, 0, 0, 0},
    {7, 9, 0, 0, 0},
    {0, INT64_MAX, 1, 0, 1},
    {1, -1, 1, 1, 1},
    {-100, 2, 1, 0, 1},
    {-1, 1, 1, 0, 1},
    {-1, -1, 1, 0, 0},
    {INT64_MAX, INT64_MIN, 1, 1, 1},
};
#define NSLICES (sizeof slice_cases / sizeof slice_cases[0])

static void test_slice_table(void **state) {
  (void)state;
  for (size_t i = 0; i < NSLICES; i++) {
    const struct slice_case *c = &slice_cases[i];
    tu_case("a[%lld:%lld] of length %llu", (long long)c->start,
            (long long)c->stop, (unsigned long long)c->length);
    uint64_t lo = 99, hi = 99;
    atr_slice(c->start, c->stop, c->length, &lo, &hi);
    tu_assert_u64(lo, c->lo);
    tu_assert_u64(hi, c->hi);
  }
}

/* atr_array_get follows the same table on a real array of length 5. */
static void test_get_slices(void **state) {
  tu_fixture *f = fixture(state);
  atr_scalar init[5] = {si(10), si(11), si(12), si(13), si(14)};
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "a", 'q', 5, ATR_CREATE, init, &h),
               ATR_CREATED);
  uint64_t version, none;
  atr_scalar one[1];
  tu_ok(atr_array_get(&h, 0, 0, one, 1, &none, &version));
  assert_int_equal(none, 0);
  for (size_t i = 0; i < NSLICES; i++) {
    const struct slice_case *c = &slice_cases[i];
    if (c->length != 5)
      continue;
    tu_case("a[%lld:%lld]", (long long)c->start, (long long)c->stop);
    atr_scalar out[5];
    uint64_t n = 99, got_version = 0;
    tu_ok(atr_array_get(&h, c->start, c->stop, out, 5, &n, &got_version));
    tu_assert_u64(n, c->hi - c->lo);
    tu_assert_u64(got_version, version);
    for (uint64_t k = 0; k < n; k++)
      tu_assert_i64(out[k].i, 10 + (int64_t)(c->lo + k));
  }
  /* cap smaller than the slice: ATR_EINVAL; exactly enough is fine. */
  atr_scalar out[5];
  uint64_t n;
  tu_assert_rc(atr_array_get(&h, 1, 4, out, 2, &n, NULL), ATR_EINVAL);
  tu_ok(atr_array_get(&h, 1, 4, out, 3, &n, NULL));
  assert_int_equal(n, 3);
  tu_ok(atr_array_get(&h, 4, 2, out, 0, &n, NULL));
  assert_int_equal(n, 0);
}

static void assert_array(const atr_handle *h, const int64_t *want,
                         uint64_t len) {
  atr_scalar out[64];
  uint64_t n;
  assert_true(len <= 64);
  tu_ok(atr_array_get(h, 0, INT64_MAX, out, 64, &n, NULL));
  tu_assert_u64(n, len);
  for (uint64_t i = 0; i < len; i++)
    tu_assert_i64(out[i].i, want[i]);
}

static uint64_t array_version(const atr_handle *h) {
  atr_scalar out[1];
  uint64_t n, version;
  tu_ok(atr_array_get(h, 0, 0, out, 1, &n, &version));
  return version;
}

static void test_create(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  tu_assert_rc(atr_array_open(f->store, "zeros", 'i', 6, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  static const int64_t zeros[6];
  assert_array(&h, zeros, 6);
  uint64_t len = 0;
  tu_ok(atr_array_length(&h, &len));
  assert_int_equal(len, 6);
  assert_int_equal(h.kind, ATR_ARRAY);
  assert_int_equal(h.type, 'i');
  assert_true(array_version(&h) >= 1);

  atr_scalar init[4] = {si(-1), si(2), si(-3), si(4)};
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 4, ATR_CREATE, init, &h2),
               ATR_CREATED);
  assert_array(&h2, (const int64_t[]){-1, 2, -3, 4}, 4);
  /* Existing: opened as it is, init ignored; length 0 and type 0 match. */
  atr_scalar other[4] = {si(9), si(9), si(9), si(9)};
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 4, ATR_CREATE, other, &h2),
               0);
  assert_array(&h2, (const int64_t[]){-1, 2, -3, 4}, 4);
  tu_assert_rc(atr_array_open(f->store, "init", 0, 0, 0, NULL, &h2), 0);
  assert_int_equal(h2.type, 'h');
  tu_ok(atr_array_length(&h2, &len));
  assert_int_equal(len, 4);
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 5, 0, NULL, &h2),
               ATR_ELENGTH);
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 3, ATR_CREATE, NULL, &h2),
               ATR_ELENGTH);
  tu_assert_rc(atr_array_open(f->store, "init", 'i', 4, 0, NULL, &h2),
               ATR_ETYPE);
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 4, ATR_CREATE | ATR_EXCL,
                              NULL, &h2),
               ATR_EEXIST);
  /* Get-or-create of an existing array: length 0 and type 0 match, and
   * init is ignored even when it would not fit. */
  tu_assert_rc(atr_array_open(f->store, "init", 0, 0, ATR_CREATE, NULL, &h2),
               0);
  assert_int_equal(h2.type, 'h');
  atr_scalar wide[4] = {si(1), si(1 << 20), si(1), si(1)};
  tu_assert_rc(atr_array_open(f->store, "init", 'h', 4, ATR_CREATE, wide, &h2),
               0);
  assert_array(&h2, (const int64_t[]){-1, 2, -3, 4}, 4);
  /* An init value out of the type creates nothing. */
  atr_scalar bad[3] = {si(1), si(2), si(128)};
  tu_assert_rc(atr_array_open(f->store, "bad", 'b', 3, ATR_CREATE, bad, &h2),
               ATR_ERANGE);
  atr_info info;
  tu_assert_rc(atr_stat(f->store, "bad", &info), ATR_ENOENT);
}

/* Every type: its edges round-trip; one past them is refused. */
static const struct atype {
  char type;
  atr_scalar lo, hi, below, above; /* below/above: .u == 0 means none */
  int has_below, has_above;
} atypes[] = {
    {'b', {.i = -128}, {.i = 127}, {.i = -129}, {.i = 128}, 1, 1},
    {'B', {.u = 0}, {.u = 255}, {.u = UINT64_MAX}, {.u = 256}, 1, 1},
    {'h',
     {.i = INT16_MIN},
     {.i = INT16_MAX},
     {.i = -32769},
     {.i = 32768},
     1,
     1},
    {'H', {.u = 0}, {.u = 65535}, {.u = UINT64_MAX}, {.u = 65536}, 1, 1},
    {'i',
     {.i = INT32_MIN},
     {.i = INT32_MAX},
     {.i = (int64_t)INT32_MIN - 1},
     {.i = (int64_t)INT32_MAX + 1},
     1,
     1},
    {'I',
     {.u = 0},
     {.u = UINT32_MAX},
     {.u = UINT64_MAX},
     {.u = (uint64_t)UINT32_MAX + 1},
     1,
     1},
    {'l', {.i = INT64_MIN}, {.i = INT64_MAX}, {0}, {0}, 0, 0},
    {'L', {.u = 0}, {.u = UINT64_MAX}, {0}, {0}, 0, 0},
    {'q', {.i = INT64_MIN}, {.i = ((int64_t)1 << 53) + 1}, {0}, {0}, 0, 0},
    {'Q', {.u = ((uint64_t)1 << 53) + 1}, {.u = UINT64_MAX}, {0}, {0}, 0, 0},
    {'f', {.f = -FLT_MAX}, {.f = FLT_MAX}, {.f = -1e39}, {.f = NAN}, 1, 1},
    {'d', {.f = -DBL_MAX}, {.f = DBL_MAX}, {.f = -INFINITY}, {.f = NAN}, 1, 1},
    {'?', {.i = 0}, {.i = 1}, {.i = -1}, {.i = 2}, 1, 1},
    {'c', {.u = 0}, {.u = 255}, {.u = UINT64_MAX}, {.u = 256}, 1, 1},
};

static void test_every_type(void **state) {
  tu_fixture *f = fixture(state);
  for (size_t t = 0; t < sizeof atypes / sizeof atypes[0]; t++) {
    const struct atype *at = &atypes[t];
    tu_case("type '%c'", at->type);
    char name[8] = {'t', '_', at->type == '?' ? 'x' : at->type, 0};
    atr_scalar init[3] = {at->lo, at->hi, at->lo};
    atr_handle h;
    tu_assert_rc(
        atr_array_open(f->store, name, at->type, 3, ATR_CREATE, init, &h),
        ATR_CREATED);
    atr_scalar out[3];
    uint64_t n;
    tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 3, &n, NULL));
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
      tu_assert_u64(out[i].u, init[i].u);
    atr_info info;
    tu_ok(atr_stat(f->store, name, &info));
    tu_assert_u64(info.bytes, 3 * atr_type_size(at->type));
    uint64_t version = array_version(&h);
    if (at->has_below) {
      atr_scalar v[2] = {at->hi, at->below};
      tu_assert_rc(atr_array_set(&h, 0, v, 2, 0, NULL), ATR_ERANGE);
    }
    if (at->has_above) {
      atr_scalar v[2] = {at->above, at->lo};
      tu_assert_rc(atr_array_set(&h, 1, v, 2, 0, NULL), ATR_ERANGE);
    }
    tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 3, &n, NULL));
    for (int i = 0; i < 3; i++)
      tu_assert_u64(out[i].u, init[i].u);
    tu_assert_u64(array_version(&h), version);
  }
}

static void test_set(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "a", 'b', 5, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  uint64_t v0 = array_version(&h), v1, v2;
  atr_scalar two[2] = {si(7), si(8)};
  tu_ok(atr_array_set(&h, -2, two, 2, 0, &v1));
  assert_true(v1 > v0);
  tu_assert_u64(array_version(&h), v1);
  assert_array(&h, (const int64_t[]){0, 0, 0, 7, 8}, 5);
  tu_ok(atr_array_set(&h, 0, two, 1, 0, &v2));
  assert_true(v2 > v1);
  assert_array(&h, (const int64_t[]){7, 0, 0, 7, 8}, 5);
  tu_ok(atr_array_set(&h, 1, two, 2, 0, NULL));
  assert_array(&h, (const int64_t[]){7, 7, 8, 7, 8}, 5);

  /* Past the end, or a start before the beginning: nothing written. */
  uint64_t before = array_version(&h);
  atr_scalar three[3] = {si(1), si(2), si(3)};
  tu_assert_rc(atr_array_set(&h, 3, three, 3, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, 5, three, 1, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, -1, three, 2, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, -6, three, 1, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, INT64_MAX, three, 1, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, INT64_MIN, three, 1, 0, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_set(&h, 1, three, UINT64_MAX, 0, NULL), ATR_EBOUNDS);
  assert_array(&h, (const int64_t[]){7, 7, 8, 7, 8}, 5);
  tu_assert_u64(array_version(&h), before);

  /* A value out of the type: nothing written, even when only the last
   * one is bad. */
  atr_scalar bad_first[3] = {si(200), si(1), si(1)};
  atr_scalar bad_last[5] = {si(1), si(2), si(3), si(4), si(-129)};
  tu_assert_rc(atr_array_set(&h, 0, bad_first, 3, 0, NULL), ATR_ERANGE);
  tu_assert_rc(atr_array_set(&h, 0, bad_last, 5, 0, NULL), ATR_ERANGE);
  tu_assert_rc(atr_array_set(&h, -1, bad_last + 4, 1, 0, NULL), ATR_ERANGE);
  assert_array(&h, (const int64_t[]){7, 7, 8, 7, 8}, 5);
  tu_assert_u64(array_version(&h), before);

  /* Whole array. */
  atr_scalar all[5] = {si(-128), si(127), si(0), si(-1), si(1)};
  tu_ok(atr_array_set(&h, 0, all, 5, 0, NULL));
  assert_array(&h, (const int64_t[]){-128, 127, 0, -1, 1}, 5);
}

static void test_set_floats(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "f", 'f', 3, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  atr_scalar v[3] = {sf(0.5), sf(1e39), sf(2)};
  tu_assert_rc(atr_array_set(&h, 0, v, 3, 0, NULL), ATR_ERANGE);
  v[1] = sf(INFINITY);
  tu_assert_rc(atr_array_set(&h, 0, v, 3, 0, NULL), ATR_ERANGE);
  v[1] = sf(0.1);
  tu_ok(atr_array_set(&h, 0, v, 3, 0, NULL));
  atr_scalar out[3];
  uint64_t n;
  tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 3, &n, NULL));
  tu_assert_f64(out[0].f, 0.5);
  tu_assert_f64(out[1].f, (double)(float)0.1);
  tu_assert_f64(out[2].f, 2.0);
}

static void test_add(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_scalar init[4] = {si(0), si(126), si(-127), si(5)};
  tu_assert_rc(atr_array_open(f->store, "a", 'b', 4, ATR_CREATE, init, &h),
               ATR_CREATED);
  atr_scalar got;
  uint64_t v0 = array_version(&h), v1;
  tu_ok(atr_array_add(&h, 0, si(3), &got, &v1));
  tu_assert_i64(got.i, 3);
  tu_assert_u64(v1, v0 + 1);
  tu_ok(atr_array_add(&h, -1, si(-10), &got, NULL));
  tu_assert_i64(got.i, -5);
  tu_ok(atr_array_add(&h, 1, si(1), &got, NULL));
  tu_assert_i64(got.i, 127);
  uint64_t before = array_version(&h);
  tu_assert_rc(atr_array_add(&h, 1, si(1), NULL, NULL), ATR_EOVERFLOW);
  tu_assert_rc(atr_array_add(&h, 2, si(-2), NULL, NULL), ATR_EOVERFLOW);
  tu_assert_rc(atr_array_add(&h, 2, si(INT64_MIN), NULL, NULL), ATR_EOVERFLOW);
  tu_assert_rc(atr_array_add(&h, 4, si(1), NULL, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_add(&h, -5, si(1), NULL, NULL), ATR_EBOUNDS);
  tu_assert_rc(atr_array_add(&h, INT64_MIN, si(1), NULL, NULL), ATR_EBOUNDS);
  tu_assert_u64(array_version(&h), before);
  assert_array(&h, (const int64_t[]){3, 127, -127, -5}, 4);

  /* Q past 2^63, and its top. */
  atr_handle hq;
  atr_scalar qinit[1] = {su(UINT64_MAX - 1)};
  tu_assert_rc(atr_array_open(f->store, "Q", 'Q', 1, ATR_CREATE, qinit, &hq),
               ATR_CREATED);
  tu_ok(atr_array_add(&hq, 0, si(1), &got, NULL));
  tu_assert_u64(got.u, UINT64_MAX);
  tu_assert_rc(atr_array_add(&hq, 0, si(1), NULL, NULL), ATR_EOVERFLOW);
  /* Floats: a result that is not finite is an overflow. */
  atr_handle hd;
  atr_scalar dinit[2] = {sf(DBL_MAX), sf(1.5)};
  tu_assert_rc(atr_array_open(f->store, "d", 'd', 2, ATR_CREATE, dinit, &hd),
               ATR_CREATED);
  tu_assert_rc(atr_array_add(&hd, 0, sf(DBL_MAX), NULL, NULL), ATR_EOVERFLOW);
  tu_ok(atr_array_add(&hd, 1, sf(0.25), &got, NULL));
  tu_assert_f64(got.f, 1.75);
  /* '?' and 'c' have no add. */
  atr_handle hb;
  tu_assert_rc(atr_array_open(f->store, "bools", '?', 2, ATR_CREATE, NULL, &hb),
               ATR_CREATED);
  tu_assert_rc(atr_array_add(&hb, 0, si(1), NULL, NULL), ATR_ETYPE);
  tu_assert_rc(atr_array_open(f->store, "chars", 'c', 2, ATR_CREATE, NULL, &hb),
               ATR_CREATED);
  tu_assert_rc(atr_array_add(&hb, 0, si(1), NULL, NULL), ATR_ETYPE);
}

static void test_expect_version(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "a", 'q', 3, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  uint64_t v0 = array_version(&h), v1;
  atr_scalar v[3] = {si(1), si(2), si(3)};
  tu_ok(atr_array_set(&h, 0, v, 3, v0, &v1));
  assert_true(v1 > v0);
  atr_scalar w[3] = {si(4), si(5), si(6)};
  tu_assert_rc(atr_array_set(&h, 0, w, 3, v0, NULL), ATR_EVERSION);
  tu_assert_rc(atr_array_set(&h, 0, w, 3, v1 + 1, NULL), ATR_EVERSION);
  assert_array(&h, (const int64_t[]){1, 2, 3}, 3);
  tu_assert_u64(array_version(&h), v1);
  /* An add moves the version too. */
  uint64_t v2;
  tu_ok(atr_array_add(&h, 1, si(1), NULL, &v2));
  tu_assert_rc(atr_array_set(&h, 0, w, 3, v1, NULL), ATR_EVERSION);
  tu_ok(atr_array_set(&h, 0, w, 3, v2, NULL));
  assert_array(&h, (const int64_t[]){4, 5, 6}, 3);
}

static void test_large_array(void **state) {
  tu_fixture *f = fixture(state);
  enum { N = 100000 };
  static atr_scalar big[N], out[N];
  for (int i = 0; i < N; i++)
    big[i] = si((int64_t)i * 3 - 7);
  atr_handle h;
  tu_assert_rc(atr_array_open(f->store, "big", 'i', N, ATR_CREATE, big, &h),
               ATR_CREATED);
  uint64_t n;
  tu_ok(atr_array_get(&h, -N + 10, -10, out, N, &n, NULL));
  assert_int_equal(n, N - 20);
  for (uint64_t i = 0; i < n; i++)
    tu_assert_i64(out[i].i, (int64_t)(i + 10) * 3 - 7);
  for (int i = 0; i < N; i++)
    big[i] = si(-i);
  tu_ok(atr_array_set(&h, 0, big, N, 0, NULL));
  tu_ok(atr_array_get(&h, 0, INT64_MAX, out, N, &n, NULL));
  assert_int_equal(n, N);
  for (int i = 0; i < N; i++)
    tu_assert_i64(out[i].i, -i);
}

/* A child writes through its own mapping's data pointer of "shm". */
static int data_child(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_handle h;
  void *data = NULL;
  size_t bytes = 0;
  TU_CHILD_CHECK(atr_array_open(s, "shm", 0, 0, 0, NULL, &h) == 0);
  TU_CHILD_CHECK(atr_array_data(&h, &data, &bytes) == 0 && bytes == 4096);
  for (size_t i = 0; i < bytes; i++)
    ((unsigned char *)data)[i] = (unsigned char)(i * 7 + 1);
  atr_store_close(s);
  return 0;
}

/* atr_array_data: the elements in place, for every type; stores through
 * it are what atr_array_get reads (and the other way), in any process;
 * a deleted array, a wrong handle and a NULL data are refused. */
static void test_data(void **state) {
  tu_fixture *f = fixture(state);
  static const char types[] = "bBhHiIlLqQfd?c";
  atr_handle h;
  void *data = NULL;
  size_t bytes = 0;

  for (const char *t = types; *t; t++) {
    char name[3] = {'t', *t == '?' ? 'z' : *t, '\0'};
    tu_case("type %c", *t);
    tu_assert_rc(atr_array_open(f->store, name, *t, 3, ATR_CREATE, NULL, &h),
                 ATR_CREATED);
    tu_ok(atr_array_data(&h, &data, &bytes));
    tu_assert_u64(bytes, 3 * atr_type_size(*t));
    assert_true((uintptr_t)data % 8 == 0);
  }
  tu_assert_rc(atr_array_open(f->store, "shm", 'B', 4096, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_ok(atr_array_data(&h, &data, NULL));
  unsigned char *p = data;
  p[0] = 200;
  p[4095] = 9;
  atr_scalar out[4096];
  uint64_t n;
  tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 4096, &n, NULL));
  tu_assert_u64(out[0].u, 200);
  tu_assert_u64(out[4095].u, 9);
  atr_scalar v = {.u = 77};
  tu_ok(atr_array_set(&h, 10, &v, 1, 0, NULL));
  assert_int_equal(p[10], 77);
  /* Another process's mapping (another address, likely) of the same bytes. */
  assert_int_equal(tu_run(data_child, (void *)f->path, 30), 0);
  for (size_t i = 0; i < 4096; i++)
    assert_int_equal(p[i], (unsigned char)(i * 7 + 1));
  tu_ok(atr_array_get(&h, 0, INT64_MAX, out, 4096, &n, NULL));
  tu_assert_u64(out[4095].u, (unsigned char)(4095 * 7 + 1));

  atr_handle v_h;
  tu_assert_rc(atr_value_open(f->store, "v", 'q', ATR_CREATE, NULL, &v_h),
               ATR_CREATED);
  tu_assert_rc(atr_array_data(&v_h, &data, &bytes), ATR_ENOENT);
  tu_assert_rc(atr_array_data(&h, NULL, &bytes), ATR_EINVAL);
  tu_ok(atr_delete(f->store, "shm", ATR_ARRAY));
  tu_assert_rc(atr_array_data(&h, &data, &bytes), ATR_ENOENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slice_table),
      cmocka_unit_test_setup_teardown(test_get_slices, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_create, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_every_type, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_set, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_set_floats, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_add, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_expect_version, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_large_array, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_data, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
