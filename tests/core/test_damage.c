/*
 * test_damage.c - the store file is input, not trusted memory: each case
 * writes bad bytes into a real store file (through the file, as a stray
 * writer would) and calls the API. The damaged object answers
 * ATR_ECORRUPT (or the open does, for a damaged header), nothing crashes
 * or hangs, and the rest of the store keeps working. Also the rules for
 * opening an existing file: no symlink, no file another user owns or
 * others may write unless the caller opts in, and a store taken over
 * from a dead creator gets the requested mode.
 */
#include "testutil.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static tu_fixture *fixture(void **state) {
  return *state;
}

/* The objects every case starts from. */
struct objs {
  atr_store *s;
  atr_handle v;  /* value "v", 'q'                                */
  atr_handle a;  /* array "a", 'q' x 16                           */
  atr_handle q;  /* bounded queue "q", 4 KiB, two items waiting   */
  atr_handle g;  /* growing queue "g", one item waiting           */
  atr_handle ok; /* value "ok": must keep working whatever happens */
  atr_handle l;  /* lock "l"                                       */
  atr_handle c;  /* condition "c" bound to "l"                     */
  atr_handle m;  /* semaphore "m", value 2, bound 2                */
  atr_handle b;  /* barrier "b" of 2 parties                       */
  atr_handle d;  /* dict "d" with keys "k1" and "k2"               */
};

static void objs_make(struct objs *o) {
  atr_queue_opts qo;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 4096;
  tu_assert_rc(atr_value_open(o->s, "v", 'q', ATR_CREATE, NULL, &o->v),
               ATR_CREATED);
  tu_assert_rc(atr_array_open(o->s, "a", 'q', 16, ATR_CREATE, NULL, &o->a),
               ATR_CREATED);
  tu_assert_rc(atr_queue_open(o->s, "q", ATR_CREATE, &qo, &o->q), ATR_CREATED);
  qo.max_bytes = 0;
  tu_assert_rc(atr_queue_open(o->s, "g", ATR_CREATE, &qo, &o->g), ATR_CREATED);
  tu_assert_rc(atr_value_open(o->s, "ok", 'q', ATR_CREATE, NULL, &o->ok),
               ATR_CREATED);
  for (int i = 0; i < 3; i++)
    tu_ok(atr_queue_put(&o->q, "item", 4, 0));
  char buf[8];
  size_t len;
  tu_ok(atr_queue_get(&o->q, buf, sizeof buf, &len, 0)); /* head mid-ring */
  tu_ok(atr_queue_put(&o->g, "grow", 4, 0));
  tu_assert_rc(atr_lock_open(o->s, "l", ATR_CREATE, 0, &o->l), ATR_CREATED);
  tu_assert_rc(atr_cond_open(o->s, "c", ATR_CREATE, "l", &o->c), ATR_CREATED);
  tu_assert_rc(atr_sem_open(o->s, "m", ATR_CREATE, 2, 2, &o->m), ATR_CREATED);
  tu_assert_rc(atr_barrier_open(o->s, "b", ATR_CREATE, 2, &o->b), ATR_CREATED);
  tu_assert_rc(atr_dict_open(o->s, "d", ATR_CREATE, &o->d), ATR_CREATED);
  tu_assert_rc(atr_dict_set(&o->d, "k1", 2, "v1", 2, 0, NULL), ATR_CREATED);
  tu_assert_rc(atr_dict_set(&o->d, "k2", 2, "v2", 2, 0, NULL), ATR_CREATED);
}

/* Writes n bytes at the store file's offset off, as any writer could. */
static void poke_at(const char *path, uint64_t off, const void *p, size_t n) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
  close(fd);
}

/* Writes over the store's own bytes at p (a pointer into its mapping). */
static void poke(const char *path, const struct objs *o, const void *at,
                 const void *p, size_t n) {
  poke_at(path, (uint64_t)((const uint8_t *)at - o->s->base), p, n);
}

#define POKE(path, o, field, value)                                            \
  do {                                                                         \
    __typeof__(field) v_ = (value);                                            \
    poke((path), (o), &(field), &v_, sizeof v_);                               \
  } while (0)

