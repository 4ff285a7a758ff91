/*
 * alloc.c - the heap of array and queue data: 64-byte aligned blocks with
 * boundary tags, one address-agnostic free list, first fit, coalescing on
 * free. Everything runs under the store lock. The block headers and the
 * free list are derived state: atr__heap_rebuild() remakes them around
 * the live blocks the records hand it after a process died holding the
 * lock. The heap knows blocks only, never objects.
 *
 * Every header, link and offset is read from the file, so each is checked
 * (heap_ok) before it is followed: a damaged block or list is passed by
 * (an allocation finds no room, a free leaves the block where it is) and
 * every walk is bounded by the number of blocks the heap can hold. The
 * next crash recovery rebuilds the lot from the records.
 */
#include "internal.h"

#include <stdlib.h>

#define HDR 64u        /* a block's header; its data follows, aligned */
#define MIN_BLOCK 128u /* header plus one line                       */
#define FREE_BIT 1u

struct blk {
  uint64_t size;      /* whole block, a multiple of 64; bit 0: free */
  uint64_t prev_size; /* size of the block before it, 0 for the first */
  uint64_t next_free, prev_free;
};

static struct blk *heap_blk(atr_store *s, uint64_t off) {
  return (struct blk *)(s->base + off);
}

static uint64_t heap_end(atr_store *s) {
  return s->hdr->size / HDR * HDR;
}

static uint64_t heap_bsize(const struct blk *b) {
  return b->size & ~(uint64_t)FREE_BIT;
}

/* Whether off starts a block, aligned, whose header and size lie in the
 * heap. */
static bool heap_ok(atr_store *s, uint64_t off) {
  uint64_t end = heap_end(s);
  if (off < s->hdr->heap_off || off % HDR != 0 || off > end - HDR)
    return false;
  uint64_t size = heap_bsize(heap_blk(s, off));
  return size >= HDR && size % HDR == 0 && size <= end - off;
}

/* heap_ok, and free (or used) as asked. */
static bool heap_ok_as(atr_store *s, uint64_t off, bool free) {
  return heap_ok(s, off) && ((heap_blk(s, off)->size & FREE_BIT) != 0) == free;
}

/* The block a used block's data offset belongs to, or 0 if there is no
 * used block there. */
static uint64_t heap_used_at(atr_store *s, uint64_t data_off) {
  return data_off >= HDR && heap_ok_as(s, data_off - HDR, false)
             ? data_off - HDR
             : 0;
}

/* How many blocks the heap can hold: a bound on every walk of its list. */
static uint64_t heap_max_blocks(atr_store *s) {
  return (heap_end(s) - s->hdr->heap_off) / HDR + 1;
}

/* A link read from the file, or 0 if it leads to no free block. */
static uint64_t heap_link(atr_store *s, uint64_t off) {
  return off != 0 && heap_ok_as(s, off, true) ? off : 0;
}

static void heap_list_push(atr_store *s, uint64_t off) {
  struct blk *b = heap_blk(s, off);
  b->prev_free = 0;
  b->next_free = heap_link(s, s->hdr->heap_free);
  if (b->next_free)
    heap_blk(s, b->next_free)->prev_free = off;
  s->hdr->heap_free = off;
}

static void heap_list_unlink(atr_store *s, uint64_t off) {
  struct blk *b = heap_blk(s, off);
  uint64_t prev = heap_link(s, b->prev_free), next = heap_link(s, b->next_free);
  if (prev)
    heap_blk(s, prev)->next_free = next;
  else
    s->hdr->heap_free = next;
  if (next)
    heap_blk(s, next)->prev_free = prev;
}

/* Sets the block at off to size bytes and tells its successor. */
static void heap_set_block(atr_store *s, uint64_t off, uint64_t size, bool free,
                           uint64_t prev_size) {
  struct blk *b = heap_blk(s, off);
  b->size = size | (free ? FREE_BIT : 0);
  b->prev_size = prev_size;
  if (off + size <= heap_end(s) - HDR)
    heap_blk(s, off + size)->prev_size = size;
}

void atr__heap_init(atr_store *s) {
  uint64_t start = s->hdr->heap_off;
  s->hdr->heap_free = 0;
  s->hdr->heap_used = 0;
  heap_set_block(s, start, heap_end(s) - start, true, 0);
  heap_list_push(s, start);
}

uint64_t atr__heap_alloc(atr_store *s, uint64_t n, uint64_t *got) {
  uint64_t need = atr__round_up(n == 0 ? 1 : n, HDR) + HDR;
  uint64_t left = heap_max_blocks(s);
  if (n > heap_end(s))
    return 0;
  for (uint64_t off = heap_link(s, s->hdr->heap_free); off && left-- > 0;
       off = heap_link(s, heap_blk(s, off)->next_free)) {
    struct blk *b = heap_blk(s, off);
    uint64_t size = heap_bsize(b);
    if (size < need)
      continue;
    uint64_t at = off;
    if (size - need >= MIN_BLOCK) {
      /* Carve from the block's end: the free part keeps its place in
       * the list. */
      heap_set_block(s, off, size - need, true, b->prev_size);
      at = off + size - need;
      heap_set_block(s, at, need, false, size - need);
    } else {
      heap_list_unlink(s, off);
      need = size;
      b->size = size;
    }
    s->hdr->heap_used += need;
    *got = need - HDR;
    return at + HDR;
  }
  return 0;
}

