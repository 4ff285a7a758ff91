/*
 * atrium.h - libatrium, typed values, arrays and bounded queues shared
 * between processes through one store file on a tmpfs.
 *
 * Conventions, for every call below:
 * - Functions return 0 (ATR_OK) or a negative ATR_E* code, unless the
 *   comment says otherwise. atr_strerror() describes a code.
 * - Handles (atr_handle, atr_cursor) are caller-owned structs filled by
 *   an _open call; they hold no heap memory and need no close. A handle
 *   stays valid until its store is closed; once its object is deleted,
 *   every call on it fails with ATR_ENOENT.
 * - No call keeps a pointer to the caller's buffers after it returns.
 * - Calls that may wait take a timeout in seconds: 0 never waits, a
 *   negative timeout waits for ever. Waiting never spins: it sleeps on a
 *   futex in the store, so any process can wake it.
 * - A store may be used by many threads and processes at once. Nothing in
 *   this API keeps a lock held when it returns.
 */
#ifndef ATRIUM_H
#define ATRIUM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The error codes: name, message. */
#define ATR_ERRNO_MAP(X)                                                       \
  X(EINVAL, "invalid argument")                                                \
  X(ENAME, "invalid object name (1-64 bytes of A-Z a-z 0-9 _ . -)")            \
  X(ENOENT, "no such object")                                                  \
  X(EEXIST, "object already exists")                                           \
  X(EKIND, "the name belongs to an object of another kind")                    \
  X(ETYPE, "wrong type for this object or operation")                          \
  X(ERANGE, "value does not fit the object's type")                            \
  X(EOVERFLOW, "result would leave the type's range")                          \
  X(EVERSION, "version does not match")                                        \
  X(EBOUNDS, "index or slice out of range")                                    \
  X(ELENGTH, "length does not match the object's")                             \
  X(EFULL, "queue is full")                                                    \
  X(EEMPTY, "queue is empty")                                                  \
  X(ETOOBIG, "item too large")                                                 \
  X(ETIMEDOUT, "timed out")                                                    \
  X(ENOSPC, "no space left in the store")                                      \
  X(ETOOMANY, "object limit of the store reached")                             \
  X(ENOTSTORE, "file is not an atrium store")                                  \
  X(ELAYOUT, "store was made by another layout version")                       \
  X(ECORRUPT, "store is damaged")                                              \
  X(EBUSY, "store is still being initialised by another process")              \
  X(EGAP, "change events were lost: re-read every object")                     \
  X(ENOMEM, "out of memory")                                                   \
  X(ESYS, "system call failed (see errno)")                                    \
  X(EINTR, "interrupted by a signal")                                          \
  X(ENOTHELD, "not held by the caller (wrong, expired or spent token)")        \
  X(EBROKEN, "barrier is broken")                                              \
  X(EOVERRELEASE, "released past the semaphore's bound")                       \
  X(ESTALE, "fence no longer holds the lock")                                  \
  X(ELOCKED, "object is held by a process that does not let go; try again")    \
  X(EDONE, "done called more often than items were unfinished")                \
  X(ENOKEY, "no such key in the dict")                                         \
  X(EKEY, "invalid dict key (1-256 bytes of UTF-8 without NUL)")

/* Positions in the table; the public codes below are their negations. */
enum atr__errpos {
  ATR__FIRST = 0,
#define ATR__POS(name, msg) ATR__##name,
  ATR_ERRNO_MAP(ATR__POS)
#undef ATR__POS
      ATR__LAST
};
enum {
  ATR_OK = 0,
#define ATR__CODE(name, msg) ATR_##name = -(int)ATR__##name,
  ATR_ERRNO_MAP(ATR__CODE)
#undef ATR__CODE
};

/* A static string describing code (0 or ATR_E*); never NULL. */
const char *atr_strerror(int code);
/* The code's name without the ATR_ prefix ("ENOENT"); "OK" for 0. */
const char *atr_errname(int code);

#define ATR_NAME_MAX 64

/* 0 if name[0..len) is a valid object name, else ATR_ENAME. */
int atr_name_check(const char *name, size_t len);

/* ------------------------------------------------------------------ store */

typedef struct atr_store atr_store;

typedef struct atr_store_opts {
  size_t size;           /* bytes of the store file (default 16 MiB)       */
  uint32_t max_objects;  /* 0 (default): one per 4 KiB of size, >= 16  */
  uint32_t feed_entries; /* change feed slots (>= 16); 0: max_objects  */
  unsigned mode;         /* file mode when created (default 0600)          */
  int open_only;         /* 1: fail with ATR_ENOENT rather than create     */
  double init_timeout;   /* seconds to wait for another creator (default 5) */
  int shared;            /* 1: accept a store of another user, or one that
                            group or others may write (see atr_store_open) */
} atr_store_opts;

#define ATR_DEFAULT_PATH "/dev/shm/atrium"
#define ATR_DEFAULT_SIZE ((size_t)16 << 20)

/* Fills opts with the defaults. */
void atr_store_opts_init(atr_store_opts *opts);

/*
 * Opens the store at path, creating it if missing (unless opts->open_only).
 * opts may be NULL for the defaults; size, max_objects and feed_entries
 * matter only when creating: each object costs 688 to 704 bytes of
 * tables (its record, 512; its feed entry, 96; its node in the name
 * order, 64; two or up to four index entries, 16 to 32), and counts
 * whose tables do not fit size with 64 KiB to spare are
 * ATR_EINVAL (atr_store_fits says how many do). Exactly one of several racing
 * creators initialises the file; the others wait up to init_timeout for it. The
 * whole size is reserved up front: a full tmpfs fails here with
 * ATR_ENOSPC (and the file is removed), never later. A file that is not
 * a store (ATR_ENOTSTORE) or of another layout (ATR_ELAYOUT) is left
 * untouched. On success *out owns the mapping; free with atr_store_close.
 *
 * The store file is input, not trusted memory: whoever can write it can
 * put any bytes in it, so an existing store is opened only if it is a
 * regular file (never through a symlink: ATR_ESYS with errno ELOOP) owned
 * by the caller's effective user and writable by no one else, beyond the
 * write bits the caller asks for in opts->mode (a store created with mode
 * 0660 for a group may be reopened by a caller passing the same mode);
 * otherwise ATR_ESYS with errno EACCES. Processes that share a store
 * across user ids (a sidecar running as another user, a group-shared
 * store opened by one that did not ask for its mode) opt in with
 * opts->shared = 1, trusting every user who can write the file. A store
 * whose creator died before finishing is made again with the caller's
 * opts->mode. Whatever the file holds, calls never read or write outside
 * the mapping: an object whose record or data is damaged answers
 * ATR_ECORRUPT on the call that met the damage, and the others keep
 * working; a damaged header fails the open with ATR_ECORRUPT.
 */