static struct atr__obj *rec(const atr_handle *h) {
  return h->rec;
}

/* Rewrites a header field in the closed file, with its check fixed up
 * (anyone can compute it). */
static void header_poke(const char *path, size_t off, const void *p, size_t n) {
  struct atr__header h;
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
  memcpy((uint8_t *)&h + off, p, n);
  h.check = atr__store_header_check(&h);
  assert_int_equal(pwrite(fd, &h, offsetof(struct atr__header, lock), 0),
                   (ssize_t)offsetof(struct atr__header, lock));
  close(fd);
}

#define HEADER_POKE(path, field, value)                                        \
  do {                                                                         \
    __typeof__(((struct atr__header *)0)->field) v_ = (value);                 \
    header_poke((path), offsetof(struct atr__header, field), &v_, sizeof v_);  \
  } while (0)

static int die_holding_store(void *arg) {
  atr_store *s = tu_child_open(arg);
  TU_CHILD_CHECK(atr__store_lock(s) == 0);
  return 0;
}

/* Dies holding the record lock of "a", or both locks of "g". */
static int die_holding_array(void *arg) {
  atr_store *s = tu_child_open(arg);
  uint32_t slot;
  uint64_t id;
  /* By its record: opening a damaged array answers ATR_ECORRUPT. */
  TU_CHILD_CHECK(atr__lookup(s, "a", 1, &slot, &id) == 0);
  TU_CHILD_CHECK(atr__record_lock(s, atr__slot(s, slot)) == 0);
  return 0;
}

static int die_holding_queue(void *arg) {
  atr_store *s = tu_child_open(arg);
  atr_handle h;
  TU_CHILD_CHECK(atr_queue_open(s, "g", 0, NULL, &h) == 0);
  TU_CHILD_CHECK(atr__queue_lock_both(s, h.rec) == 0);
  return 0;
}

static int count_listed(const atr_info *info, void *arg) {
  (void)info;
  ++*(int *)arg;
  return 0;
}

/* The rest of the store works: "ok" adds, a new object is made and
 * deleted, the list runs. */
static void rest_works(struct objs *o, bool can_create) {
  atr_scalar one = {.i = 1}, got;
  atr_handle h;
  int listed = 0;
  tu_ok(atr_value_add(&o->ok, one, &got, NULL));
  tu_assert_i64(got.i, 1);
  tu_ok(atr_list(o->s, count_listed, &listed));
  if (can_create) {
    tu_assert_rc(atr_value_open(o->s, "new", 'i', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
    tu_ok(atr_delete(o->s, "new", ATR_VALUE));
  }
}

/* ------------------------------------------------------ damaged records */

struct record_case {
  const char *name;
  /* Writes the bad bytes (the store is open as o->s). */
  void (*damage)(const char *path, struct objs *o);
  /* Calls the API on the damaged object, asserting its answers. */
  void (*expect)(const char *path, struct objs *o);
  bool can_create; /* whether creating objects still works after */
};

static void name_len_ff(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->v)->name_len, 0xff);
}
static void expect_name_len(const char *path, struct objs *o) {
  atr_info info;
  int listed = 0;
  tu_ok(atr_list(o->s, count_listed, &listed));
  tu_assert_i64(listed, 9); /* all but the damaged one */
  tu_assert_rc(atr_handle_stat(&o->v, &info), ATR_ECORRUPT);
  tu_assert_rc(atr_stat(o->s, "v", &info), ATR_ENOENT); /* not findable */
  /* Recovery walks every record: it passes the damaged one by. */
  tu_assert_i64(tu_run(die_holding_store, (void *)path, 10), 0);
  listed = 0;
  tu_ok(atr_list(o->s, count_listed, &listed));
  tu_assert_i64(listed, 9);
}

static void free_slot_out(const char *path, struct objs *o) {
  POKE(path, o, o->s->hdr->free_slot, o->s->hdr->max_objects + 5);
}
static void free_slot_used(const char *path, struct objs *o) {
  POKE(path, o, o->s->hdr->free_slot, o->v.slot + 1);
}
static void expect_no_create(const char *path, struct objs *o) {
  atr_handle h;
  (void)path;
  tu_assert_rc(atr_value_open(o->s, "new", 'i', ATR_CREATE, NULL, &h),
               ATR_ECORRUPT);
  tu_ok(atr_value_get(&o->v, NULL, NULL));
}

