/*
 * test_patience.c - atr_set_lock_patience: a live process that holds one
 * of the store's internal locks and does not let go (stopped, paused,
 * hung) makes a patient caller give up with ATR_ELOCKED, within its
 * patience, having changed nothing; a holder that died is recovered at
 * once whatever the patience. One case per lock: an array's, a queue's
 * putters' and getters', the store's.
 */
#include "testutil.h"

#include "internal.h" /* to hold the locks as the library does */

#include <signal.h>
#include <string.h>
#include <unistd.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

enum lock_kind { L_ARRAY, L_PUT, L_GET, L_STORE };

struct holder_arg {
  const char *path;
  enum lock_kind kind;
  int ready[2];
};

/* Takes the lock as the library does and keeps it, alive, until it is
 * killed. */
static int holder_child(void *arg) {
  struct holder_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  switch (a->kind) {
  case L_STORE:
    TU_CHILD_CHECK(atr__store_lock(s) == 0);
    break;
  case L_ARRAY:
    TU_CHILD_CHECK(atr_array_open(s, "a", 0, 0, 0, NULL, &h) == 0);
    TU_CHILD_CHECK(atr__record_lock(s, h.rec) == 0);
    break;
  case L_PUT:
    TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
    TU_CHILD_CHECK(atr__mutex_lock(&((struct atr__obj *)h.rec)->u.q.put_lock,
                                   NULL, NULL) == 0);
    break;
  case L_GET:
    TU_CHILD_CHECK(atr_queue_open(s, "q", 0, NULL, &h) == 0);
    TU_CHILD_CHECK(atr__record_lock(s, h.rec) == 0);
    break;
  }
  tu_child_ready(a->ready[1]);
  for (;;)
    pause();
}

/* What the objects hold, to show that a refused call changed nothing. */
struct state {
  atr_scalar a[4];
  uint64_t a_version, q_items, q_version, objects;
  int has_new;
};

static void state_read(atr_store *s, const atr_handle *a, const atr_handle *q,
                       struct state *st) {
  uint64_t n;
  atr_store_stats stats;
  atr_info info;
  memset(st, 0, sizeof *st);
  tu_ok(atr_array_get(a, 0, 4, st->a, 4, &n, &st->a_version));
  tu_ok(atr_queue_size(q, &st->q_items, NULL, &st->q_version));
  tu_ok(atr_store_stats_get(s, &stats)); /* never waits for the lock */
  st->objects = stats.objects;
  st->has_new = atr_stat(s, "new", &info) == 0;
}

static void state_same(const struct state *x, const struct state *y) {
  assert_memory_equal(x->a, y->a, sizeof x->a);
  tu_assert_u64(x->a_version, y->a_version);
  tu_assert_u64(x->q_items, y->q_items);
  tu_assert_u64(x->q_version, y->q_version);
  tu_assert_u64(x->objects, y->objects);
  tu_assert_i64(x->has_new, y->has_new);
}

/* The calls that need kind's lock; each must answer ATR_ELOCKED. */
static void calls_refused(atr_store *s, enum lock_kind kind,
                          const atr_handle *a, const atr_handle *q) {
  atr_scalar one = {.i = 1}, vals[2] = {{.i = 7}, {.i = 8}};
  atr_items items = {0};
  atr_handle h;
  char buf[16];
  size_t len;
  switch (kind) {
  case L_ARRAY:
    tu_assert_rc(atr_array_set(a, 1, vals, 2, 0, NULL), ATR_ELOCKED);
    tu_assert_rc(atr_array_add(a, 0, one, NULL, NULL), ATR_ELOCKED);
    tu_assert_rc(atr_delete(s, "a", ATR_ARRAY), ATR_ELOCKED);
    break;
  case L_PUT:
    tu_assert_rc(atr_queue_put(q, "x", 1, 0), ATR_ELOCKED);
    tu_assert_rc(atr_queue_put(q, "x", 1, 5), ATR_ELOCKED);
    tu_assert_rc(atr_queue_clear(q), ATR_ELOCKED);
    tu_assert_rc(atr_delete(s, "q", ATR_QUEUE), ATR_ELOCKED);
    break;
  case L_GET:
    tu_assert_rc(atr_queue_get(q, buf, sizeof buf, &len, 0), ATR_ELOCKED);
    tu_assert_rc(atr_queue_get_batch(q, 100, 5, &items), ATR_ELOCKED);
    tu_assert_u64(items.count, 0);
    tu_assert_rc(atr_queue_clear(q), ATR_ELOCKED);
    tu_assert_rc(atr_delete(s, "q", ATR_QUEUE), ATR_ELOCKED);
    break;
  case L_STORE:
    tu_assert_rc(atr_value_open(s, "new", 'q', ATR_CREATE, NULL, &h),
                 ATR_ELOCKED);
    tu_assert_rc(atr_delete(s, "a", ATR_ANY), ATR_ELOCKED);
    break;
  }
  atr_items_free(&items);
}