int atr_store_open(const char *path, const atr_store_opts *opts,
                   atr_store **out);

/* The most objects a new store of size bytes can be made for (its feed
 * left at the default, as many entries), 0 if none: for a clear error
 * before atr_store_open refuses a count with ATR_EINVAL. */
uint32_t atr_store_fits(size_t size);

/* Unmaps and frees store (NULL is fine). Handles on it become invalid. */
void atr_store_close(atr_store *store);

/*
 * How long the calling thread waits for a lock inside the store (the
 * short internal locks every array write, queue side and create takes)
 * before giving up with ATR_ELOCKED: seconds, < 0 for ever (the default).
 * A holder that died is recovered at once whatever this says; this is for
 * a holder that lives but does not let go (stopped, paused, hung). A
 * server thread sets 0 and retries later rather than hang behind such a
 * process. Per thread; nothing else changes.
 */
void atr_set_lock_patience(double seconds);

typedef struct atr_store_stats {
  uint64_t capacity;    /* bytes of the store file                     */
  uint64_t used;        /* bytes in use: fixed tables plus object data */
  uint64_t objects;     /* live objects                                */
  uint64_t max_objects; /* the object limit                            */
} atr_store_stats;

int atr_store_stats_get(atr_store *store, atr_store_stats *stats);

/* ---------------------------------------------------------------- objects */

typedef enum atr_kind {
  ATR_ANY = 0,
  ATR_VALUE = 1,
  ATR_ARRAY = 2,
  ATR_QUEUE = 3,
  ATR_LOCK = 4,
  ATR_SEMAPHORE = 5,
  ATR_FLAG = 6, /* Python's Event */
  ATR_BARRIER = 7,
  ATR_CONDITION = 8,
  ATR_DICT = 9,
} atr_kind;

/* "value", "array", "queue", "lock", "semaphore", "flag", "barrier",
 * "condition", "dict" ("any" for ATR_ANY). */
const char *atr_kind_name(atr_kind kind);

/*
 * Type codes are Python's: b B h H i I l L q Q f d, plus '?' (bool) and
 * 'c' (one byte). l/L/q/Q are 64-bit. Returns the element size in bytes,
 * or 0 if type is not a type code.
 */
size_t atr_type_size(char type);

/* Which member of atr_scalar a type code uses (see below). */
typedef enum atr_tclass {
  ATR_TNONE = 0, /* not a type code                  */
  ATR_TINT,      /* i: b h i l q, and '?' (0 or 1)   */
  ATR_TUINT,     /* u: B H I L Q, and 'c' (0..255)   */
  ATR_TFLOAT,    /* f: f d                           */
} atr_tclass;
atr_tclass atr_type_class(char type);

/*
 * Writes the shortest %g text that reads back to v (as a float for type
 * 'f', as a double otherwise) into buf[0..cap), NUL-terminated; v must
 * be finite. Returns what snprintf returns: the length it needed.
 */
int atr_float_format(char type, double v, char *buf, size_t cap);

/*
 * A scalar crosses the API as a union; which member counts follows the
 * type: i for b h i l q and '?' (0 or 1); u for B H I L Q and 'c'
 * (0..255); f for f and d.
 */
typedef union atr_scalar {
  int64_t i;
  uint64_t u;
  double f;
} atr_scalar;

/* A snapshot of one object's description, filled by atr_stat/atr_list. */
typedef struct atr_info {
  char name[ATR_NAME_MAX + 1];
  atr_kind kind;
  char type;          /* value, array: the type code; queue: 0          */
  uint64_t version;   /* grows on every change, never repeats for a name */
  uint64_t id;        /* this incarnation of the name, never repeats     */
  uint64_t length;    /* array: elements                                 */
  uint64_t size;      /* queue: items waiting; dict: keys                */
  uint64_t bytes;     /* queue: ring bytes in use (see atr_queue_size);
                         array: data bytes; dict: its table's bytes     */
  uint64_t maxsize;   /* queue: item bound (0 = none)                    */
  uint64_t max_bytes; /* queue: byte bound (0 = the store's space)     */
  uint64_t max_item;  /* queue: largest item accepted                  */
  /* the synchronisation kinds (see their sections below) */
  uint64_t waiters;        /* lock, semaphore, flag, condition: waiting now
                              (processes and leases; advisory)               */
  uint64_t fence;          /* lock: the last acquisition's fence, or the
                              break's or expiry's that spent it           */
  uint64_t count;          /* lock: holds of the holder (reentrant depth; 0:
                              free); semaphore: permits free (its value)     */
  uint64_t bound;          /* semaphore: the bound (0 = none)               */
  uint64_t leased;         /* semaphore: leased permits out; queue: items
                              out under a lease                             */
  uint64_t parties;        /* barrier: parties                              */
  uint64_t n_waiting;      /* barrier: arrived in this generation           */
  uint64_t generation;     /* barrier: rounds passed or reset               */
  double expires_in;       /* lock held by a lease: seconds left; else -1    */
  unsigned char reentrant; /* lock: reentrant                           */
  unsigned char lease;     /* lock: held by a lease (else by a process)  */
  unsigned char set;       /* flag: set                                 */
  unsigned char broken;    /* barrier: broken                           */
  char lock[ATR_NAME_MAX + 1]; /* condition: the name of its lock       */
  /* queue: leased items (in `leased` above, with nacked ones waiting out
   * their delay), and: */
  uint64_t unfinished;     /* put and not yet done                       */
  uint64_t dead_lettered;  /* moved to the dead-letter queue             */
  uint64_t dropped;        /* dead letters dropped (queue missing, full) */
  uint64_t max_deliveries; /* 0: never dead-lettered                     */
  char dead_letter[ATR_NAME_MAX + 1]; /* "" if none                      */
} atr_info;