static void heap_free_huge(const char *path, struct objs *o) {
  POKE(path, o, o->s->hdr->heap_free, (uint64_t)1 << 40);
}
static void heap_free_cycle(const char *path, struct objs *o) {
  /* The first free block links to itself and is too small for anything. */
  uint64_t off = o->s->hdr->heap_free;
  uint64_t blk[4] = {128 | 1, 0, off, off};
  poke_at(path, off, blk, sizeof blk);
}
/* The free list is derived state: the create that finds it damaged
 * makes it again from the records, and gets its block. */
static void expect_heap_rebuilt(const char *path, struct objs *o) {
  atr_handle h;
  (void)path;
  tu_assert_rc(atr_array_open(o->s, "new", 'q', 1000, ATR_CREATE, NULL, &h),
               ATR_CREATED);
  tu_ok(atr_delete(o->s, "new", ATR_ARRAY));
  tu_ok(atr_array_set(&o->a, 0, (atr_scalar[]){{.i = 5}}, 1, 0, NULL));
}

static void array_length_2_32(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->a)->u.a.length, (uint64_t)1 << 32);
}
static void array_esize_2_20(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->a)->u.a.esize, 1u << 20);
}
static void array_data_off(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->a)->data_off, (uint64_t)o->s->size - 64);
}
static void array_data_off_2_63(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->a)->data_off, (uint64_t)1 << 63);
}
static void expect_array_corrupt(const char *path, struct objs *o) {
  atr_scalar out[16], one = {.i = 1};
  atr_info info;
  atr_handle h;
  uint64_t n;
  (void)path;
  tu_assert_rc(atr_array_get(&o->a, 0, 16, out, 16, &n, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_array_set(&o->a, 0, out, 1, 0, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_array_add(&o->a, 3, one, NULL, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_array_length(&o->a, &n), ATR_ECORRUPT);
  tu_assert_rc(atr_handle_stat(&o->a, &info), ATR_ECORRUPT);
  tu_assert_rc(atr_array_open(o->s, "a", 'q', 0, 0, NULL, &h), ATR_ECORRUPT);
  /* Recovery rebuilds the heap around a block that is not there. */
  tu_assert_i64(tu_run(die_holding_store, (void *)path, 10), 0);
  tu_assert_rc(atr_array_get(&o->a, 0, 16, out, 16, &n, NULL), ATR_ECORRUPT);
  tu_ok(atr_delete(o->s, "a", ATR_ARRAY));
}

static void array_log_huge(const char *path, struct objs *o) {
  struct atr__obj *r = rec(&o->a);
  POKE(path, o, r->u.a.log_count, (uint64_t)1 << 40);
  POKE(path, o, r->u.a.log_valid, 1);
  tu_assert_i64(tu_run(die_holding_array, (void *)path, 10), 0);
}
static void expect_log_dropped(const char *path, struct objs *o) {
  atr_scalar out[1], v = {.i = 7};
  uint64_t n;
  (void)path;
  /* The repair finds a log that does not fit and replays nothing. */
  tu_ok(atr_array_set(&o->a, 0, &v, 1, 0, NULL));
  tu_ok(atr_array_get(&o->a, 0, 1, out, 1, &n, NULL));
  tu_assert_i64(out[0].i, 7);
}

static void ring_size_0(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->q)->u.q.ring_size, 0);
}
static void ring_off_out(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->q)->u.q.ring_off, (uint64_t)o->s->size - 64);
}
static void item_past_ring(const char *path, struct objs *o) {
  /* A length that fits the ring but not from where the item starts. */
  struct atr__queue *q = &rec(&o->q)->u.q;
  uint32_t len = (uint32_t)q->ring_size - 8;
  poke_at(path, q->ring_off + q->cons.pos % q->ring_size, &len, sizeof len);
}
static void prod_far_ahead(const char *path, struct objs *o) {
  struct atr__queue *q = &rec(&o->q)->u.q;
  POKE(path, o, q->prod.pos, q->cons.pos + ((uint64_t)1 << 40));
  POKE(path, o, q->prod_intent.pos, q->cons.pos + ((uint64_t)1 << 40));
  POKE(path, o, q->cons_seen.pos, q->cons.pos); /* the put looks again */
}
static void expect_queue_corrupt(const char *path, struct objs *o) {
  char buf[4096];
  size_t len;
  (void)path;
  tu_assert_rc(atr_queue_get(&o->q, buf, sizeof buf, &len, 0), ATR_ECORRUPT);
  tu_assert_rc(atr_queue_put(&o->q, "x", 1, 0), ATR_ECORRUPT);
  tu_ok(atr_delete(o->s, "q", ATR_QUEUE));
}
static void expect_get_corrupt(const char *path, struct objs *o) {
  char buf[4096];
  size_t len;
  (void)path;
  tu_assert_rc(atr_queue_get(&o->q, buf, sizeof buf, &len, 0), ATR_ECORRUPT);
}
static void expect_put_corrupt(const char *path, struct objs *o) {
  (void)path;
  tu_assert_rc(atr_queue_put(&o->q, "x", 1, 0), ATR_ECORRUPT);
}

