/*
 * alloc.c - the heap of array and queue data: 64-byte aligned blocks with
 * boundary tags, one address-agnostic free list, first fit, coalescing on
 * free. Everything runs under the store lock. The block headers and the
 * free list are derived state: atr__heap_rebuild() remakes them around
 * the live blocks the records hand it after a process died holding the
 * lock. The heap knows blocks only, never objects.
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

static void heap_list_push(atr_store *s, uint64_t off) {
  struct blk *b = heap_blk(s, off);
  b->prev_free = 0;
  b->next_free = s->hdr->heap_free;
  if (b->next_free)
    heap_blk(s, b->next_free)->prev_free = off;
  s->hdr->heap_free = off;
}

static void heap_list_unlink(atr_store *s, uint64_t off) {
  struct blk *b = heap_blk(s, off);
  if (b->prev_free)
    heap_blk(s, b->prev_free)->next_free = b->next_free;
  else
    s->hdr->heap_free = b->next_free;
  if (b->next_free)
    heap_blk(s, b->next_free)->prev_free = b->prev_free;
}

/* Sets the block at off to size bytes and tells its successor. */
static void heap_set_block(atr_store *s, uint64_t off, uint64_t size, bool free,
                           uint64_t prev_size) {
  struct blk *b = heap_blk(s, off);
  b->size = size | (free ? FREE_BIT : 0);
  b->prev_size = prev_size;
  if (off + size < heap_end(s))
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
  if (n > heap_end(s))
    return 0;
  for (uint64_t off = s->hdr->heap_free; off;
       off = heap_blk(s, off)->next_free) {
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
  uint64_t off = data_off - HDR, need = atr__round_up(more, HDR);
  struct blk *b = heap_blk(s, off);
  uint64_t size = heap_bsize(b), prev_size = b->prev_size, taken;

  if (forward) {
    uint64_t next = off + size;
    if (next >= heap_end(s) || !(heap_blk(s, next)->size & FREE_BIT) ||
        heap_bsize(heap_blk(s, next)) < need)
      return 0;
    taken = heap_take_free(s, next, need, true);
    heap_set_block(s, off, size + taken, false, prev_size);
  } else {
    uint64_t prev = off - prev_size;
    if (prev_size == 0 || !(heap_blk(s, prev)->size & FREE_BIT) ||
        prev_size < need)
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
  uint64_t off = data_off - HDR;
  struct blk *b = heap_blk(s, off);
  uint64_t size = heap_bsize(b), prev_size = b->prev_size;

  s->hdr->heap_used -= size;
  if (off + size < heap_end(s) && (heap_blk(s, off + size)->size & FREE_BIT)) {
    uint64_t next = off + size;
    heap_list_unlink(s, next);
    size += heap_bsize(heap_blk(s, next));
  }
  if (prev_size != 0 && (heap_blk(s, off - prev_size)->size & FREE_BIT)) {
    /* Grow the free block before us; it stays in the list. */
    uint64_t prev = off - prev_size;
    heap_set_block(s, prev, prev_size + size, true,
                   heap_blk(s, prev)->prev_size);
    return;
  }
  heap_set_block(s, off, size, true, prev_size);
  heap_list_push(s, off);
}

static int heap_span_cmp(const void *a, const void *b) {
  const struct atr__span *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

void atr__heap_rebuild(atr_store *s, struct atr__span *live, size_t n) {
  struct atr__header *h = s->hdr;
  uint64_t cur = h->heap_off, prev_size = 0;

  /* From data offsets and usable sizes to whole blocks. */
  for (size_t i = 0; i < n; i++)
    live[i] = (struct atr__span){live[i].off - HDR, live[i].size + HDR};
  qsort(live, n, sizeof *live, heap_span_cmp);
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