static const struct {
  const char *name;
  enum lock_kind kind;
} cases[] = {
    {"an array's lock", L_ARRAY},
    {"a queue's putters' lock", L_PUT},
    {"a queue's getters' lock", L_GET},
    {"the store lock", L_STORE},
};

static void test_live_holder(void **state) {
  tu_fixture *f = fixture(state);
  atr_scalar init[4] = {{.i = 1}, {.i = 2}, {.i = 3}, {.i = 4}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    struct holder_arg arg = {.path = f->path, .kind = cases[k].kind};
    struct state before, after;
    atr_handle a, q, h;
    tu_case("%s", cases[k].name);
    tu_assert_rc(
        atr_array_open(f->store, "a", 'i', 4, ATR_CREATE | ATR_EXCL, init, &a),
        ATR_CREATED);
    tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE | ATR_EXCL, NULL, &q),
                 ATR_CREATED);
    tu_ok(atr_queue_put(&q, "item", 4, 0));
    state_read(f->store, &a, &q, &before);
    tu_pipe(arg.ready);
    pid_t pid = tu_spawn_ready(holder_child, &arg, arg.ready[0]);

    /* Patience 0: refused at once. */
    atr_set_lock_patience(0);
    double t0 = tu_now();
    calls_refused(f->store, cases[k].kind, &a, &q);
    assert_true(tu_now() - t0 < 1.0);
    /* A patience of 0.2 s: refused after it, not before. */
    atr_set_lock_patience(0.2);
    t0 = tu_now();
    if (cases[k].kind == L_STORE)
      tu_assert_rc(atr_value_open(f->store, "new", 'q', ATR_CREATE, NULL, &h),
                   ATR_ELOCKED);
    else if (cases[k].kind == L_ARRAY)
      tu_assert_rc(atr_array_add(&a, 0, (atr_scalar){.i = 1}, NULL, NULL),
                   ATR_ELOCKED);
    else if (cases[k].kind == L_PUT)
      tu_assert_rc(atr_queue_put(&q, "x", 1, 0), ATR_ELOCKED);
    else
      tu_assert_rc(atr_queue_clear(&q), ATR_ELOCKED);
    double took = tu_now() - t0;
    assert_true(took >= 0.19 && took < 2.0);
    state_read(f->store, &a, &q, &after);
    state_same(&before, &after);

    /* The holder dies: with patience 0 the next caller recovers the
     * lock at once and goes on. */
    atr_set_lock_patience(0);
    tu_kill(pid);
    tu_close_pipe(arg.ready);
    tu_ok(atr_array_add(&a, 0, (atr_scalar){.i = 1}, NULL, NULL));
    tu_ok(atr_queue_put(&q, "x", 1, 0));
    tu_assert_u64(atr_queue_clear(&q), 0);
    tu_assert_rc(atr_value_open(f->store, "new", 'q', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
    atr_set_lock_patience(-1);
    tu_ok(atr_delete(f->store, "a", ATR_ARRAY));
    tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
    tu_ok(atr_delete(f->store, "new", ATR_VALUE));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_live_holder, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