/* Fills *info for the object called name (ATR_ENOENT if none). */
int atr_stat(atr_store *store, const char *name, atr_info *info);

/*
 * Calls fn once per live object, in no particular order, stopping early
 * and returning fn's value when fn returns non-zero. Objects created or
 * deleted during the walk may or may not be seen. No lock is held while
 * fn runs, so fn may call any function of this API.
 */
int atr_list(atr_store *store, int (*fn)(const atr_info *info, void *arg),
             void *arg);

/*
 * Lists objects in bytewise name order: those whose names start with
 * prefix (NULL or "": all), of kind `kind` (0: any), after the name
 * `after` (NULL: from the first), at most `limit` (> 0), calling fn
 * for each as atr_list does. *more is set to 1 when objects that match
 * follow the last one given, else 0. Returns 0 or ATR_EINVAL.
 *
 * No lock is held while fn runs (fn may call any function of this API);
 * fn returning non-zero stops the page, and that value is returned. A
 * walk that passes each page's last name as `after` sees every object
 * present throughout the walk exactly once; objects created or deleted
 * during it may or may not be seen. prefix and after are compared as
 * bytes and need not be valid names. ATR_EINVAL: store or fn NULL, limit
 * 0, or kind not a kind. more may be NULL. ATR_ENOMEM if the page's
 * room (limit entries, at most the object limit) cannot be allocated.
 */
int atr_list_page(atr_store *store, const char *prefix, atr_kind kind,
                  const char *after, size_t limit,
                  int (*fn)(const atr_info *info, void *arg), void *arg,
                  int *more);

/*
 * Deletes the object called name if it is of kind (ATR_ANY: any kind;
 * otherwise ATR_EKIND on another kind). Its space is free for reuse at
 * once; handles on it fail with ATR_ENOENT; processes waiting on a queue
 * wake and get ATR_ENOENT.
 */
int atr_delete(atr_store *store, const char *name, atr_kind kind);

/* ---------------------------------------------------------------- handles */

typedef struct atr_handle {
  atr_store *store;
  uint64_t id;   /* the incarnation this handle belongs to */
  void *rec;     /* private: the object's record           */
  uint32_t slot; /* private: the record's number           */
  atr_kind kind;
  char type;
} atr_handle;

/* Flags of the _open calls. */
enum {
  ATR_CREATE = 1, /* create the object if the name is free              */
  ATR_EXCL = 2,   /* with ATR_CREATE: fail with ATR_EEXIST if it exists */
};
/* Positive result of the _open calls when they created the object. */
#define ATR_CREATED 1
/* Positive result of an acquire whose previous holder died holding what
 * was acquired (as EOWNERDEAD): what it guarded may be half changed. */
#define ATR_ABANDONED 2

/* Fills *info for the object h is open on, without a name lookup
 * (ATR_ENOENT once it is deleted). */
int atr_handle_stat(const atr_handle *h, atr_info *info);

/* ----------------------------------------------------------------- values */

/*
 * Opens the value called name into *h. With ATR_CREATE a missing value is
 * created with init (NULL: zero, as multiprocessing does); an existing
 * one is opened as it is and init is ignored. type 0 opens a value of any
 * type; otherwise a value of another type is ATR_ETYPE. Returns
 * ATR_CREATED if it created the value, 0 if it opened an existing one.
 * Errors: ATR_ENAME, ATR_ENOENT (no ATR_CREATE), ATR_EEXIST (ATR_EXCL),
 * ATR_EKIND, ATR_ETYPE, ATR_ERANGE (init does not fit the type),
 * ATR_ENOSPC, ATR_ETOOMANY.
 */
int atr_value_open(atr_store *store, const char *name, char type, int flags,
                   const atr_scalar *init, atr_handle *h);

/* Reads the value and its version together (either pointer may be NULL).
 * Lock-free. */
int atr_value_get(const atr_handle *h, atr_scalar *value, uint64_t *version);

/*
 * Sets the value. If expect is non-zero the set happens only if the
 * version is exactly expect at that instant (ATR_EVERSION otherwise,
 * nothing changed). ATR_ERANGE if value does not fit the type.
 * *version (may be NULL) gets the new version. Lock-free.
 */
int atr_value_set(const atr_handle *h, atr_scalar value, uint64_t expect,
                  uint64_t *version);

/*
 * Adds delta (delta.i for integer types, delta.f for f and d) and returns
 * the new value and version (either may be NULL). A result outside the
 * type's range, or a float result that is not finite, is ATR_EOVERFLOW
 * and changes nothing. '?' and 'c' values are ATR_ETYPE. Lock-free: it
 * touches only the value's own cache line.
 */
int atr_value_add(const atr_handle *h, atr_scalar delta, atr_scalar *value,
                  uint64_t *version);

/* ----------------------------------------------------------------- arrays */

/*
 * Opens the array called name into *h. With ATR_CREATE a missing array is
 * created with length elements, from init[0..length) when init is given
 * (zeros otherwise). An existing array of another length is
 * ATR_ELENGTH (length 0 matches any), of another type ATR_ETYPE (type 0
 * matches any). Returns ATR_CREATED or 0, as atr_value_open.
 */
int atr_array_open(atr_store *store, const char *name, char type,
                   uint64_t length, int flags, const atr_scalar *init,
                   atr_handle *h);

/* The array's length (fixed at creation). */
int atr_array_length(const atr_handle *h, uint64_t *length);

/*
 * Resolves a Python slice [start:stop] against length: negative indices
 * count from the end, out-of-range bounds are clamped. Use 0 and
 * INT64_MAX for an open start and stop. Sets *lo <= *hi.
 */
void atr_slice(int64_t start, int64_t stop, uint64_t length, uint64_t *lo,
               uint64_t *hi);

/*
 * Reads the slice [start:stop] (Python semantics) into out, which has
 * room for cap elements; *n gets the count. A reader never sees part of
 * a concurrent write: the slice is wholly before or after it. *version
 * (may be NULL) is the array's version matching what was read. ATR_EINVAL
 * if cap is smaller than the slice.
 */
int atr_array_get(const atr_handle *h, int64_t start, int64_t stop,
                  atr_scalar *out, uint64_t cap, uint64_t *n,
                  uint64_t *version);

