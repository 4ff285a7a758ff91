/*
 * internal.h - the store's layout and the core's private interfaces.
 *
 * The store file, as every process maps it (offsets, never pointers):
 *
 *   [header 4 KiB][name index][object slots][change feed][heap ........]
 *
 * - The name index is an open-addressing hash table of 64-bit entries
 *   (slot number and a hash tag), read lock-free, written under the
 *   store lock. One aligned store commits an insert or a delete.
 * - Object slots are fixed 512-byte records, one per object, only ever
 *   reused for another object's record. Everything a stale handle may
 *   touch (the value pair, the id, the locks, the futex words) lives here,
 *   so a handle to a deleted object reads a record, never foreign data.
 * - The heap holds array and queue data (boundary-tag blocks, first fit).
 *   Its free list is derived state: after a crash it is rebuilt from the
 *   live objects.
 * - The change feed is a ring of events written lock-free by every
 *   process; readers detect laps and holes by sequence numbers.
 */
#ifndef ATRIUM_INTERNAL_H
#define ATRIUM_INTERNAL_H

/* Private to core/ (and its white-box tests): the build defines
 * ATR__CORE_BUILD only there, so anything else including this fails. */
#ifndef ATR__CORE_BUILD
#error "internal.h is private to core/: include <atrium.h> instead"
#endif

#include "atrium.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/futex.h> /* struct robust_list_head */

#define ATR__EXPORT __attribute__((visibility("default")))

#define ATR__MAGIC "ATRIUMST"
#define ATR__LAYOUT 3u
#define ATR__READY 0x52454459u /* "REDY" */
#define ATR__HEADER_SIZE 4096u
#define ATR__SLOT_SIZE 512u
#define ATR__FEED_ENTRY_SIZE 96u
#define ATR__ALIGN 64u
/* The name order (order.c): a skip list of at most this many levels,
 * one node per record. */
#define ATR__ORDER_LEVELS 11u
#define ATR__ORDER_NODE_SIZE 64u

/* A version with this bit set belongs to a value that is being deleted. */
#define ATR__DEAD (UINT64_C(1) << 63)
/* The waiter bit of a futex eventcount: set by a sleeper, cleared by the
 * waker that bumps the count (so a killed sleeper costs one wake). */
#define ATR__EC_WAITERS 0x80000000u

__extension__ typedef unsigned __int128 atr__u128 __attribute__((aligned(16)));

struct atr__array {
  _Atomic uint64_t seq; /* seqlock: odd while the data is being written */
  uint64_t version;
  uint64_t length;
  _Atomic uint32_t log_valid; /* 1: the redo log holds a committed write */
  uint32_t esize;
  uint64_t log_start, log_count, log_version;
};

/* One side of a queue (see queue.c for how it is committed). */
struct atr__qside {
  uint64_t pos;   /* ring position (grows for ever)       */
  uint64_t items; /* items that ever passed this side     */
};

/*
 * A side's commit: plain stores, in this order: the intent's count, the
 * intent's position, the count (the commit point: getters act on the
 * putters' count only), the position. A process killed after any prefix
 * of them leaves a state that atr__qside_repair, run by the next holder
 * of the side's lock, makes whole: the commit either not made, or made.
 * Release stores keep the compiler to this order (x86 keeps it anyway)
 * and the item copies before it. `stores` is ATR__QSIDE_STORES but in
 * test_commit, which dies after each prefix.
 */
#define ATR__QSIDE_STORES 4
static inline void atr__qside_commit(struct atr__qside *side,
                                     struct atr__qside *intent,
                                     struct atr__qside next, int stores) {
  if (stores > 0)
    __atomic_store_n(&intent->items, next.items, __ATOMIC_RELEASE);
  if (stores > 1)
    __atomic_store_n(&intent->pos, next.pos, __ATOMIC_RELEASE);
  if (stores > 2)
    __atomic_store_n(&side->items, next.items, __ATOMIC_RELEASE);
  if (stores > 3)
    __atomic_store_n(&side->pos, next.pos, __ATOMIC_RELEASE);
}

/*
 * After a commit died: one whose count is in gets its position (its
 * intent is whole: the intent's count is written first); one whose count
 * is not is forgotten. One that changes only the position may go either
 * way. Both leave the intent equal to the side, as every whole commit
 * does: a later commit that dies after its intent's count then finds the
 * side's own position there, never this dead commit's.
 */
static inline void atr__qside_repair(struct atr__qside *side,
                                     struct atr__qside *intent) {
  if (side->items == intent->items)
    side->pos = intent->pos;
  else
    *intent = *side;
}

/* A move to a larger ring, written aside and committed by `valid`;
 * whoever next takes one of the queue's locks finishes it. */
struct atr__qmove {
  _Atomic uint64_t valid;
  uint64_t ring_off, ring_size, prod_pos, cons_pos;
};

/*
 * A queue has two locks: getters take the record's lock, putters
 * put_lock, so one producer and one consumer never wait for each other.
 * Each side commits its position with plain stores behind an intent,
 * and reads the other's with plain loads. Changes to the ring itself take both
 * (put, then get). Every line has one writer in the steady state: what both
 * sides read on each call is on a line neither writes.
 */
struct atr__queue {
  /* line 3: set at creation or under both locks; read by both sides */
  _Alignas(64) uint64_t ring_off;
  uint64_t ring_size;
  uint64_t maxsize, max_item;
  uint64_t base; /* version base */
  uint32_t grow; /* no byte bound: the ring grows */
  /* A clear's done count, written aside (under both locks) and
   * committed by the getters' side: clear_cons is the getters' item count
   * that commits it, + 1 (0: none). */
  uint64_t clear_cons, clear_done;
  /* line 4: the getters' side */
  _Alignas(64) struct atr__qside cons;
  struct atr__qside cons_intent;
  uint64_t gets;      /* get commits, counted before each */
  uint64_t prod_seen; /* items put, as a getter last read it */
  /* The coalescing mark of pops (the record's `pend` serves puts), so
   * that puts and pops taking turns do not publish an event each. */
  _Atomic uint64_t pend_pop;
  /* Items done (task_done, acks, clears, dead letters), never past the
   * items put; changed under the getters' lock (lease.c, tasks.c). */
  _Atomic uint64_t done;
  /* line 5: the putters' lock and what only putters touch; put_lock is
   * initialised once, at store creation, like the record's lock */
  _Alignas(64) pthread_mutex_t put_lock;
  struct atr__qside cons_seen; /* the getters' side, as last read */
  uint64_t puts;               /* put commits, counted before each */
  /* line 6: the putters' side, apart from their lock, which a getter
   * looking at it would otherwise take away from a putter */
  _Alignas(64) struct atr__qside prod;
  struct atr__qside prod_intent;
  /* line 7: the eventcounts, written only by a side about to sleep and
   * by the other side waking it, and the rare move */
  _Alignas(64) _Atomic uint32_t ec_put; /* bumped after items arrive */
  _Atomic uint32_t ec_get;              /* bumped after items leave */
  struct atr__qmove move;
};

/* Holds (robust.c: see its section below). */
#define ATR__TID_MASK 0x3fffffffu   /* FUTEX_TID_MASK */
#define ATR__OWNER_DIED 0x40000000u /* FUTEX_OWNER_DIED */
#define ATR__WAITERS 0x80000000u    /* FUTEX_WAITERS */
/* No thread has a TID above PID_MAX_LIMIT (2^22): the TIDs above it
 * are markers of ours that the kernel never matches. */
#define ATR__TID_MAX 0x400000u
/* The TID of a lease: the whole TID mask. */
#define ATR__LEASE_TID ATR__TID_MASK

