/*
 * fuzz_store.c - libFuzzer target over store images: the store file is
 * input, not trusted memory, so whatever bytes it holds, libatrium must
 * not read or write outside the mapping, divide by a stored zero or loop
 * on a stored cycle (ASan and UBSan watch; a hang is a timeout).
 *
 * An input is a whole store file. It is written to a file of this
 * process under /dev/shm, with the header's check fixed up (anyone can
 * compute it), and opened as a store; then every call a user
 * could make runs on it: stats, the list, a stat and every get of each
 * listed object, an add and a set of each value, a slice write and an
 * add on each array, a put and a get and a batch get on each queue, a
 * delete, new objects of every kind (a growing queue made to grow), and
 * a read of the change feed those calls wrote.
 *
 * Repair paths: a process-shared lock word is state of the threads that
 * hold it, not data; a damaged word that looks held would make any
 * locker wait (no lock of the core has a timeout: what the gateway does
 * about a held lock is its own concern). So before the calls, every lock
 * in the image is made again, and one whose word was not zero is marked
 * as its holder's death leaves it: the next locker repairs what it
 * guards (a store lock: the records, the index and the heap; a queue's:
 * its sides and a move; an array's: its redo log).
 *
 * Seeds: run with FUZZ_STORE_SEEDS=DIR, the target writes real stores
 * there (every kind, a wrapped queue, a grown queue, deleted objects,
 * a lapped change feed, one left by processes killed holding its locks)
 * and exits; make fuzz and tests/fuzz/test_fuzz.sh do that first.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_OBJECTS 32 /* objects looked at per input (speed) */
#define FUZZ_SLICE 64       /* array elements read per array        */
#define SEED_SIZE ((size_t)128 << 10)

static char fuzz_path[64];

/* -------------------------------------------------------------- locks */

/* Makes m again; as a dead holder leaves it if held (its word not 0). */
static void fuzz_lock_reset(pthread_mutex_t *m) {
  int held = m->__data.__lock != 0;
  atr__mutex_init(m);
  if (held)
    m->__data.__lock = FUTEX_OWNER_DIED;
}

static void fuzz_locks_reset(atr_store *s) {
  fuzz_lock_reset(&s->hdr->lock);
  for (uint32_t i = 0; i < s->hdr->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    fuzz_lock_reset(&o->lock);
    fuzz_lock_reset(&o->u.q.put_lock);
  }
}

/* -------------------------------------------------------------- calls */

struct fuzz_list {
  atr_info info[FUZZ_MAX_OBJECTS];
  int n;
};

static int fuzz_collect(const atr_info *info, void *arg) {
  struct fuzz_list *l = arg;
  if (l->n == FUZZ_MAX_OBJECTS)
    return 1;
  l->info[l->n++] = *info;
  return 0;
}

static void fuzz_value(atr_store *s, const atr_info *info) {
  atr_handle h;
  atr_scalar v, one = {.i = 1};
  uint64_t ver;
  if (atr_value_open(s, info->name, 0, 0, NULL, &h) != 0)
    return;
  if (atr_value_get(&h, &v, &ver) == 0)
    atr_value_set(&h, v, ver, NULL);
  atr_value_add(&h, one, NULL, NULL);
  atr_handle_stat(&h, &(atr_info){0});
}

static void fuzz_array(atr_store *s, const atr_info *info) {
  atr_scalar out[FUZZ_SLICE], one = {.i = 1};
  atr_handle h;
  uint64_t n, len;
  if (atr_array_open(s, info->name, 0, 0, 0, NULL, &h) != 0)
    return;
  if (atr_array_length(&h, &len) == 0) {
    int64_t stop = len < FUZZ_SLICE ? (int64_t)len : FUZZ_SLICE;
    atr_array_get(&h, 0, stop, out, FUZZ_SLICE, &n, NULL);
    atr_array_get(&h, -stop, (int64_t)len, out, FUZZ_SLICE, &n, NULL);
  }
  memset(out, 0, 2 * sizeof out[0]);
  atr_array_set(&h, 0, out, 2, 0, NULL); /* a slice write */
  atr_array_add(&h, -1, one, NULL, NULL);
}

