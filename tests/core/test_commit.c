/*
 * test_commit.c - a queue survives its writer dying at each step of a
 * commit: between the stores of a side's commit, and in the middle of
 * growing its ring in place.
 *
 * White-box: a child takes the locks as the library does, makes the
 * library's writes up to a given step, and exits holding the locks.
 * Kills at random (test_kill, test_recover) rarely land between two
 * adjacent stores; this puts a death at each step. The next locker must
 * see the operation either not made at all or made whole.
 */
#include "testutil.h"

#include "internal.h"

#include <string.h>

#define ITEM 8 /* bytes per test item; one takes 16 bytes of ring */

struct commit_case {
  const char *name;
  int put;          /* a put (else a get) dies                    */
  int stores;       /* the stores of atr__qside_commit it made    */
  const char *left; /* the items then found, one letter each     */
};

static const struct commit_case cases[] = {
    {"put dies before its commit", 1, 0, "AC"},
    {"put dies after its intent's count", 1, 1, "AC"},
    {"put dies after its intent", 1, 2, "AC"},
    {"put dies after its count", 1, 3, "ABC"},
    {"put dies after its position", 1, 4, "ABC"},
    {"get dies before its commit", 0, 0, "ABC"},
    {"get dies after its intent's count", 0, 1, "ABC"},
    {"get dies after its intent", 0, 2, "ABC"},
    {"get dies after its count", 0, 3, "BC"},
    {"get dies after its position", 0, 4, "BC"},
};

struct half_arg {
  const char *path;
  const struct commit_case *c;
};

static void fill(char *item, char letter) {
  memset(item, letter, ITEM);
}

/* Puts item B (a put) or takes the head (a get) with c->stores of the
 * library's commit, then exits with the side's lock held. */
static int half_commit(void *arg) {
  const struct half_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  uint32_t slot;
  uint64_t id;
  TU_CHILD_CHECK(atr__lookup(s, "q", 1, &slot, &id) == 0);
  struct atr__obj *o = atr__slot(s, slot);
  struct atr__queue *q = &o->u.q;
  int put = a->c->put;
  struct atr__qside *side = put ? &q->prod : &q->cons;
  struct atr__qside *intent = put ? &q->prod_intent : &q->cons_intent;
  TU_CHILD_CHECK(atr__mutex_lock(put ? &q->put_lock : &o->lock, NULL, NULL) ==
                 0);
  struct atr__qside next = {side->pos + 16, side->items + 1};
  if (put) {
    uint8_t *at = s->base + q->ring_off + side->pos % q->ring_size;
    uint32_t hdr[2] = {ITEM, 0};
    memcpy(at, hdr, sizeof hdr);
    fill((char *)at + sizeof hdr, 'B');
  }
  atr__qside_commit(side, intent, next, a->c->stores);
  return 0; /* _exit, the lock still held: its owner is dead */
}

static void test_half_commits(void **state) {
  tu_fixture *f = *state;
  char item[ITEM], got[ITEM + 1];
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 4096;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const struct commit_case *c = &cases[k];
    atr_handle h;
    tu_case("%s", c->name);
    tu_assert_rc(atr_queue_open(f->store, "q", ATR_CREATE, &qo, &h),
                 ATR_CREATED);
    fill(item, 'A');
    tu_ok(atr_queue_put(&h, item, ITEM, 0));
    if (!c->put) {
      fill(item, 'B');
      tu_ok(atr_queue_put(&h, item, ITEM, 0));
    }
    struct half_arg a = {f->path, c};
    tu_assert_i64(tu_run(half_commit, &a, 10), 0);
    /* Taking both locks repairs the dead side: its intent is the side
     * again (made or forgotten), so that a later commit's half-written
     * intent cannot bring this one back. (Describing a queue takes no
     * lock, so the test takes them as the library's writers do.) */
    uint64_t items, bytes;
    struct atr__obj *o = atr__slot(f->store, h.slot);
    tu_ok(atr__queue_lock_both(f->store, o));
    atr__queue_unlock_both(o);
    const struct atr__queue *q = &o->u.q;
    const struct atr__qside *side = c->put ? &q->prod : &q->cons;
    const struct atr__qside *intent =
        c->put ? &q->prod_intent : &q->cons_intent;
    tu_assert_u64(intent->items, side->items);
    tu_assert_u64(intent->pos, side->pos);
    /* The next put takes the putters' lock. */
    fill(item, 'C');
    tu_ok(atr_queue_put(&h, item, ITEM, 0));
    tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
    tu_assert_u64(items, strlen(c->left));
    tu_assert_u64(bytes, 16 * strlen(c->left));
    for (const char *want = c->left; *want != '\0'; want++) {
      size_t len;
      tu_ok(atr_queue_get(&h, got, sizeof got, &len, 0));
      tu_assert_u64(len, ITEM);
      tu_assert_i64(got[0], *want);
      tu_assert_i64(got[ITEM - 1], *want);
    }
    tu_assert_rc(atr_queue_get(&h, got, sizeof got, NULL, 0), ATR_EEMPTY);
    tu_ok(atr_queue_size(&h, &items, &bytes, NULL));
    tu_assert_u64(items, 0);
    tu_assert_u64(bytes, 0);
    tu_ok(atr_delete(f->store, "q", ATR_QUEUE));
  }
}

