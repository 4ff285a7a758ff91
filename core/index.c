/*
 * index.c - the name index: an open-addressing hash table from names to
 * record slots, probed lock-free, changed under the store lock.
 *
 * An index entry is 0 (empty), 1 (deleted) or (slot + 2) | tag << 32,
 * where tag is the high half of the name's hash. Inserts and deletes run
 * under the store lock and are committed by one aligned store each; a
 * deleted entry turns back into an empty one once nothing probes past it.
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
  return x ^ (x >> 29);
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
  for (uint32_t i = 0, pos = (uint32_t)hash & mask; i <= mask;
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
  for (uint32_t i = 0, pos = (uint32_t)hash & mask; i <= mask;
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

/* One store removes the entry; then trailing tombstones turn into
 * empties: a probe chain that ends at an empty entry never passed them,
 * so no lookup can be cut short. */
void atr__index_remove(atr_store *s, uint32_t pos) {
  uint32_t mask = s->index_mask;
  bool last = atomic_load(&s->index[(pos + 1) & mask]) == EMPTY;
  atomic_store(&s->index[pos], last ? EMPTY : TOMB);
  /* At most one lap, should damage have left only tombstones. */
  for (uint32_t i = 0; last && i < mask; i++) {
    pos = (pos - 1) & mask;
    if (atomic_load(&s->index[pos]) != TOMB)
      break;
    atomic_store(&s->index[pos], EMPTY);
  }
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