struct atr__hold {
  _Atomic uint32_t word;
  uint32_t flags;      /* the kind's own bits */
  uint64_t nonce;      /* process hold: its thread's nonce; lease: token */
  int64_t deadline_ns; /* lease: its end on CLOCK_MONOTONIC */
  /* glibc's __pthread_list_t: the robust list runs through `next` (the
   * kernel finds the word at next + futex_offset); `prev` is glibc's
   * back link (__PTHREAD_MUTEX_HAVE_PREV), which its own enqueue and
   * dequeue write into whatever entry is beside theirs. Pointers of the
   * holding thread's process: only that thread reads them. */
  void *prev;
  void *next;
};
_Static_assert((ptrdiff_t)offsetof(struct atr__hold, word) -
                       (ptrdiff_t)offsetof(struct atr__hold, next) ==
                   (ptrdiff_t)offsetof(pthread_mutex_t, __data.__lock) -
                       (ptrdiff_t)offsetof(pthread_mutex_t,
                                           __data.__list.__next),
               "a hold's list entry must sit where a robust mutex keeps its");
_Static_assert(offsetof(struct atr__hold, prev) ==
                   offsetof(pthread_mutex_t, __data.__list.__prev),
               "a hold's back link must sit where a robust mutex keeps its");

/* A lock (lock.c). Its holder's hold is hold[cur]; the other is where a
 * process hold broken by atr_lock_break stays linked until its thread
 * lets go (see lock.c). Only the holder writes count and fence while it
 * holds a process hold; lease bookkeeping is under the record lock. */
struct atr__lock_state {
  struct atr__hold hold[2];
  uint64_t count;      /* the holder's depth; read only while held (a process
                          holder's release leaves it at 1)                  */
  uint64_t fence;      /* the holding acquisition's fence; 0 while free */
  uint64_t last_fence; /* the last acquisition's, or the break or expiry that
                          spent it */
  _Atomic uint64_t pend_rel; /* coalescing mark of "released"          */
  _Atomic uint32_t waiters;  /* threads waiting now (advisory)         */
  _Atomic uint8_t cur;       /* which hold is the lock's              */
  uint8_t reentrant;
};

/* A condition (condition.c): bound to a lock record by slot and id; its
 * waiters' line is a table of places in a heap block. */
struct atr__cond_state {
  uint64_t lock_id;
  uint32_t lock_slot;
  uint32_t places; /* places in the table                          */
  uint64_t table_off, table_size;
  uint64_t next_ticket; /* under the record lock                  */
  _Atomic uint32_t seq; /* bumped by notify and kill: waiters sleep on it */
  _Atomic uint32_t waiters;
  char lock_name[ATR_NAME_MAX];
};

/* o->dead of a deleted record kept off the free list while a thread may
 * still have one of its holds linked (the kind's `lingers` op). */
#define ATR__LINGER 2

/*
 * A flag (flag.c): one 64-bit word changed by CAS. Its low half is the
 * futex word waiters sleep on: (sets << 1) | set, sets counting the sets
 * (a set is the only change that wakes anyone); its high half counts the
 * waiters registered since the last set (advisory: a set zeroes it).
 * Little-endian: the low half is at the word's own address.
 */
struct atr__flag {
  _Atomic uint64_t state;
};

/*
 * A semaphore (semaphore.c): the free permits and the leased ones in one
 * 64-bit word changed by CAS, so a bound is checked exactly without a
 * lock. Low half, the futex word: the free permits (value), bit 31 set
 * by a waiter about to sleep; high half: the leased permits out, and
 * bit 63 once the semaphore is deleted. The table of leased permits is
 * the record's heap block (data_off, data_size).
 */
struct atr__sem {
  _Atomic uint64_t state;
  _Atomic uint64_t pend_rel; /* the coalescing mark of "released" */
  uint64_t bound;            /* 0: none */
  uint32_t table_cap;        /* places in the table of leased permits */
  _Atomic uint32_t waiters;  /* advisory */
};

/*
 * A barrier (barrier.c): its bookkeeping changes under the record lock
 * (read lock-free to describe it); `seq` is the futex word every waiter
 * sleeps on, bumped when a round passes, breaks or resets and at delete.
 * Its places (2 x parties holds) are the record's heap block.
 */
struct atr__barrier {
  _Atomic uint32_t seq;
  uint32_t parties;
  uint32_t count;      /* arrived in this round */
  uint32_t broken;     /* 1 until a reset */
  uint64_t generation; /* rounds passed or reset */
  uint32_t table_cap;  /* places: 2 x parties */
  uint32_t pad;
  _Atomic uint64_t pend_pass; /* the coalescing mark of "passed" */
};

/*
 * A dict (dict.c): one heap block, its arena (header, key-change ring,
 * buckets, entries), and the counters below, all changed under the
 * record lock by a redo log: the log (in the arena) names every bucket
 * store and the counters' new values; log_valid commits it
 * (atr__dict_commit). A move to a new arena is written aside in mv and
 * committed by mv.valid, as a queue's ring move.
 */
struct atr__dict {
  uint64_t arena_off, arena_size; /* the committed arena                */
  uint64_t used;                  /* arena bytes handed out to entries  */
  uint64_t len;                   /* keys                               */
  uint64_t tombs;                 /* buckets of deleted keys            */
  uint64_t garbage;               /* bytes of replaced or deleted entries */
  uint64_t ring_head;             /* bytes ever written to the key ring */
  _Atomic uint64_t log_valid;     /* 1: the log at log_off is committed */
  uint64_t log_off;
  _Atomic uint64_t pend_del; /* the coalescing mark of "delete"  */
  struct {
    _Atomic uint64_t valid;
    uint64_t off, size, used;
  } mv;
  _Atomic uint64_t seq; /* bumped by each commit and move: lock-free
                           readers validate against it (dict.c) */
};

/* One object record. The first cache line is all an add touches. */
struct atr__obj {
  /* line 0 */
  _Alignas(64) uint64_t bits; /* value: its bits; pairs with version  */
  uint64_t version;           /* value: changed only by 16-byte CAS   */
  _Atomic uint64_t id;        /* incarnation; 0 = free record          */
  _Atomic uint64_t pend;      /* feed coalescing mark: seq << 8 | op  */
  uint8_t kind, type, name_len, dead;
  uint32_t next_free; /* free record list, slot + 1 (0 = end)  */
  uint64_t data_off;  /* heap block of an array (queues: in u.q) */
  uint64_t data_size;
  uint64_t hash;
  /* line 1 */
  char name[ATR_NAME_MAX];
  /* lines 2-7: arrays and queues; the mutex is initialised once, at
   * store creation, and never again (stale handles may lock it). */
  pthread_mutex_t lock;
  union {
    struct atr__array a;
    struct atr__queue q;
    struct atr__flag f;
    struct atr__sem sem;
    struct atr__barrier b;
    struct atr__lock_state l;
    struct atr__cond_state c;
    struct atr__dict d;
  } u;
};
_Static_assert(sizeof(struct atr__obj) <= ATR__SLOT_SIZE, "slot too small");
/* Each kind's state fits what the slot leaves after the common fields. */
#define ATR__KIND_ROOM (ATR__SLOT_SIZE - offsetof(struct atr__obj, u))
_Static_assert(sizeof(struct atr__array) <= ATR__KIND_ROOM, "array state");
_Static_assert(sizeof(struct atr__queue) <= ATR__KIND_ROOM, "queue state");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__array),
               "an array would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__flag),
               "a flag would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >= sizeof(struct atr__sem),
               "a semaphore would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__barrier),
               "a barrier would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__lock_state),
               "a lock would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__cond_state),
               "a condition would overwrite a queue lock");
_Static_assert(offsetof(struct atr__queue, put_lock) >=
                   sizeof(struct atr__dict),
               "a dict would overwrite a queue lock");

struct atr__fentry {
  _Atomic uint64_t seq; /* the entry's seq once published; 0 while written */
  uint64_t id;
  uint32_t slot;
  uint8_t op, kind, name_len, pad;
  char name[ATR_NAME_MAX];
};
_Static_assert(sizeof(struct atr__fentry) <= ATR__FEED_ENTRY_SIZE, "entry");

/* A record's node in the name order: its links (slot + 1, 0 = the end)
 * and the first 16 bytes of its name, zero-padded, with its length, so
 * that most steps compare without reading the record (names often
 * share a longer prefix than 8 bytes: customer-00042). Under the store
 * lock. */
struct atr__onode {
  uint32_t next[ATR__ORDER_LEVELS];
  uint8_t level, len, pad[2];
  char key[16];
};
_Static_assert(sizeof(struct atr__onode) <= ATR__ORDER_NODE_SIZE, "onode");