static void fuzz_queue(atr_store *s, const atr_info *info) {
  atr_items items = {0};
  atr_handle h;
  uint64_t n;
  char buf[256];
  size_t len;
  if (atr_queue_open(s, info->name, 0, NULL, &h) != 0)
    return;
  atr_queue_size(&h, &n, NULL, NULL);
  atr_queue_get(&h, buf, sizeof buf, &len, 0);
  atr_queue_put(&h, "fuzz", 4, 0);
  atr_queue_get_batch(&h, 8, 0, &items);
  atr_items_free(&items);
  atr_queue_get(&h, buf, sizeof buf, &len, 0);
}

static int fuzz_fenced_fn(void *arg) {
  (void)arg;
  return 0;
}

/* Every lock call that does not wait; whatever is taken is given back
 * (a hold left linked in this thread's robust list would outlive the
 * mapping). */
static void fuzz_lock(atr_store *s, const atr_info *info) {
  atr_handle h;
  atr_grant g;
  if (atr_lock_open(s, info->name, 0, 0, &h) != 0)
    return;
  int rc = atr_lock_acquire(&h, 0, &g);
  if (rc == 0 || rc == ATR_ABANDONED) {
    atr_lock_fenced(s, info->name, g.fence, fuzz_fenced_fn, NULL);
    atr_lock_release(&h);
  }
  rc = atr_lock_lease(&h, 0.5, 0, 0, &g);
  if (rc == 0 || rc == ATR_ABANDONED) {
    atr_lock_renew(&h, g.token, 1, NULL);
    atr_lock_unlease(&h, g.token);
  }
  atr_sync_expire(&h);
  atr_lock_break(&h);
}

/* A condition: wait (no time) and notify under its lock. */
static void fuzz_cond(atr_store *s, const atr_info *info) {
  atr_handle h, l;
  if (atr_cond_open(s, info->name, 0, NULL, &h) != 0 ||
      atr_lock_open(s, info->lock, 0, 0, &l) != 0)
    return;
  int rc = atr_lock_acquire(&l, 0, NULL);
  if (rc == 0 || rc == ATR_ABANDONED) {
    atr_cond_wait(&h, 0, NULL, NULL);
    atr_cond_notify(&h, 0, 1, NULL);
    atr_lock_release(&l);
  }
  atr_sync_expire(&h);
}

/* A semaphore: plain and leased permits, given back. */
static void fuzz_sem(atr_store *s, const atr_info *info) {
  atr_handle h;
  atr_grant g;
  if (atr_sem_open(s, info->name, 0, 0, 0, &h) != 0)
    return;
  if (atr_sem_acquire(&h, 0, NULL) >= 0)
    atr_sem_release(&h, 1, NULL);
  int rc = atr_sem_lease(&h, -1, 0, &g);
  if (rc == 0 || rc == ATR_ABANDONED)
    atr_sem_unlease(&h, g.token, NULL);
  rc = atr_sem_lease(&h, 0.5, 0, &g);
  if (rc == 0 || rc == ATR_ABANDONED)
    atr_sem_unlease(&h, g.token, NULL);
  atr_sync_expire(&h);
}

/* A flag and a barrier: every call that does not wait. */
static void fuzz_flag(atr_store *s, const atr_info *info) {
  atr_handle h;
  if (atr_flag_open(s, info->name, 0, 0, &h) != 0)
    return;
  atr_flag_set(&h);
  atr_flag_wait(&h, 0, NULL);
  atr_flag_clear(&h);
}

static void fuzz_barrier(atr_store *s, const atr_info *info) {
  atr_handle h;
  uint64_t ticket;
  if (atr_barrier_open(s, info->name, 0, 0, &h) != 0)
    return;
  atr_barrier_wait(&h, 0, NULL, NULL);
  if (atr_barrier_arrive(&h, 0.5, &ticket) == 0) {
    atr_barrier_poll(&h, ticket, NULL, NULL);
    atr_barrier_leave(&h, ticket);
  }
  atr_sync_expire(&h);
  atr_barrier_reset(&h);
  atr_barrier_abort(&h);
}

