/*
 * test_barrier.c - barriers: opening and describing one, 4 processes
 * passing many rounds with exact indices and generations, abort and
 * reset, a timeout and a signal that break it, a waiter killed with
 * SIGKILL (500 trials in make check-long, 100 in make check: the others
 * told within 10 ms), lease places
 * (arrive, poll, leave, a deadline that breaks it with no gateway), a
 * delete that wakes waiters, and the events.
 *
 * tests/run.sh: alone (the kill trials time how soon the others are told:
 * another test's load beside them would be timed too).
 */
#include "testutil.h"

#include "internal.h" /* to die half-way through an arrival as one could */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROCS 4
#define ROUNDS 3000

static tu_fixture *fixture(void **state) {
  return *state;
}

static void bar_new(atr_store *s, const char *name, uint64_t parties,
                    atr_handle *h) {
  tu_assert_rc(atr_barrier_open(s, name, ATR_CREATE | ATR_EXCL, parties, h),
               ATR_CREATED);
}

static void test_open(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, h2;
  uint64_t index = 9, gen = 9;
  tu_assert_rc(atr_barrier_open(f->store, "b", ATR_CREATE, 0, &h), ATR_EINVAL);
  tu_assert_rc(atr_barrier_open(f->store, "b", ATR_CREATE, 1025, &h),
               ATR_EINVAL);
  tu_assert_rc(atr_barrier_open(f->store, "b", 0, 3, &h), ATR_ENOENT);
  bar_new(f->store, "b", 1, &h);
  atr_info info = tu_info(&h);
  assert_int_equal(info.kind, ATR_BARRIER);
  tu_assert_u64(info.parties, 1);
  tu_assert_u64(info.n_waiting, 0);
  tu_assert_u64(info.generation, 0);
  assert_int_equal(info.broken, 0);
  assert_string_equal(atr_kind_name(ATR_BARRIER), "barrier");
  /* One party: every wait passes at once. */
  tu_ok(atr_barrier_wait(&h, 0, &index, &gen));
  tu_assert_u64(index, 0);
  tu_assert_u64(gen, 0);
  tu_ok(atr_barrier_wait(&h, -1, &index, &gen));
  tu_assert_u64(gen, 1);
  tu_assert_u64(tu_info(&h).generation, 2);
  /* An existing barrier keeps its parties. */
  tu_assert_rc(atr_barrier_open(f->store, "b", ATR_CREATE, 5, &h2), 0);
  tu_assert_u64(tu_info(&h2).parties, 1);
  atr_handle v;
  tu_counter_new(f->store, "v", &v);
  tu_assert_rc(atr_barrier_open(f->store, "v", 0, 0, &h2), ATR_EKIND);
  tu_assert_rc(atr_barrier_wait(&v, 0, NULL, NULL), ATR_ENOENT);
}

/* ------------------------------------------------- 4 processes, rounds */

struct rounds_arg {
  const char *path;
  int out[PROCS][2];
};

static int rounds_child(void *arg) {
  struct rounds_arg *a = arg;
  static unsigned char index_of[ROUNDS];
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  int me = -1;
  TU_CHILD_CHECK(atr_barrier_open(s, "b", 0, 0, &h) == 0);
  /* Which child am I: the first pipe nobody took (told by the parent
   * through the environment would do too; a value is simpler). */
  atr_handle who;
  atr_scalar one = {.i = 1}, got;
  TU_CHILD_CHECK(atr_value_open(s, "who", 'q', 0, NULL, &who) == 0);
  TU_CHILD_CHECK(atr_value_add(&who, one, &got, NULL) == 0);
  me = (int)got.i - 1;
  TU_CHILD_CHECK(me >= 0 && me < PROCS);
  for (uint64_t r = 0; r < ROUNDS; r++) {
    uint64_t index, gen;
    TU_CHILD_CHECK(atr_barrier_wait(&h, 10, &index, &gen) == 0);
    if (gen != r)
      fprintf(stderr, "round %llu: gen %llu index %llu\n",
              (unsigned long long)r, (unsigned long long)gen,
              (unsigned long long)index);
    TU_CHILD_CHECK(gen == r);
    TU_CHILD_CHECK(index < PROCS);
    index_of[r] = (unsigned char)index;
  }
  TU_CHILD_CHECK(tu_write_full(a->out[me][1], index_of, sizeof index_of) == 0);
  atr_store_close(s);
  return 0;
}

