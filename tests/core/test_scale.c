/*
 * test_scale.c - many objects in one store: created, listed by pages
 * (all, by prefix, by kind, with objects coming and going during the
 * walk), deleted with no space lost, and the store reopened quickly.
 *
 * N objects: 20,000 by default; ATRIUM_CHECK_SCALE=1 (make check-scale)
 * makes it 1,000,000. The times are printed for the record. White-box
 * where it must be: the index left with no tombstones, the name order
 * lost or damaged.
 */
#include "testutil.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every FLAG_EVERY-th object is a flag, the rest values. */
#define FLAG_EVERY 7

static unsigned scale_n(void) {
  const char *e = getenv("ATRIUM_CHECK_SCALE");
  return e != NULL && strcmp(e, "1") == 0 ? 1000000u : 20000u;
}

static void scale_name(char *buf, size_t cap, unsigned i) {
  snprintf(buf, cap, "obj-%07u", i);
}

/* A store for n objects (and the few made during the walks). */
static atr_store *scale_store(tu_fixture *f, unsigned n) {
  atr_store_opts o;
  atr_store_opts_init(&o);
  o.max_objects = n + 64;
  o.size = (size_t)n * 768 + ((size_t)8 << 20);
  assert_true(atr_store_fits(o.size) >= o.max_objects);
  return tu_store_open(f, f->path, &o);
}

/* What a walk saw: how many, in order, each seen once. */
struct walk {
  unsigned count, flags;
  char last[ATR_NAME_MAX + 1];
  unsigned char *seen; /* by number, for obj- names */
  unsigned n;
  int bad_order, twice;
  /* during the walk: deletes and creates of other names in fn */
  atr_store *churn;
  unsigned churned;
};

static int walk_one(const atr_info *info, void *arg) {
  struct walk *w = arg;
  if (w->count > 0 && strcmp(info->name, w->last) <= 0)
    w->bad_order++;
  snprintf(w->last, sizeof w->last, "%s", info->name);
  w->count++;
  if (info->kind == ATR_FLAG)
    w->flags++;
  unsigned i;
  if (sscanf(info->name, "obj-%u", &i) == 1 && i < w->n) {
    if (w->seen[i]++)
      w->twice++;
  }
  if (w->churn != NULL) {
    /* Names before and after the walk's place come and go. */
    atr_handle h;
    char name[32];
    snprintf(name, sizeof name, "churn-%u", w->churned % 32);
    atr_delete(w->churn, name, ATR_ANY);
    snprintf(name, sizeof name, "obj-%07u-x%u", w->churned % 5000, w->churned);
    if (atr_value_open(w->churn, name, 'q', ATR_CREATE, NULL, &h) < 0 ||
        atr_delete(w->churn, name, ATR_ANY) != 0)
      w->bad_order += 1000000;
    snprintf(name, sizeof name, "churn-%u", (w->churned + 7) % 32);
    atr_value_open(w->churn, name, 'q', ATR_CREATE, NULL, &h);
    w->churned++;
  }
  return 0;
}

/* Walks pages of limit with prefix and kind; returns the pages. */
static unsigned walk_pages(atr_store *s, const char *prefix, atr_kind kind,
                           size_t limit, struct walk *w) {
  unsigned pages = 0;
  int more = 1;
  while (more) {
    unsigned before = w->count;
    tu_ok(atr_list_page(s, prefix, kind, w->count ? w->last : NULL, limit,
                        walk_one, w, &more));
    assert_true(w->count - before <= limit);
    if (more)
      assert_true(w->count - before == limit || w->churn != NULL);
    pages++;
  }
  return pages;
}

static void walk_init(struct walk *w, unsigned n) {
  memset(w, 0, sizeof *w);
  w->n = n;
  w->seen = calloc(n, 1);
  assert_non_null(w->seen);
}

static int die_holding_store(void *arg) {
  atr_store *s = tu_child_open(arg);
  TU_CHILD_CHECK(atr__store_lock(s) == 0);
  return 0;
}