struct atr__header {
  /* fixed at creation, covered by check */
  char magic[8];
  uint32_t layout;
  _Atomic uint32_t ready;
  uint64_t size;
  uint32_t max_objects, index_slots, feed_entries, pad0;
  uint64_t index_off, slots_off, feed_off, order_off, heap_off;
  uint64_t check;
  /* under the store lock */
  _Alignas(64) pthread_mutex_t lock;
  uint64_t next_id;
  uint64_t version_floor; /* above every version a deleted object had */
  uint64_t objects;
  uint64_t heap_used;
  uint64_t heap_free;                     /* first free heap block, 0 = none */
  uint32_t free_slot;                     /* first free record, slot + 1      */
  uint32_t order_head[ATR__ORDER_LEVELS]; /* the name order's first links */
  /* the change feed, each on its own line */
  _Alignas(64) _Atomic uint64_t feed_head; /* next seq to hand out */
  _Alignas(64) _Atomic uint32_t feed_ec;
  _Atomic uint32_t feed_wakes; /* atr_feed_wake calls */
  /* Where the newest cursor started: a coalescing mark older than this
   * may belong to an event no reader will see. Read-mostly. */
  _Alignas(64) _Atomic uint64_t feed_epoch;
};
_Static_assert(sizeof(struct atr__header) <= ATR__HEADER_SIZE, "header");

struct atr_store {
  uint8_t *base;
  size_t size;
  struct atr__header *hdr;
  _Atomic uint64_t *index;
  uint32_t index_mask;
};

static inline struct atr__obj *atr__slot(const atr_store *s, uint32_t slot) {
  return (struct atr__obj *)(s->base + s->hdr->slots_off +
                             (uint64_t)slot * ATR__SLOT_SIZE);
}

static inline struct atr__onode *atr__onode(const atr_store *s, uint32_t slot) {
  return (struct atr__onode *)(s->base + s->hdr->order_off +
                               (uint64_t)slot * ATR__ORDER_NODE_SIZE);
}

static inline struct atr__fentry *atr__fentry(const atr_store *s,
                                              uint64_t seq) {
  return (struct atr__fentry *)(s->base + s->hdr->feed_off +
                                (seq % s->hdr->feed_entries) *
                                    ATR__FEED_ENTRY_SIZE);
}

/* os.c: time, futexes, robust locks. */
#define ATR__NS INT64_C(1000000000)
double atr__now(void);
/* CLOCK_MONOTONIC in nanoseconds: the host's clock, shared by every
 * process and container of the machine, so deadlines kept in the store
 * mean the same to all of them. */
int64_t atr__now_ns(void);
/* now + timeout in ns (capped to a century); -1 for timeout < 0 (for
 * ever). */
int64_t atr__deadline_ns(double timeout);
/*
 * Sleeps while *word == val, up to timeout seconds (< 0: for ever; 0:
 * returns ATR_ETIMEDOUT at once). Returns 0 when woken or when the word
 * had moved (look again), ATR_EINTR when a signal handler ran (whatever
 * its SA_RESTART: the kernel is always given a timeout), ATR_ETIMEDOUT at
 * the timeout. Wakes may be spurious: callers loop and re-check their
 * condition before acting on any result.
 */
int atr__futex_wait(_Atomic uint32_t *word, uint32_t val, double timeout);
/* The same up to an absolute atr__now_ns() deadline (< 0: for ever). */
int atr__futex_wait_until(_Atomic uint32_t *word, uint32_t val,
                          int64_t deadline_ns);
/* Wakes every sleeper of word / one of them. */
void atr__futex_wake(_Atomic uint32_t *word);
void atr__futex_wake_one(_Atomic uint32_t *word);
/* futex_waitv (Linux 5.16) takes 128 words; past that a waiter watches
 * the first 128 and sleeps at most ATR__WAITV_SLICE_NS at a time. */
#define ATR__WAITV_MAX 128u
#define ATR__WAITV_SLICE_NS (20 * INT64_C(1000000))
/*
 * Sleeps while every words[i] == vals[i] (shared futexes, 32-bit), up to
 * deadline_ns (< 0: for ever). n >= 1; words past ATR__WAITV_MAX are not
 * watched, and the sleep is then cut into 20 ms slices (a slice's end
 * returns 0: look again). Before Linux 5.16 only words[0] is watched, in
 * 20 ms slices. Returns as atr__futex_wait_until.
 */
int atr__futex_waitv(_Atomic uint32_t *const *words, const uint32_t *vals,
                     size_t n, int64_t deadline_ns);
/* Eventcounts: prepare returns the value to wait on, with the waiter bit
 * set (a full barrier: look at the condition after it); signal wakes
 * every sleeper if there is one (force: always). Between the change and
 * the signal there must be a full barrier (a locked instruction, a mutex
 * unlock, a seq_cst fence), or x86 may read the waiter bit before the
 * change is visible, and a sleeper that set it would not be woken. */
uint32_t atr__ec_prepare(_Atomic uint32_t *ec);
void atr__ec_signal(_Atomic uint32_t *ec, bool force);
int atr__mutex_init(pthread_mutex_t *m);
/* Locks m, waiting no longer than the calling thread's patience
 * (atr_set_lock_patience; for ever by default). If its owner died,
 * recover(arg) repairs the data it guards before the lock is marked
 * consistent, whatever the patience. 0, ATR_ELOCKED (a live holder kept
 * it past the patience: the caller changes nothing and passes it up) or
 * ATR_ESYS. Every internal mutex is taken through here, never with
 * pthread_mutex_lock. */
int atr__mutex_lock(pthread_mutex_t *m, void (*recover)(void *), void *arg);
/* The same waiting no longer than seconds, whatever the patience. */
int atr__mutex_lock_for(pthread_mutex_t *m, double seconds,
                        void (*recover)(void *), void *arg);
/* The same without waiting at all, whatever the thread's patience: for a
 * describe that reads without the lock when a live process holds it. */
int atr__mutex_try(pthread_mutex_t *m, void (*recover)(void *), void *arg);
/* A full barrier on x86: a robust mutex's unlock exchanges its word (to
 * see its waiters), and every locked instruction orders all memory. */
void atr__mutex_unlock(pthread_mutex_t *m);
/* Remaining seconds until deadline, or -1 for a deadline of "never". */
double atr__remaining(double deadline);
double atr__deadline(double timeout);

/*
 * robust.c: holds, the kernel's robust futex list shared with glibc.
 *
 * A hold is a 32-bit futex word in the store plus the fields a robust
 * pthread mutex keeps beside its own word, at the same distances: a
 * thread that takes a hold writes its TID into the word and links the
 * hold into its robust list, the one glibc registered with
 * set_robust_list; when the thread dies the kernel sets FUTEX_OWNER_DIED
 * in every word of that list still carrying its TID (in any PID
 * namespace: it compares the TID of the dying task's own) and wakes one
 * sleeper if FUTEX_WAITERS is set. The word:
 *
 *   0                      free
 *   TID [| WAITERS]        held by that thread (process hold)
 *   LEASE_TID [| WAITERS]  held by a lease: nonce = token, deadline_ns
 *   OWNER_DIED [| WAITERS] its holder died: free, and the next taker is
 *                          told (ATR_ABANDONED)
 *
 * A kind may give its own meanings to TIDs above ATR__TID_MAX (the
 * kernel never matches those; atr__word_free counts them as held).
 */
/* (the word's bits and struct atr__hold are defined above the record) */

/* The calling thread as holds know it. */
struct atr__self {
  uint32_t tid;   /* gettid(): in the thread's own PID namespace */
  uint64_t nonce; /* random, never 0; TIDs repeat across namespaces */
  void *head;     /* its robust list head (struct robust_list_head) */
};
/*
 * The calling thread's identity, made once per thread (and again in a
 * forked child: a pthread_atfork handler resets it). NULL with errno
 * ENOTSUP if the thread has no robust list of glibc's layout (then no
 * process hold can be taken: callers answer ATR_ESYS). Inline: the hot
 * paths read it on every call. The thread-local is initial-exec (no
 * __tls_get_addr call when the library is loaded with dlopen, as
 * Python's ctypes does; glibc keeps room for small ones).
 */
