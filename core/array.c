/*
 * array.c - fixed-length typed arrays.
 *
 * Writers take the array's robust lock and write through a redo log: the
 * new elements go to the log first, one store marks the log committed,
 * then they are copied into place inside a seqlock (odd while copying).
 * A writer killed at any point leaves either an uncommitted log (the old
 * data stand) or a committed one that the next locker replays before
 * marking the lock consistent. Readers are lock-free: they retry while
 * the sequence is odd or moved, and after a bounded number of tries take
 * the lock, which repairs a dead writer's work.
 */
#include "internal.h"

#include <sched.h>
#include <string.h>

#define READ_TRIES 64

static uint8_t *arr_data_of(atr_store *s, struct atr__obj *o) {
  return s->base + o->data_off;
}

static uint8_t *arr_log_of(atr_store *s, struct atr__obj *o) {
  return arr_data_of(s, o) + o->u.a.length * o->u.a.esize;
}

/* Whether o's array state fits the store: its type and element size
 * agree, its data and redo log lie in its heap block and a committed
 * log's range in the array. The length, element size and block never
 * change, so this holds for the record's life once it held. */
static bool arr_ok(const atr_store *s, const struct atr__obj *o) {
  const struct atr__array *a = &o->u.a;
  uint64_t esize = atr_type_size((char)o->type);
  if (esize == 0 || a->esize != esize || a->length == 0 ||
      a->length > ((uint64_t)1 << 40) / esize ||
      o->data_size < a->length * esize * 2 ||
      !atr__heap_span_ok(s, o->data_off, o->data_size))
    return false;
  return !atomic_load(&a->log_valid) ||
         (a->log_count <= a->length &&
          a->log_start <= a->length - a->log_count);
}

static struct atr__obj *arr_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_ARRAY ? o : NULL;
}

/* Copies the committed log into place. Holding the lock. */
static void arr_apply_log(atr_store *s, struct atr__obj *o) {
  struct atr__array *a = &o->u.a;
  uint64_t seq = atomic_load(&a->seq);
  atomic_store_explicit(&a->seq, seq | 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  memcpy(arr_data_of(s, o) + a->log_start * a->esize, arr_log_of(s, o),
         a->log_count * a->esize);
  a->version = a->log_version;
  atomic_store_explicit(&a->seq, (seq | 1) + 1, memory_order_release);
  atomic_store_explicit(&a->log_valid, 0, memory_order_release);
}

/* Finishes the work of a writer that died holding the lock: replays a
 * committed log, or closes a sequence left odd. */
static void arr_repair(atr_store *s, struct atr__obj *o) {
  struct atr__array *a = &o->u.a;
  if (o->data_off == 0)
    return;
  if (!arr_ok(s, o)) {
    /* Damage, not a dead writer: replay nothing; callers see ECORRUPT. */
    atomic_store(&a->log_valid, 0);
    return;
  }
  if (atomic_load(&a->log_valid))
    arr_apply_log(s, o);
  else if (atomic_load(&a->seq) & 1)
    atomic_fetch_add(&a->seq, 1);
}

/* The record lock of a live, undamaged array. */
static int arr_lock(const atr_handle *h, struct atr__obj **out) {
  int rc = atr__handle_lock(h, ATR_ARRAY, out);
  if (rc == 0 && !arr_ok(h->store, *out)) {
    atr__mutex_unlock(&(*out)->lock);
    return ATR_ECORRUPT;
  }
  return rc;
}

struct arr_init_arg {
  uint64_t length;
  const atr_scalar *init;
};

static int arr_check(atr_store *s, struct atr__obj *o, void *arg) {
  struct arr_init_arg *ai = arg;
  if (!arr_ok(s, o))
    return ATR_ECORRUPT;
  return ai->length == 0 || ai->length == o->u.a.length ? 0 : ATR_ELENGTH;
}

/* Sets up a new array; its arguments are checked only now, when it is
 * created: opening an existing array ignores them. */
static int arr_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct arr_init_arg *ai = arg;
  struct atr__array *a = &o->u.a;
  size_t esize = atr_type_size((char)o->type);
  uint64_t got, bytes;

  if (esize == 0 || ai->length == 0)
    return ATR_EINVAL; /* a new array needs a type and a length */
  if (ai->length > ((uint64_t)1 << 40) / esize)
    return ATR_ENOSPC;
  for (uint64_t i = 0; ai->init != NULL && i < ai->length; i++) {
    atr_scalar v = ai->init[i];
    if (atr__scalar_check((char)o->type, &v) != 0)
      return ATR_ERANGE;
  }
  bytes = ai->length * esize * 2; /* data and redo log */
  if ((o->data_off = atr__heap_alloc(s, bytes, &got)) == 0)
    return ATR_ENOSPC;
  o->data_size = got;
  a->length = ai->length;
  a->esize = (uint32_t)esize;
  a->version = o->version;
  atomic_store(&a->seq, 0);
  atomic_store(&a->log_valid, 0);
  uint8_t *d = arr_data_of(s, o);
  memset(d, 0, bytes);
  for (uint64_t i = 0; ai->init != NULL && i < ai->length; i++) {
    atr_scalar v = ai->init[i];
    atr__scalar_check((char)o->type, &v); /* normalises a 'f' */
    atr__elem_store((char)o->type, d + i * esize, v);
  }
  return 0;
}