/* A dict: every call, its table made to grow and to shrink. */
static void fuzz_dict(atr_store *s, const atr_info *info) {
  atr_dict_items it = {0};
  atr_handle h;
  char key[16], buf[64];
  int more;
  if (atr_dict_open(s, info->name, 0, &h) != 0)
    return;
  atr_dict_get(&h, "k1", 2, buf, sizeof buf, NULL, NULL);
  atr_dict_page(&h, NULL, 0, 0, &it, &more, NULL);
  atr_dict_page(&h, "k", 1, 2, &it, &more, NULL);
  atr_dict_changes(&h, 0, &it, NULL, NULL);
  atr_dict_items_free(&it);
  for (int i = 0; i < 40; i++) {
    int n = snprintf(key, sizeof key, "fz%d", i);
    atr_dict_set(&h, key, (size_t)n, key, (size_t)n, 0, NULL);
  }
  atr_dict_op ops[2] = {{"k1", 2, "x", 1, 0, 0}, {"k2", 2, NULL, 0, 1, 0}};
  atr_dict_update(&h, ops, 2, NULL);
  for (int i = 0; i < 40; i++) {
    int n = snprintf(key, sizeof key, "fz%d", i);
    atr_dict_pop(&h, key, (size_t)n, 0, NULL);
  }
}

/* New objects of every kind; a growing queue made to grow. */
static void fuzz_create(atr_store *s) {
  static char big[40000];
  atr_queue_opts qo;
  atr_handle h;
  atr_scalar one = {.i = 1};
  if (atr_value_open(s, "fz.v", 'q', ATR_CREATE, NULL, &h) >= 0)
    atr_value_add(&h, one, NULL, NULL);
  if (atr_array_open(s, "fz.a", 'd', 8, ATR_CREATE, NULL, &h) >= 0)
    atr_array_add(&h, 3, (atr_scalar){.f = 1.5}, NULL, NULL);
  atr_queue_opts_init(&qo);
  qo.max_bytes = 0;
  if (atr_queue_open(s, "fz.g", ATR_CREATE, &qo, &h) >= 0)
    for (int i = 0; i < 3; i++)
      atr_queue_put(&h, big, sizeof big, 0);
  atr_delete(s, "fz.a", ATR_ARRAY);
}

static void fuzz_feed(atr_cursor *c) {
  atr_event ev;
  for (int i = 0; i < 64; i++) {
    int rc = atr_feed_next(c, &ev, 0);
    if (rc == ATR_EGAP)
      atr_feed_resync(c);
    else if (rc != 0)
      break;
  }
}

static int fuzz_page_one(const atr_info *info, void *arg) {
  snprintf(arg, ATR_NAME_MAX + 1, "%s", info->name);
  return 0;
}

/* Walks by pages of 3 (the name order's links are read from the file),
 * then one page by prefix and kind; bounded, should a walk not end. */
static void fuzz_pages(atr_store *s) {
  char last[ATR_NAME_MAX + 1] = "";
  int more = 1;
  for (int page = 0; more && page < 64; page++)
    if (atr_list_page(s, NULL, ATR_ANY, page ? last : NULL, 3, fuzz_page_one,
                      last, &more) != 0)
      break;
  atr_list_page(s, "fz", ATR_VALUE, NULL, 5, fuzz_page_one, last, &more);
}