static void test_many_objects(void **state) {
  tu_fixture *f = *state;
  unsigned n = scale_n(), flags = 0;
  char name[32];
  atr_store_stats st0, st;
  atr_handle h;
  double t;

  atr_store *s = scale_store(f, n);
  tu_ok(atr_store_stats_get(s, &st0));
  t = tu_now();
  for (unsigned i = 0; i < n; i++) {
    scale_name(name, sizeof name, i);
    if (i % FLAG_EVERY == 0) {
      tu_assert_rc(atr_flag_open(s, name, ATR_CREATE | ATR_EXCL, 0, &h),
                   ATR_CREATED);
      flags++;
    } else {
      tu_assert_rc(
          atr_value_open(s, name, 'q', ATR_CREATE | ATR_EXCL, NULL, &h),
          ATR_CREATED);
    }
  }
  print_message("created %u objects in %.3f s\n", n, tu_now() - t);
  tu_ok(atr_store_stats_get(s, &st));
  tu_assert_u64(st.objects, n);

  /* Reopen: the open touches no table. */
  tu_store_close(f, s);
  atr_store_opts o;
  atr_store_opts_init(&o);
  o.open_only = 1;
  t = tu_now();
  tu_ok(atr_store_open(f->path, &o, &s));
  double open_s = tu_now() - t;
  tu_store_keep(f, s);
  print_message("opened the store of %u objects in %.6f s\n", n, open_s);
  assert_true(open_s < 1.0);

  /* A holder of the store lock dies: the next locker repairs the index,
   * the records, the heap and the name order (O(objects)); timed. */
  tu_assert_u64(tu_run(die_holding_store, (void *)f->path, 30), 0);
  t = tu_now();
  clock_t cpu = clock();
  tu_ok(atr_store_stats_get(s, &st));
  print_message("recovered the store of %u objects in %.3f s (%.3f s of "
                "CPU)\n",
                n, tu_now() - t, (double)(clock() - cpu) / CLOCKS_PER_SEC);
  tu_assert_u64(st.objects, n);

  /* Every object once, in order, by pages of 1000. */
  struct walk w;
  walk_init(&w, n);
  t = tu_now();
  unsigned pages = walk_pages(s, NULL, ATR_ANY, 1000, &w);
  print_message("walked %u objects in %u pages of 1000 in %.3f s\n", w.count,
                pages, tu_now() - t);
  tu_assert_u64(w.count, n);
  tu_assert_u64(w.bad_order, 0);
  tu_assert_u64(w.twice, 0);
  tu_assert_u64(w.flags, flags);
  tu_assert_u64(pages, (n + 999) / 1000);
  free(w.seen);

  /* A prefix: obj-00001xx... (10,000 names at N = 20,000). */
  const char *prefix = "obj-00001";
  unsigned want = 0;
  for (unsigned i = 0; i < n; i++) {
    scale_name(name, sizeof name, i);
    want += strncmp(name, prefix, strlen(prefix)) == 0;
  }
  walk_init(&w, n);
  walk_pages(s, prefix, ATR_ANY, 777, &w);
  tu_assert_u64(w.count, want);
  tu_assert_u64(w.bad_order, 0);
  free(w.seen);

  /* A kind: the flags only, by pages of 100. */
  walk_init(&w, n);
  walk_pages(s, "", ATR_FLAG, 100, &w);
  tu_assert_u64(w.count, flags);
  tu_assert_u64(w.flags, flags);
  tu_assert_u64(w.twice, 0);
  free(w.seen);

  /* Objects coming and going during a walk (in fn itself, between its
   * calls): each object present throughout is seen exactly once. */
  walk_init(&w, n);
  w.churn = s;
  walk_pages(s, "obj-", ATR_ANY, 1000, &w);
  unsigned missing = 0;
  for (unsigned i = 0; i < n; i++)
    missing += w.seen[i] != 1;
  tu_assert_u64(missing, 0);
  tu_assert_u64(w.bad_order, 0);
  free(w.seen);
  for (unsigned i = 0; i < 32; i++) {
    snprintf(name, sizeof name, "churn-%u", i);
    atr_delete(s, name, ATR_ANY);
  }

  /* Churn among them: new names made and deleted. The index keeps only
   * the tombstones a probe passes (few), where it kept one for nearly
   * every delete in the middle of a run. */
  unsigned churn = n < 100000 ? 2 * n : 200000, tombs = 0;
  for (unsigned i = 0; i < churn; i++) {
    snprintf(name, sizeof name, "new-%u", i);
    tu_assert_rc(atr_value_open(s, name, 'q', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
    tu_ok(atr_delete(s, name, ATR_ANY));
  }
  for (uint32_t i = 0; i <= s->index_mask; i++)
    tombs += atomic_load(&s->index[i]) == 1;
  print_message("%u tombstones in the index after %u creates and deletes "
                "among %u objects\n",
                tombs, churn, n);
  assert_true(tombs < n / 50);

  /* Every object deleted: the space is back, to the byte. */
  t = tu_now();
  for (unsigned half = 0; half < 2; half++) {
    for (unsigned i = half; i < n; i += 2) {
      scale_name(name, sizeof name, i);
      tu_ok(atr_delete(s, name, ATR_ANY));
    }
    if (half == 0) {
      /* Half gone from the middle of their runs: only the tombstones
       * that a remaining entry's probe passes are kept. */
      tombs = 0;
      for (uint32_t i = 0; i <= s->index_mask; i++)
        tombs += atomic_load(&s->index[i]) == 1;
      print_message("%u tombstones after deleting %u of %u\n", tombs, n / 2, n);
      assert_true(tombs < n / 8);
    }
  }
  print_message("deleted %u objects in %.3f s\n", n, tu_now() - t);
  tu_ok(atr_store_stats_get(s, &st));
  tu_assert_u64(st.objects, 0);
  tu_assert_u64(st.used, st0.used);
  /* Churn leaves the index as it found it: no tombstone lengthens a
   * probe. */
  unsigned used_entries = 0;
  for (uint32_t i = 0; i <= s->index_mask; i++)
    used_entries += atomic_load(&s->index[i]) != 0;
  tu_assert_u64(used_entries, 0);
  int more = 1;
  walk_init(&w, n);
  tu_ok(atr_list_page(s, NULL, ATR_ANY, NULL, 10, walk_one, &w, &more));
  tu_assert_u64(w.count, 0);
  tu_assert_u64(more, 0);
  free(w.seen);
}

static int stop_at_two(const atr_info *info, void *arg) {
  (void)info;
  return ++*(int *)arg == 2 ? 42 : 0;
}

/* The edges of the call: bad arguments, fn stopping a page, more. */
static void test_page_edges(void **state) {
  tu_fixture *f = *state;
  atr_store *s = f->store;
  atr_handle h;
  int more = -1, calls = 0;
  const char *names[] = {"a", "a.b", "ab", "b", "b-1", "c"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    tu_assert_rc(atr_value_open(s, names[i], 'i', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
  tu_assert_rc(
      atr_list_page(NULL, NULL, 0, NULL, 1, stop_at_two, &calls, &more),
      ATR_EINVAL);
  tu_assert_rc(atr_list_page(s, NULL, 0, NULL, 0, stop_at_two, &calls, &more),
               ATR_EINVAL);
  tu_assert_rc(atr_list_page(s, NULL, 0, NULL, 1, NULL, NULL, &more),
               ATR_EINVAL);
  tu_assert_rc(
      atr_list_page(s, NULL, (atr_kind)99, NULL, 1, stop_at_two, &calls, &more),
      ATR_EINVAL);
  tu_assert_u64(calls, 0);
  /* fn's non-zero value stops the page and is returned. */
  tu_assert_rc(atr_list_page(s, NULL, 0, NULL, 5, stop_at_two, &calls, NULL),
               42);
  tu_assert_u64(calls, 2);

  struct walk w;
  walk_init(&w, 1);
  tu_ok(atr_list_page(s, "a", ATR_ANY, NULL, 3, walk_one, &w, &more));
  tu_assert_u64(w.count, 3); /* a, a.b, ab */
  assert_string_equal(w.last, "ab");
  tu_assert_u64(more, 0);
  w.count = 0; /* a new walk */
  tu_ok(atr_list_page(s, NULL, ATR_ANY, "a.b", 2, walk_one, &w, &more));
  assert_string_equal(w.last, "b");
  tu_assert_u64(more, 1);
  /* after need not be a name; a prefix longer than any name matches
   * none. */
  tu_ok(atr_list_page(s, NULL, ATR_ANY, "b-0~", 10, walk_one, &w, &more));
  tu_assert_u64(w.count, 4); /* ab, b, then b-1, c */
  tu_assert_u64(more, 0);
  tu_ok(atr_list_page(s,
                      "cccccccccccccccccccccccccccccccccccccccccccccccccc"
                      "cccccccccccccccccccccccccccccc",
                      ATR_ANY, NULL, 10, walk_one, &w, &more));
  tu_assert_u64(w.count, 4);
  tu_assert_u64(w.bad_order, 0);
  free(w.seen);

  /* Names alike beyond the 16 bytes a node keeps, and around 16 bytes
   * long: in bytewise order, by pages of one. */
  const char *alike[] = {"abcdefghijklmnop",        "abcdefghijklmnopq",
                         "abcdefghijklmnoo",        "abcdefghijklmnopa",
                         "customer-000000000001",   "customer-00000000001",
                         "customer-000000000001.x", "customer-0000000000010",
                         "abcdefghijklmnop-",       "abcdefghijklmno"};
  size_t n_alike = sizeof alike / sizeof alike[0];
  for (size_t i = 0; i < n_alike; i++)
    tu_assert_rc(atr_value_open(s, alike[i], 'i', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
  walk_init(&w, 1);
  walk_pages(s, NULL, ATR_ANY, 1, &w);
  tu_assert_u64(w.count, n_alike + 6);
  tu_assert_u64(w.bad_order, 0);
  w.count = 0;
  walk_pages(s, "abcdefghijklmnop", ATR_ANY, 2, &w);
  tu_assert_u64(w.count, 4); /* ...op, ...op-, ...opa, ...opq */
  tu_assert_u64(w.bad_order, 0);
  free(w.seen);
}

/* Counts a walk by pages of 7 of every object, checking the order. */
static unsigned count_pages(atr_store *s, unsigned n) {
  struct walk w;
  walk_init(&w, n);
  walk_pages(s, NULL, ATR_ANY, 7, &w);
  tu_assert_u64(w.bad_order, 0);
  tu_assert_u64(w.twice, 0);
  free(w.seen);
  return w.count;
}

/* The name order is derived state: lost (a holder of the store lock
 * died half-way) it is made again by the lock's recovery; damaged (a
 * link out of range) a page scans instead. */
static void test_order_recovered(void **state) {
  tu_fixture *f = *state;
  atr_store *s = f->store;
  atr_handle h;
  char name[32];
  const unsigned n = 200;
  for (unsigned i = 0; i < n; i++) {
    scale_name(name, sizeof name, (i * 7919u) % n);
    tu_assert_rc(atr_value_open(s, name, 'i', ATR_CREATE, NULL, &h),
                 ATR_CREATED);
  }
  tu_assert_u64(count_pages(s, n), n);
  /* A link out of range: the page scans, and says the same. */
  tu_case("damaged link");
  uint32_t first = s->hdr->order_head[0];
  s->hdr->order_head[0] = s->hdr->max_objects + 5;
  tu_assert_u64(count_pages(s, n), n);
  /* The list lost, as a writer dying mid-change may leave it: the next
   * holder of the lock makes it again. */
  tu_case("lost and recovered");
  for (unsigned lv = 0; lv < ATR__ORDER_LEVELS; lv++)
    s->hdr->order_head[lv] = 0;
  (void)first;
  tu_assert_u64(count_pages(s, n), 0); /* a valid, empty list */
  tu_assert_u64(tu_run(die_holding_store, (void *)f->path, 10), 0);
  tu_assert_u64(count_pages(s, n), n);
  /* And it keeps working: deletes and creates after the rebuild. */
  for (unsigned i = 0; i < n; i += 2) {
    scale_name(name, sizeof name, i);
    tu_ok(atr_delete(s, name, ATR_ANY));
  }
  tu_assert_u64(count_pages(s, n), n / 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_page_edges, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_order_recovered, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_many_objects, tu_setup_path,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
