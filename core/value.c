/*
 * value.c - typed scalar values, lock-free.
 *
 * A value's bits and its version sit side by side in one 16-byte word and
 * change together with one 16-byte compare-and-swap. So a reader always
 * gets a value with the version that belongs to it, and a
 * compare-and-set by version is exact: it cannot succeed once any change
 * has passed that version, because that change moved the same word.
 * Measured here, this costs about the same as an 8-byte CAS loop plus a
 * separate fetch_add of the version, which could not give that
 * guarantee. An add touches the value's own cache line and nothing else
 * unless the change feed needs a new event.
 *
 * Under contention (two processes pinned to two CPUs, adding to one
 * value) adds run at about half the rate of two bare atomic adds, and
 * fewer than one CAS in ten fails: the cost is the cache line moving
 * between the CPUs, which a bare add pays too, not CAS retries. So a
 * backoff after a failed CAS, or a load that takes the line to own
 * (prefetchw), measured no faster, and neither is here.
 */
#include "internal.h"

#include <string.h>

static inline atr__u128 val_pair_load(struct atr__obj *o) {
  /* Two plain loads may tear; the CAS that follows catches that. */
  const volatile uint64_t *p = &o->bits;
  uint64_t lo = p[0], hi = p[1];
  return ((atr__u128)hi << 64) | lo;
}

static inline bool val_pair_cas(struct atr__obj *o, atr__u128 *expect,
                                atr__u128 next) {
  atr__u128 seen =
      __sync_val_compare_and_swap((atr__u128 *)&o->bits, *expect, next);
  if (seen == *expect)
    return true;
  *expect = seen;
  return false;
}

static inline uint64_t val_pair_bits(atr__u128 p) {
  return (uint64_t)p;
}
static inline uint64_t val_pair_version(atr__u128 p) {
  return (uint64_t)(p >> 64);
}
static inline atr__u128 val_pair_make(uint64_t bits, uint64_t version) {
  return ((atr__u128)version << 64) | bits;
}

static atr_scalar val_from_bits(uint64_t bits) {
  atr_scalar v;
  v.u = bits;
  return v;
}

/* The handle's record, if it is a live value. */
static struct atr__obj *val_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_VALUE ? o : NULL;
}

struct val_init_arg {
  const atr_scalar *init;
};

/* Sets up a new value; its arguments are checked only now, when it is
 * created: opening an existing value ignores them. */
static int val_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct val_init_arg *vi = arg;
  atr_scalar v = {0};
  int rc;
  (void)s;
  if (o->type == 0)
    return ATR_EINVAL; /* a new value needs a type */
  if (vi->init != NULL) {
    v = *vi->init;
    if ((rc = atr__scalar_check((char)o->type, &v)) != 0)
      return rc;
  }
  o->bits = v.u;
  return 0;
}

ATR__EXPORT int atr_value_open(atr_store *s, const char *name, char type,
                               int flags, const atr_scalar *init,
                               atr_handle *h) {
  struct val_init_arg vi = {init};
  if (type != 0 && atr_type_size(type) == 0)
    return ATR_ETYPE;
  return atr__open(s, name, ATR_VALUE, type, flags, NULL, val_init, &vi, h);
}

/* Reads o's pair without writing it: the version is the pair's own
 * sequence count, changing with every change of the pair, so equal
 * versions around the read of the bits mean the bits belong to that
 * version. Read-only, no CAS. */
static atr__u128 val_read(const struct atr__obj *o) {
  uint64_t ver, bits;
  do {
    ver = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
    bits = __atomic_load_n(&o->bits, __ATOMIC_ACQUIRE);
  } while (__atomic_load_n(&o->version, __ATOMIC_ACQUIRE) != ver);
  return val_pair_make(bits, ver);
}

