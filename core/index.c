/*
 * index.c - names and object records: lock-free lookup, create, delete,
 * list, stat, and the repair of both after a crash.
 *
 * An index entry is 0 (empty), 1 (deleted) or (slot + 2) | tag << 32,
 * where tag is the high half of the name's hash. Inserts and deletes run
 * under the store lock and are committed by one aligned store each; a
 * deleted entry turns back into an empty one once nothing probes past it.
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

static uint64_t entry_of(uint32_t slot, uint64_t hash) {
  return (uint64_t)(slot + 2) | (hash & 0xffffffff00000000ull);
}

static bool same_name(struct atr__obj *o, const char *name, size_t len) {
  char copy[ATR_NAME_MAX];
  size_t n = o->name_len;
  if (n != len)
    return false;
  /* The record may be changing under us; compare a copy, then let the
   * caller confirm the entry and id did not move. */
  memcpy(copy, o->name, n);
  return memcmp(copy, name, len) == 0;
}

/* Probes for name; returns the index position or -1. */
static int64_t probe(atr_store *s, const char *name, size_t len, uint64_t hash,
                     uint32_t *slot, uint64_t *id) {
  uint32_t mask = s->index_mask;
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
    if (oid == 0 || !same_name(o, name, len))
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
  return probe(s, name, len, atr__hash(name, len), slot, id) < 0 ? ATR_ENOENT
                                                                 : 0;
}

void atr__index_insert(atr_store *s, uint32_t slot, uint64_t hash) {
  uint32_t mask = s->index_mask;
  for (uint32_t pos = (uint32_t)hash & mask;; pos = (pos + 1) & mask) {
    uint64_t e = atomic_load(&s->index[pos]);
    if (e == EMPTY || e == TOMB) {
      atomic_store_explicit(&s->index[pos], entry_of(slot, hash),
                            memory_order_release);
      return;
    }
  }
}

/* Removes the entry at pos (one store), then turns trailing tombstones
 * into empties: a probe chain that ends at an empty entry never passed
 * them, so no lookup can be cut short. */
static void index_remove(atr_store *s, uint32_t pos) {
  uint32_t mask = s->index_mask;
  bool last = atomic_load(&s->index[(pos + 1) & mask]) == EMPTY;
  atomic_store(&s->index[pos], last ? EMPTY : TOMB);
  while (last) {
    pos = (pos - 1) & mask;
    if (atomic_load(&s->index[pos]) != TOMB)
      break;
    atomic_store(&s->index[pos], EMPTY);
  }
}

struct atr__obj *atr__obj_of(const atr_handle *h) {
  struct atr__obj *o;
  if (h == NULL || (o = h->rec) == NULL)
    return NULL;
  return atomic_load_explicit(&o->id, memory_order_acquire) == h->id ? o : NULL;
}

struct repair_arg {
  atr_store *s;
  struct atr__obj *o;
};

static void record_repair(void *arg) {
  struct repair_arg *ra = arg;
  if (atomic_load(&ra->o->id) == 0)
    return;
  if (ra->o->kind == ATR_ARRAY)
    atr__array_repair(ra->s, ra->o);
  else if (ra->o->kind == ATR_QUEUE)
    atr__queue_repair(ra->s, ra->o);
}

int atr__record_lock(atr_store *s, struct atr__obj *o) {
  struct repair_arg ra = {s, o};
  return atr__mutex_lock(&o->lock, record_repair, &ra);
}

int atr__handle_lock(const atr_handle *h, atr_kind kind,
                     struct atr__obj **out) {
  struct atr__obj *o = atr__obj_of(h);
  int rc;
  if (o == NULL || h->kind != kind)
    return ATR_ENOENT;
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  if (atomic_load(&o->id) != h->id || o->dead) {
    atr__mutex_unlock(&o->lock);
    return ATR_ENOENT;
  }
  *out = o;
  return 0;
}

static void fill_handle(atr_store *s, uint32_t slot, uint64_t id,
                        atr_handle *h) {
  struct atr__obj *o = atr__slot(s, slot);
  h->store = s;
  h->rec = o;
  h->slot = slot;
  h->id = id;
  h->kind = (atr_kind)o->kind;
  h->type = (char)o->type;
}

/* Vets an existing object for an _open call. */
static int vet(atr_store *s, uint32_t slot, uint64_t id, atr_kind kind,
               char type, int flags,
               int (*check)(struct atr__obj *o, void *arg), void *arg,
               atr_handle *h) {
  struct atr__obj *o = atr__slot(s, slot);
  int rc;
  if ((flags & ATR_CREATE) && (flags & ATR_EXCL))
    return ATR_EEXIST;
  if (o->kind != kind)
    return ATR_EKIND;
  if (type != 0 && o->type != (uint8_t)type)
    return ATR_ETYPE;
  if (check != NULL && (rc = check(o, arg)) != 0)
    return rc;
  if (atomic_load(&o->id) != id)
    return ATR_ENOENT;
  fill_handle(s, slot, id, h);
  return 0;
}

