/*
 * store.c - the store file: create (one initialiser among racing
 * processes), open and validate, close, statistics, the store lock.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_HEAP (64u * 1024u)

ATR__EXPORT void atr_store_opts_init(atr_store_opts *opts) {
  memset(opts, 0, sizeof *opts);
  opts->size = ATR_DEFAULT_SIZE;
  opts->max_objects = 0;  /* from the size */
  opts->feed_entries = 0; /* from the size */
  opts->mode = 0600;
  opts->init_timeout = 5.0;
  opts->shared = 0;
}

uint64_t atr__store_header_check(const struct atr__header *h) {
  /* FNV-1a over the fields fixed at creation. */
  const uint8_t *p = (const uint8_t *)h;
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < offsetof(struct atr__header, check); i++) {
    if (i >= offsetof(struct atr__header, ready) &&
        i < offsetof(struct atr__header, ready) + sizeof h->ready)
      continue;
    x = (x ^ p[i]) * 1099511628211ull;
  }
  return x;
}

/* The format's own bounds on the counts: an index entry keeps slot + 2
 * in 32 bits and the index (two entries per object, a power of two)
 * counts its slots in 32 bits. What a store can really hold is less:
 * the tables must fit its size (store_layout). */
#define MAX_OBJECTS (1u << 30)
#define MAX_FEED (1u << 30)

/* The fixed part of a header (magic, layout and the tables' offsets)
 * for a store of size bytes with these counts: how creation lays it out
 * and what an opener derives again to check a header it reads. 0 or
 * ATR_EINVAL if the tables do not fit. Every product is taken in 64 bits
 * from counts bounded above, so no header can make one wrap. */
static int store_layout(uint64_t size, uint32_t max_objects,
                        uint32_t feed_entries, struct atr__header *h) {
  uint32_t slots = 16;
  if (max_objects == 0 || max_objects > MAX_OBJECTS || feed_entries < 16 ||
      feed_entries > MAX_FEED || size > ((uint64_t)1 << 47))
    return ATR_EINVAL;
  while (slots < 2 * max_objects)
    slots *= 2;
  memset(h, 0, sizeof *h);
  memcpy(h->magic, ATR__MAGIC, 8);
  h->layout = ATR__LAYOUT;
  h->size = size;
  h->max_objects = max_objects;
  h->index_slots = slots;
  h->feed_entries = feed_entries;
  h->index_off = ATR__HEADER_SIZE;
  h->slots_off = atr__round_up(h->index_off + 8ull * slots, ATR__ALIGN);
  h->feed_off = h->slots_off + (uint64_t)ATR__SLOT_SIZE * max_objects;
  h->order_off = atr__round_up(
      h->feed_off + (uint64_t)ATR__FEED_ENTRY_SIZE * feed_entries, ATR__ALIGN);
  h->heap_off = atr__round_up(
      h->order_off + (uint64_t)ATR__ORDER_NODE_SIZE * max_objects, 4096);
  if (size < h->heap_off + MIN_HEAP)
    return ATR_EINVAL;
  return 0;
}

/* The default count of objects (and of feed entries) for a store of
 * size bytes: one per 4 KiB, at least 16, no more than the format
 * allows. */
static uint32_t store_per_size(uint64_t size) {
  uint64_t n = size / 4096;
  return n < 16 ? 16 : n > MAX_OBJECTS ? MAX_OBJECTS : (uint32_t)n;
}

/* Lays out the tables for opts; 0 or ATR_EINVAL if they do not fit. */
static int store_plan(const atr_store_opts *o, struct atr__header *h) {
  uint32_t max_objects =
      o->max_objects ? o->max_objects : store_per_size(o->size);
  /* The feed holds as many events as there can be objects: a reader
   * that falls further behind re-reads them all (a resync) anyway. */
  uint32_t feed_entries = o->feed_entries ? o->feed_entries : max_objects;
  int rc = store_layout(o->size, max_objects, feed_entries, h);
  if (rc == 0)
    h->check = atr__store_header_check(h);
  return rc;
}