ATR__EXPORT int atr_value_get(const atr_handle *h, atr_scalar *value,
                              uint64_t *version) {
  struct atr__obj *o = val_of(h);
  if (o == NULL)
    return ATR_ENOENT;
  atr__u128 p = val_read(o);
  if ((val_pair_version(p) & ATR__DEAD) || atomic_load(&o->id) != h->id)
    return ATR_ENOENT;
  if (value != NULL)
    *value = val_from_bits(val_pair_bits(p));
  if (version != NULL)
    *version = val_pair_version(p);
  return 0;
}

ATR__EXPORT int atr_value_set(const atr_handle *h, atr_scalar value,
                              uint64_t expect, uint64_t *version) {
  struct atr__obj *o = val_of(h);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if ((rc = atr__scalar_check(h->type, &value)) != 0)
    return rc;
  atr__u128 p = val_pair_load(o);
  for (;;) {
    uint64_t ver = val_pair_version(p);
    if ((ver & ATR__DEAD) || atomic_load(&o->id) != h->id)
      return ATR_ENOENT;
    if (expect != 0 && ver != expect) {
      /* Confirm with a CAS so a torn read never fails a good set. */
      if (val_pair_cas(o, &p, p))
        return ATR_EVERSION;
      continue;
    }
    if (val_pair_cas(o, &p, val_pair_make(value.u, ver + 1))) {
      if (version != NULL)
        *version = ver + 1;
      break;
    }
  }
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_SET, &o->pend);
  return 0;
}

/* cur + delta for the value's type; the common 64-bit case inline. */
static inline int val_add_bits(char type, uint64_t cur, atr_scalar delta,
                               atr_scalar *next) {
  if (type == 'q' || type == 'l') {
    int64_t r;
    if (__builtin_add_overflow((int64_t)cur, delta.i, &r))
      return ATR_EOVERFLOW;
    next->i = r;
    return 0;
  }
  return atr__scalar_add(type, val_from_bits(cur), delta, next);
}

ATR__EXPORT int atr_value_add(const atr_handle *h, atr_scalar delta,
                              atr_scalar *value, uint64_t *version) {
  struct atr__obj *o;
  atr_scalar next;
  int rc;
  if (h == NULL || h->kind != ATR_VALUE || (o = h->rec) == NULL)
    return ATR_ENOENT;
  atr__u128 p = val_pair_load(o);
  for (;;) {
    uint64_t ver = val_pair_version(p);
    if ((ver & ATR__DEAD) ||
        atomic_load_explicit(&o->id, memory_order_relaxed) != h->id)
      return ATR_ENOENT;
    if ((rc = val_add_bits(h->type, val_pair_bits(p), delta, &next)) != 0) {
      /* Fail only on a pair known to be whole. */
      if (val_pair_cas(o, &p, p))
        return rc;
      continue;
    }
    if (val_pair_cas(o, &p, val_pair_make(next.u, ver + 1)))
      break;
  }
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ADD, &o->pend);
  if (value != NULL)
    *value = next;
  if (version != NULL)
    *version = val_pair_version(p) + 1;
  return 0;
}

/* Marks the value dead so that no change can follow; the last version
 * is the final one. Under the store lock. */
static int val_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  atr__u128 p = val_pair_load(o);
  (void)s;
  while (!val_pair_cas(
      o, &p, val_pair_make(val_pair_bits(p), val_pair_version(p) | ATR__DEAD)))
    ;
  o->dead = 1;
  *last = val_pair_version(p) & ~ATR__DEAD;
  return 0;
}

static int val_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  atr__u128 p = val_read(o);
  (void)s;
  if (val_pair_version(p) & ATR__DEAD)
    return ATR_ENOENT;
  info->type = (char)o->type;
  info->version = val_pair_version(p);
  return 0;
}

static uint64_t val_last_version(const struct atr__obj *o) {
  return o->version & ~ATR__DEAD;
}

/* A value lives in its record alone: nothing to repair, no heap. */
const struct atr__kind_ops atr__value_ops = {
    .name = "value",
    .kill = val_kill,
    .info = val_info,
    .last_version = val_last_version,
};