static void move_out(const char *path, struct objs *o) {
  struct atr__queue *q = &rec(&o->g)->u.q;
  POKE(path, o, q->move.ring_off, (uint64_t)1 << 45);
  POKE(path, o, q->move.ring_size, (uint64_t)1 << 20);
  POKE(path, o, q->move.valid, 1);
  tu_assert_i64(tu_run(die_holding_queue, (void *)path, 10), 0);
}
static void expect_move_dropped(const char *path, struct objs *o) {
  char buf[16];
  size_t len;
  (void)path;
  /* The repair drops a move that does not fit: the queue stays put. */
  tu_ok(atr_queue_get(&o->g, buf, sizeof buf, &len, 0));
  tu_assert_u64(len, 4);
  tu_ok(atr_queue_put(&o->g, "x", 1, 0));
}

static void counts_past_bytes(const char *path, struct objs *o) {
  struct atr__queue *q = &rec(&o->g)->u.q;
  POKE(path, o, q->prod.items, q->prod.items + 1000000);
  POKE(path, o, q->prod_intent.items, q->prod.items + 1000000);
}
static void expect_grow_corrupt(const char *path, struct objs *o) {
  static char big[60000];
  (void)path;
  /* The second does not fit the first ring: the move finds the count
   * of items past what their bytes can hold. */
  int rc = atr_queue_put(&o->g, big, sizeof big, 0);
  if (rc == 0)
    rc = atr_queue_put(&o->g, big, sizeof big, 0);
  tu_assert_rc(rc, ATR_ECORRUPT);
}

static void cond_table_out(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->c)->u.c.table_off, (uint64_t)o->s->size - 64);
}
static void expect_cond_corrupt(const char *path, struct objs *o) {
  atr_info info;
  (void)path;
  tu_assert_rc(atr_stat(o->s, "c", &info), ATR_ECORRUPT);
  tu_ok(atr_lock_acquire(&o->l, 0, NULL));
  tu_assert_rc(atr_cond_notify(&o->c, 0, 1, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_cond_wait(&o->c, 0, NULL, NULL), ATR_ECORRUPT);
  tu_ok(atr_lock_release(&o->l));
  tu_ok(atr_delete(o->s, "c", ATR_CONDITION));
}

/* The lock's word names a thread that is not there (a TID of ours the
 * kernel never matches): it is held, by no one; a break frees it. */
static void lock_word_stranger(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->l)->u.l.hold[0].word, 0x3ffffffdu);
  POKE(path, o, rec(&o->l)->u.l.cur, 6); /* read as 0 */
}
static void expect_lock_breakable(const char *path, struct objs *o) {
  atr_info info;
  (void)path;
  tu_ok(atr_stat(o->s, "l", &info));
  tu_assert_rc(atr_lock_acquire(&o->l, 0, NULL), ATR_ETIMEDOUT);
  tu_assert_rc(atr_lock_lease(&o->l, 1, 0, 0, NULL), ATR_ETIMEDOUT);
  tu_assert_rc(atr_lock_release(&o->l), ATR_ENOTHELD);
  tu_ok(atr_lock_break(&o->l));
  tu_ok(atr_lock_acquire(&o->l, 0, NULL));
  tu_ok(atr_lock_release(&o->l));
}