static void test_rounds_4_processes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h, who;
  struct rounds_arg a = {.path = f->path};
  static unsigned char index_of[PROCS][ROUNDS];
  pid_t pids[PROCS];
  bar_new(f->store, "b", PROCS, &h);
  tu_counter_new(f->store, "who", &who);
  for (int i = 0; i < PROCS; i++)
    tu_pipe(a.out[i]);
  double t0 = tu_now();
  for (int i = 0; i < PROCS; i++)
    pids[i] = tu_spawn(rounds_child, &a);
  for (int i = 0; i < PROCS; i++)
    assert_int_equal(
        tu_read_full(a.out[i][0], index_of[i], sizeof index_of[i], 120), 0);
  for (int i = 0; i < PROCS; i++)
    assert_int_equal(tu_wait(pids[i], 10), 0);
  print_message("%d rounds of %d processes in %.2f s\n", ROUNDS, PROCS,
                tu_now() - t0);
  for (int i = 0; i < PROCS; i++)
    tu_close_pipe(a.out[i]);
  /* Each round: the indices 0..3, each once. */
  for (int r = 0; r < ROUNDS; r++) {
    unsigned seen = 0;
    for (int i = 0; i < PROCS; i++)
      seen |= 1u << index_of[i][r];
    tu_case("round %d", r);
    tu_assert_u64(seen, (1u << PROCS) - 1);
  }
  atr_info info = tu_info(&h);
  tu_assert_u64(info.generation, ROUNDS);
  tu_assert_u64(info.n_waiting, 0);
  assert_int_equal(info.broken, 0);
}

/* ---------------------------------------------- waiters in processes */

/* A waiter at "b". */
static int bar_waiter(atr_store *s) {
  atr_handle h;
  TU_CHILD_CHECK(atr_barrier_open(s, "b", 0, 0, &h) == 0);
  return atr_barrier_wait(&h, 30, NULL, NULL);
}

static void test_abort_reset(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters w;
  bar_new(f->store, "b", 3, &h);
  tu_waiters_start(&w, f->path, 2, bar_waiter, 0);
  tu_assert_u64(tu_info(&h).n_waiting, 2);
  double t0 = tu_now();
  tu_ok(atr_barrier_abort(&h));
  assert_true(tu_waiters_end(&w, ATR_EBROKEN, t0) < tu_load_bound(0.5));
  atr_info info = tu_info(&h);
  assert_int_equal(info.broken, 1);
  tu_assert_u64(info.n_waiting, 0);
  tu_assert_rc(atr_barrier_wait(&h, 1, NULL, NULL), ATR_EBROKEN);
  tu_ok(atr_barrier_reset(&h));
  info = tu_info(&h);
  assert_int_equal(info.broken, 0);
  tu_assert_u64(info.generation, 1);
  /* A reset with waiters: they are told it broke; it stays whole. */
  tu_waiters_start(&w, f->path, 2, bar_waiter, 0);
  t0 = tu_now();
  tu_ok(atr_barrier_reset(&h));
  assert_true(tu_waiters_end(&w, ATR_EBROKEN, t0) < tu_load_bound(0.5));
  info = tu_info(&h);
  assert_int_equal(info.broken, 0);
  tu_assert_u64(info.generation, 2);
  /* And it works again. */
  tu_waiters_start(&w, f->path, 2, bar_waiter, 0);
  uint64_t index, gen;
  tu_ok(atr_barrier_wait(&h, 10, &index, &gen));
  tu_assert_u64(index, 2);
  tu_assert_u64(gen, 2);
  tu_waiters_end(&w, 0, tu_now());
}

static void test_timeout_breaks(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters w;
  bar_new(f->store, "b", 3, &h);
  tu_waiters_start(&w, f->path, 1, bar_waiter, 0);
  double t0 = tu_now();
  tu_assert_rc(atr_barrier_wait(&h, 0.1, NULL, NULL), ATR_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.1);
  double worst = tu_waiters_end(&w, ATR_EBROKEN, t0);
  assert_true(worst < tu_load_bound(0.6));
  assert_int_equal(tu_info(&h).broken, 1);
}