extern _Thread_local struct atr__self atr__self_tls
    __attribute__((tls_model("initial-exec")));
const struct atr__self *atr__self_make(void);
static inline const struct atr__self *atr__self(void) {
  if (__builtin_expect(atr__self_tls.tid != 0, 1))
    return &atr__self_tls;
  return atr__self_make();
}
uint32_t atr__tid(void);
uint64_t atr__nonce(void);
/* A fresh random 64-bit secret, never 0 (lease tokens). */
uint64_t atr__token(void);

/* Whether the word's holder (if any) is a thread, i.e. the hold may be
 * linked in some thread's robust list. */
static inline bool atr__word_linked(uint32_t w) {
  uint32_t tid = w & ATR__TID_MASK;
  return tid != 0 && tid <= ATR__TID_MAX;
}
/* Whether any of n holds, the first at first and each stride bytes past
 * the one before (a table of places), may be linked in a thread's robust
 * list: a kind's `lingers` for its table. */
static inline bool atr__holds_linked(const struct atr__hold *first,
                                     size_t stride, uint32_t n) {
  const char *p = (const char *)first;
  for (uint32_t i = 0; i < n; i++, p += stride)
    if (atr__word_linked(
            atomic_load(&((const struct atr__hold *)(const void *)p)->word)))
      return true;
  return false;
}
/* Whether a word is free to take: 0, or its holder died. */
static inline bool atr__word_free(uint32_t w) {
  w &= ~ATR__WAITERS;
  return w == 0 || w == ATR__OWNER_DIED;
}

/* The robust list as glibc keeps it: an entry's back link is the
 * pointer before its `next`; bit 0 of a link marks a PI mutex. */
static inline void **atr__rb_back(void *entry) {
  return (void **)((char *)entry - sizeof(void *));
}
static inline void *atr__rb_clean(void *p) {
  return (void *)((uintptr_t)p & ~(uintptr_t)1);
}
static inline void atr__rb_set_pending(void *head, void *entry) {
  ((struct robust_list_head *)head)->list_op_pending = entry;
  atomic_signal_fence(memory_order_seq_cst);
}

/*
 * The steps of a hold's take and give, in order: a test (test_lock's
 * per-step deaths) stops a holder after each and kills it. The list's
 * pending entry covers every step between the word's change and the
 * list being whole again, so a death at any of them leaves the word
 * either untouched (free) or marked by the kernel (abandoned), never
 * held by nobody.
 */
enum {
  ATR__TAKE_PENDING = 1, /* the list's pending entry names h             */
  ATR__TAKE_WORD,        /* the CAS: the word holds the TID              */
  ATR__TAKE_BACK,        /* the old first entry's back link names h      */
  ATR__TAKE_LINKS,       /* h's own links                                */
  ATR__TAKE_HEAD,        /* the head names h: linked                     */
  ATR__TAKE_NONCE,       /* the nonce: h is now seen as the thread's      */
  ATR__TAKE_DONE,        /* pending cleared                              */
};
enum {
  ATR__GIVE_PENDING = 1, /* the list's pending entry names h             */
  ATR__GIVE_UNLINK,      /* out of the list (both neighbours' links)     */
  ATR__GIVE_NONCE,       /* the nonce cleared                            */
  ATR__GIVE_WORD,        /* the exchange: the word is free               */
  ATR__GIVE_WAKE,        /* a sleeper woken if the word said so          */
  ATR__GIVE_DONE,        /* pending cleared                              */
};

/*
 * One try to take h for the calling thread self: the word goes from free
 * (0 or OWNER_DIED) to self->tid | bits (pass ATR__WAITERS after having
 * slept: others may sleep too) and h is linked at the head of the
 * thread's robust list (as glibc's ENQUEUE_MUTEX_BOTH), with the list's
 * pending entry set around the change so that a death half-way is still
 * seen by the kernel. Returns 0, ATR_ABANDONED (taken from a holder that
 * died), or 1 (held: *seen is the word). The nonce is written after the
 * word: until then h looks held by another. Lock-free; inline (the
 * uncontended lock's path). atr__hold_take_cut stops after `steps` of
 * the ATR__TAKE_ steps once the word is taken (for tests; the rest of
 * the library passes ATR__ALL_STEPS, which the compiler folds away).
 */
#define ATR__ALL_STEPS 0x7fffffff
static inline __attribute__((always_inline)) int
atr__hold_take_cut(struct atr__hold *h, const struct atr__self *self,
                   uint32_t bits, uint32_t *seen, int steps) {
  struct robust_list_head *rh = self->head;
  uint32_t w = atomic_load_explicit(&h->word, memory_order_relaxed);
  if (!atr__word_free(w)) {
    *seen = w;
    return 1;
  }
  if (steps < ATR__TAKE_PENDING)
    return 0;
  atr__rb_set_pending(rh, &h->next);
  if (steps < ATR__TAKE_WORD)
    return 0;
  for (;;) {
    uint32_t next = self->tid | bits | (w & ATR__WAITERS);
    if (atomic_compare_exchange_weak(&h->word, &w, next))
      break;
    if (!atr__word_free(w)) {
      atr__rb_set_pending(rh, NULL);
      *seen = w;
      return 1;
    }
  }
  int rc = (w & ATR__OWNER_DIED) ? ATR_ABANDONED : 0;
  if (steps < ATR__TAKE_BACK)
    return rc;
  void *first = rh->list.next;
  *atr__rb_back(atr__rb_clean(first)) = &h->next;
  if (steps < ATR__TAKE_LINKS)
    return rc;
  h->next = first;
  h->prev = rh;
  /* The entry is whole before the head names it (the kernel may walk
   * the list at any moment this thread dies). */
  atomic_signal_fence(memory_order_seq_cst);
  if (steps < ATR__TAKE_HEAD)
    return rc;
  rh->list.next = (struct robust_list *)&h->next;
  if (steps < ATR__TAKE_NONCE)
    return rc;
  __atomic_store_n(&h->nonce, self->nonce, __ATOMIC_RELAXED);
  if (steps < ATR__TAKE_DONE)
    return rc;
  atr__rb_set_pending(rh, NULL);
  return rc;
}
static inline __attribute__((always_inline)) int
atr__hold_take(struct atr__hold *h, const struct atr__self *self, uint32_t bits,
               uint32_t *seen) {
  return atr__hold_take_cut(h, self, bits, seen, ATR__ALL_STEPS);
}
/* Whether self holds h (its TID and nonce). */
static inline bool atr__hold_mine(const struct atr__hold *h,
                                  const struct atr__self *self) {
  uint32_t w = atomic_load_explicit(&h->word, memory_order_acquire);
  return (w & ATR__TID_MASK) == self->tid &&
         __atomic_load_n(&h->nonce, __ATOMIC_RELAXED) == self->nonce;
}
/* Wakes wake_n sleepers of h's word (0: none; INT32_MAX: all) if old,
 * the word before its change, had FUTEX_WAITERS. */
static inline void atr__hold_wake(struct atr__hold *h, uint32_t old,
                                  int wake_n) {
  if (!(old & ATR__WAITERS) || wake_n <= 0)
    return;
  if (wake_n == 1)
    atr__futex_wake_one(&h->word);
  else
    atr__futex_wake(&h->word);
}
/*
 * Unlinks h from the calling thread's robust list if it is there (walks
 * the list: bounded, LIFO makes it O(1) usually), leaving the word as it
 * is. For a hold whose record was deleted or whose lock was broken while
 * this thread held it. Returns whether it was linked.
 */
bool atr__hold_unlink(struct atr__hold *h, const struct atr__self *self);
/*
 * Gives back h, which the calling thread holds and linked (check with
 * atr__hold_mine): unlinks it (pending set around), clears the nonce,
 * exchanges the word to `to` (0: free; a kind may leave another value
 * without a thread's TID) and wakes wake_n sleepers (0: none; INT32_MAX:
 * all) if the word had FUTEX_WAITERS. Only the linking thread may call
 * it: the list is that thread's. Inline: the common case is the list's
 * first entry (LIFO); any other is found by atr__hold_unlink's walk.
 * h's own links are left as they were: nothing reads an unlinked
 * entry's links (atr__hold_unlink walks from the head). _cut stops after
 * `steps` of the ATR__GIVE_ steps (tests).
 */