static void fuzz_store(atr_store *s) {
  struct fuzz_list l = {.n = 0};
  atr_store_stats st;
  atr_cursor c;
  atr_info info;

  fuzz_locks_reset(s);
  atr_feed_open(s, &c);
  atr_store_stats_get(s, &st);
  atr_list(s, fuzz_collect, &l);
  for (int i = 0; i < l.n; i++) {
    const atr_info *in = &l.info[i];
    atr_stat(s, in->name, &info);
    if (in->kind == ATR_VALUE)
      fuzz_value(s, in);
    else if (in->kind == ATR_ARRAY)
      fuzz_array(s, in);
    else if (in->kind == ATR_QUEUE)
      fuzz_queue(s, in);
    else if (in->kind == ATR_LOCK)
      fuzz_lock(s, in);
    else if (in->kind == ATR_CONDITION)
      fuzz_cond(s, in);
    else if (in->kind == ATR_SEMAPHORE)
      fuzz_sem(s, in);
    else if (in->kind == ATR_FLAG)
      fuzz_flag(s, in);
    else if (in->kind == ATR_BARRIER)
      fuzz_barrier(s, in);
    else if (in->kind == ATR_DICT)
      fuzz_dict(s, in);
  }
  fuzz_pages(s);
  if (l.n > 0)
    atr_delete(s, l.info[0].name, ATR_ANY);
  fuzz_create(s);
  fuzz_pages(s);
  fuzz_feed(&c);
  atr_store_stats_get(s, &st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  atr_store_opts opts;
  atr_store *s;
  struct atr__header h;
  int fd = open(fuzz_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    abort();
  if (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size)
    abort();
  /* Anyone can compute the header's check: fix it up, so that damage
   * to the header's fields is met by the open's other checks. */
  if (size >= sizeof h) {
    memcpy(&h, data, sizeof h);
    h.check = atr__store_header_check(&h);
    if (pwrite(fd, &h.check, sizeof h.check,
               offsetof(struct atr__header, check)) != sizeof h.check)
      abort();
  }
  close(fd);
  atr_store_opts_init(&opts);
  opts.open_only = 1;
  opts.init_timeout = 0;
  /* A store left unfinished is made again: small, to keep runs fast. */
  opts.size = SEED_SIZE;
  opts.max_objects = 16;
  opts.feed_entries = 16;
  int rc = atr_store_open(fuzz_path, &opts, &s);
  unlink(fuzz_path); /* the mapping stays; a crash leaves no file */
  if (rc != 0)
    return 0;
  fuzz_store(s);
  atr_store_close(s);
  return 0;
}

/* -------------------------------------------------------------- seeds */

static atr_store *seed_open(const char *path, size_t size) {
  atr_store_opts opts;
  atr_store *s;
  atr_store_opts_init(&opts);
  opts.size = size;
  opts.max_objects = 16;
  opts.feed_entries = 16;
  unlink(path);
  if (atr_store_open(path, &opts, &s) != 0)
    abort();
  return s;
}

/* Copies the store file at path to dir/name and removes it. */
static void seed_keep(const char *path, const char *dir, const char *name) {
  char out[512];
  struct stat st;
  int in = open(path, O_RDONLY), fd;
  snprintf(out, sizeof out, "%s/%s", dir, name);
  fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || fd < 0 || fstat(in, &st) != 0)
    abort();
  char *buf = malloc((size_t)st.st_size);
  if (buf == NULL || read(in, buf, (size_t)st.st_size) != st.st_size ||
      write(fd, buf, (size_t)st.st_size) != st.st_size)
    abort();
  free(buf);
  close(in);
  close(fd);
  unlink(path);
}

static void seed_every_kind(atr_store *s) {
  static const char types[] = "bBhHiIlLqQfd?c";
  atr_queue_opts qo;
  atr_handle h;
  char name[16];
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "v%c", types[i * 3]);
    atr_value_open(s, name, types[i * 3], ATR_CREATE, NULL, &h);
    atr_value_add(&h, (atr_scalar){.i = 1}, NULL, NULL);
  }
  atr_array_open(s, "aq", 'q', 10, ATR_CREATE, NULL, &h);
  atr_array_set(&h, 2, (atr_scalar[]){{.i = -5}, {.i = 7}}, 2, 0, NULL);
  atr_array_open(s, "ad", 'd', 3, ATR_CREATE, NULL, &h);
  atr_queue_opts_init(&qo);
  qo.max_bytes = 512;
  atr_queue_open(s, "q", ATR_CREATE, &qo, &h);
  atr_queue_put(&h, "one", 3, 0);
  atr_queue_put(&h, "two!", 4, 0);
  qo.max_bytes = 0;
  atr_queue_open(s, "g", ATR_CREATE, &qo, &h);
  atr_queue_put(&h, "grow", 4, 0);
  /* A lock held by a lease (nothing links it anywhere) and a condition
   * with a lease waiter in its line. */
  atr_grant g;
  uint64_t ticket;
  atr_handle c;
  atr_lock_open(s, "k", ATR_CREATE, 1, &h);
  atr_cond_open(s, "cv", ATR_CREATE, "k", &c);
  atr_lock_lease(&h, 3600, 0, 0, &g);
  atr_cond_wait_begin(&c, g.token, 3600, &ticket, NULL);
  atr_lock_lease(&h, 3600, 0, 0, &g);
  /* A semaphore with a leased permit, a set flag, a barrier with a lease
   * place waiting. */
  atr_sem_open(s, "sm", ATR_CREATE, 2, 3, &h);
  atr_sem_lease(&h, 3600, 0, &g);
  atr_flag_open(s, "fl", ATR_CREATE, 1, &h);
  atr_barrier_open(s, "br", ATR_CREATE, 3, &h);
  atr_barrier_arrive(&h, 3600, &ticket);
  /* A dict with keys set, replaced and deleted. */
  atr_dict_open(s, "dc", ATR_CREATE, &h);
  atr_dict_set(&h, "k1", 2, "1", 1, 0, NULL);
  atr_dict_set(&h, "k2", 2, "[2]", 3, 0, NULL);
  atr_dict_set(&h, "k1", 2, "11", 2, 0, NULL);
  atr_dict_set(&h, "k3", 2, "3", 1, 0, NULL);
  atr_dict_pop(&h, "k3", 2, 0, NULL);
}