/*
 * Writes values[0..n) at index start (negative counts from the end),
 * atomically: readers see all old or all new. If start + n passes the end
 * it is ATR_EBOUNDS; a value that does not fit the type is ATR_ERANGE;
 * expect non-zero and not the current version is ATR_EVERSION; in each
 * case nothing is written. Takes the array's lock.
 */
int atr_array_set(const atr_handle *h, int64_t start, const atr_scalar *values,
                  uint64_t n, uint64_t expect, uint64_t *version);

/* Adds delta to element index (negative counts from the end), as
 * atr_value_add; ATR_EBOUNDS for a bad index. Takes the array's lock. */
int atr_array_add(const atr_handle *h, int64_t index, atr_scalar delta,
                  atr_scalar *value, uint64_t *version);

/* ----------------------------------------------------------------- queues */

typedef struct atr_queue_opts {
  uint64_t maxsize;   /* most items waiting; 0 = no bound on the count  */
  uint64_t max_bytes; /* bytes of the queue's ring (default 1 MiB); 0 =
                         bounded only by the store's space: the ring
                         grows as needed, and a put that finds the store
                         full fails with ATR_ENOSPC                     */
  uint64_t max_item;  /* largest item (default: max_bytes / 4, or 1 MiB
                         when max_bytes is 0)                           */
  /* Leased items (atr_queue_get_leased): */
  uint32_t max_deliveries; /* an item coming back having had this many
                              deliveries moves to dead_letter (0: never) */
  uint32_t max_leased;     /* items out under a lease at once (default
                              1024, at most 65536)                      */
  const char *dead_letter; /* the dead-letter queue's name (NULL: none;
                              a dead-lettered item is then dropped)     */
} atr_queue_opts;

void atr_queue_opts_init(atr_queue_opts *opts);

/*
 * Opens the queue called name into *h; with ATR_CREATE a missing queue is
 * created with opts (NULL: defaults). An existing queue keeps its own
 * settings. Returns ATR_CREATED or 0, as atr_value_open.
 */
int atr_queue_open(atr_store *store, const char *name, int flags,
                   const atr_queue_opts *opts, atr_handle *h);

/*
 * Appends one item (len bytes, 0 allowed), waiting up to timeout while
 * the queue is full. ATR_EFULL when the time is up, ATR_EINTR if a
 * signal handler ran while it waited (nothing put), ATR_ETOOBIG if len
 * passes max_item; a queue without a byte bound that cannot grow any
 * more answers ATR_ENOSPC (the store is full) at once. The item is copied; it
 * is in the queue whole or not at all, even if the process dies. Items of one
 * producer keep their order.
 */
int atr_queue_put(const atr_handle *h, const void *item, size_t len,
                  double timeout);

/* Appends n items at once, all or none, waiting up to timeout for room
 * for all of them. ATR_EFULL if they can never fit or time is up;
 * ATR_EINTR as atr_queue_put. */
int atr_queue_put_batch(const atr_handle *h, const struct iovec *items,
                        size_t n, double timeout);

/*
 * Takes the oldest item into buf (cap bytes), waiting up to timeout while
 * the queue is empty; *len gets its size. ATR_EEMPTY when the time is up;
 * ATR_EINTR if a signal handler ran while it waited (nothing taken);
 * ATR_ETOOBIG if it does not fit in cap (*len then gets its size and the
 * item stays in the queue).
 */
int atr_queue_get(const atr_handle *h, void *buf, size_t cap, size_t *len,
                  double timeout);

/* Items taken by atr_queue_get_batch: item k is data[off[k]..off[k]+len[k]).
 * Zero-initialise; the library grows the arrays; atr_items_free frees them. */
typedef struct atr_items {
  char *data;
  size_t *off;
  size_t *len;
  size_t count;
  size_t data_cap, item_cap; /* private */
} atr_items;

void atr_items_free(atr_items *items);

/*
 * Takes up to max items (at least one; waits up to timeout while empty)
 * and appends them to *out. ATR_EEMPTY when none came; ATR_EINTR as
 * atr_queue_get; ATR_ENOMEM if out
 * cannot grow (nothing taken).
 */
int atr_queue_get_batch(const atr_handle *h, size_t max, double timeout,
                        atr_items *out);

/* Items waiting now, the ring bytes they hold (with their 8-byte
 * headers, padding to 8 and any space skipped at the ring's end), and the
 * queue's version; any pointer may be NULL. Takes no lock, so it never
 * waits for a putter or getter: with both sides busy it is a moment's
 * view (items never negative, bytes within the ring, the version never
 * going back for one caller). atr_stat, atr_handle_stat and atr_list
 * describe a queue the same way. */
int atr_queue_size(const atr_handle *h, uint64_t *items, uint64_t *bytes,
                   uint64_t *version);

/* Removes every waiting item, at once (leased ones stay leased); the
 * removed items count as done. */
int atr_queue_clear(const atr_handle *h);

/*
 * Leased items and task accounting (JoinableQueue).
 *
 * A leased get takes items under a lease: each is hidden from other
 * consumers until it is acked (gone, and done), nacked (back at the
 * head, after an optional delay) or its lease runs out (back at the
 * head). An item is handed out with a receipt (64 bits, never repeated,
 * random: a wrong one is just unknown) and its deliveries (times handed
 * out, this one included). An item that comes back having had the
 * queue's max_deliveries moves to its dead-letter queue (dropped and
 * counted if that queue is missing or full) and is done for this one.
 *
 * Leases live in the store: a lease outlives its taker and runs out at
 * its deadline (CLOCK_MONOTONIC), whoever looks next ends it (a getter,
 * atr_sync_expire). By default a lease is also a process hold: if the
 * taking thread dies its items come back at once, and only that thread
 * may ack, nack or touch them (for any other caller their receipts are
 * unknown). ATR_LEASE_DETACHED takes a lease that any holder of the
 * receipt may settle and that only its deadline ends (the gateway's).
 *
 * unfinished counts the items put and not yet done: an ack is done, a
 * plain get is done when atr_queue_done is called; join waits until it
 * is 0.
 */
#define ATR_LEASE_DETACHED 1

/*
 * Takes up to max items (at least one; waits up to timeout while none is
 * there) under a lease of `lease` seconds (> 0), appends them to *out
 * and their receipts and deliveries to receipts[0..k) and deliveries[0..k)
 * (caller-owned arrays of max entries; k = out->count growth).
 * Returns 0, ATR_EEMPTY when none came, ATR_EFULL when max_leased items
 * are out already, ATR_EINVAL, ATR_EINTR, ATR_ENOMEM, ATR_ENOSPC (no room
 * in the store for the leased item's copy), ATR_ENOENT.
 */
