/*
 * object.c - object records: create (open), delete, stat, list, the
 * record lock, and their repair after a crash.
 *
 * A record is found through the name index (index.c) and does what is
 * particular to its kind through the kind's ops (kinds.c): nothing here
 * reads a kind's union member or switches on kind. A record whose kind
 * byte names no kind is corrupt: it cannot be deleted or described, and
 * recovery gives it no heap data.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void obj_rebuild_heap(atr_store *s);
static void obj_sweep(atr_store *s);

/* The length of a valid name, or an error: 0 or ATR_ENAME. */
static int obj_name_len(const char *name, size_t *len) {
  *len = name != NULL ? strnlen(name, ATR_NAME_MAX + 1) : 0;
  return atr_name_check(name, *len);
}

struct atr__obj *atr__obj_of(const atr_handle *h) {
  struct atr__obj *o;
  if (h == NULL || (o = h->rec) == NULL)
    return NULL;
  return atomic_load_explicit(&o->id, memory_order_acquire) == h->id ? o : NULL;
}

static void obj_repair(void *arg) {
  struct atr__repair_arg *ra = arg;
  const struct atr__kind_ops *ops;
  if (atomic_load(&ra->o->id) == 0)
    return;
  if ((ops = atr__kind_ops_of(ra->o->kind)) != NULL && ops->repair != NULL)
    ops->repair(ra->s, ra->o);
}

