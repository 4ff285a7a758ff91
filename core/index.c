/*
 * index.c - the name index: an open-addressing hash table from names to
 * record slots, probed lock-free, changed under the store lock.
 *
 * An index entry is 0 (empty), 1 (deleted) or (slot + 2) | tag << 32,
 * where tag is the high half of the name's hash, which also gives the
 * entry's home position (its low bits), so an entry tells where its
 * probe starts. Inserts and deletes run under the store lock and are
 * committed by one aligned store each; a deleted entry turns back into
 * an empty one once no entry's probe passes it (idx_sweep), so churn
 * leaves no tombstones to lengthen the probes.
 * The index reads a record's name, id and hash, never what its kind keeps.
 */
#include "internal.h"

#include <string.h>

#define EMPTY 0u
#define TOMB 1u

uint64_t atr__hash(const char *name, size_t len) {
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    x = (x ^ (uint8_t)name[i]) * 1099511628211ull;
  /* FNV-1a leaves its high bits poorly mixed for names that differ in
   * their last bytes (obj-1, obj-2, ...), and the index's homes come
   * from the high half: a full finaliser (MurmurHash3's fmix64). */
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Where the probe for hash starts: from the half an entry keeps. */
static uint32_t idx_home(uint64_t hash, uint32_t mask) {
  return (uint32_t)(hash >> 32) & mask;
}

static uint64_t idx_entry(uint32_t slot, uint64_t hash) {
  return (uint64_t)(slot + 2) | (hash & 0xffffffff00000000ull);
}

static bool idx_same_name(struct atr__obj *o, const char *name, size_t len) {
  char copy[ATR_NAME_MAX];
  size_t n = o->name_len;
  if (n != len)
    return false;
  /* The record may be changing under us; compare a copy, then let the
   * caller confirm the entry and id did not move. */
  memcpy(copy, o->name, n);
  return memcmp(copy, name, len) == 0;
}

int64_t atr__index_find(atr_store *s, const char *name, size_t len,
                        uint64_t hash, uint32_t *slot, uint64_t *id) {
  uint32_t mask = s->index_mask;
  if (len > ATR_NAME_MAX)
    return -1; /* a record's damaged length names nothing */
  for (uint32_t i = 0, pos = idx_home(hash, mask); i <= mask;
       i++, pos = (pos + 1) & mask) {
    uint64_t e = atomic_load_explicit(&s->index[pos], memory_order_acquire);
    if (e == EMPTY)
      return -1;
    if (e == TOMB || (e >> 32) != (hash >> 32))
      continue;
    uint32_t sl = (uint32_t)e - 2;
    if (sl >= s->hdr->max_objects)
      continue;
    struct atr__obj *o = atr__slot(s, sl);
    uint64_t oid = atomic_load_explicit(&o->id, memory_order_acquire);
    if (oid == 0 || !idx_same_name(o, name, len))
      continue;
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load(&s->index[pos]) != e || atomic_load(&o->id) != oid)
      continue;
    *slot = sl;
    *id = oid;
    return pos;
  }
  return -1;
}

int atr__lookup(atr_store *s, const char *name, size_t len, uint32_t *slot,
                uint64_t *id) {
  return atr__index_find(s, name, len, atr__hash(name, len), slot, id) < 0
             ? ATR_ENOENT
             : 0;
}

int64_t atr__index_free_pos(atr_store *s, uint64_t hash) {
  uint32_t mask = s->index_mask;
  for (uint32_t i = 0, pos = idx_home(hash, mask); i <= mask;
       i++, pos = (pos + 1) & mask) {
    uint64_t e = atomic_load(&s->index[pos]);
    if (e == EMPTY || e == TOMB)
      return pos;
  }
  return -1; /* a full table: only damage makes one */
}

void atr__index_insert(atr_store *s, uint32_t pos, uint32_t slot,
                       uint64_t hash) {
  atomic_store_explicit(&s->index[pos], idx_entry(slot, hash),
                        memory_order_release);
}

/*
 * Turns into empties the tombstones of the run of used entries around
 * pos that no entry's probe passes: a tombstone can go when every live
 * entry after it in the run has its home after it too. Walked backward
 * from the run's end, keeping the earliest home seen; one store each,
 * so a lookup that passes a tombstone as it goes never needed it.
 */
static void idx_sweep(atr_store *s, uint32_t pos) {
  uint32_t mask = s->index_mask, start = pos, end = pos, n;
  /* The run: from after the empty before pos to the empty after it (at
   * most one lap, should damage have left no empty). */
  for (n = 0; n < mask && atomic_load(&s->index[(start - 1) & mask]) != EMPTY;
       n++)
    start = (start - 1) & mask;
  for (n = 0; n < mask && atomic_load(&s->index[(end + 1) & mask]) != EMPTY;
       n++)
    end = (end + 1) & mask;
  uint32_t len = ((end - start) & mask) + 1, earliest = len;
  for (uint32_t d = len; d-- > 0;) {
    uint32_t at = (start + d) & mask;
    uint64_t e = atomic_load(&s->index[at]);
    if (e == TOMB) {
      if (earliest > d)
        atomic_store(&s->index[at], EMPTY);
      continue;
    }
    /* A home outside the run before this entry is damage: keep all. */
    uint32_t home = ((uint32_t)(e >> 32) & mask) - start;
    home &= mask;
    if (home > d)
      home = 0;
    if (home < earliest)
      earliest = home;
  }
}

/* One store removes the entry; then the tombstones no probe needs go. */
void atr__index_remove(atr_store *s, uint32_t pos) {
  atomic_store(&s->index[pos], TOMB);
  idx_sweep(s, pos);
}

void atr__index_recover(atr_store *s) {
  for (uint32_t pos = 0; pos <= s->index_mask; pos++) {
    uint64_t e = atomic_load(&s->index[pos]);
    if (e <= TOMB)
      continue;
    uint32_t slot = (uint32_t)e - 2;
    if (slot >= s->hdr->max_objects ||
        atomic_load(&atr__slot(s, slot)->id) == 0)
      atomic_store(&s->index[pos], TOMB);
  }
}