/* A semaphore's or barrier's table past the store, or of another size
 * than its record says: every call that reads it answers ECORRUPT, and
 * it can be deleted. */
/* Queue "q" with a lease table: one of its items taken under a lease. */
static void lq_lease_one(struct objs *o, uint64_t *receipt) {
  atr_items it = {0};
  uint32_t d;
  tu_ok(atr_queue_get_leased(&o->q, 1, 60, ATR_LEASE_DETACHED, 0, &it, receipt,
                             &d));
  atr_items_free(&it);
}
static void lq_table_out(const char *path, struct objs *o) {
  uint64_t r;
  lq_lease_one(o, &r);
  POKE(path, o, rec(&o->q)->data_off, (uint64_t)o->s->size - 64);
}
static void lq_table_cap_big(const char *path, struct objs *o) {
  uint64_t r;
  lq_lease_one(o, &r);
  struct atr__ltable *t = atr__lq_table(o->s, rec(&o->q));
  assert_non_null(t);
  POKE(path, o, t->cap, 60000u);
}
static void expect_lq_corrupt(const char *path, struct objs *o) {
  atr_items it = {0};
  uint64_t r = 1, unknown[1];
  uint32_t d;
  size_t nu;
  (void)path;
  tu_assert_rc(atr_queue_get_leased(&o->q, 1, 60, 0, 0, &it, &r, &d),
               ATR_ECORRUPT);
  tu_assert_rc(atr_queue_ack(&o->q, &r, 1, unknown, &nu), ATR_ECORRUPT);
  tu_assert_rc(atr_queue_nack(&o->q, &r, 1, 0, unknown, &nu), ATR_ECORRUPT);
  tu_assert_rc(atr_queue_touch(&o->q, &r, 1, 1, unknown, &nu), ATR_ECORRUPT);
  atr_items_free(&it);
  tu_ok(atr_delete(o->s, "q", ATR_QUEUE));
}
/* A leased item's place whose block lies past the store: given back (a
 * nack), its bytes are never read from there. */