ATR__EXPORT uint32_t atr_store_fits(size_t size) {
  struct atr__header h;
  uint32_t lo = 0, hi = MAX_OBJECTS; /* lo fits (or is 0), hi + 1 not */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (store_layout(size, mid, mid < 16 ? 16 : mid, &h) == 0)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* Whether the fixed part of h is what its counts and size lay out: the
 * check hash is no proof (anyone can compute it), so every offset and
 * size is derived again rather than trusted. */
static bool store_layout_matches(const struct atr__header *h) {
  struct atr__header want;
  return store_layout(h->size, h->max_objects, h->feed_entries, &want) == 0 &&
         h->pad0 == 0 && h->index_slots == want.index_slots &&
         h->index_off == want.index_off && h->slots_off == want.slots_off &&
         h->feed_off == want.feed_off && h->order_off == want.order_off &&
         h->heap_off == want.heap_off;
}

static void store_attach(atr_store *s, uint8_t *base, size_t size) {
  s->base = base;
  s->size = size;
  s->hdr = (struct atr__header *)base;
  s->index = (_Atomic uint64_t *)(base + s->hdr->index_off);
  s->index_mask = s->hdr->index_slots - 1;
}

/* Fills a new, reserved, zeroed file mapped at base. */
static int store_initialise(atr_store *s, const struct atr__header *plan_hdr) {
  struct atr__header *h = s->hdr;
  memcpy(h, plan_hdr, offsetof(struct atr__header, lock));
  store_attach(s, s->base, s->size); /* now that the offsets are in place */
  if (atr__mutex_init(&h->lock) != 0)
    return ATR_ESYS;
  h->next_id = 1;
  h->version_floor = 0;
  atomic_store(&h->feed_head, 1);
  for (uint32_t i = 0; i < h->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    if (atr__mutex_init(&o->lock) != 0 || atr__kinds_slot_init(o) != 0)
      return ATR_ESYS;
    o->next_free = i + 2 <= h->max_objects ? i + 2 : 0;
  }
  h->free_slot = 1;
  atr__heap_init(s);
  atomic_store_explicit(&h->ready, ATR__READY, memory_order_release);
  return 0;
}

/* Checks a header read from an existing file of file_size bytes.
 * ATR_EBUSY: not ready yet (its creator is at work, or died at it). */
static int store_validate(const struct atr__header *h, uint64_t file_size) {
  if (file_size == 0)
    return ATR_EBUSY; /* created, nothing written yet */
  if (file_size < sizeof h->magic || memcmp(h->magic, ATR__MAGIC, 8) != 0)
    return ATR_ENOTSTORE;
  if (file_size >= offsetof(struct atr__header, ready) &&
      h->layout != ATR__LAYOUT)
    return ATR_ELAYOUT;
  /* A creator writes the header's fixed part with one call: a shorter
   * file is a store cut short, not one being made. */
  if (file_size < offsetof(struct atr__header, lock))
    return ATR_ECORRUPT;
  if (atomic_load(&h->ready) != ATR__READY)
    return ATR_EBUSY; /* never finished */
  if (file_size < sizeof *h || h->check != atr__store_header_check(h) ||
      h->size != file_size || !store_layout_matches(h))
    return ATR_ECORRUPT;
  return 0;
}

static int store_inspect(int fd, struct atr__header *h) {
  struct stat st;
  memset(h, 0, sizeof *h);
  if (fstat(fd, &st) != 0 || pread(fd, h, sizeof *h, 0) < 0)
    return ATR_ESYS;
  return store_validate(h, (uint64_t)st.st_size);
}

static int store_map_file(int fd, size_t size, uint8_t **base) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return errno == ENOMEM ? ATR_ENOMEM : ATR_ESYS;
  *base = p;
  return 0;
}

/*
 * Makes the file behind fd (locked exclusively by us) a new store: the
 * header's fixed part first (so a file abandoned half-way is recognisably
 * ours), then every page reserved, then the tables, then `ready`.
 */
static int store_build(int fd, const atr_store_opts *o, atr_store *s) {
  size_t fixed = offsetof(struct atr__header, lock);
  struct atr__header want;
  uint8_t *base = NULL;
  int rc;

  if ((rc = store_plan(o, &want)) != 0)
    return rc;
  /* The requested mode, also on a file taken over from a dead creator
   * (which may have asked for another); an opener that is not the file's
   * owner (it opted in with `shared`) keeps the owner's. */
  if (fchmod(fd, o->mode & 07777) != 0 && errno != EPERM)
    return ATR_ESYS;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, &want, fixed, 0) != (ssize_t)fixed)
    return ATR_ESYS;
  /* Reserve every page now: a full tmpfs fails here, not with SIGBUS. */
  if ((rc = posix_fallocate(fd, 0, (off_t)o->size)) != 0)
    return rc == ENOSPC || rc == EFBIG ? ATR_ENOSPC : ATR_ESYS;
  if ((rc = store_map_file(fd, o->size, &base)) != 0)
    return rc;
  store_attach(s, base, o->size);
  if ((rc = store_initialise(s, &want)) != 0) {
    munmap(base, o->size);
    return rc;
  }
  return 0;
}

/* Creates path as a new store; ATR_EEXIST if it is there already. */
static int store_create(const char *path, const atr_store_opts *o,
                        atr_store *s) {
  struct atr__header h;
  int rc, fd;

  fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->mode & 07777);
  if (fd < 0)
    return errno == EEXIST ? ATR_EEXIST : ATR_ESYS;
  /* We hold the lock until the store is ready: openers that find it not
   * ready and unlocked know its creator died, and take over. */
  if (flock(fd, LOCK_EX) != 0 || fchmod(fd, o->mode & 07777) != 0) {
    rc = ATR_ESYS;
  } else if (store_inspect(fd, &h) == 0) {
    rc = ATR_EEXIST; /* taken over and finished before we got the lock */
  } else if ((rc = store_build(fd, o, s)) != 0) {
    unlink(path);
  }
  /* The mapping holds the open file, and with it the lock: drop the
   * lock by hand. */
  flock(fd, LOCK_UN);
  close(fd);
  return rc;
}