/* Takes `need` bytes (or all of it, if the rest would be too small to
 * be a block) from the free block at off: from its start (front) or its
 * end. Returns the bytes taken; the rest stays a free block. */
static uint64_t heap_take_free(atr_store *s, uint64_t off, uint64_t need,
                               bool front) {
  struct blk *b = heap_blk(s, off);
  uint64_t size = heap_bsize(b);
  if (size - need < MIN_BLOCK) {
    heap_list_unlink(s, off);
    return size;
  }
  if (!front) {
    heap_set_block(s, off, size - need, true, b->prev_size); /* stays listed */
    return need;
  }
  /* The rest's prev_size is set when the caller sets the grown block. */
  heap_list_unlink(s, off);
  heap_set_block(s, off + need, size - need, true, 0);
  heap_list_push(s, off + need);
  return need;
}

uint64_t atr__heap_extend(atr_store *s, uint64_t data_off, uint64_t more,
                          bool forward, uint64_t *got) {
  uint64_t off = heap_used_at(s, data_off), need = atr__round_up(more, HDR);
  if (off == 0 || more > heap_end(s))
    return 0;
  struct blk *b = heap_blk(s, off);
  uint64_t size = heap_bsize(b), prev_size = b->prev_size, taken;

  if (forward) {
    uint64_t next = off + size;
    if (next >= heap_end(s) || !heap_ok_as(s, next, true) ||
        heap_bsize(heap_blk(s, next)) < need)
      return 0;
    taken = heap_take_free(s, next, need, true);
    heap_set_block(s, off, size + taken, false, prev_size);
  } else {
    uint64_t prev = off - prev_size;
    if (prev_size == 0 || prev_size > off - s->hdr->heap_off ||
        !heap_ok_as(s, prev, true) ||
        heap_bsize(heap_blk(s, prev)) != prev_size || prev_size < need)
      return 0;
    uint64_t before = heap_blk(s, prev)->prev_size;
    taken = heap_take_free(s, prev, need, false);
    off -= taken;
    heap_set_block(s, off, size + taken, false,
                   taken == prev_size ? before : prev_size - taken);
  }
  s->hdr->heap_used += taken;
  *got = size + taken - HDR;
  return off + HDR;
}

void atr__heap_free(atr_store *s, uint64_t data_off) {
  uint64_t off = heap_used_at(s, data_off);
  if (off == 0)
    return; /* no used block there: damage, left to the next rebuild */
  struct blk *b = heap_blk(s, off);
  uint64_t size = heap_bsize(b), prev_size = b->prev_size;

  s->hdr->heap_used -= size < s->hdr->heap_used ? size : s->hdr->heap_used;
  if (off + size < heap_end(s) && heap_ok_as(s, off + size, true)) {
    uint64_t next = off + size;
    heap_list_unlink(s, next);
    size += heap_bsize(heap_blk(s, next));
  }
  if (prev_size != 0 && prev_size <= off - s->hdr->heap_off &&
      heap_ok_as(s, off - prev_size, true) &&
      heap_bsize(heap_blk(s, off - prev_size)) == prev_size) {
    /* Grow the free block before us; it stays in the list. */
    uint64_t prev = off - prev_size;
    heap_set_block(s, prev, prev_size + size, true,
                   heap_blk(s, prev)->prev_size);
    return;
  }
  heap_set_block(s, off, size, true, prev_size);
  heap_list_push(s, off);
}

bool atr__heap_damaged(atr_store *s) {
  uint64_t left = heap_max_blocks(s), off = s->hdr->heap_free;
  for (; off != 0 && left > 0; left--) {
    if (!heap_ok_as(s, off, true))
      return true;
    off = heap_blk(s, off)->next_free;
  }
  return off != 0; /* longer than the heap can be: a cycle */
}

static int heap_span_cmp(const void *a, const void *b) {
  const struct atr__span *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

void atr__heap_rebuild(atr_store *s, struct atr__span *live, size_t n) {
  struct atr__header *h = s->hdr;
  uint64_t cur = h->heap_off, prev_size = 0;

  size_t k = 0;

  /* From data offsets and usable sizes to whole blocks (a bounded
   * queue's ring may end short of its block: round up to the block), and
   * only those that lie in the heap. */
  for (size_t i = 0; i < n; i++)
    if (live[i].off >= h->heap_off + HDR && live[i].off % HDR == 0 &&
        live[i].off <= heap_end(s) && live[i].size <= heap_end(s) - live[i].off)
      live[k++] = (struct atr__span){live[i].off - HDR,
                                     atr__round_up(live[i].size, HDR) + HDR};
  n = k;
  qsort(live, n, sizeof *live, heap_span_cmp);
  /* Blocks that overlap one before them are damage: passed by. */
  k = 0;
  for (size_t i = 0; i < n; i++)
    if ((k == 0 || live[i].off >= live[k - 1].off + live[k - 1].size) &&
        live[i].size <= heap_end(s) - live[i].off)
      live[k++] = live[i];
  n = k;
  h->heap_free = 0;
  h->heap_used = 0;
  for (size_t i = 0; i <= n; i++) {
    uint64_t next = i < n ? live[i].off : heap_end(s);
    if (next > cur) {
      heap_set_block(s, cur, next - cur, true, prev_size);
      heap_list_push(s, cur);
      prev_size = next - cur;
    }
    if (i < n) {
      heap_set_block(s, live[i].off, live[i].size, false, prev_size);
      h->heap_used += live[i].size;
      prev_size = live[i].size;
      cur = live[i].off + live[i].size;
    }
  }
}
