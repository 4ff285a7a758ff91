/*
 * dict.h - what dict.c (the table and its commits) and dict_read.c (its
 * reads) share: the arena's layout and its checked views. Private to
 * core/.
 */
#ifndef ATRIUM_DICT_H
#define ATRIUM_DICT_H

#include "internal.h"

#define DICT_MAGIC "ATRDICT1"
#define DICT_HDR 64u
#define DICT_RING 4096u
/* A commit writes at most this many ring bytes, past the ring's head
 * and before the commit point: the DICT_RING - DICT_RING_BUDGET bytes
 * before the head are whole even after a commit died half-way. */
#define DICT_RING_BUDGET 1024u
#define DICT_RING_TRUST (DICT_RING - DICT_RING_BUDGET)
#define DICT_BUCKETS_OFF (DICT_HDR + DICT_RING)
#define DICT_MIN_NB 16u
#define DICT_TOMB 1u
/* Arenas above this are shrunk once mostly garbage. */
#define DICT_SHRINK_MIN (64u << 10)

struct dict_arena {
  char magic[8];
  uint64_t nb;          /* buckets, a power of two */
  uint64_t buckets_off; /* DICT_BUCKETS_OFF        */
  uint64_t entries_off; /* buckets_off + nb * 8    */
  uint64_t size;        /* the arena's bytes (a describe reads it here:
                           one field, arena_off, then names it all) */
};

struct dict_ent {
  uint64_t version;
  uint64_t hash;
  uint32_t vlen;
  uint16_t klen;
  uint16_t pad;
  /* key, then value, then padding to 8 */
};

/* The redo log of a commit, at d->log_off; n bucket stores follow it. */
struct dict_log {
  uint64_t n;
  uint64_t len, tombs, used, garbage, ring_head, version;
};
struct dict_store {
  uint64_t pos, val;
};

struct dict_ring_rec {
  uint64_t version;
  uint16_t klen; /* 0: a marker: this commit changed keys not recorded */
  uint8_t del;
  uint8_t pad[5];
  /* key, padding to 8, then the record's length (uint64_t) */
};

/* A checked view of a dict's committed arena. */
struct dict_view {
  uint8_t *a;
  uint64_t size, nb, ents, used;
  _Atomic uint64_t *bk;
};

static inline uint64_t dict_r8(uint64_t n) {
  return (n + 7) & ~(uint64_t)7;
}

static inline uint64_t dict_ent_size(uint64_t klen, uint64_t vlen) {
  return dict_r8(sizeof(struct dict_ent) + klen + vlen);
}

static inline const char *dict_ent_key(const struct dict_ent *e) {
  return (const char *)(e + 1);
}

static inline const char *dict_ent_val(const struct dict_ent *e) {
  return (const char *)(e + 1) + e->klen;
}

static inline uint64_t ring_rec_size(size_t klen) {
  return sizeof(struct dict_ring_rec) + dict_r8(klen) + 8;
}

/* dict.c: a checked view of d's committed arena (0 or ATR_ECORRUPT); the
 * entry at off if it lies whole in the committed entries, else NULL; the
 * next key's entry from bucket *i on (1, 0 past the last, ATR_ECORRUPT);
 * key's bucket and entry (0), or where it would go (1), as dict.c says. */
int atr__dict_view(const atr_store *s, const struct atr__dict *d,
                   struct dict_view *v);
const struct dict_ent *atr__dict_ent(const struct dict_view *v, uint64_t off);
const struct dict_ent *atr__dict_ent_hdr(const struct dict_view *v,
                                         uint64_t off, struct dict_ent *x);
int atr__dict_next(const struct dict_view *v, uint64_t *i,
                   const struct dict_ent **e);
int atr__dict_find(const struct dict_view *v, const char *key, size_t klen,
                   uint64_t hash, const uint8_t *taken, uint64_t *pos,
                   const struct dict_ent **e);
/* The record lock of h's live dict and a view of its arena (0, or the
 * lock released and an error). */
int atr__dict_lock(const atr_handle *h, struct atr__obj **o,
                   struct dict_view *v);
/* Copies n bytes of the key ring from position at (modulo its size). */
void atr__dict_ring_read(const uint8_t *ring, uint64_t at, void *dst, size_t n);

/* dict_read.c: appends a key, value and version to out (ATR_ENOMEM,
 * out as it was); the same for an entry. */
int atr__dict_items_add(atr_dict_items *out, const char *key, size_t klen,
                        const char *val, size_t vlen, uint64_t version,
                        int del);
int atr__dict_items_add_ent(atr_dict_items *out, const struct dict_view *v,
                            const struct dict_ent *e);

#endif