/* Whether the open file fd may be trusted as a store: a regular file
 * of ours that no one else may write, unless the caller opted in
 * (opts->shared) or asked for those write bits itself (opts->mode). 0, or
 * ATR_ESYS with errno EACCES (ENOTSTORE: not a regular file). */
static int store_trust(int fd, const atr_store_opts *o) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return ATR_ESYS;
  if (!S_ISREG(st.st_mode))
    return ATR_ENOTSTORE;
  if (o->shared)
    return 0;
  if (st.st_uid != geteuid() || (st.st_mode & 022 & ~o->mode) != 0) {
    errno = EACCES;
    return ATR_ESYS;
  }
  return 0;
}

/* Opens an existing store, waiting for its creator up to the deadline;
 * finishes the work of a creator that died. */
static int store_open_existing(const char *path, const atr_store_opts *o,
                               double deadline, atr_store *s) {
  struct atr__header h;
  uint8_t *base = NULL;
  /* Never through a symlink; no wait on a FIFO planted there. */
  int rc, fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

  if (fd < 0)
    return errno == ENOENT ? ATR_ENOENT : ATR_ESYS;
  if ((rc = store_trust(fd, o)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return rc;
  }
  for (;;) {
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
      rc = store_inspect(fd, &h);
      if (rc == 0 && (rc = store_map_file(fd, h.size, &base)) == 0)
        store_attach(s, base, h.size);
      flock(fd, LOCK_UN);
      if (rc != ATR_EBUSY)
        break;
      /* Not ready and not locked: its creator died before finishing. */
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if ((rc = store_inspect(fd, &h)) == ATR_EBUSY &&
            (rc = store_build(fd, o, s)) != 0)
          unlink(path); /* an abandoned, never finished store */
        flock(fd, LOCK_UN);
        if (rc == 0 && s->base == NULL)
          continue; /* someone else finished it: map it */
        break;
      }
    } else if (errno != EWOULDBLOCK) {
      rc = ATR_ESYS;
      break;
    }
    if (atr__now() >= deadline) {
      rc = ATR_EBUSY;
      break;
    }
    usleep(1000); /* only while another process initialises the file */
  }
  close(fd);
  return rc;
}

ATR__EXPORT int atr_store_open(const char *path, const atr_store_opts *opts,
                               atr_store **out) {
  atr_store_opts defaults;
  atr_store *s;
  int rc;

  if (path == NULL || out == NULL)
    return ATR_EINVAL;
  if (opts == NULL) {
    atr_store_opts_init(&defaults);
    opts = &defaults;
  }
  if ((s = calloc(1, sizeof *s)) == NULL)
    return ATR_ENOMEM;
  double deadline = atr__now() + opts->init_timeout;
  rc = opts->open_only ? ATR_EEXIST : store_create(path, opts, s);
  if (rc == ATR_EEXIST)
    rc = store_open_existing(path, opts, deadline, s);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

ATR__EXPORT void atr_store_close(atr_store *s) {
  if (s == NULL)
    return;
  munmap(s->base, s->size);
  free(s);
}

static void store_recover(void *arg) {
  atr_store *s = arg;
  atr__object_recover(s);
  atr__feed_push_resync(s);
}

/* Never waits for the store lock: a describe must answer while a stopped
 * process holds it (/metrics, /v1/store). It takes the lock if it is free
 * (or its holder died: then the counts are repaired first, as any locker
 * would) and else reads without it, each field one aligned load, the set
 * possibly straddling a create or a delete in progress. */
ATR__EXPORT int atr_store_stats_get(atr_store *s, atr_store_stats *st) {
  int rc;
  if (s == NULL || st == NULL)
    return ATR_EINVAL;
  rc = atr__mutex_try(&s->hdr->lock, store_recover, s);
  if (rc != 0 && rc != ATR_ELOCKED)
    return rc;
  st->capacity = s->hdr->size;
  st->used = __atomic_load_n(&s->hdr->heap_off, __ATOMIC_RELAXED) +
             __atomic_load_n(&s->hdr->heap_used, __ATOMIC_RELAXED);
  st->objects = __atomic_load_n(&s->hdr->objects, __ATOMIC_RELAXED);
  st->max_objects = s->hdr->max_objects;
  if (rc == 0)
    atr__store_unlock(s);
  return 0;
}

int atr__store_lock(atr_store *s) {
  return atr__mutex_lock(&s->hdr->lock, store_recover, s);
}

int atr__store_lock_for(atr_store *s, double seconds) {
  return atr__mutex_lock_for(&s->hdr->lock, seconds, store_recover, s);
}

void atr__store_unlock(atr_store *s) {
  atr__mutex_unlock(&s->hdr->lock);
}
