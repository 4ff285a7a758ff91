/*
 * robust.c - holds: futex words in the store that the kernel gives back
 * when their holding thread dies, through the robust futex list glibc
 * registers for every thread (see internal.h for the word's states).
 *
 * glibc's list is doubly linked on 64-bit targets: an entry is the
 * address of a `next` field, and the pointer before it is the entry's
 * back link (the list head's own back link is glibc's robust_prev, just
 * before the head in struct pthread). glibc's enqueue of a mutex writes
 * the back link of the entry it puts itself before, and its dequeue
 * writes both neighbours; so a hold keeps both links exactly as a mutex
 * does, and links and unlinks itself as glibc's ENQUEUE_MUTEX_BOTH and
 * DEQUEUE_MUTEX do. Only the thread that linked an entry touches it, so
 * no lock guards the list (a signal handler that takes a robust mutex
 * while this thread is half-way through a link would break it, as it
 * would break glibc's own).
 *
 * The rule that keeps a thread's list whole when the object goes away:
 * a hold stays where it is (its record or table keeps it at the same
 * offset) for as long as a thread may have it linked, that is while its
 * word carries a thread's TID. Its owner kind says so through its ops
 * (lock.c: a deleted lock's record is not reused until its holds are
 * unlinked or their holder died), and a thread that finds its hold's
 * object gone still unlinks the entry (atr__hold_unlink) before it
 * forgets it.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The robust list walks the kernel does are capped at this many
 * entries (ROBUST_LIST_LIMIT); so are ours. */
#define RB_LIST_LIMIT 2048

_Thread_local struct atr__self atr__self_tls
    __attribute__((tls_model("initial-exec")));
static pthread_once_t rb_once = PTHREAD_ONCE_INIT;

/* In the child of a fork: its only thread is the one that forked, with a
 * new TID, an empty robust list (glibc empties it) and a nonce that must
 * differ from the parent's. */
static void rb_atfork_child(void) {
  atr__self_tls = (struct atr__self){0, 0, NULL};
}

static void rb_register(void) {
  pthread_atfork(NULL, NULL, rb_atfork_child);
}

static uint64_t rb_random(void) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
    /* No entropy source: still different per thread and per call. */
    static _Atomic uint64_t counter;
    r = (uint64_t)atr__now_ns() ^ ((uint64_t)syscall(SYS_gettid) << 32) ^
        (atomic_fetch_add(&counter, 1) * UINT64_C(0x9e3779b97f4a7c15));
    r ^= r >> 31;
    r *= UINT64_C(0xbf58476d1ce4e5b9);
    r ^= r >> 29;
  }
  return r;
}

uint64_t atr__token(void) {
  uint64_t t;
  while ((t = rb_random()) == 0)
    ;
  return t;
}

/* Reads the calling thread's robust list head and checks it is glibc's
 * layout (the futex_offset our holds are laid out for). */
static void *rb_head(void) {
  struct robust_list_head *head = NULL;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head == NULL ||
      len != sizeof *head ||
      head->futex_offset != (long)offsetof(struct atr__hold, word) -
                                (long)offsetof(struct atr__hold, next)) {
    errno = ENOTSUP;
    return NULL;
  }
  return head;
}

const struct atr__self *atr__self_make(void) {
  struct atr__self *me = &atr__self_tls;
  if (me->tid != 0)
    return me;
  pthread_once(&rb_once, rb_register);
  if ((me->head = rb_head()) == NULL)
    return NULL;
  me->nonce = atr__token();
  me->tid = (uint32_t)syscall(SYS_gettid) & ATR__TID_MASK;
  return me;
}

uint32_t atr__tid(void) {
  const struct atr__self *me = atr__self();
  return me != NULL ? me->tid : (uint32_t)syscall(SYS_gettid);
}

uint64_t atr__nonce(void) {
  const struct atr__self *me = atr__self();
  return me != NULL ? me->nonce : 0;
}

bool atr__hold_unlink(struct atr__hold *h, const struct atr__self *self) {
  struct robust_list_head *rh = self->head;
  void *me = &h->next, *pred = &rh->list.next;
  /* The back link first, as glibc's DEQUEUE uses it: when the entry it
   * names (the head, or an entry) links to h, h is linked right after
   * it, and it comes off in O(1) (a thread that keeps many holds gives
   * back its oldest first: a leased queue's acks in the order of their
   * gets). An entry given back as its list's first keeps stale links,
   * which fail the test and are walked. */
  void *back = h->prev;
  if (back != NULL && ((uintptr_t)back & (sizeof(void *) - 1)) == 0 &&
      atr__rb_clean(*(void **)back) == me) {
    void *next = h->next;
    *atr__rb_back(atr__rb_clean(next)) = back;
    *(void **)back = next;
    atomic_signal_fence(memory_order_seq_cst);
    h->prev = h->next = NULL;
    return true;
  }
  void *e = atr__rb_clean(rh->list.next);
  /* Walk from the head rather than trust h's back link: the store is
   * input, and an entry not in this list must not be unlinked. */
  for (int i = 0; e != (void *)rh && i < RB_LIST_LIMIT; i++) {
    if (e == me) {
      void *next = h->next;
      *atr__rb_back(atr__rb_clean(next)) = h->prev;
      *(void **)pred = next;
      atomic_signal_fence(memory_order_seq_cst);
      h->prev = h->next = NULL;
      return true;
    }
    pred = e;
    e = atr__rb_clean(*(void **)e);
  }
  return false;
}

int atr__lease_take(struct atr__hold *h, uint64_t token, int64_t deadline_ns,
                    uint32_t bits, uint32_t *seen) {
  uint32_t w = atomic_load_explicit(&h->word, memory_order_relaxed);
  do {
    if (!atr__word_free(w)) {
      *seen = w;
      return 1;
    }
  } while (!atomic_compare_exchange_weak(
      &h->word, &w, ATR__LEASE_TID | bits | (w & ATR__WAITERS)));
  __atomic_store_n(&h->deadline_ns, deadline_ns, __ATOMIC_RELAXED);
  __atomic_store_n(&h->nonce, token, __ATOMIC_RELEASE);
  return (w & ATR__OWNER_DIED) ? ATR_ABANDONED : 0;
}

bool atr__lease_is(const struct atr__hold *h, uint64_t token) {
  uint32_t w = atomic_load_explicit(&h->word, memory_order_acquire);
  return (w & ATR__TID_MASK) == ATR__LEASE_TID &&
         (token == 0 || __atomic_load_n(&h->nonce, __ATOMIC_RELAXED) == token);
}

bool atr__lease_over(const struct atr__hold *h, int64_t now_ns) {
  return atr__lease_is(h, 0) &&
         now_ns >= __atomic_load_n(&h->deadline_ns, __ATOMIC_RELAXED);
}

void atr__lease_give(struct atr__hold *h, uint32_t to, int wake_n) {
  __atomic_store_n(&h->nonce, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&h->deadline_ns, 0, __ATOMIC_RELAXED);
  uint32_t old = atomic_exchange(&h->word, to);
  atr__hold_wake(h, old, wake_n);
}

int atr__hold_watch(struct atr__hold *h, uint32_t *val) {
  uint32_t w = atomic_load(&h->word);
  for (;;) {
    if (atr__word_free(w))
      return 1;
    if (w & ATR__WAITERS)
      break;
    if (atomic_compare_exchange_weak(&h->word, &w, w | ATR__WAITERS)) {
      w |= ATR__WAITERS;
      break;
    }
  }
  *val = w;
  return 0;
}

void atr__hold_pass_wake(struct atr__hold *h) {
  atr__futex_wake(&h->word);
}
