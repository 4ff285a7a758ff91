/*
 * test_commit.c - a queue side committed with plain stores survives its
 * committer dying between any two of them.
 *
 * White-box: a child takes a side's lock as the library does, makes the
 * stores of one commit (queue.c, side_store: intent, count, position) up
 * to a given step, and exits holding the lock. Kills at random (test_kill)
 * rarely land between two adjacent stores; this puts a death at each
 * step. The next locker must see the put or get either not made at all
 * (before the count) or made whole.
 */
#include "testutil.h"

#include "internal.h"

#include <string.h>

#define ITEM 8 /* bytes per test item; one takes 16 bytes of ring */

struct commit_case {
  const char *name;
  int put;          /* a put (else a get) dies                  */
  int steps;        /* stores it made: 1 intent, 2 + count, 3 + position */
  const char *left; /* the items then found, one letter each */
};

static const struct commit_case cases[] = {
    {"put dies after its intent", 1, 1, "AC"},
    {"put dies after its count", 1, 2, "ABC"},
    {"put dies after its position", 1, 3, "ABC"},
    {"get dies after its intent", 0, 1, "ABC"},
    {"get dies after its count", 0, 2, "BC"},
    {"get dies after its position", 0, 3, "BC"},
};

struct half_arg {
  const char *path;
  const struct commit_case *c;
};

static void fill(char *item, char letter) {
  memset(item, letter, ITEM);
}

/* Puts item B (a put) or takes the head (a get) up to c->steps stores,
 * then exits with the side's lock held. */
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
  intent->pos = next.pos;
  intent->items = next.items;
  if (a->c->steps >= 2)
    side->items = next.items;
  if (a->c->steps >= 3)
    side->pos = next.pos;
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
    /* The next put takes the putters' lock, finding its owner dead. */
    fill(item, 'C');
    tu_ok(atr_queue_put(&h, item, ITEM, 0));
    uint64_t items, bytes;
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_half_commits, tu_setup, tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