int atr__open(atr_store *s, const char *name, atr_kind kind, char type,
              int flags, int (*check)(struct atr__obj *o, void *arg),
              atr__init_fn init, void *arg, atr_handle *h) {
  size_t len = name != NULL ? strnlen(name, ATR_NAME_MAX + 1) : 0;
  uint64_t hash, id;
  uint32_t slot;
  int rc;

  if (s == NULL || h == NULL)
    return ATR_EINVAL;
  if ((rc = atr_name_check(name, len)) != 0)
    return rc;
  hash = atr__hash(name, len);
  if (probe(s, name, len, hash, &slot, &id) >= 0)
    return vet(s, slot, id, kind, type, flags, check, arg, h);
  if (!(flags & ATR_CREATE))
    return ATR_ENOENT;
  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if (probe(s, name, len, hash, &slot, &id) >= 0) {
    rc = vet(s, slot, id, kind, type, flags, check, arg, h);
    goto out;
  }
  struct atr__header *hd = s->hdr;
  if (hd->free_slot == 0 || hd->objects >= hd->max_objects) {
    rc = ATR_ETOOMANY;
    goto out;
  }
  slot = hd->free_slot - 1;
  struct atr__obj *o = atr__slot(s, slot);
  o->kind = (uint8_t)kind;
  o->type = (uint8_t)type;
  o->name_len = (uint8_t)len;
  o->dead = 0;
  memset(o->name, 0, sizeof o->name);
  memcpy(o->name, name, len);
  o->hash = hash;
  o->bits = 0;
  o->data_off = o->data_size = 0;
  o->version = hd->version_floor + 1;
  atomic_store(&o->pend, 0);
  if ((rc = init(s, o, arg)) != 0)
    goto out; /* init frees what it took */
  /* Publish: the id makes the record live, the index entry makes it
   * findable (the commit point). */
  hd->free_slot = o->next_free;
  o->next_free = 0;
  id = hd->next_id++;
  atomic_store_explicit(&o->id, id, memory_order_release);
  atr__index_insert(s, slot, hash);
  hd->objects++;
  fill_handle(s, slot, id, h);
  /* Under the store lock, so a name's created and deleted events keep
   * their order; publishing never blocks. */
  atr__feed_push(s, o, slot, ATR_OP_CREATED, false);
  rc = ATR_CREATED;
out:
  atr__store_unlock(s);
  return rc;
}

uint64_t atr__record_data(struct atr__obj *o, uint64_t *size) {
  if (o->kind == ATR_QUEUE) {
    /* A committed move owns the new ring (the old one is free). */
    bool moved = atomic_load(&o->u.q.move.valid) != 0;
    *size = moved ? o->u.q.move.ring_size : o->u.q.ring_size;
    return moved ? o->u.q.move.ring_off : o->u.q.ring_off;
  }
  *size = o->data_size;
  return o->data_off;
}

/* Frees o's record and data; under the store lock, o already dead. */
static void release(atr_store *s, uint32_t slot, struct atr__obj *o) {
  uint64_t size, off = atr__record_data(o, &size);
  atomic_store(&o->id, 0);
  if (off != 0)
    atr__heap_free(s, off);
  o->data_off = o->data_size = 0;
  o->next_free = s->hdr->free_slot;
  s->hdr->free_slot = slot + 1;
  s->hdr->objects--;
}

static int stop_changes(atr_store *s, struct atr__obj *o, uint64_t *last) {
  switch (o->kind) {
  case ATR_VALUE:
    return atr__value_kill(o, last);
  case ATR_ARRAY:
    return atr__array_kill(s, o, last);
  case ATR_QUEUE:
    return atr__queue_kill(s, o, last);
  default:
    return ATR_ECORRUPT;
  }
}

ATR__EXPORT int atr_delete(atr_store *s, const char *name, atr_kind kind) {
  size_t len = name != NULL ? strnlen(name, ATR_NAME_MAX + 1) : 0;
  uint64_t hash, id, last = 0;
  uint32_t slot;
  int64_t pos;
  int rc;

  if (s == NULL)
    return ATR_EINVAL;
  if ((rc = atr_name_check(name, len)) != 0)
    return rc;
  hash = atr__hash(name, len);
  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if ((pos = probe(s, name, len, hash, &slot, &id)) < 0) {
    rc = ATR_ENOENT;
    goto out;
  }
  struct atr__obj *o = atr__slot(s, slot);
  if (kind != ATR_ANY && o->kind != kind) {
    rc = ATR_EKIND;
    goto out;
  }
  /* Stop every further change first, so the last version is final, and
   * raise the floor before the entry goes: a re-created name starts
   * above anything it had, even if we die half-way. */
  if ((rc = stop_changes(s, o, &last)) != 0)
    goto out;
  if (last > s->hdr->version_floor)
    s->hdr->version_floor = last;
  index_remove(s, (uint32_t)pos);
  atr__feed_push(s, o, slot, ATR_OP_DELETED, false);
  release(s, slot, o);
out:
  atr__store_unlock(s);
  return rc;
}