int atr__record_lock(atr_store *s, struct atr__obj *o) {
  struct atr__repair_arg ra = {s, o};
  return atr__mutex_lock(&o->lock, obj_repair, &ra);
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

static void obj_fill_handle(atr_store *s, uint32_t slot, uint64_t id,
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
static int obj_vet(atr_store *s, uint32_t slot, uint64_t id, atr_kind kind,
                   char type, int flags,
                   int (*check)(atr_store *s, struct atr__obj *o, void *arg),
                   void *arg, atr_handle *h) {
  struct atr__obj *o = atr__slot(s, slot);
  int rc;
  if ((flags & ATR_CREATE) && (flags & ATR_EXCL))
    return ATR_EEXIST;
  if (o->kind != kind)
    return ATR_EKIND;
  if (type != 0 && o->type != (uint8_t)type)
    return ATR_ETYPE;
  if (check != NULL && (rc = check(s, o, arg)) != 0)
    return rc;
  if (atomic_load(&o->id) != id)
    return ATR_ENOENT;
  obj_fill_handle(s, slot, id, h);
  return 0;
}

int atr__open(atr_store *s, const char *name, atr_kind kind, char type,
              int flags,
              int (*check)(atr_store *s, struct atr__obj *o, void *arg),
              atr__init_fn init, void *arg, atr_handle *h) {
  uint64_t hash, id;
  uint32_t slot;
  size_t len;
  int rc;

  if (s == NULL || h == NULL)
    return ATR_EINVAL;
  if ((rc = obj_name_len(name, &len)) != 0)
    return rc;
  hash = atr__hash(name, len);
  if (atr__index_find(s, name, len, hash, &slot, &id) >= 0)
    return obj_vet(s, slot, id, kind, type, flags, check, arg, h);
  if (!(flags & ATR_CREATE))
    return ATR_ENOENT;
  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if (atr__index_find(s, name, len, hash, &slot, &id) >= 0) {
    rc = obj_vet(s, slot, id, kind, type, flags, check, arg, h);
    goto out;
  }
  struct atr__header *hd = s->hdr;
  if (hd->free_slot == 0 && hd->objects < hd->max_objects)
    obj_sweep(s);
  if (hd->free_slot == 0 || hd->objects >= hd->max_objects) {
    rc = ATR_ETOOMANY;
    goto out;
  }
  /* The free list and the index are read from the file: a free record
   * out of range or in use, or no room in the index, is damage. */
  int64_t pos = atr__index_free_pos(s, hash);
  slot = hd->free_slot - 1;
  if (hd->free_slot > hd->max_objects || pos < 0 ||
      atomic_load(&atr__slot(s, slot)->id) != 0) {
    rc = ATR_ECORRUPT;
    goto out;
  }
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
  rc = init(s, o, arg);
  if (rc == ATR_ENOSPC && atr__heap_damaged(s)) {
    /* The free list is derived state: made again from the records. */
    obj_rebuild_heap(s);
    rc = init(s, o, arg);
  }
  if (rc != 0)
    goto out; /* init frees what it took */
  /* Publish: the id makes the record live, the index entry makes it
   * findable (the commit point). */
  hd->free_slot = o->next_free <= hd->max_objects ? o->next_free : 0;
  o->next_free = 0;
  id = hd->next_id++;
  atomic_store_explicit(&o->id, id, memory_order_release);
  atr__index_insert(s, (uint32_t)pos, slot, hash);
  atr__order_insert(s, slot);
  hd->objects++;
  obj_fill_handle(s, slot, id, h);
  /* Under the store lock, so a name's created and deleted events keep
   * their order; publishing never blocks. */
  atr__feed_push(s, o, slot, ATR_OP_CREATED, NULL);
  rc = ATR_CREATED;
out:
  atr__store_unlock(s);
  return rc;
}

/* The heap block o's committed state uses, or 0 (also for a record of
 * no known kind). Under the store lock. */
static uint64_t obj_data(const struct atr__obj *o, uint64_t *size) {
  const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
  *size = 0;
  return ops != NULL && ops->data != NULL ? ops->data(o, size) : 0;
}

/* Puts a record back on the free list; under the store lock. */
static void obj_free_slot(atr_store *s, uint32_t slot, struct atr__obj *o) {
  atomic_store(&o->id, 0);
  o->data_off = o->data_size = 0;
  o->next_free = s->hdr->free_slot;
  s->hdr->free_slot = slot + 1;
}

/* Whether o's slot (and heap block) must wait before reuse: a thread
 * may still have one of its holds linked in its robust list. */
static bool obj_lingers(const atr_store *s, const struct atr__obj *o) {
  const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
  return ops != NULL && ops->lingers != NULL && ops->lingers(s, o);
}

/* Frees o's record and data; under the store lock, o already dead. A
 * record that lingers only loses its id (handles fail, the name is
 * free): its slot and data stay until obj_sweep finds its holds given
 * back (released, or their thread died). */
static void obj_release(atr_store *s, uint32_t slot, struct atr__obj *o) {
  uint64_t size, off = obj_data(o, &size);
  s->hdr->objects--;
  if (obj_lingers(s, o)) {
    o->dead = ATR__LINGER;
    atomic_store(&o->id, 0);
    return;
  }
  obj_free_slot(s, slot, o);
  if (off != 0)
    atr__heap_free(s, off);
}

/* Under the store lock: frees the lingering records whose holds are no
 * longer linked. Called when no free record is left (a scan of every
 * record: rare). */
static void obj_sweep(atr_store *s) {
  for (uint32_t i = 0; i < s->hdr->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    if (o->dead != ATR__LINGER || atomic_load(&o->id) != 0 || obj_lingers(s, o))
      continue;
    uint64_t size, off = obj_data(o, &size);
    o->dead = 1;
    obj_free_slot(s, i, o);
    if (off != 0)
      atr__heap_free(s, off);
  }
}

ATR__EXPORT int atr_delete(atr_store *s, const char *name, atr_kind kind) {
  const struct atr__kind_ops *ops;
  uint64_t hash, id, last = 0;
  uint32_t slot;
  int64_t pos;
  size_t len;
  int rc;

  if (s == NULL)
    return ATR_EINVAL;
  if ((rc = obj_name_len(name, &len)) != 0)
    return rc;
  hash = atr__hash(name, len);
  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if ((pos = atr__index_find(s, name, len, hash, &slot, &id)) < 0) {
    rc = ATR_ENOENT;
    goto out;
  }
  struct atr__obj *o = atr__slot(s, slot);
  if (kind != ATR_ANY && o->kind != kind) {
    rc = ATR_EKIND;
    goto out;
  }
  if ((ops = atr__kind_ops_of(o->kind)) == NULL) {
    rc = ATR_ECORRUPT;
    goto out;
  }
  /* Stop every further change first, so the last version is final, and
   * raise the floor before the entry goes: a re-created name starts
   * above anything it had, even if we die half-way. */
  if ((rc = ops->kill(s, o, &last)) != 0)
    goto out;
  if (last > s->hdr->version_floor)
    s->hdr->version_floor = last;
  atr__index_remove(s, (uint32_t)pos);
  bool ordered = atr__order_remove(s, slot);
  atr__feed_push(s, o, slot, ATR_OP_DELETED, NULL);
  obj_release(s, slot, o);
  if (!ordered)
    atr__order_rebuild(s); /* damage met: made again without o */
out:
  atr__store_unlock(s);
  return rc;
}

/* Fills info from a live record without a lock; ATR_ENOENT if it went
 * away meanwhile, ATR_ECORRUPT if the record is damaged (no known kind,
 * a name length past ATR_NAME_MAX, a kind's state that does not fit the
 * store). */
int atr__obj_info(atr_store *s, uint32_t slot, uint64_t id, atr_info *info) {
  struct atr__obj *o = atr__slot(s, slot);
  const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
  size_t len = o->name_len;
  int rc;
  memset(info, 0, sizeof *info);
  if (ops == NULL || len > ATR_NAME_MAX)
    return atomic_load(&o->id) == id ? ATR_ECORRUPT : ATR_ENOENT;
  memcpy(info->name, o->name, len);
  info->name[len] = 0;
  info->kind = (atr_kind)o->kind;
  info->id = id;
  if ((rc = ops->info(s, o, info)) != 0)
    return atomic_load(&o->id) == id ? rc : ATR_ENOENT;
  return atomic_load(&o->id) == id ? 0 : ATR_ENOENT;
}

ATR__EXPORT int atr_stat(atr_store *s, const char *name, atr_info *info) {
  uint32_t slot;
  uint64_t id;
  size_t len;
  int rc;
  if (s == NULL || info == NULL)
    return ATR_EINVAL;
  if ((rc = obj_name_len(name, &len)) != 0)
    return rc;
  for (int tries = 0; tries < 8; tries++) {
    if ((rc = atr__lookup(s, name, len, &slot, &id)) != 0)
      return rc;
    if ((rc = atr__obj_info(s, slot, id, info)) != ATR_ENOENT)
      return rc;
  }
  return rc;
}

ATR__EXPORT int atr_handle_stat(const atr_handle *h, atr_info *info) {
  if (h == NULL || h->store == NULL || info == NULL)
    return ATR_EINVAL;
  if (atr__obj_of(h) == NULL)
    return ATR_ENOENT;
  return atr__obj_info(h->store, h->slot, h->id, info);
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
    if (atr__obj_info(s, i, id, &info) != 0)
      continue;
    int rc = fn(&info, arg);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Records must be findable and alive: drops a half-made object (its
 * entry never went in) and finishes a half-done delete; recounts. */
static void obj_recover_records(atr_store *s) {
  struct atr__header *h = s->hdr;
  uint32_t slot;
  uint64_t id;

  h->objects = 0;
  h->free_slot = 0;
  for (uint32_t i = h->max_objects; i-- > 0;) {
    struct atr__obj *o = atr__slot(s, i);
    int64_t pos = -1;
    if (atomic_load(&o->id) != 0)
      pos = atr__index_find(s, o->name, o->name_len, o->hash, &slot, &id);
    if (pos >= 0 && slot == i && !o->dead) {
      h->objects++;
      continue;
    }
    if (pos >= 0 && slot == i) {
      const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
      uint64_t last = ops != NULL ? ops->last_version(o) : 0;
      if (last > h->version_floor)
        h->version_floor = last;
      atr__index_remove(s, (uint32_t)pos);
    }
    if ((o->dead || atomic_load(&o->id) == 0) && obj_lingers(s, o)) {
      o->dead = ATR__LINGER; /* a delete's end, or a lingering record */
      atomic_store(&o->id, 0);
      continue;
    }
    obj_free_slot(s, i, o);
  }
}

/* The blocks o uses besides its data (a kind's `spans` op). */
static size_t obj_spans(const atr_store *s, const struct atr__obj *o,
                        struct atr__span *live, size_t n_max) {
  const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
  return ops != NULL && ops->spans != NULL ? ops->spans(s, o, live, n_max) : 0;
}

/* Hands the heap the blocks of the live records. */
static void obj_rebuild_heap(atr_store *s) {
  struct atr__header *h = s->hdr;
  size_t n = 0, n_max = h->max_objects + 1u;

  /* Blocks besides a record's data (a queue's lease table) too. */
  for (uint32_t i = 0; i < h->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    n_max += obj_spans(s, o, NULL, 0);
  }
  struct atr__span *live = calloc(n_max, sizeof *live);
  if (live == NULL)
    abort(); /* recovery cannot proceed without it; never leave it half */
  for (uint32_t i = 0; i < h->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    uint64_t size, off = obj_data(o, &size);
    bool kept = atomic_load(&o->id) != 0 || o->dead == ATR__LINGER;
    if (kept && off != 0)
      live[n++] = (struct atr__span){off, size};
    if (kept)
      n += obj_spans(s, o, live + n, n_max - n);
  }
  atr__heap_rebuild(s, live, n);
  free(live);
}

void atr__object_recover(atr_store *s) {
  atr__index_recover(s);
  obj_recover_records(s);
  obj_rebuild_heap(s);
  atr__order_rebuild(s);
}