/* A bounded queue whose items wrap past the ring's end. */
static void seed_wrapped(atr_store *s) {
  atr_queue_opts qo;
  atr_handle h;
  char buf[64];
  size_t len;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 256;
  atr_queue_open(s, "w", ATR_CREATE, &qo, &h);
  for (int i = 0; i < 40; i++) {
    atr_queue_put(&h, "0123456789abcdefghijklmnopqrstuvwxyz",
                  20 + (size_t)(i % 7), 0);
    if (i % 3 != 2)
      atr_queue_get(&h, buf, sizeof buf, &len, 0);
  }
}

/* A growing queue past its first ring, holding items across the wrap. */
static void seed_grown(atr_store *s) {
  static char item[3000];
  atr_queue_opts qo;
  atr_handle h;
  atr_queue_opts_init(&qo);
  qo.max_bytes = 0;
  atr_queue_open(s, "g", ATR_CREATE, &qo, &h);
  for (int i = 0; i < 30; i++)
    atr_queue_put(&h, item, sizeof item - (size_t)i * 10, 0);
}

/* Objects made and deleted (a free list of records and heap blocks),
 * and enough changes to lap the feed. */
static void seed_churn(atr_store *s) {
  atr_handle h;
  char name[16];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "c%d", i % 9);
    if (i % 2)
      atr_array_open(s, name, 'i', 4 + (uint64_t)i, ATR_CREATE, NULL, &h);
    else
      atr_value_open(s, name, 'i', ATR_CREATE, NULL, &h);
    if (i % 3 == 0)
      atr_delete(s, name, ATR_ANY);
  }
}

/* A child that dies holding the store lock and both locks of "q" and
 * the lock of "aq": the image keeps their words as death left them. */
static void seed_die_holding(const char *path) {
  pid_t pid = fork();
  if (pid == 0) {
    atr_store *s;
    atr_handle q, a;
    if (atr_store_open(path, NULL, &s) != 0 ||
        atr_queue_open(s, "q", 0, NULL, &q) != 0 ||
        atr_array_open(s, "aq", 0, 0, 0, NULL, &a) != 0 ||
        atr__queue_lock_both(s, q.rec) != 0 ||
        atr__record_lock(s, a.rec) != 0 || atr__store_lock(s) != 0)
      _exit(1);
    _exit(0);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
    abort();
}

static void seed_empty(atr_store *s) {
  (void)s;
}

/* The seeds: what each holds, and whether a process then dies holding
 * its locks. */
static const struct {
  const char *name;
  void (*fill)(atr_store *s);
  bool die_holding;
} seeds[] = {
    {"empty", seed_empty, false},
    {"every-kind", seed_every_kind, false},
    {"wrapped-queue", seed_wrapped, false},
    {"grown-queue", seed_grown, false},
    {"churn-feed", seed_churn, false},
    {"mid-repair", seed_every_kind, true},
};

static void seeds_write(const char *dir) {
  char path[64];
  snprintf(path, sizeof path, "/dev/shm/atrium-fuzz-seed-%ld", (long)getpid());
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    atr_store *s = seed_open(path, SEED_SIZE);
    seeds[i].fill(s);
    atr_store_close(s);
    if (seeds[i].die_holding)
      seed_die_holding(path);
    seed_keep(path, dir, seeds[i].name);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("FUZZ_STORE_SEEDS");
  (void)argc;
  (void)argv;
  if (dir != NULL && dir[0] != '\0') {
    seeds_write(dir);
    exit(0);
  }
  snprintf(fuzz_path, sizeof fuzz_path, "/dev/shm/atrium-fuzz-%ld",
           (long)getpid());
  return 0;
}