static void test_sigint_breaks(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters victim, other;
  bar_new(f->store, "b", 3, &h);
  tu_waiters_start(&other, f->path, 1, bar_waiter, 0);
  tu_waiters_start(&victim, f->path, 1, bar_waiter, 1);
  double t0 = tu_now();
  assert_int_equal(kill(victim.pids[0], SIGINT), 0);
  assert_true(tu_waiters_end(&victim, ATR_EINTR, t0) < tu_load_bound(0.5));
  assert_true(tu_waiters_end(&other, ATR_EBROKEN, t0) < tu_load_bound(0.5));
  assert_int_equal(tu_info(&h).broken, 1);
}

static void test_delete_wakes(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  tu_waiters w;
  bar_new(f->store, "b", 3, &h);
  tu_waiters_start(&w, f->path, 2, bar_waiter, 0);
  double t0 = tu_now();
  tu_ok(atr_delete(f->store, "b", ATR_BARRIER));
  /* The name comes back at once; the old waiters leave it alone. */
  bar_new(f->store, "b", 2, &h);
  assert_true(tu_waiters_end(&w, ATR_ENOENT, t0) < tu_load_bound(0.5));
  tu_assert_u64(tu_info(&h).n_waiting, 0);
  tu_assert_rc(atr_barrier_wait(&h, 0.01, NULL, NULL), ATR_ETIMEDOUT);
}

/* ----------------------------------------------- a waiter killed -9 */

struct victim_arg {
  const char *path;
  int ready[2];
};

static int victim_child(void *arg) {
  struct victim_arg *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  TU_CHILD_CHECK(atr_barrier_open(s, "b", 0, 0, &h) == 0);
  tu_child_ready(a->ready[1]);
  int rv = atr_barrier_wait(&h, -1, NULL, NULL);
  fprintf(stderr, "victim: the wait answered %s\n", atr_errname(rv));
  _exit(1); /* never passes: it is killed first */
}

/* A waiter of test_waiter_killed that stays for every trial (a process
 * forked for each would start behind every runnable task of a loaded
 * machine, and measure the scheduler): for each byte 'w' it reads on the
 * go pipe (a->ready) it waits at "b" and reports. */
static int steady_waiter_child(void *arg) {
  tu_waiters *a = arg;
  atr_store *s = tu_child_open(a->path);
  atr_handle h;
  char go;
  TU_CHILD_CHECK(atr_barrier_open(s, "b", 0, 0, &h) == 0);
  while (tu_read_full(a->ready[0], &go, 1, 60) == 0 && go == 'w') {
    tu_report r;
    r.rc = atr_barrier_wait(&h, 30, NULL, NULL);
    r.at = tu_now();
    TU_CHILD_CHECK(tu_write_full(a->report[1], &r, sizeof r) == 0);
  }
  atr_store_close(s);
  return 0;
}