/* Whether h is the first entry of self's list (the LIFO case of a
 * give, which unlinks it without a walk or a call). */
static inline bool atr__hold_first(const struct atr__hold *h,
                                   const struct atr__self *self) {
  const struct robust_list_head *rh = self->head;
  return atr__rb_clean(rh->list.next) == (const void *)&h->next;
}
/* The give's steps, h being self's first entry when first (else found
 * by atr__hold_unlink's walk). Returns the word's old value, or 0 when
 * cut before the exchange. The wake comes before pending is cleared (as
 * glibc's robust unlock does): a thread that dies between the exchange
 * and the wake still has the entry pending, and the kernel, finding the
 * word free, wakes a sleeper in its place. */
static inline __attribute__((always_inline)) uint32_t
atr__hold_give_steps(struct atr__hold *h, const struct atr__self *self,
                     uint32_t to, bool first, int wake_n, int steps) {
  struct robust_list_head *rh = self->head;
  if (steps < ATR__GIVE_PENDING)
    return 0;
  atr__rb_set_pending(rh, &h->next);
  if (steps < ATR__GIVE_UNLINK)
    return 0;
  if (first) {
    void *next = h->next;
    *atr__rb_back(atr__rb_clean(next)) = rh;
    rh->list.next = next;
    atomic_signal_fence(memory_order_seq_cst);
  } else {
    atr__hold_unlink(h, self);
  }
  if (steps < ATR__GIVE_NONCE)
    return 0;
  /* The nonce goes first: a thread of another namespace with the same
   * TID that takes the word next must never look like us meanwhile. */
  __atomic_store_n(&h->nonce, 0, __ATOMIC_RELAXED);
  if (steps < ATR__GIVE_WORD)
    return 0;
  uint32_t old = atomic_exchange(&h->word, to);
  if (steps < ATR__GIVE_WAKE)
    return old;
  atr__hold_wake(h, old, wake_n);
  if (steps < ATR__GIVE_DONE)
    return old;
  atr__rb_set_pending(rh, NULL);
  return old;
}
static inline __attribute__((always_inline)) void
atr__hold_give_cut(struct atr__hold *h, const struct atr__self *self,
                   uint32_t to, int wake_n, int steps) {
  atr__hold_give_steps(h, self, to, atr__hold_first(h, self), wake_n, steps);
}
static inline __attribute__((always_inline)) void
atr__hold_give(struct atr__hold *h, const struct atr__self *self, uint32_t to,
               int wake_n) {
  atr__hold_give_cut(h, self, to, wake_n, ATR__ALL_STEPS);
}
/*
 * Takes h for a lease: the word from free to LEASE_TID | bits, then the
 * token and deadline are written. Returns as atr__hold_take. The caller
 * makes lease bookkeeping exclusive (the record lock): nonce and
 * deadline of a lease are read under that lock, or as a hint.
 */
int atr__lease_take(struct atr__hold *h, uint64_t token, int64_t deadline_ns,
                    uint32_t bits, uint32_t *seen);
/* Whether h holds a lease (of token, if token != 0) / one that ran out
 * by now_ns. Exact under the lease lock. */
bool atr__lease_is(const struct atr__hold *h, uint64_t token);
bool atr__lease_over(const struct atr__hold *h, int64_t now_ns);
/* Ends h's lease (under the lease lock): clears token and deadline,
 * exchanges the word to `to` and wakes as atr__hold_give. */
void atr__lease_give(struct atr__hold *h, uint32_t to, int wake_n);
/*
 * Before sleeping on a held word: sets FUTEX_WAITERS in it (CAS, keeping
 * the rest) so that its release, or the kernel at its holder's death,
 * wakes the sleeper. Returns the value to sleep on (in *val) and 0, or 1
 * if the word is free (look again).
 */
int atr__hold_watch(struct atr__hold *h, uint32_t *val);
/*
 * Whoever is woken by a holder's death and does not take over what the
 * dead held passes the wake on: wakes every sleeper of h's word (so a
 * wake is never lost).
 */
void atr__hold_pass_wake(struct atr__hold *h);

/* scalar.c: the type codes (atr_type_class says which kind of number). */
/* Checks v against type and normalises it (a 'f' is rounded to float).
 * 0 or ATR_ERANGE. */
int atr__scalar_check(char type, atr_scalar *v);
/* cur + delta into *out: 0, ATR_EOVERFLOW or ATR_ETYPE. */
int atr__scalar_add(char type, atr_scalar cur, atr_scalar delta,
                    atr_scalar *out);
atr_scalar atr__elem_load(char type, const void *p);
void atr__elem_store(char type, void *p, atr_scalar v);

/* store.c */
/* The header's check: a hash of its fixed part, which anyone can compute
 * (it catches accidents; opening also derives every table from the
 * counts). */
uint64_t atr__store_header_check(const struct atr__header *h);
int atr__store_lock(atr_store *s);
/* The same waiting at most seconds, whatever the thread's patience. */
int atr__store_lock_for(atr_store *s, double seconds);
void atr__store_unlock(atr_store *s);

/* A used heap block: its data offset and usable size. */
struct atr__span {
  uint64_t off, size;
};

/* alloc.c: the heap, under the store lock. A leaf: it knows blocks, not
 * objects. */
void atr__heap_init(atr_store *s);
/* Returns the offset of a block with at least n usable bytes, 0 if none;
 * *got is the usable size. */
uint64_t atr__heap_alloc(atr_store *s, uint64_t n, uint64_t *got);
void atr__heap_free(atr_store *s, uint64_t off);
/* Grows the used block at off by at least more bytes into the free block
 * after it (forward) or before it. Returns its data offset (lower if it
 * grew backwards; what it held stays where it was), *got its usable
 * size; 0 if that neighbour has not the room (nothing changed). */
uint64_t atr__heap_extend(atr_store *s, uint64_t off, uint64_t more,
                          bool forward, uint64_t *got);
/* Whether the free list is damaged: a link to no free block, or a
 * cycle. Walks it (bounded): for the rare paths only. */
bool atr__heap_damaged(atr_store *s);
/* Rebuilds block headers and the free list around the n live blocks
 * (in any order; sorted here). */
void atr__heap_rebuild(atr_store *s, struct atr__span *live, size_t n);

/* object.c: fills info from slot's record if it is still incarnation
 * id (no lock): 0, ATR_ENOENT (gone meanwhile) or ATR_ECORRUPT. */
int atr__obj_info(atr_store *s, uint32_t slot, uint64_t id, atr_info *info);

/* order.c: every live record in bytewise name order, for pages. It is
 * derived state, changed under the store lock beside the name index and
 * made again from the records by atr__order_rebuild when a holder of
 * the store lock died (or a walk meets damage). */
/* Under the store lock: links slot's record (its name and hash set). */
void atr__order_insert(atr_store *s, uint32_t slot);
/* Under the store lock: unlinks slot's record (its name still set).
 * false if the order was found damaged: rebuild it once the record is
 * freed. */
bool atr__order_remove(atr_store *s, uint32_t slot);
/* Under the store lock: makes the order again from the live records. */
void atr__order_rebuild(atr_store *s);
/* Under the store lock: calls fn for records in name order from the
 * first whose name is >= from[0..from_len) (from NULL: the first), at
 * most max_steps of them, while fn returns 0. Returns ATR__WALK_END,
 * ATR__WALK_STOPPED (fn returned non-zero), ATR__WALK_BUDGET (max_steps
 * ran out), or ATR__WALK_DAMAGED (a link out of range or out of order:
 * the caller falls back to a scan). */
enum {
  ATR__WALK_END,
  ATR__WALK_STOPPED,
  ATR__WALK_BUDGET,
  ATR__WALK_DAMAGED,
};
int atr__order_walk(atr_store *s, const char *from, size_t from_len,
                    size_t max_steps, int (*fn)(uint32_t slot, void *arg),
                    void *arg);