ATR__EXPORT int atr_array_open(atr_store *s, const char *name, char type,
                               uint64_t length, int flags,
                               const atr_scalar *init, atr_handle *h) {
  struct arr_init_arg ai = {length, init};
  if (type != 0 && atr_type_size(type) == 0)
    return ATR_ETYPE;
  return atr__open(s, name, ATR_ARRAY, type, flags, arr_check, arr_init, &ai,
                   h);
}

ATR__EXPORT int atr_array_length(const atr_handle *h, uint64_t *length) {
  struct atr__obj *o = arr_of(h);
  if (o == NULL || length == NULL)
    return o == NULL ? ATR_ENOENT : ATR_EINVAL;
  if (!arr_ok(h->store, o))
    return ATR_ECORRUPT;
  *length = o->u.a.length;
  return atomic_load(&o->id) == h->id ? 0 : ATR_ENOENT;
}

ATR__EXPORT void atr_slice(int64_t start, int64_t stop, uint64_t length,
                           uint64_t *lo, uint64_t *hi) {
  int64_t n = length > INT64_MAX ? INT64_MAX : (int64_t)length;
  if (start < 0)
    start = start < -n ? 0 : start + n;
  if (stop < 0)
    stop = stop < -n ? 0 : stop + n;
  if (start > n)
    start = n;
  if (stop > n)
    stop = n;
  if (stop < start)
    stop = start;
  *lo = (uint64_t)start;
  *hi = (uint64_t)stop;
}

/* The data in place (see atrium.h for what using it means): the block
 * never moves while the array lives, so no lock is needed to hand it out. */
ATR__EXPORT int atr_array_data(const atr_handle *h, void **data,
                               size_t *bytes) {
  struct atr__obj *o = arr_of(h);
  if (o == NULL || data == NULL)
    return o == NULL ? ATR_ENOENT : ATR_EINVAL;
  if (!arr_ok(h->store, o))
    return ATR_ECORRUPT;
  if (atomic_load(&o->id) != h->id || o->dead)
    return ATR_ENOENT;
  *data = arr_data_of(h->store, o);
  if (bytes != NULL)
    *bytes = (size_t)(o->u.a.length * o->u.a.esize);
  return 0;
}

/* Copies [lo, hi) out; returns the array's version for that copy. */
static uint64_t arr_copy_out(atr_store *s, struct atr__obj *o, char type,
                             uint64_t lo, uint64_t hi, atr_scalar *out) {
  const uint8_t *d = arr_data_of(s, o);
  uint32_t esize = o->u.a.esize;
  for (uint64_t i = lo; i < hi; i++)
    out[i - lo] = atr__elem_load(type, d + i * esize);
  return o->u.a.version;
}

ATR__EXPORT int atr_array_get(const atr_handle *h, int64_t start, int64_t stop,
                              atr_scalar *out, uint64_t cap, uint64_t *n,
                              uint64_t *version) {
  struct atr__obj *o = arr_of(h);
  uint64_t lo, hi, ver;
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (!arr_ok(h->store, o))
    return ATR_ECORRUPT;
  atr_slice(start, stop, o->u.a.length, &lo, &hi);
  if (hi - lo > cap || (out == NULL && hi > lo))
    return ATR_EINVAL;
  for (int tries = 0; tries < READ_TRIES; tries++) {
    uint64_t seq = atomic_load_explicit(&o->u.a.seq, memory_order_acquire);
    if (seq & 1) {
      sched_yield();
      continue;
    }
    if (atomic_load(&o->id) != h->id || o->dead)
      return ATR_ENOENT;
    ver = arr_copy_out(h->store, o, h->type, lo, hi, out);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&o->u.a.seq, memory_order_relaxed) == seq)
      goto done;
  }
  /* A writer keeps the sequence moving, or died mid-copy: the lock
   * waits for the one and repairs the other. */
  if ((rc = arr_lock(h, &o)) != 0)
    return rc;
  ver = arr_copy_out(h->store, o, h->type, lo, hi, out);
  atr__mutex_unlock(&o->lock);
done:
  if (atomic_load(&o->id) != h->id)
    return ATR_ENOENT;
  if (n != NULL)
    *n = hi - lo;
  if (version != NULL)
    *version = ver;
  return 0;
}