static void test_waiter_killed(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  int trials = tu_kill_trials();
  double *lat = calloc((size_t)trials, sizeof *lat);
  double *late = calloc((size_t)trials, sizeof *late);
  assert_non_null(lat);
  assert_non_null(late);
  bar_new(f->store, "b", 4, &h);
  tu_waiters w = {.path = f->path};
  pid_t pids[2];
  tu_pipe(w.ready);
  tu_pipe(w.report);
  for (int i = 0; i < 2; i++)
    pids[i] = tu_spawn(steady_waiter_child, &w);
  for (int trial = 0; trial < trials; trial++) {
    struct victim_arg v = {.path = f->path};
    tu_case("trial %d", trial);
    assert_int_equal(tu_write_full(w.ready[1], "ww", 2), 0);
    for (int i = 0; i < 2; i++)
      assert_int_equal(tu_wait_blocked(pids[i], 10), 0);
    tu_pipe(v.ready);
    pid_t victim = tu_spawn_ready(victim_child, &v, v.ready[0]);
    tu_assert_i64(tu_wait_blocked(victim, 10), 0);
    double t0 = tu_now();
    tu_kill(victim);
    double dead = tu_now();
    tu_close_pipe(v.ready);
    lat[trial] = late[trial] = 0;
    for (int i = 0; i < 2; i++) {
      tu_report r;
      assert_int_equal(tu_read_full(w.report[0], &r, sizeof r, 10), 0);
      tu_assert_rc(r.rc, ATR_EBROKEN);
      if (r.at - t0 > lat[trial])
        lat[trial] = r.at - t0;
      if (r.at - dead > late[trial])
        late[trial] = r.at - dead;
    }
    assert_int_equal(tu_info(&h).broken, 1);
    tu_ok(atr_barrier_reset(&h));
  }
  assert_int_equal(tu_write_full(w.ready[1], "qq", 2), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(tu_wait(pids[i], 10), 0);
  tu_close_pipe(w.ready);
  tu_close_pipe(w.report);
  tu_latency_check("both others told it broke", lat, late, trials);
  free(lat);
  free(late);
  tu_assert_u64(tu_info(&h).n_waiting, 0);
}

/* ---------------------------------------------------- lease places */

static void test_lease_places(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  uint64_t t1, t2, index = 9, gen = 9;
  bar_new(f->store, "b", 2, &h);
  tu_assert_rc(atr_barrier_arrive(&h, 0, &t1), ATR_EINVAL);
  tu_ok(atr_barrier_arrive(&h, 10, &t1));
  tu_assert_rc(atr_barrier_poll(&h, t1, &index, &gen), ATR_ETIMEDOUT);
  tu_assert_u64(tu_info(&h).n_waiting, 1);
  tu_assert_rc(atr_barrier_poll(&h, t1 ^ 1, NULL, NULL), ATR_ENOTHELD);
  tu_ok(atr_barrier_arrive(&h, 10, &t2));
  tu_ok(atr_barrier_poll(&h, t2, &index, &gen));
  tu_assert_u64(index, 1);
  tu_assert_u64(gen, 0);
  tu_ok(atr_barrier_poll(&h, t1, &index, &gen));
  tu_assert_u64(index, 0);
  tu_assert_u64(gen, 0);
  /* Answered: the places are free. */
  tu_assert_rc(atr_barrier_poll(&h, t1, NULL, NULL), ATR_ENOTHELD);
  /* Leaving before the round passed breaks it. */
  tu_ok(atr_barrier_arrive(&h, 10, &t1));
  tu_ok(atr_barrier_leave(&h, t1));
  assert_int_equal(tu_info(&h).broken, 1);
  tu_assert_rc(atr_barrier_arrive(&h, 10, &t1), ATR_EBROKEN);
  tu_ok(atr_barrier_reset(&h));
  /* A lease place that runs out breaks it, with no one to end it but
   * the process waiting there. */
  tu_waiters w;
  tu_ok(atr_delete(f->store, "b", ATR_BARRIER));
  bar_new(f->store, "b", 3, &h);
  double t0 = tu_now();
  tu_ok(atr_barrier_arrive(&h, 0.2, &t1));
  tu_waiters_start(&w, f->path, 1, bar_waiter, 0);
  double woke = tu_waiters_end(&w, ATR_EBROKEN, t0);
  /* The waiter's sleep ends at the lease's deadline (not at its 30 s
   * timeout); the slack is for a loaded machine's scheduler. */
  double slack = tu_load_bound(0.1);
  assert_true(woke >= 0.2);
  if (woke > 0.2 + slack)
    print_error("broken %.1f ms after the lease ran out\n", (woke - 0.2) * 1e3);
  assert_true(woke <= 0.2 + slack);
  assert_int_equal(tu_info(&h).broken, 1);
  tu_assert_rc(atr_barrier_poll(&h, t1, NULL, NULL), ATR_ENOTHELD);
  /* atr_sync_expire ends one that ran out, with nobody waiting. */
  tu_ok(atr_barrier_reset(&h));
  tu_ok(atr_barrier_arrive(&h, 0.05, &t1));
  tu_assert_i64(atr_sync_expire(&h), 0);
  tu_sleep(0.06);
  tu_assert_i64(atr_sync_expire(&h), 1);
  assert_int_equal(tu_info(&h).broken, 1);
  /* Every place held by leavers that have not looked yet: a wait gives
   * up at its timeout (it used to wait until a place came free, here an
   * hour; the store fuzzer found it). */
  tu_ok(atr_delete(f->store, "b", ATR_BARRIER));
  bar_new(f->store, "b", 1, &h);
  tu_ok(atr_barrier_arrive(&h, 3600, &t1));
  tu_ok(atr_barrier_arrive(&h, 3600, &t2));
  tu_assert_rc(atr_barrier_wait(&h, 0, NULL, NULL), ATR_ETIMEDOUT);
  tu_assert_rc(atr_barrier_wait(&h, 0.05, NULL, NULL), ATR_ETIMEDOUT);
  tu_ok(atr_barrier_poll(&h, t1, NULL, NULL));
  tu_ok(atr_barrier_wait(&h, 5, NULL, NULL)); /* a place came free */
  tu_ok(atr_barrier_poll(&h, t2, NULL, NULL));
}

/* ------------------------------------------------------------ events */

static void test_events(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  atr_cursor c;
  atr_event ev;
  uint64_t t1, t2;
  tu_ok(atr_feed_open(f->store, &c));
  bar_new(f->store, "b", 2, &h);
  tu_ok(atr_barrier_arrive(&h, 10, &t1));
  tu_ok(atr_barrier_arrive(&h, 10, &t2));
  tu_ok(atr_barrier_abort(&h));
  tu_ok(atr_barrier_reset(&h));
  static const atr_op want[] = {ATR_OP_CREATED, ATR_OP_WAIT, ATR_OP_PASSED,
                                ATR_OP_BROKEN, ATR_OP_RESET};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    tu_ok(atr_feed_next(&c, &ev, 1));
    assert_int_equal(ev.kind, ATR_BARRIER);
    tu_case("event %zu", i);
    assert_string_equal(atr_op_name(ev.op), atr_op_name(want[i]));
  }
  tu_assert_rc(atr_feed_next(&c, &ev, 0), ATR_ETIMEDOUT);
}