int atr_queue_get_leased(const atr_handle *h, size_t max, double lease,
                         int flags, double timeout, atr_items *out,
                         uint64_t *receipts, uint32_t *deliveries);

/*
 * Settle leased items by receipt: ack (gone, done), nack (back at the
 * head after delay seconds, >= 0; until then it counts as leased),
 * touch (its lease now ends `lease` seconds from now, > 0). The receipts
 * that were not acted on (unknown, expired or spent) are copied to
 * unknown[0..*n_unknown) (caller-owned, n entries; may be NULL with
 * n_unknown NULL). 0, ATR_EINVAL, ATR_ENOENT.
 */
int atr_queue_ack(const atr_handle *h, const uint64_t *receipts, size_t n,
                  uint64_t *unknown, size_t *n_unknown);
int atr_queue_nack(const atr_handle *h, const uint64_t *receipts, size_t n,
                   double delay, uint64_t *unknown, size_t *n_unknown);
int atr_queue_touch(const atr_handle *h, const uint64_t *receipts, size_t n,
                    double lease, uint64_t *unknown, size_t *n_unknown);

/* Marks n items done (task_done); *unfinished (may be NULL) gets what is
 * left. ATR_EDONE if n is more than the unfinished items (nothing
 * changes), ATR_EINVAL for n = 0. */
int atr_queue_done(const atr_handle *h, uint64_t n, uint64_t *unfinished);

/* Waits up to timeout (< 0: for ever) until no item is unfinished.
 * 0, ATR_ETIMEDOUT, ATR_EINTR, ATR_ENOENT; *unfinished (may be NULL)
 * gets the count seen last. */
int atr_queue_join(const atr_handle *h, double timeout, uint64_t *unfinished);

/* ------------------------------------------------ synchronisation objects
 *
 * Locks, semaphores, flags (Python's Event), barriers and conditions, as
 * multiprocessing has them, for every process of the store. Common rules:
 *
 * - Waits sleep on futexes in the store (never spin), take a timeout as
 *   every call does, and return ATR_EINTR when a signal handler ran
 *   during the wait (the caller decides: Python raises KeyboardInterrupt).
 *   What was acquired before the signal stays acquired; nothing else is.
 * - A holder is a thread of a local process (a process hold) or a lease:
 *   a deadline on the host's monotonic clock kept in the store, for
 *   holders that are no process (the gateway's HTTP clients). A thread
 *   that dies holding a process hold gives it back at once, through the
 *   kernel's robust futex list, in any PID namespace: the next holder's
 *   acquire returns ATR_ABANDONED. A lease that runs out is given back by
 *   whoever next looks (a waiter, or atr_sync_expire), whether or not the
 *   process that took it still runs.
 * - A process hold is released by the thread that took it (ATR_ENOTHELD
 *   from any other); a lease by its token, from anywhere.
 * - Tokens are 64-bit secrets, never 0, never repeated for a name.
 * - Fences: every acquisition of a lock takes a fence that only grows for
 *   the name (across delete and re-create, as versions do).
 */

/* What an acquisition of a lock (or a leased permit) gives back. */
typedef struct atr_grant {
  uint64_t fence; /* lock: this acquisition's fence (the same on re-entry) */
  uint64_t token; /* a lease's (or leased permit's) token; 0 otherwise     */
  uint64_t count; /* lock: the holder's depth after this call (1 unless
                     reentrant); semaphore: permits free after this call  */
  double ttl;     /* a lease: the seconds it was granted (capped)          */
} atr_grant;

/* The longest lease, in seconds: longer ttls are capped to it. */
#define ATR_LEASE_MAX (365.0 * 86400.0)

/* ------------------------------------------------------------------ locks */

/* Opens the lock called name; with ATR_CREATE a missing one is created,
 * reentrant (RLock) if reentrant is non-zero. An existing lock keeps its
 * own setting. Returns ATR_CREATED or 0, as atr_value_open. */
int atr_lock_open(atr_store *store, const char *name, int flags, int reentrant,
                  atr_handle *h);

/*
 * Takes the lock for the calling thread, waiting up to timeout. A
 * reentrant lock held by this thread is re-entered (count + 1, the same
 * fence); a plain one held by this thread waits (as Python's Lock: it is
 * not an error). Returns 0, or ATR_ABANDONED if the last holder died
 * holding it (the lock is now the caller's), ATR_ETIMEDOUT, ATR_EINTR,
 * ATR_ENOENT. *g (may be NULL) gets the fence and count.
 */
int atr_lock_acquire(const atr_handle *h, double timeout, atr_grant *g);

/* Releases one level of the calling thread's hold (the lock is free at
 * count 0). ATR_ENOTHELD if this thread does not hold it (or its hold was
 * broken: this call lets go of it). A lock deleted while held answers
 * ATR_ENOENT, after letting go of it. A thread must not close the store,
 * nor unmap it, while it holds a lock of it: the hold is linked in the
 * thread's robust list until released. */
int atr_lock_release(const atr_handle *h);

/*
 * Takes the lock as a lease of ttl seconds (> 0, capped to ATR_LEASE_MAX),
 * waiting up to timeout. With reenter non-zero, the lease of that token on
 * a reentrant lock is re-entered: count + 1, the same token and fence,
 * the deadline reset to ttl from now (ATR_ENOTHELD if that token does not
 * hold it; a plain lock re-entered this way is ATR_EINVAL). Results as
 * atr_lock_acquire; g->token is the lease's token. A lease is granted
 * only with its whole ttl ahead: no holder is ever given a lease that has
 * already run out.
 */
int atr_lock_lease(const atr_handle *h, double ttl, double timeout,
                   uint64_t reenter, atr_grant *g);
/* Releases one level of the lease token holds (the last level frees the
 * lock). ATR_ENOTHELD for a wrong, expired or spent token. */
int atr_lock_unlease(const atr_handle *h, uint64_t token);
/* Gives the lease token holds ttl seconds from now. ATR_ENOTHELD as
 * above. */
int atr_lock_renew(const atr_handle *h, uint64_t token, double ttl,
                   atr_grant *g);