/* index.c: the name index, a leaf: hash, probe, insert, remove. */
uint64_t atr__hash(const char *name, size_t len);
/* Probes for name (hash = atr__hash of it): its index position, and
 * *slot and *id of its live record; -1 if absent. Lock-free. */
int64_t atr__index_find(atr_store *s, const char *name, size_t len,
                        uint64_t hash, uint32_t *slot, uint64_t *id);
/* atr__index_find by name: 0 or ATR_ENOENT. */
int atr__lookup(atr_store *s, const char *name, size_t len, uint32_t *slot,
                uint64_t *id);
/* Under the store lock: the position a new entry for hash goes to, or
 * -1 if the table has none (damage). */
int64_t atr__index_free_pos(atr_store *s, uint64_t hash);
/* Under the store lock: adds an entry for slot at pos, from
 * atr__index_free_pos (one store commits it). */
void atr__index_insert(atr_store *s, uint32_t pos, uint32_t slot,
                       uint64_t hash);
/* Under the store lock: removes the entry at pos (one store). */
void atr__index_remove(atr_store *s, uint32_t pos);
/* After a crash, under the store lock: drops entries that name no live
 * record. */
void atr__index_recover(atr_store *s);

/*
 * What the records layer needs from a kind of object. Each kind's file
 * exports one (atr__value_ops, ...); kinds.c maps an atr_kind to it, and
 * nothing else in core switches on kind or reads a kind's union member.
 * Members marked optional may be NULL.
 */
struct atr__kind_ops {
  /* The kind's name, as atr_kind_name gives it. */
  const char *name;
  /* Stops every further change of the live record o: marks it dead
   * (o->dead = 1; a value also in its version), wakes its waiters (they
   * answer ATR_ENOENT) and sets *last to its final version. Called under
   * the store lock; may take o's own locks. 0, or a lock's error. */
  int (*kill)(atr_store *s, struct atr__obj *o, uint64_t *last);
  /* Optional. Makes o's data whole after a process died holding o's
   * record lock: called from atr__record_lock with that lock held, before
   * it is marked consistent; o has an id and is of this kind (it may be
   * dead). Must not take the record lock; may take the kind's others. */
  void (*repair)(atr_store *s, struct atr__obj *o);
  /* Fills info's type, version and the kind's own fields from the record
   * o, which had a live id a moment ago (the caller checks it again
   * after). Lock-free: takes no lock a producer, consumer or writer of
   * the object may hold. 0, ATR_ENOENT if o is being deleted, or
   * ATR_ECORRUPT if its state does not fit the store. */
  int (*info)(atr_store *s, struct atr__obj *o, atr_info *info);
  /* Optional (NULL: no heap data). The heap block o's committed state
   * uses (its data offset, *size its usable bytes), or 0. Under the store
   * lock, also in recovery, where o may be half made or half killed: it
   * reads committed fields only. */
  uint64_t (*data)(const struct atr__obj *o, uint64_t *size);
  /* The final version of o once its changes stopped (o->dead set, maybe
   * by a kill that died half-way). Under the store lock. */
  uint64_t (*last_version)(const struct atr__obj *o);
  /* Optional (NULL: the record's pend for every op). Where o keeps the
   * feed's coalescing mark of op. Lock-free. */
  _Atomic uint64_t *(*mark)(struct atr__obj *o, atr_op op);
  /* Optional. Initialises the process-shared parts of the kind's union
   * member (its own mutexes) in a fresh slot, once, when the store is
   * created: they are never rewritten, since stale handles may still lock
   * them. 0 or ATR_ESYS. */
  int (*slot_init)(struct atr__obj *o);
  /* Optional (NULL: never). Whether a thread may still have one of o's
   * holds linked in its robust list (a word carrying a thread's TID):
   * then a delete keeps o's record and heap block out of reuse (o->dead
   * = ATR__LINGER, id 0) until they are given back, by release or by the
   * holder's death. Under the store lock, also in recovery: reads
   * words only, never trusts offsets it has not checked. */
  bool (*lingers)(const atr_store *s, const struct atr__obj *o);
  /* Optional (NULL: nothing to end). atr_sync_expire's part for the
   * kind: ends what of h's object (o, live a moment ago) has a lease
   * that ran out, wakes its waiters, publishes; returns how many it
   * ended, or an error. Takes the kind's own locks. */
  int (*expire)(const atr_handle *h, struct atr__obj *o);
  /* Optional (NULL: none). The heap blocks o uses besides its data (a
   * queue's lease table and its places' blocks): with live NULL, how
   * many; else writes up to n_max of them and returns how many. Under
   * the store lock, in recovery: checks every offset it reads. */
  size_t (*spans)(const atr_store *s, const struct atr__obj *o,
                  struct atr__span *live, size_t n_max);
};

extern const struct atr__kind_ops atr__value_ops;
extern const struct atr__kind_ops atr__array_ops;
extern const struct atr__kind_ops atr__queue_ops;
extern const struct atr__kind_ops atr__flag_ops;
extern const struct atr__kind_ops atr__sem_ops;
extern const struct atr__kind_ops atr__barrier_ops;
extern const struct atr__kind_ops atr__lock_ops;
extern const struct atr__kind_ops atr__cond_ops;
extern const struct atr__kind_ops atr__dict_ops;

/* dict.c, for its white-box tests: a commit is this many stores for a
 * log of n bucket stores; atr_dict_update with the commit cut after
 * `stores` of them (INT_MAX: all), returning with the record lock held
 * when it cut one short (the caller exits: its holder died). */
#define ATR__DICT_STORES(n) ((int)(n) + 3)
int atr__dict_update_cut(const atr_handle *h, const atr_dict_op *ops, size_t n,
                         uint64_t *version, int stores);
/* A move of the dict to a new arena sized for what it holds, cut after
 * `stores` of its steps (the commit, the move made, the old block freed:
 * ATR__DICT_MOVE_STEPS), returning with the store's and the record's
 * locks held when it cut one short. */
#define ATR__DICT_MOVE_STEPS 3
int atr__dict_resize_cut(const atr_handle *h, int stores);

/* queue.c, for the queue's white-box tests and its own kill: takes the
 * queue's two locks (putters', then the record's), repairing what a dead
 * holder of either left; 0 with both held, or a lock's error (none
 * held). The record may be dead. */
int atr__queue_lock_both(atr_store *s, struct atr__obj *o);
void atr__queue_unlock_both(struct atr__obj *o);

/*
 * lease.c: a queue's leased items. A queue's lease table is the heap
 * block at its record's data_off (0: none yet; queues keep their ring in
 * u.q), made at creation when the queue has a dead-letter setting and
 * else at its first leased get or done. It holds the counters of task
 * accounting and one place per leased item; each place owns a heap block
 * that keeps its item's bytes while it is out (and is reused by the next
 * item that fits). All of it changes under the getters' lock (the
 * record's); the counters are read without it.
 */