/* Resolves a negative index; ATR_EBOUNDS if outside [0, length). */
static int arr_resolve(int64_t index, uint64_t length, uint64_t *at) {
  if (index < 0) {
    if ((uint64_t)(-(index + 1)) >= length)
      return ATR_EBOUNDS;
    *at = length - (uint64_t)(-(index + 1)) - 1;
    return 0;
  }
  if ((uint64_t)index >= length)
    return ATR_EBOUNDS;
  *at = (uint64_t)index;
  return 0;
}

/* Commits the log (already filled) for [start, start+count) and applies
 * it. Holding the lock. */
static uint64_t arr_commit(atr_store *s, struct atr__obj *o, uint64_t start,
                           uint64_t count) {
  struct atr__array *a = &o->u.a;
  a->log_start = start;
  a->log_count = count;
  a->log_version = a->version + 1;
  atomic_store_explicit(&a->log_valid, 1, memory_order_release);
  arr_apply_log(s, o);
  return a->version;
}

ATR__EXPORT int atr_array_set(const atr_handle *h, int64_t start,
                              const atr_scalar *values, uint64_t n,
                              uint64_t expect, uint64_t *version) {
  struct atr__obj *o;
  uint64_t at = 0, ver;
  int rc;
  if (values == NULL && n > 0)
    return ATR_EINVAL;
  if ((rc = arr_lock(h, &o)) != 0)
    return rc;
  struct atr__array *a = &o->u.a;
  /* Like Python, a start may equal the length when nothing is written. */
  if (n == 0 && start >= 0 && (uint64_t)start == a->length)
    at = a->length;
  else if ((rc = arr_resolve(start, a->length, &at)) != 0)
    goto out;
  if (n > a->length - at) {
    rc = ATR_EBOUNDS;
    goto out;
  }
  if (expect != 0 && expect != a->version) {
    rc = ATR_EVERSION;
    goto out;
  }
  /* Write aside: an element out of range leaves nothing written. */
  uint8_t *log = arr_log_of(h->store, o);
  for (uint64_t i = 0; i < n; i++) {
    atr_scalar v = values[i];
    if ((rc = atr__scalar_check(h->type, &v)) != 0)
      goto out;
    atr__elem_store(h->type, log + i * a->esize, v);
  }
  ver = n > 0 ? arr_commit(h->store, o, at, n) : a->version;
  if (version != NULL)
    *version = ver;
out:
  atr__mutex_unlock(&o->lock);
  if (rc == 0 && n > 0)
    atr__feed_push(h->store, o, h->slot, ATR_OP_SET, &o->pend);
  return rc;
}

ATR__EXPORT int atr_array_add(const atr_handle *h, int64_t index,
                              atr_scalar delta, atr_scalar *value,
                              uint64_t *version) {
  struct atr__obj *o;
  atr_scalar next;
  uint64_t at, ver;
  int rc;
  if ((rc = arr_lock(h, &o)) != 0)
    return rc;
  struct atr__array *a = &o->u.a;
  if ((rc = arr_resolve(index, a->length, &at)) != 0)
    goto out;
  atr_scalar cur =
      atr__elem_load(h->type, arr_data_of(h->store, o) + at * a->esize);
  if ((rc = atr__scalar_add(h->type, cur, delta, &next)) != 0)
    goto out;
  atr__elem_store(h->type, arr_log_of(h->store, o), next);
  ver = arr_commit(h->store, o, at, 1);
  if (value != NULL)
    *value = next;
  if (version != NULL)
    *version = ver;
out:
  atr__mutex_unlock(&o->lock);
  if (rc == 0)
    atr__feed_push(h->store, o, h->slot, ATR_OP_ADD, &o->pend);
  return rc;
}

static int arr_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  o->dead = 1;
  atomic_fetch_add(&o->u.a.seq, 2); /* readers in flight look again */
  *last = o->u.a.version;
  atr__mutex_unlock(&o->lock);
  return 0;
}

/* Lock-free: the length and element size never change; the version is
 * read inside the seqlock. */
static int arr_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  uint64_t seq;
  if (!arr_ok(s, o))
    return ATR_ECORRUPT;
  info->type = (char)o->type;
  do {
    seq = atomic_load_explicit(&o->u.a.seq, memory_order_acquire);
    info->length = o->u.a.length;
    info->version = o->u.a.version;
    info->bytes = o->u.a.length * o->u.a.esize;
    atomic_thread_fence(memory_order_acquire);
  } while ((seq & 1) == 0 &&
           atomic_load_explicit(&o->u.a.seq, memory_order_relaxed) != seq);
  return 0;
}

/* The data and redo log, one block. */
static uint64_t arr_data(const struct atr__obj *o, uint64_t *size) {
  *size = o->data_size;
  return o->data_off;
}

static uint64_t arr_last_version(const struct atr__obj *o) {
  return o->u.a.version;
}

const struct atr__kind_ops atr__array_ops = {
    .name = "array",
    .kill = arr_kill,
    .repair = arr_repair,
    .info = arr_info,
    .data = arr_data,
    .last_version = arr_last_version,
};