/* Fills info from a live record; ATR_ENOENT if it went away meanwhile. */
static int info_of(atr_store *s, uint32_t slot, uint64_t id, atr_info *info) {
  struct atr__obj *o = atr__slot(s, slot);
  atr_handle h;
  memset(info, 0, sizeof *info);
  memcpy(info->name, o->name, o->name_len);
  info->name[o->name_len < ATR_NAME_MAX ? o->name_len : ATR_NAME_MAX] = 0;
  info->kind = (atr_kind)o->kind;
  info->id = id;
  fill_handle(s, slot, id, &h);
  switch (o->kind) {
  case ATR_VALUE:
    info->type = (char)o->type;
    if (atr_value_get(&h, NULL, &info->version) != 0)
      return ATR_ENOENT;
    break;
  case ATR_ARRAY:
    info->type = (char)o->type;
    atr__array_info(o, info);
    break;
  case ATR_QUEUE:
    if (atr__queue_info(s, o, info) != 0)
      return ATR_ENOENT;
    break;
  default:
    return ATR_ENOENT;
  }
  return atomic_load(&o->id) == id ? 0 : ATR_ENOENT;
}

ATR__EXPORT int atr_stat(atr_store *s, const char *name, atr_info *info) {
  size_t len = name != NULL ? strnlen(name, ATR_NAME_MAX + 1) : 0;
  uint32_t slot;
  uint64_t id;
  int rc;
  if (s == NULL || info == NULL)
    return ATR_EINVAL;
  if ((rc = atr_name_check(name, len)) != 0)
    return rc;
  for (int tries = 0; tries < 8; tries++) {
    if ((rc = atr__lookup(s, name, len, &slot, &id)) != 0)
      return rc;
    if ((rc = info_of(s, slot, id, info)) == 0)
      return 0;
  }
  return rc;
}

ATR__EXPORT int atr_handle_stat(const atr_handle *h, atr_info *info) {
  if (h == NULL || h->store == NULL || info == NULL)
    return ATR_EINVAL;
  if (atr__obj_of(h) == NULL)
    return ATR_ENOENT;
  return info_of(h->store, h->slot, h->id, info);
}

ATR__EXPORT int
atr_list(atr_store *s, int (*fn)(const atr_info *info, void *arg), void *arg) {
  atr_info info;
  if (s == NULL || fn == NULL)
    return ATR_EINVAL;
  for (uint32_t i = 0; i < s->hdr->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    uint64_t id = atomic_load_explicit(&o->id, memory_order_acquire);
    if (id == 0 || o->dead)
      continue;
    if (info_of(s, i, id, &info) != 0)
      continue;
    int rc = fn(&info, arg);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* The last version of a record whose changes have stopped. */
static uint64_t last_version(struct atr__obj *o) {
  switch (o->kind) {
  case ATR_ARRAY:
    return o->u.a.version;
  case ATR_QUEUE:
    return o->u.q.base + o->u.q.puts + o->u.q.gets;
  default:
    return o->version & ~ATR__DEAD;
  }
}

void atr__index_recover(atr_store *s) {
  struct atr__header *h = s->hdr;
  uint32_t slot;
  uint64_t id;

  /* Index entries must name live records. */
  for (uint32_t pos = 0; pos <= s->index_mask; pos++) {
    uint64_t e = atomic_load(&s->index[pos]);
    if (e <= TOMB)
      continue;
    slot = (uint32_t)e - 2;
    if (slot >= h->max_objects || atomic_load(&atr__slot(s, slot)->id) == 0)
      atomic_store(&s->index[pos], TOMB);
  }
  /* Records must be findable and alive: drop a half-made object (its
   * entry never went in) and finish a half-done delete. */
  h->objects = 0;
  h->free_slot = 0;
  for (uint32_t i = h->max_objects; i-- > 0;) {
    struct atr__obj *o = atr__slot(s, i);
    int64_t pos = -1;
    if (atomic_load(&o->id) != 0)
      pos = probe(s, o->name, o->name_len, o->hash, &slot, &id);
    if (pos >= 0 && slot == i && !o->dead) {
      h->objects++;
      continue;
    }
    if (pos >= 0 && slot == i) {
      uint64_t last = last_version(o);
      if (last > h->version_floor)
        h->version_floor = last;
      index_remove(s, (uint32_t)pos);
    }
    atomic_store(&o->id, 0);
    o->data_off = o->data_size = 0;
    o->next_free = h->free_slot;
    h->free_slot = i + 1;
  }
}