#define ATR__LQ_MAGIC 0x3176716c7274614full /* "Oatrlqv1" */
enum atr__lq_state {
  ATR__LQ_FREE = 0,
  ATR__LQ_LEASED,  /* out under hold; deadline in hold.deadline_ns   */
  ATR__LQ_DELAYED, /* nacked, back at until_ns (counts as leased)    */
  ATR__LQ_READY,   /* back at the queue's head, in `order`           */
  ATR__LQ_DEAD,    /* to be moved to the dead-letter queue           */
  ATR__LQ_MOVING,  /* being moved there (until until_ns)             */
  ATR__LQ_ORPHAN,  /* a process hold whose lease ran out: its item
                      was moved to another place; the hold stays until
                      its thread lets go or dies                     */
};
struct atr__lslot {
  struct atr__hold hold; /* process hold or lease; nonce = receipt for
                            a lease */
  uint64_t receipt;
  uint64_t blk_off;  /* the heap block keeping the item (0: none)   */
  uint64_t blk_size; /* its usable bytes                             */
  uint64_t order;    /* READY: taken smallest first                  */
  int64_t until_ns;  /* DELAYED, MOVING: when that ends              */
  uint32_t len;      /* the item's bytes                             */
  uint32_t state;
  uint32_t deliveries;
  uint32_t free_next; /* the free places' list: the next one + 1 (a
                         hint, see struct atr__ltable's free_head) */
};
/* A change of more than one field, written aside first (lease.c). */
struct atr__lq_log {
  _Atomic uint32_t valid;
  uint32_t op; /* lease.c's LQ_OP_* */
  uint32_t slot, slot2;
  uint64_t cons_after; /* the getters' item count that commits it */
  uint64_t done_after;
  uint64_t blk_off, blk_size; /* a move's: the block slot2 had */
};
struct atr__ltable {
  uint64_t magic;
  uint32_t cap;            /* places */
  uint32_t max_deliveries; /* 0: never dead-lettered */
  char dead_letter[ATR_NAME_MAX + 1];
  uint8_t pad[7];
  _Atomic uint64_t dead_lettered; /* moved to the dead-letter queue */
  _Atomic uint64_t dropped;       /* dead letters dropped */
  uint64_t next_order;
  _Atomic uint32_t ready;  /* places READY (derived: repair recounts) */
  _Atomic uint32_t leased; /* places LEASED or DELAYED (derived)      */
  _Atomic uint32_t dead;   /* places DEAD or MOVING (derived)         */
  _Atomic uint32_t linked; /* LEASED places held by a thread (derived) */
  /* The FREE places as a list (the first one + 1; 0: none known), so a
   * take finds one without a scan. A hint, checked at each use and made
   * again from the places' states when it fails (lease.c): it is not
   * part of any commit. Older libraries left it 0 (none known). */
  uint32_t free_head;
  int64_t sweep_ns; /* the next sweep is due then (hint)       */
  _Atomic uint64_t pend_lease, pend_ack; /* coalescing marks */
  struct atr__lq_log log;
  struct atr__lslot slot[];
};
/* A leased take and an ack, each a fixed sequence of steps (lease.c
 * says which); the library makes all of them, a white-box test fewer. */
#define ATR__LQ_TAKE_STEPS 9
#define ATR__LQ_ACK_STEPS 5
void atr__lq_take_commit(const atr_store *s, struct atr__obj *o,
                         struct atr__ltable *t, uint32_t i, const uint8_t *at,
                         uint32_t len, uint64_t next,
                         const struct atr__self *self, uint64_t receipt,
                         int64_t deadline, int steps);
void atr__lq_ack_commit(struct atr__obj *o, struct atr__ltable *t, uint32_t i,
                        const struct atr__self *self, int steps);
/* The other settles and returns, as steps too (tasks.c and lease.c say
 * which), so test_lqueue cuts each after every step: a nack (until_ns 0:
 * back at once, else DELAYED until then), a touch (the new deadline), a
 * lease that ran out given back (the sweep's), and the move of a DEAD
 * place's item to the dead-letter queue (atr__lq_dead_letter_cut: the
 * first DEAD place; 1 if it moved one, 0 if none was DEAD, or an error;
 * a cut one returns with whatever lock it holds held). */
#define ATR__LQ_NACK_STEPS 3
#define ATR__LQ_TOUCH_STEPS 1
#define ATR__LQ_EXPIRE_STEPS 2
#define ATR__LQ_DEAD_STEPS 3
void atr__lq_nack_commit(struct atr__ltable *t, uint32_t i,
                         const struct atr__self *self, int64_t until_ns,
                         int steps);
void atr__lq_touch_commit(struct atr__ltable *t, uint32_t i, int64_t deadline,
                          int steps);
void atr__lq_expire_commit(struct atr__ltable *t, struct atr__lslot *sl,
                           int steps);
int atr__lq_dead_letter_cut(const atr_handle *h, int steps);
/* lease.c and tasks.c share: */
#define ATR__LQ_SLOT_MASK 0xffffu /* a receipt's place index */
enum { ATR__LQ_OP_LEASE = 1, ATR__LQ_OP_ACK, ATR__LQ_OP_MOVE };
/* A counter of the table changed (under the getters' lock, its only
 * writer): a load and a store, no locked instruction; readers without
 * the lock see the old count or the new. */
static inline void atr__lq_count(_Atomic uint32_t *c, int32_t d) {
  atomic_store_explicit(
      c, atomic_load_explicit(c, memory_order_relaxed) + (uint32_t)d,
      memory_order_relaxed);
}
/* The clock of leased items: CLOCK_MONOTONIC_COARSE (a read of the
 * vDSO's page, ~4 ns, where CLOCK_MONOTONIC costs ~27 ns on a VM's
 * kvm-clock: a take and an ack each read it once). It runs at most one
 * tick behind CLOCK_MONOTONIC, so every end made from it is pushed one
 * tick later (atr__lq_end): a lease, a nack's delay and a touch end no
 * sooner than asked by either clock, at most a tick later. */
int64_t atr__lq_now(void);
int64_t atr__lq_end(int64_t now, int64_t secs_ns);
/* The free places' list (under the getters' lock): place i became FREE;
 * the list made again from the places' states (after a repair, or when
 * the hint failed). */
void atr__lq_free_push(struct atr__ltable *t, uint32_t i);
void atr__lq_free_rebuild(struct atr__ltable *t);
/* The getters' lock of h's queue (*o) and its table (*t): 0 with the
 * lock held, or an error (ATR_ECORRUPT for a damaged table) without. */
int atr__lq_lock(const atr_handle *h, struct atr__obj **o,
                 struct atr__ltable **t);
/* The queue's done count + n, never past the items put. */
uint64_t atr__lq_done_after(const struct atr__obj *o, uint64_t n);
/* A place whose item came back (its hold given back): READY at the head,
 * or DEAD past max_deliveries. */
void atr__lq_return(struct atr__ltable *t, struct atr__lslot *sl);
/* The item's bytes in a place's block, or NULL (damage). */
const uint8_t *atr__lq_item(const atr_store *s, const struct atr__ltable *t,
                            const struct atr__lslot *sl);
/* After a step that may have made dead letters or given items back
 * (returned of them): wakes getters, publishes, moves dead letters. */
void atr__lq_after(const atr_handle *h, struct atr__obj *o,
                   struct atr__ltable *t, int returned);
/* The table of o (a queue's record) if it has a whole one, else NULL. */
struct atr__ltable *atr__lq_table(const atr_store *s, const struct atr__obj *o);
/* Called by the getters holding the record lock: items a plain get
 * may take from the lease table first (READY places), after a sweep if
 * one is due. */
uint32_t atr__lq_ready(const atr_handle *h, struct atr__obj *o);
/* Holding the record lock: takes the first READY item into the sink
 * (a plain get: the place is freed; the item is not done). 1 if taken,
 * 0 if none, < 0 an error of the sink. */
int atr__lq_take_ready(const atr_handle *h, struct atr__obj *o,
                       int (*sink)(void *arg, const uint8_t *item,
                                   uint32_t len),
                       void *arg);
/* Repair of the lease table after the record lock's holder died (from
 * the queue's repair; the getters' side is whole already). */
void atr__lq_repair(atr_store *s, struct atr__obj *o);
/* Holding the getters' lock: frees the READY places (a clear's part: the
 * caller counts them done); returns how many there were. */
uint64_t atr__lq_clear_ready(const atr_store *s, struct atr__obj *o);
/* READY places now (0 without a table). */
uint64_t atr__lq_ready_count(const atr_store *s, const struct atr__obj *o);
/* Makes h's queue's lease table if it has none (takes the store lock). */
int atr__lq_ensure(const atr_handle *h);
/* Under the store lock: frees the table and its places' blocks, unless
 * a thread may still have one of its holds linked (then false). */
bool atr__lq_free(atr_store *s, struct atr__obj *o);
/* The queue's `spans` op: the table's block and its places' blocks. */
size_t atr__lq_spans(const atr_store *s, const struct atr__obj *o,
                     struct atr__span *live, size_t n_max);
/* Under the store lock: makes o's table (cap places, settings). */
int atr__lq_make(atr_store *s, struct atr__obj *o, uint32_t cap,
                 uint32_t max_deliveries, const char *dead_letter);