/* ----------------------------------------------- a death half-way */

/* Takes the record lock as an arrival does, counts itself without a
 * place (no arrival leaves that: the worst a death can) and dies. */
static int half_arrival_child(void *arg) {
  atr_store *s = tu_child_open(arg);
  uint32_t slot;
  uint64_t id;
  TU_CHILD_CHECK(atr__lookup(s, "b", 1, &slot, &id) == 0);
  struct atr__obj *o = atr__slot(s, slot);
  TU_CHILD_CHECK(atr__record_lock(s, o) == 0);
  o->u.b.count = 1;
  _exit(0); /* holding the record lock */
}

static void test_death_mid_arrival(void **state) {
  tu_fixture *f = fixture(state);
  atr_handle h;
  uint64_t t1, t2, index, gen;
  bar_new(f->store, "b", 2, &h);
  tu_assert_i64(tu_run(half_arrival_child, (void *)f->path, 10), 0);
  tu_assert_u64(tu_info(&h).n_waiting, 1);
  /* The next holder of the record lock counts the round from its places:
   * none, so two more arrivals make the round, with indices 0 and 1. */
  tu_ok(atr_barrier_arrive(&h, 10, &t1));
  tu_assert_rc(atr_barrier_poll(&h, t1, NULL, NULL), ATR_ETIMEDOUT);
  tu_ok(atr_barrier_arrive(&h, 10, &t2));
  tu_ok(atr_barrier_poll(&h, t1, &index, &gen));
  tu_assert_u64(index, 0);
  tu_assert_u64(gen, 0);
  tu_ok(atr_barrier_poll(&h, t2, &index, &gen));
  tu_assert_u64(index, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_rounds_4_processes, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_abort_reset, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_timeout_breaks, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_sigint_breaks, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_waiter_killed, tu_setup,
                                      tu_teardown),
      cmocka_unit_test_setup_teardown(test_lease_places, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_events, tu_setup, tu_teardown),
      cmocka_unit_test_setup_teardown(test_death_mid_arrival, tu_setup,
                                      tu_teardown),
      cmocka_unit_test(tu_test_no_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