static void lq_block_out(const char *path, struct objs *o) {
  uint64_t r;
  lq_lease_one(o, &r);
  tu_ok(atr_queue_nack(&o->q, &r, 1, 0, NULL, NULL));
  struct atr__ltable *t = atr__lq_table(o->s, rec(&o->q));
  assert_non_null(t);
  POKE(path, o, t->slot[r & 0xffff].blk_off, (uint64_t)o->s->size - 64);
}
static void expect_lq_block_corrupt(const char *path, struct objs *o) {
  atr_items it = {0};
  uint64_t r;
  uint32_t d;
  char buf[16];
  size_t len;
  (void)path;
  tu_assert_rc(atr_queue_get_leased(&o->q, 1, 60, 0, 0, &it, &r, &d),
               ATR_ECORRUPT);
  tu_assert_rc(atr_queue_get(&o->q, buf, sizeof buf, &len, 0), ATR_ECORRUPT);
  atr_items_free(&it);
  tu_ok(atr_delete(o->s, "q", ATR_QUEUE));
}
static void sem_table_out(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->m)->data_off, (uint64_t)o->s->size - 64);
}
static void sem_table_big(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->m)->u.sem.table_cap, 1000000u);
}
static void expect_sem_corrupt(const char *path, struct objs *o) {
  atr_info info;
  atr_grant g;
  (void)path;
  tu_assert_rc(atr_stat(o->s, "m", &info), ATR_ECORRUPT);
  tu_assert_rc(atr_sem_lease(&o->m, 1, 0, &g), ATR_ECORRUPT);
  tu_assert_rc(atr_sem_unlease(&o->m, 1, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_sync_expire(&o->m), ATR_ECORRUPT);
  tu_ok(atr_delete(o->s, "m", ATR_SEMAPHORE));
}
static void barrier_table_out(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->b)->data_off, (uint64_t)o->s->size - 64);
}
static void barrier_parties_big(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->b)->u.b.parties, 4000u);
}
static void expect_barrier_corrupt(const char *path, struct objs *o) {
  atr_info info;
  uint64_t ticket;
  (void)path;
  tu_assert_rc(atr_stat(o->s, "b", &info), ATR_ECORRUPT);
  tu_assert_rc(atr_barrier_wait(&o->b, 0, NULL, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_barrier_arrive(&o->b, 1, &ticket), ATR_ECORRUPT);
  tu_assert_rc(atr_barrier_abort(&o->b), ATR_ECORRUPT);
  tu_assert_rc(atr_sync_expire(&o->b), ATR_ECORRUPT);
  tu_ok(atr_delete(o->s, "b", ATR_BARRIER));
}

/* A dict's arena is read from the file: its place, its header, its
 * entries. */
static void dict_arena_out(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->d)->u.d.arena_off, (uint64_t)o->s->size - 64);
}
static void dict_used_past(const char *path, struct objs *o) {
  POKE(path, o, rec(&o->d)->u.d.used, rec(&o->d)->u.d.arena_size + 4096);
}
static void dict_buckets_huge(const char *path, struct objs *o) {
  /* The arena header's bucket count (after its 8-byte magic). */
  uint64_t at = rec(&o->d)->u.d.arena_off + 8;
  uint64_t nb = (uint64_t)1 << 40;
  poke_at(path, at, &nb, sizeof nb);
}
static void dict_entries_wild(const char *path, struct objs *o) {
  /* Every bucket of the table (16 at first, after the 64-byte header and
   * the 4 KiB key ring) names an entry past the arena. */
  uint64_t at = rec(&o->d)->u.d.arena_off + 64 + 4096, wild[16];
  for (int i = 0; i < 16; i++)
    wild[i] = (uint64_t)1 << 50;
  poke_at(path, at, wild, sizeof wild);
}
/* Entries damaged: every call that reads them (the ring of key changes
 * is apart, and still whole). */