/* join sleeps on the getters' eventcount (ec_get, which putters waiting
 * for room share: a wake they did not need only makes them look again):
 * bumped whenever done grows. */
static inline void atr__lq_done_wake(struct atr__obj *o) {
  atr__ec_signal(&o->u.q.ec_get, false);
}
/* Lock-free describe of the table's counts (zeros without one); READY
 * items are added to info->size. */
void atr__lq_info(const atr_store *s, const struct atr__obj *o,
                  uint64_t prod_items, atr_info *info);
/* The queue's lease-related expire (atr_sync_expire). */
int atr__lq_expire(const atr_handle *h, struct atr__obj *o);
/* Leased items out and waiting in the table, for a put's maxsize. */
static inline uint64_t atr__lq_held(const atr_store *s,
                                    const struct atr__obj *o) {
  const struct atr__ltable *t = atr__lq_table(s, o);
  return t == NULL ? 0
                   : (uint64_t)atomic_load(&t->ready) +
                         atomic_load(&t->leased) + atomic_load(&t->dead);
}

/* queue.c, for lease.c: the getters' lock with the ring whole; the
 * queue's item at the head of the ring (false: none, or *rc set on
 * damage); the commit of a take of one item ending at next. */
int atr__q_lock_get(const atr_handle *h, struct atr__obj **out);
bool atr__q_head(const atr_handle *h, struct atr__obj *o, const uint8_t **at,
                 uint32_t *len, uint64_t *next, int *rc);
void atr__q_take_commit(struct atr__obj *o, uint64_t next, uint64_t k,
                        int stores);
/* Appends one item to an atr_items (arg): 0 or ATR_ENOMEM. */
int atr__items_append(void *arg, const uint8_t *item, uint32_t len);
/* Counts a change of the lease table in the queue's version (holding
 * the getters' lock: it counts as a get commit). */
void atr__q_bump(struct atr__obj *o);
/* The queue's items put ever (the putters' count). */
uint64_t atr__q_puts(const struct atr__obj *o);
/* What a waiter's look depended on besides the other side's count (see
 * queue.c's q_wait_side), taken before the look. */
struct atr__q_watch {
  uint64_t gets;
  uint32_t ec;
};
struct atr__q_watch atr__q_watch_items(const struct atr__obj *o);
/* Waits as a getter on an empty queue (releases the record lock): w was
 * taken (holding it) before the look that found no item. */
int atr__q_wait_items(const atr_handle *h, struct atr__obj *o,
                      const struct atr__q_watch *w, double deadline);

/* lock.c, for conditions: the lock lh (a handle made from the
 * condition's binding) and its holder. */
/* 0 if token (0: the calling thread's process hold) holds the lock now,
 * else ATR_ENOTHELD or ATR_ENOENT. */
int atr__lock_holder_check(const atr_handle *lh, uint64_t token);
/* Releases every level of the calling thread's hold; *count gets the
 * depth it had. 0, ATR_ENOTHELD, ATR_ENOENT. */
int atr__lock_release_all(const atr_handle *lh, uint64_t *count);
/* Takes the lock again for the calling thread, waiting for ever and
 * through signals, and gives it depth count. As atr_lock_acquire but
 * never ATR_EINTR or ATR_ETIMEDOUT. */
int atr__lock_retake(const atr_handle *lh, uint64_t count, atr_grant *g);
/* An uncontended acquire / release by the calling thread cut after
 * `steps` of its steps (lock.c), for tests that kill a holder at each. */
int atr__lock_acquire_cut(const atr_handle *lh, int steps);
int atr__lock_release_cut(const atr_handle *lh, int steps);
/* Ends the lease token holds, every level; *count gets its depth. */
int atr__lock_unlease_all(const atr_handle *lh, uint64_t token,
                          uint64_t *count);

/* kinds.c: the ops of a kind byte, or NULL if it names no kind (the
 * store file is untrusted: callers treat NULL as a corrupt record). */
const struct atr__kind_ops *atr__kind_ops_of(unsigned kind);
/* Where o keeps the coalescing mark of op (through its kind's ops). */
_Atomic uint64_t *atr__mark(struct atr__obj *o, atr_op op);
/* Runs every kind's slot_init on a fresh slot. 0 or ATR_ESYS. */
int atr__kinds_slot_init(struct atr__obj *o);

/* object.c: object records: open, delete, stat, list, locks, recovery. */
/* Kind-specific set-up of a new record, called under the store lock
 * with the record's name, kind and type set; may allocate heap. */
typedef int (*atr__init_fn)(atr_store *s, struct atr__obj *o, void *arg);
/* Opens or creates name as kind. check(o, arg) vets an existing object
 * (type, length); init sets up a new one. Returns ATR_CREATED or 0. */
int atr__open(atr_store *s, const char *name, atr_kind kind, char type,
              int flags,
              int (*check)(atr_store *s, struct atr__obj *o, void *arg),
              atr__init_fn init, void *arg, atr_handle *h);
/* The record of a live handle, or NULL if its object is gone. */
struct atr__obj *atr__obj_of(const atr_handle *h);
/* Under the store lock: frees a record that lingered after its delete
 * once no thread links one of its holds (object.c). */
void atr__obj_unlinger(atr_store *s, uint32_t slot);
/* Locks a record's mutex. If the last owner died, the record's data is
 * repaired first, whatever kind the record holds now (a stale handle may
 * lock a record that was reused for another kind). */
int atr__record_lock(atr_store *s, struct atr__obj *o);
/* Locks the handle's record: 0 with the lock held if the handle's object
 * is still alive, else ATR_ENOENT (lock released). */
int atr__handle_lock(const atr_handle *h, atr_kind kind, struct atr__obj **out);
/* After a crash, under the store lock: drops half-made objects, finishes
 * half-done deletes, recounts, and rebuilds the heap around what is
 * live. */
void atr__object_recover(atr_store *s);

/* What a recover callback of atr__mutex_lock gets to repair a record. */
struct atr__repair_arg {
  atr_store *s;
  struct atr__obj *o;
};

/* feed.c */
/* Publishes an event for o. With a mark (where o keeps op's coalescing
 * mark), skipped when o already has an unread event of the same op;
 * NULL publishes always. Never blocks. */
void atr__feed_push(atr_store *s, struct atr__obj *o, uint32_t slot, atr_op op,
                    _Atomic uint64_t *mark);
/* Publishes an event for o and sets *mark to it if it still holds seen. */
void atr__feed_publish(atr_store *s, struct atr__obj *o, uint32_t slot,
                       atr_op op, _Atomic uint64_t *mark, uint64_t seen);

/* atr__feed_push(..., mark) for a change made by a locked
 * read-modify-write, which already orders the change before the mark's
 * load (x86 and the __sync builtins are full barriers): no extra fence,
 * and inline, for the hot paths. */
static inline bool atr__feed_covered_at(const _Atomic uint64_t *epoch,
                                        uint64_t mark, atr_op op) {
  return mark != 0 && (mark & 0xff) == (uint64_t)op &&
         (mark >> 8) >= atomic_load_explicit(epoch, memory_order_relaxed);
}
static inline bool atr__feed_covered(atr_store *s, uint64_t mark, atr_op op) {
  return atr__feed_covered_at(&s->hdr->feed_epoch, mark, op);
}

static inline void atr__feed_push_fenced(atr_store *s, struct atr__obj *o,
                                         uint32_t slot, atr_op op,
                                         _Atomic uint64_t *mark) {
  uint64_t seen = atomic_load_explicit(mark, memory_order_relaxed);
  if (atr__feed_covered(s, seen, op))
    return;
  atr__feed_publish(s, o, slot, op, mark, seen);
}
/* An event that tells every reader to re-read everything. */
void atr__feed_push_resync(atr_store *s);

/* Whether [off, off + len) lies in the heap: every offset and size a
 * record holds is checked so before use (the file is input). */
static inline bool atr__heap_span_ok(const atr_store *s, uint64_t off,
                                     uint64_t len) {
  return off >= s->hdr->heap_off && off <= s->size && len <= s->size - off;
}

static inline uint64_t atr__round_up(uint64_t n, uint64_t a) {
  return (n + a - 1) / a * a;
}

#endif
