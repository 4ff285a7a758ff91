/*
 * kinds.c - the table of object kinds: atr_kind -> its ops.
 *
 * Adding a kind (say ATR_LOCK):
 *
 * 1. include/atrium.h: the next atr_kind value (never reuse or renumber
 *    one: the store keeps it in each record), its _open call and the
 *    calls of its API, each with a contract, as the queue's are.
 * 2. internal.h: its record state as a struct and a member of the
 *    record's union `u`, with a _Static_assert that it fits
 *    ATR__KIND_ROOM and, if it writes where another kind keeps a mutex,
 *    one that it stops short of it (as the array's does of the queue's
 *    put_lock). The layout version stays: no existing offset moves.
 * 3. core/<kind>.c: the kind's API, its init callback for atr__open, and
 *    `const struct atr__kind_ops atr__<kind>_ops` (kill, info,
 *    last_version; repair if it writes under the record lock; data if
 *    it owns heap; mark if it keeps an op's mark apart; slot_init if it
 *    has mutexes of its own; lingers if it has holds a thread links in
 *    its robust list; expire if it has leases) with `extern` beside the
 *    others in
 *    internal.h. Only this file reads its union member.
 * 4. Here: one row, [ATR_<KIND>] = &atr__<kind>_ops.
 * 5. Tests: tests/core/test_<kind>.c, its cases as a table; every
 *    crash-safe commit written as a fixed sequence of stores that takes
 *    how many to make, with a test that kills a child after each
 *    (test_commit.c) and one that kills children at random mid-call
 *    (test_kill.c); describing it while another process holds its locks
 *    (test_queue.c's describe test).
 */
#include "internal.h"

static const struct atr__kind_ops *const kinds_table[] = {
    [ATR_VALUE] = &atr__value_ops,    [ATR_ARRAY] = &atr__array_ops,
    [ATR_QUEUE] = &atr__queue_ops,    [ATR_LOCK] = &atr__lock_ops,
    [ATR_CONDITION] = &atr__cond_ops, [ATR_SEMAPHORE] = &atr__sem_ops,
    [ATR_FLAG] = &atr__flag_ops,      [ATR_BARRIER] = &atr__barrier_ops,
    [ATR_DICT] = &atr__dict_ops,
};

#define KINDS_COUNT (sizeof kinds_table / sizeof kinds_table[0])

const struct atr__kind_ops *atr__kind_ops_of(unsigned kind) {
  return kind < KINDS_COUNT ? kinds_table[kind] : NULL;
}

ATR__EXPORT const char *atr_kind_name(atr_kind kind) {
  const struct atr__kind_ops *ops = atr__kind_ops_of((unsigned)kind);
  return ops != NULL ? ops->name : "any";
}

_Atomic uint64_t *atr__mark(struct atr__obj *o, atr_op op) {
  const struct atr__kind_ops *ops = atr__kind_ops_of(o->kind);
  return ops != NULL && ops->mark != NULL ? ops->mark(o, op) : &o->pend;
}

int atr__kinds_slot_init(struct atr__obj *o) {
  for (unsigned k = 0; k < KINDS_COUNT; k++) {
    const struct atr__kind_ops *ops = kinds_table[k];
    if (ops != NULL && ops->slot_init != NULL && ops->slot_init(o) != 0)
      return ATR_ESYS;
  }
  return 0;
}

/* Each kind ends its own leases through its `expire` op (locks: a lease
 * that ran out; semaphores: leased permits; barriers and conditions:
 * places); kinds without leases have none. */
ATR__EXPORT int atr_sync_expire(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  const struct atr__kind_ops *ops;
  if (o == NULL)
    return ATR_ENOENT;
  if ((ops = atr__kind_ops_of(o->kind)) == NULL || o->kind != h->kind)
    return ATR_ECORRUPT;
  return ops->expire != NULL ? ops->expire(h, o) : 0;
}