/* ------------------------------------------------ growing in place */

struct grow_arg {
  const char *path;
  int commit; /* the move record is committed (else: not yet) */
};

/* Grows the ring of queue "g" backwards into free space as grow() does,
 * scribbles over that space (where wrapped items would be copied) and,
 * if asked, commits the move; exits holding all three locks. */
static int half_grow(void *arg) {
  const struct grow_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  uint32_t slot;
  uint64_t id, got;
  TU_CHILD_CHECK(atr__lookup(s, "g", 1, &slot, &id) == 0);
  struct atr__obj *o = atr__slot(s, slot);
  struct atr__queue *q = &o->u.q;
  TU_CHILD_CHECK(atr__store_lock(s) == 0);
  TU_CHILD_CHECK(atr__mutex_lock(&q->put_lock, NULL, NULL) == 0);
  TU_CHILD_CHECK(atr__record_lock(s, o) == 0);
  uint64_t R = q->ring_size, old = q->ring_off;
  uint64_t off = atr__heap_extend(s, old, R, false, &got);
  TU_CHILD_CHECK(off != 0 && off < old && got >= 2 * R);
  memset(s->base + off, 0xee, old - off);
  if (a->commit) {
    q->move.ring_off = off;
    q->move.ring_size = got;
    q->move.cons_pos = old - off + q->cons.pos % R;
    q->move.prod_pos = q->move.cons_pos + (q->prod.pos - q->cons.pos);
    atomic_store(&q->move.valid, 1);
  }
  return 0;
}

static void test_half_grows(void **state) {
  tu_fixture *f = *state;
  atr_store_stats base, before, st;
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 0; /* grows */
  char item[ITEM], got[ITEM];
  for (int commit = 0; commit < 2; commit++) {
    atr_handle h;
    tu_case(commit ? "grow dies after its commit"
                   : "grow dies before its commit");
    tu_ok(atr_store_stats_get(f->store, &base));
    tu_assert_rc(atr_queue_open(f->store, "g", ATR_CREATE, &qo, &h),
                 ATR_CREATED);
    for (char c = 'A'; c <= 'C'; c++) {
      fill(item, c);
      tu_ok(atr_queue_put(&h, item, ITEM, 0));
    }
    tu_ok(atr_store_stats_get(f->store, &before));
    struct grow_arg a = {f->path, commit};
    tu_assert_i64(tu_run(half_grow, &a, 10), 0);
    /* The store lock's repair rebuilds the heap from the records; the
     * queue's finishes a committed move. */
    tu_ok(atr_store_stats_get(f->store, &st));
    if (commit)
      assert_true(st.used > before.used);
    else
      tu_assert_u64(st.used, before.used);
    fill(item, 'D');
    tu_ok(atr_queue_put(&h, item, ITEM, 0));
    for (char c = 'A'; c <= 'D'; c++) {
      size_t len;
      tu_ok(atr_queue_get(&h, got, sizeof got, &len, 0));
      tu_assert_u64(len, ITEM);
      tu_assert_i64(got[0], c);
      tu_assert_i64(got[ITEM - 1], c);
    }
    tu_assert_rc(atr_queue_get(&h, got, sizeof got, NULL, 0), ATR_EEMPTY);
    tu_ok(atr_delete(f->store, "g", ATR_QUEUE));
    tu_ok(atr_store_stats_get(f->store, &st));
    tu_assert_u64(st.used, base.used);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_half_commits, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_half_grows, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