/* An operator's release, whatever the holder: the lock is free, its
 * fence grows (the old fence and token are spent) and waiters wake. 0 if
 * it was free already. A process that still runs holding it learns it
 * from ATR_ENOTHELD on its release; until it has, a second break of the
 * lock while a thread holds it answers ATR_ELOCKED (the lock keeps two
 * holds: the broken one stays in its thread's robust list). */
int atr_lock_break(const atr_handle *h);

/*
 * Runs fn(arg) only while the lock called lock_name is held under fence,
 * at that instant: no release, expiry, break or new acquisition of a
 * lease-held lock can happen while fn runs (fn must be short and must not
 * wait). Returns fn's result, or ATR_ESTALE (fn not run) if the lock is
 * free, held under another fence, or its lease has run out; ATR_ENOENT if
 * there is no such lock. A process hold is checked the same way, but
 * only its own thread can release it, so the check is exact for a fence
 * the holder passes on and a hint for anyone else's.
 */
int atr_lock_fenced(atr_store *store, const char *lock_name, uint64_t fence,
                    int (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------- semaphores */

/* Opens the semaphore called name; with ATR_CREATE a missing one is
 * created with value free permits and bound (0: none; else value <=
 * bound, or ATR_EINVAL: BoundedSemaphore); value and bound are at most
 * 2^31 - 1 (ATR_EINVAL). An existing one keeps its own. Returns
 * ATR_CREATED or 0. */
int atr_sem_open(atr_store *store, const char *name, int flags, uint64_t value,
                 uint64_t bound, atr_handle *h);

/* Takes a plain permit (anyone may give it back), waiting up to timeout.
 * 0, ATR_ETIMEDOUT, ATR_EINTR, ATR_ENOENT. *value (may be NULL): permits
 * free after this call. */
int atr_sem_acquire(const atr_handle *h, double timeout, uint64_t *value);

/* Gives back n plain permits (n >= 1, else ATR_EINVAL). ATR_EOVERRELEASE
 * (nothing given back) if the bound would be passed (free and leased
 * permits count); ATR_EOVERFLOW past 2^31 - 1 free permits. */
int atr_sem_release(const atr_handle *h, uint64_t n, uint64_t *value);

/*
 * Takes a leased permit: a process hold of the calling thread (ttl < 0),
 * given back at once if the thread dies, or a lease of ttl seconds (ttl >
 * 0, capped), given back when it runs out. g->token names it. Returns 0,
 * ATR_ABANDONED (a dead holder's permit was given back to take this
 * one), ATR_ETIMEDOUT, ATR_EINTR, ATR_ENOENT, ATR_ETOOMANY (the
 * semaphore's table of leased permits is full: at most max(value, bound,
 * 1) and at most 1024).
 */
int atr_sem_lease(const atr_handle *h, double ttl, double timeout,
                  atr_grant *g);
/* Gives back the leased permit token names (a process hold: from its own
 * thread). ATR_ENOTHELD for a wrong, expired or given-back token. */
int atr_sem_unlease(const atr_handle *h, uint64_t token, uint64_t *value);

/* ------------------------------------------------------------------ flags */

/* Opens the flag called name (Python's Event); with ATR_CREATE a missing
 * one is created, set if set is non-zero. Returns ATR_CREATED or 0. */
int atr_flag_open(atr_store *store, const char *name, int flags, int set,
                  atr_handle *h);
/* Sets the flag and wakes every waiter. */
int atr_flag_set(const atr_handle *h);
int atr_flag_clear(const atr_handle *h);
/* Waits up to timeout for the flag to be set: 0 once set, ATR_ETIMEDOUT,
 * ATR_EINTR, ATR_ENOENT. *set (may be NULL) gets the state it saw. */
int atr_flag_wait(const atr_handle *h, double timeout, int *set);

/* --------------------------------------------------------------- barriers */

/* Opens the barrier called name; with ATR_CREATE a missing one is created
 * for parties (1..1024, else ATR_EINVAL). Returns ATR_CREATED or 0. */
int atr_barrier_open(atr_store *store, const char *name, int flags,
                     uint64_t parties, atr_handle *h);

/*
 * Waits at the barrier until parties threads (or leases) have come, as
 * Python's Barrier.wait. 0 with *index (0 for the first to come, parties
 * - 1 for the last) and *generation of the round passed; ATR_EBROKEN if
 * the barrier is or becomes broken (aborted, a waiter timed out, was
 * interrupted or died); ATR_ETIMEDOUT for the waiter whose timeout ran
 * out (it breaks the barrier, as in Python); ATR_EINTR (it breaks it too:
 * a waiter left). Either pointer may be NULL.
 */
int atr_barrier_wait(const atr_handle *h, double timeout, uint64_t *index,
                     uint64_t *generation);

/*
 * The same for a holder that is not a thread (the gateway's HTTP
 * waiters): arrive takes a place in the round, held as a lease until
 * deadline_in seconds from now (a place whose lease runs out breaks the
 * barrier); poll answers without waiting: 0 with index and generation
 * once the round passed, ATR_ETIMEDOUT while it has not, ATR_EBROKEN;
 * leave gives the place up and breaks the barrier if the round had not
 * passed. *ticket names the place. A poll that answers 0 or ATR_EBROKEN
 * gives the place up too; poll and leave answer ATR_ENOTHELD for a ticket
 * that names no place (given up, or its lease ran out and broke the
 * barrier). arrive: ATR_EINVAL unless deadline_in > 0 (capped to
 * ATR_LEASE_MAX), ATR_ETOOMANY when all 2 x parties places are taken.
 */
int atr_barrier_arrive(const atr_handle *h, double deadline_in,
                       uint64_t *ticket);
int atr_barrier_poll(const atr_handle *h, uint64_t ticket, uint64_t *index,
                     uint64_t *generation);
int atr_barrier_leave(const atr_handle *h, uint64_t ticket);

/* Breaks the barrier: every waiter gets ATR_EBROKEN, and so does every
 * wait until atr_barrier_reset. */
int atr_barrier_abort(const atr_handle *h);
/* Back to its first state: waiters of the round get ATR_EBROKEN, the
 * barrier is whole again and the generation grows. */
int atr_barrier_reset(const atr_handle *h);

/* ------------------------------------------------------------- conditions */

/* Opens the condition called name, bound to the lock called lock_name
 * (with ATR_CREATE; that lock must exist: ATR_ENOENT, ATR_EKIND; NULL
 * when creating: ATR_EINVAL). An existing condition keeps its lock
 * (lock_name may then be NULL). Its line holds 128 waiters: a wait past
 * that answers ATR_ETOOMANY. Once its lock is deleted every call answers
 * ATR_ENOENT. */
int atr_cond_open(atr_store *store, const char *name, int flags,
                  const char *lock_name, atr_handle *h);

/*
 * Python's Condition.wait: the calling thread must hold the condition's
 * lock (ATR_ENOTHELD). Releases it (every level of a reentrant one),
 * waits up to timeout for a notify, and takes it again (the same count, a
 * new fence in *g) before returning, whatever the result: 0 notified,
 * ATR_ETIMEDOUT, ATR_EINTR; or ATR_ABANDONED (notified or not: *notified
 * says) if taking it again found its holder dead. *notified may be NULL.
 */
int atr_cond_wait(const atr_handle *h, double timeout, int *notified,
                  atr_grant *g);

/*
 * The same for a lease holder (the gateway): token must hold the lock.
 * wait_begin releases it and takes a place in the waiters' line, held
 * until deadline_in seconds from now (*ticket names it); wait_poll,
 * without waiting, answers 0 once notified or ATR_ETIMEDOUT while not;
 * wait_end leaves the line. Taking the lock again is the caller's
 * atr_lock_lease. A ticket that names no place of the line (ended, or
 * its deadline passed and atr_sync_expire or a notify removed it) is
 * ATR_ENOTHELD.
 */
int atr_cond_wait_begin(const atr_handle *h, uint64_t token, double deadline_in,
                        uint64_t *ticket, uint64_t *count);
int atr_cond_wait_poll(const atr_handle *h, uint64_t ticket);
int atr_cond_wait_end(const atr_handle *h, uint64_t ticket);

/*
 * Wakes up to n waiters (UINT64_MAX: all), oldest first; *woken (may be
 * NULL) gets how many. The caller must hold the lock: a process hold of
 * this thread (token 0) or the lease token (ATR_ENOTHELD otherwise).
 */
int atr_cond_notify(const atr_handle *h, uint64_t token, uint64_t n,
                    uint64_t *woken);

/* ------------------------------------------------------------------ dicts
 *
 * Manager().dict() for every process: keys of 1-ATR_DICT_KEY_MAX bytes of
 * UTF-8 without NUL (ATR_EKEY otherwise) to byte values (the gateway
 * keeps JSON text), in one hash table in the store's heap that grows and
 * shrinks as keys come and go (O(1) get, set and delete by key). Every
 * change (one key or many) is one commit under the dict's lock: a
 * process killed during it leaves every key old or new, never torn, and
 * the next caller finishes or forgets it. Each commit takes the next
 * version of the dict, and every key it sets gets that version as its
 * own: a key's versions never repeat, across deletes and re-sets, and
 * across a delete and re-create of the dict (versions start above any
 * the name had). Reads take the dict's lock too, so a reader sees every
 * commit whole or not at all.
 */

#define ATR_DICT_KEY_MAX 256
/* The largest value (bytes). */
#define ATR_DICT_VALUE_MAX ((size_t)1 << 26)
/* An expect of atr_dict_set / atr_dict_op: the key must be absent
 * (If-None-Match: *). */
#define ATR_DICT_ABSENT UINT64_MAX

/* 0 if key[0..len) is a valid key, else ATR_EKEY. */
int atr_dict_key_check(const char *key, size_t len);

/* Opens the dict called name; with ATR_CREATE a missing one is created
 * empty. Returns ATR_CREATED or 0, as atr_value_open. */
int atr_dict_open(atr_store *store, const char *name, int flags, atr_handle *h);

/* Keys, values and versions copied out of a dict: item k's key is
 * data[item[k].key_off..+key_len), its value data[value_off..+value_len).
 * Zero-initialise; calls append to it and grow its arrays;
 * atr_dict_items_free frees them (and zeroes it again). */
typedef struct atr_dict_item {
  size_t key_off, key_len;
  size_t value_off, value_len;
  uint64_t version; /* the key's own version (changes: the change's) */
  int deleted;      /* atr_dict_changes: the change was a delete     */
} atr_dict_item;
typedef struct atr_dict_items {
  char *data;
  atr_dict_item *item;
  size_t count;
  size_t data_len, data_cap, item_cap; /* private */
} atr_dict_items;
void atr_dict_items_free(atr_dict_items *items);

/*
 * Copies the value of key into buf (cap bytes); *len gets its size and
 * *version the key's version (either may be NULL). ATR_ENOKEY if absent;
 * ATR_ETOOBIG if it does not fit cap (*len then gets its size).
 */
int atr_dict_get(const atr_handle *h, const char *key, size_t klen, void *buf,
                 size_t cap, size_t *len, uint64_t *version);

/* Appends to *out the keys of keys[0..n) that are present (absent ones
 * are skipped), as one consistent reading. *version (may be NULL) gets
 * the dict's. ATR_EKEY, ATR_ENOMEM (out as it was). */
int atr_dict_read(const atr_handle *h, const struct iovec *keys, size_t n,
                  atr_dict_items *out, uint64_t *version);

/*
 * Sets key to value[0..vlen). expect 0: whatever the key holds; a
 * version: only if the key has exactly that version now (ATR_EVERSION
 * otherwise, also if the key is absent); ATR_DICT_ABSENT: only if the key
 * is absent (ATR_EEXIST otherwise). Returns ATR_CREATED if the key was
 * new, 0 if it replaced a value; *version (may be NULL) gets the key's new
 * version. ATR_EKEY, ATR_ETOOBIG (vlen past ATR_DICT_VALUE_MAX), ATR_ENOSPC
 * (the table cannot grow: the store is full); nothing changes on error.
 */
int atr_dict_set(const atr_handle *h, const char *key, size_t klen,
                 const void *value, size_t vlen, uint64_t expect,
                 uint64_t *version);

/* Removes key (as dict.pop): appends its value and version to *old (may
 * be NULL). expect as atr_dict_set (0, or the key's version).
 * ATR_ENOKEY if absent, ATR_EVERSION, ATR_ENOMEM (nothing removed). */
int atr_dict_pop(const atr_handle *h, const char *key, size_t klen,
                 uint64_t expect, atr_dict_items *old);

/* One change of atr_dict_update. */
typedef struct atr_dict_op {
  const char *key;
  size_t key_len;
  const void *value; /* set: the value (value_len bytes)       */
  size_t value_len;
  int del;         /* 1: delete the key (absent: not an error) */
  uint64_t expect; /* as atr_dict_set's, for this key           */
} atr_dict_op;

/*
 * Applies ops[0..n) as one commit: all or none, seen by readers all or
 * none, even if the process dies. A key named twice is ATR_EINVAL; any
 * op's error (ATR_EKEY, ATR_ETOOBIG, ATR_EVERSION, ATR_EEXIST,
 * ATR_ENOSPC) changes nothing. *version (may be NULL) gets the dict's
 * new version (unchanged when nothing changed: n == 0, or only deletes
 * of absent keys).
 */
int atr_dict_update(const atr_handle *h, const atr_dict_op *ops, size_t n,
                    uint64_t *version);

/*
 * A page in key order: appends to *out the first limit keys (with values
 * and versions) after the key after[0..after_len) (NULL: from the
 * first), keys compared bytewise as unsigned bytes (a prefix first), as
 * one consistent reading. *more (may be NULL) is 1 if keys follow the
 * page. A walk that passes each page's last key as the next one's after
 * sees every key present during the whole walk exactly once. The order
 * is made per page (a scan of the table keeping the limit smallest keys
 * after `after`: O(len log limit)), so nothing extra is kept in the store.
 * limit 0: every key. *version (may be NULL): the dict's.
 */
int atr_dict_page(const atr_handle *h, const char *after, size_t after_len,
                  size_t limit, atr_dict_items *out, int *more,
                  uint64_t *version);

/* The number of keys and the dict's version (either may be NULL).
 * Lock-free. */
int atr_dict_len(const atr_handle *h, uint64_t *len, uint64_t *version);

/*
 * The keys changed by the commits after version since (for an event's
 * reader: the dict keeps a ring of its recent key changes, about 4 KiB),
 * newest first, each key once (its latest change: item.version is that
 * change's version, item.deleted says whether it was a delete; no
 * values). *truncated is 1 if the ring no longer reaches back to since,
 * or a commit changed more keys than the ring takes (about 40 short
 * ones): then some keys changed are not listed. *version (may be NULL):
 * the dict's now.
 */
int atr_dict_changes(const atr_handle *h, uint64_t since, atr_dict_items *out,
                     int *truncated, uint64_t *version);

/* ------------------------------------------------------------ all of them */

/* Ends whatever lease of the object has run out (a lock's lease, leased
 * permits, barrier places, condition places) and wakes its waiters, as a
 * waiter would on finding it. Returns how many it ended (>= 0). The
 * gateway calls it at each deadline, so events come on time. */
int atr_sync_expire(const atr_handle *h);

/* ------------------------------------------------------------ change feed */

typedef enum atr_op {
  ATR_OP_CREATED = 1,
  ATR_OP_DELETED,
  ATR_OP_SET,
  ATR_OP_ADD,
  ATR_OP_PUT,
  ATR_OP_POP,
  ATR_OP_CLEAR,
  ATR_OP_ACQUIRED,  /* lock, semaphore */
  ATR_OP_RELEASED,  /* lock, semaphore (also a break, a permit's lease out) */
  ATR_OP_EXPIRED,   /* lock: a lease ran out */
  ATR_OP_ABANDONED, /* lock: a holder died holding it (then "acquired") */
  ATR_OP_WAIT,      /* barrier: a waiter came */
  ATR_OP_PASSED,    /* barrier: a round passed */
  ATR_OP_BROKEN,    /* barrier */
  ATR_OP_RESET,     /* barrier */
  ATR_OP_NOTIFY,    /* condition */
  ATR_OP_LEASED,    /* queue: items taken under a lease */
  ATR_OP_ACKED,     /* queue */
  ATR_OP_NACKED,    /* queue */
  ATR_OP_DONE,      /* queue: task_done */
  ATR_OP_DELETE,    /* dict: keys deleted (a dict's "set": keys set) */
} atr_op;

/* "created", "deleted", "set", "add", "put", "pop", "clear", "acquired",
 * "released", "expired", "abandoned", "wait", "passed", "broken", "reset",
 * "notify", "leased", "acked", "nacked", "done", "delete". A flag's set
 * and clear are "set" and "clear"; a queue's lease that ran out is
 * "expired"; a dict's changes are "set" and "delete" (atr_dict_changes
 * names the keys). */
const char *atr_op_name(atr_op op);

/*
 * One change. A run of the same op on one object may arrive as one event;
 * read the object's state when the event arrives to get its latest value.
 */
typedef struct atr_event {
  uint64_t seq; /* store-wide, grows by one per event, across restarts */
  uint64_t id;  /* the object's incarnation                           */
  atr_kind kind;
  atr_op op;
  char name[ATR_NAME_MAX + 1];
} atr_event;

/* A reader's place in the change feed; caller-owned, no close needed. */
typedef struct atr_cursor {
  atr_store *store;
  uint64_t next;  /* the seq expected next                 */
  uint32_t wakes; /* private: the atr_feed_wake calls seen */
} atr_cursor;

/* Places c at the end of the feed: it will see changes made from now on. */
int atr_feed_open(atr_store *store, atr_cursor *c);

/*
 * Waits up to timeout for the next event and fills *ev. ATR_ETIMEDOUT if
 * none came. ATR_EGAP if events were lost (the reader fell a whole ring
 * behind, or a writer died while publishing): call atr_feed_resync, then
 * re-read every object. Never blocks a writer.
 */
int atr_feed_next(atr_cursor *c, atr_event *ev, double timeout);

/*
 * After ATR_EGAP: moves c to the end of the feed and makes sure that every
 * change after this call yields an event. Read every object after it.
 */
int atr_feed_resync(atr_cursor *c);

/* Makes every reader of this store that waits in atr_feed_next, or
 * that would wait in its next call, return ATR_ETIMEDOUT at once (events
 * that are there are delivered first): a reader told to look at
 * something else, or to stop, hears it even if it was not yet asleep. */
void atr_feed_wake(atr_store *store);

#ifdef __cplusplus
}
#endif
#endif /* ATRIUM_H */