static void expect_dict_entries_corrupt(const char *path, struct objs *o) {
  atr_dict_items it = {0};
  struct iovec k = {"k1", 2};
  char buf[8];
  (void)path;
  tu_assert_rc(atr_dict_get(&o->d, "k1", 2, buf, sizeof buf, NULL, NULL),
               ATR_ECORRUPT);
  tu_assert_rc(atr_dict_set(&o->d, "k3", 2, "v", 1, 0, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_dict_pop(&o->d, "k1", 2, 0, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_dict_read(&o->d, &k, 1, &it, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_dict_page(&o->d, NULL, 0, 0, &it, NULL, NULL), ATR_ECORRUPT);
  tu_assert_u64(it.count, 0);
  tu_ok(atr_dict_changes(&o->d, 0, &it, NULL, NULL));
  atr_dict_items_free(&it);
  tu_ok(atr_delete(o->s, "d", ATR_DICT));
}
/* The arena's place or shape damaged: every call. */
static void expect_dict_corrupt(const char *path, struct objs *o) {
  atr_dict_items it = {0};
  char buf[8];
  (void)path;
  tu_assert_rc(atr_dict_get(&o->d, "k1", 2, buf, sizeof buf, NULL, NULL),
               ATR_ECORRUPT);
  tu_assert_rc(atr_dict_set(&o->d, "k3", 2, "v", 1, 0, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_dict_page(&o->d, NULL, 0, 0, &it, NULL, NULL), ATR_ECORRUPT);
  tu_assert_rc(atr_dict_changes(&o->d, 0, &it, NULL, NULL), ATR_ECORRUPT);
  tu_assert_u64(it.count, 0);
  atr_dict_items_free(&it);
  tu_ok(atr_delete(o->s, "d", ATR_DICT));
}
static void expect_dict_stat_corrupt(const char *path, struct objs *o) {
  atr_info info;
  tu_assert_rc(atr_stat(o->s, "d", &info), ATR_ECORRUPT);
  expect_dict_corrupt(path, o);
}

static const struct record_case record_cases[] = {
    {"dict arena past the store", dict_arena_out, expect_dict_stat_corrupt,
     true},
    {"dict entries past its arena", dict_used_past, expect_dict_corrupt, true},
    {"dict buckets past its arena", dict_buckets_huge, expect_dict_corrupt,
     true},
    {"dict buckets name entries past it", dict_entries_wild,
     expect_dict_entries_corrupt, true},
    {"semaphore table past the store", sem_table_out, expect_sem_corrupt, true},
    {"semaphore table larger than its block", sem_table_big, expect_sem_corrupt,
     true},
    {"barrier table past the store", barrier_table_out, expect_barrier_corrupt,
     true},
    {"barrier parties past its table", barrier_parties_big,
     expect_barrier_corrupt, true},
    {"condition table past the store", cond_table_out, expect_cond_corrupt,
     true},
    {"lock word a stranger's", lock_word_stranger, expect_lock_breakable, true},
    {"name_len 0xff", name_len_ff, expect_name_len, true},
    {"free_slot out of range", free_slot_out, expect_no_create, false},
    {"free_slot names a live record", free_slot_used, expect_no_create, false},
    {"heap_free past the store", heap_free_huge, expect_heap_rebuilt, true},
    {"heap free list cycle", heap_free_cycle, expect_heap_rebuilt, true},
    {"array length 2^32", array_length_2_32, expect_array_corrupt, true},
    {"array esize 2^20", array_esize_2_20, expect_array_corrupt, true},
    {"array data past the store", array_data_off, expect_array_corrupt, true},
    {"array data at 2^63", array_data_off_2_63, expect_array_corrupt, true},
    {"array redo log past the array", array_log_huge, expect_log_dropped, true},
    {"queue ring_size 0", ring_size_0, expect_queue_corrupt, true},
    {"queue ring past the store", ring_off_out, expect_queue_corrupt, true},
    {"queue item runs past the ring", item_past_ring, expect_get_corrupt, true},
    {"queue putters a ring ahead", prod_far_ahead, expect_put_corrupt, true},
    {"queue move past the store", move_out, expect_move_dropped, true},
    {"queue counts past its bytes", counts_past_bytes, expect_grow_corrupt,
     true},
    {"queue lease table past the store", lq_table_out, expect_lq_corrupt, true},
    {"queue lease table's places past its block", lq_table_cap_big,
     expect_lq_corrupt, true},
    {"queue leased item's block past the store", lq_block_out,
     expect_lq_block_corrupt, true},
};

static void test_damaged_records(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts opts;
  tu_small_opts(&opts);
  for (size_t i = 0; i < sizeof record_cases / sizeof record_cases[0]; i++) {
    const struct record_case *c = &record_cases[i];
    struct objs o;
    tu_case("%s", c->name);
    unlink(f->path);
    memset(&o, 0, sizeof o);
    tu_ok(atr_store_open(f->path, &opts, &o.s));
    objs_make(&o);
    c->damage(f->path, &o);
    c->expect(f->path, &o);
    rest_works(&o, c->can_create);
    atr_store_close(o.s);
  }
}

/* ------------------------------------------------------ damaged headers */

static void hdr_feed_entries_0(const char *path) {
  HEADER_POKE(path, feed_entries, 0);
}
static void hdr_max_objects_huge(const char *path) {
  HEADER_POKE(path, max_objects, 1u << 30);
}
static void hdr_max_objects_all_ones(const char *path) {
  HEADER_POKE(path, max_objects, UINT32_MAX);
}
/* One object more than the store's size holds: the tables would end
 * past the mapping by less than a record. */
static void hdr_max_objects_past_fit(const char *path) {
  HEADER_POKE(path, max_objects, atr_store_fits(4u << 20) + 1);
  HEADER_POKE(path, feed_entries, atr_store_fits(4u << 20) + 1);
}
static void hdr_index_slots_huge(const char *path) {
  HEADER_POKE(path, index_slots, 1u << 30);
}
static void hdr_heap_off_moved(const char *path) {
  HEADER_POKE(path, heap_off, 4096);
}
static void hdr_feed_off_past(const char *path) {
  HEADER_POKE(path, feed_off, (uint64_t)1 << 40);
}

static const struct {
  const char *name;
  void (*damage)(const char *path);
} header_cases[] = {
    {"feed_entries 0", hdr_feed_entries_0},
    {"max_objects 2^30", hdr_max_objects_huge},
    {"max_objects 2^32 - 1", hdr_max_objects_all_ones},
    {"max_objects one past what fits", hdr_max_objects_past_fit},
    {"index_slots 2^30", hdr_index_slots_huge},
    {"heap_off inside the tables", hdr_heap_off_moved},
    {"feed_off past the store", hdr_feed_off_past},
};

/* Every field of the header is checked against the file's size, with
 * the tables derived from the counts: a check fixed up is no pass. */
static void test_damaged_headers(void **state) {
  tu_fixture *f = fixture(state);
  atr_store_opts opts;
  atr_store *s;
  tu_small_opts(&opts);
  for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
    tu_case("%s", header_cases[i].name);
    unlink(f->path);
    tu_ok(atr_store_open(f->path, &opts, &s));
    atr_store_close(s);
    header_cases[i].damage(f->path);
    opts.open_only = 1;
    tu_assert_rc(atr_store_open(f->path, &opts, &s), ATR_ECORRUPT);
    opts.open_only = 0;
  }
}

/* ------------------------------------------------------ opening a file */

static int open_errno(const char *path, const atr_store_opts *opts) {
  atr_store *s = NULL;
  errno = 0;
  int rc = atr_store_open(path, opts, &s);
  atr_store_close(s);
  return rc == ATR_ESYS ? -errno : rc;
}

static void test_open_rules(void **state) {
  tu_fixture *f = fixture(state);
  const char *link = tu_path_new(f);
  atr_store_opts opts;
  atr_store *s;
  struct stat st;
  tu_small_opts(&opts);
  tu_ok(atr_store_open(f->path, &opts, &s));
  atr_store_close(s);

  tu_case("a symlink to a store");
  assert_int_equal(symlink(f->path, link), 0);
  tu_assert_i64(open_errno(link, &opts), -ELOOP);

  static const struct {
    unsigned file_mode, want_mode;
    int shared, expect;
  } modes[] = {
      {0600, 0600, 0, 0}, {0660, 0600, 0, -EACCES}, {0606, 0600, 0, -EACCES},
      {0660, 0660, 0, 0}, {0606, 0660, 0, -EACCES}, {0666, 0600, 1, 0},
  };
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    tu_case("file %o, asked %o, shared %d", modes[i].file_mode,
            modes[i].want_mode, modes[i].shared);
    assert_int_equal(chmod(f->path, modes[i].file_mode), 0);
    opts.mode = modes[i].want_mode;
    opts.shared = modes[i].shared;
    tu_assert_i64(open_errno(f->path, &opts), modes[i].expect);
  }
  opts.mode = 0600;
  opts.shared = 0;
  assert_int_equal(chmod(f->path, 0600), 0);
  if (geteuid() == 0) {
    tu_case("a store owned by another user");
    assert_int_equal(chown(f->path, 65534, 65534), 0);
    tu_assert_i64(open_errno(f->path, &opts), -EACCES);
    opts.shared = 1;
    tu_assert_i64(open_errno(f->path, &opts), 0);
    opts.shared = 0;
  }

  tu_case("a store taken over from a dead creator");
  /* What a creator leaves when it dies after the header's fixed part:
   * not ready, not locked, and its own mode. */
  struct atr__header h;
  int fd = open(f->path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
  close(fd);
  atomic_store(&h.ready, 0);
  unlink(f->path);
  fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0644);
  assert_true(fd >= 0);
  assert_int_equal(fchmod(fd, 0644), 0);
  assert_int_equal(write(fd, &h, offsetof(struct atr__header, lock)),
                   (ssize_t)offsetof(struct atr__header, lock));
  close(fd);
  opts.mode = 0600;
  tu_ok(atr_store_open(f->path, &opts, &s));
  atr_store_close(s);
  assert_int_equal(stat(f->path, &st), 0);
  tu_assert_u64(st.st_mode & 07777, 0600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_damaged_records, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_damaged_headers, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_open_rules, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
