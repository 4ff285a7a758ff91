#!/usr/bin/env python3
"""mp_bench.py - Python's multiprocessing, the peer atrium is compared with.

Prints one `name: value unit` line per measurement, like core_bench:

  mp_value_add_1p   multiprocessing.Value('q') += 1 under get_lock(), 1 process
  mp_value_add_2p   the same from two processes at once (aggregate ops/s)
  mp_queue_2p       multiprocessing.Queue, one producer and one consumer
                    process, 64-byte bytes items (items/s)
  mp_joinable_2p    multiprocessing.JoinableQueue, the same with get +
                    task_done (items/s)
  mp_lock_1p        multiprocessing.Lock acquire() + release(), 1 process
                    (pairs/s)
  mp_lock_2p        the same from two processes taking turns on one lock
                    (aggregate pairs/s)
  mp_sem_1p         multiprocessing.Semaphore acquire() + release(), 1
                    process (pairs/s)
  mp_barrier_4p     multiprocessing.Barrier(4), 4 processes each waiting
                    count times (rounds/s)
  mp_dict_setget_1p multiprocessing.Manager().dict(): d[k] = v then d[k],
                    small values, 64 keys, 1 process (pairs/s)

Each measurement is sized by a short calibration run to take about
ATRIUM_BENCH_TIME seconds (default 1.2), runs three times and reports the
best. Standard library only. `mp_bench.py NAME...` runs only those named.
"""
import multiprocessing as mp
import os
import sys
import time

REPEATS = 3
ITEM = b"x" * 64


def value_add(value, count):
    lock = value.get_lock()
    for _ in range(count):
        with lock:
            value.value += 1


def value_add_child(value, count, barrier):
    barrier.wait()
    value_add(value, count)


def queue_produce(queue, count, barrier):
    barrier.wait()
    for _ in range(count):
        queue.put(ITEM)


def queue_consume(queue, count, barrier):
    barrier.wait()
    for _ in range(count):
        if len(queue.get()) != len(ITEM):
            raise SystemExit("mp_bench: wrong item size")


def run_pair(targets, count):
    """Starts one process per (function, args), releases them together and
    returns the seconds from the release until both have exited."""
    barrier = mp.Barrier(len(targets) + 1)
    procs = [mp.Process(target=fn, args=args + (count, barrier))
             for fn, args in targets]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    if any(proc.exitcode != 0 for proc in procs):
        raise SystemExit("mp_bench: a child process failed")
    return elapsed


def mp_value_add_1p(count):
    value = mp.Value("q", 0)
    start = time.perf_counter()
    value_add(value, count)
    return time.perf_counter() - start


def mp_value_add_2p(count):
    value = mp.Value("q", 0)
    return run_pair([(value_add_child, (value,)),
                     (value_add_child, (value,))], count)


def mp_queue_2p(count):
    queue = mp.Queue()
    return run_pair([(queue_produce, (queue,)),
                     (queue_consume, (queue,))], count)


def joinable_consume(queue, count, barrier):
    barrier.wait()
    get, task_done = queue.get, queue.task_done
    for _ in range(count):
        if len(get()) != len(ITEM):
            raise SystemExit("mp_joinable_2p: wrong item")
        task_done()


def mp_joinable_2p(count):
    queue = mp.JoinableQueue()
    return run_pair([(queue_produce, (queue,)),
                     (joinable_consume, (queue,))], count)


def lock_pairs(lock, count):
    acquire, release = lock.acquire, lock.release
    for _ in range(count):
        acquire()
        release()


def lock_pairs_child(lock, count, barrier):
    barrier.wait()
    lock_pairs(lock, count)


def mp_lock_1p(count):
    lock = mp.Lock()
    start = time.perf_counter()
    lock_pairs(lock, count)
    return time.perf_counter() - start


def mp_lock_2p(count):
    lock = mp.Lock()
    return run_pair([(lock_pairs_child, (lock,)),
                     (lock_pairs_child, (lock,))], count)


def mp_sem_1p(count):
    sem = mp.Semaphore(1)
    start = time.perf_counter()
    lock_pairs(sem, count)
    return time.perf_counter() - start


def barrier_rounds(barrier, count, start):
    start.wait()
    wait = barrier.wait
    for _ in range(count):
        wait()


def mp_barrier_4p(count):
    barrier = mp.Barrier(4)
    return run_pair([(barrier_rounds, (barrier,))] * 4, count)


def mp_dict_setget_1p(count):
    with mp.Manager() as manager:
        d = manager.dict()
        keys = ["k%02d" % i for i in range(64)]
        t0 = time.perf_counter()
        for n in range(count):
            k = keys[n % 64]
            d[k] = n
            if d[k] != n:
                raise AssertionError("Manager().dict() lost a set")
        return time.perf_counter() - t0


# name, function (seconds for count per process), operations per count, unit
CASES = [
    ("mp_value_add_1p", mp_value_add_1p, 1, "ops/s"),
    ("mp_value_add_2p", mp_value_add_2p, 2, "ops/s"),
    ("mp_queue_2p", mp_queue_2p, 1, "items/s"),
    ("mp_joinable_2p", mp_joinable_2p, 1, "items/s"),
    ("mp_lock_1p", mp_lock_1p, 1, "pairs/s"),
    ("mp_lock_2p", mp_lock_2p, 2, "pairs/s"),
    ("mp_sem_1p", mp_sem_1p, 1, "pairs/s"),
    ("mp_barrier_4p", mp_barrier_4p, 1, "rounds/s"),
    ("mp_dict_setget_1p", mp_dict_setget_1p, 1, "pairs/s"),
]


def calibrate(fn, target):
    count = 1000
    while True:
        elapsed = fn(count)
        if elapsed >= 0.1:
            return max(1, int(count * target / elapsed))
        count *= 16 if elapsed < 0.01 else 4


def main(argv):
    target = float(os.environ.get("ATRIUM_BENCH_TIME") or 1.2)
    wanted = set(argv[1:])
    unknown = wanted - {name for name, *_ in CASES}
    if unknown:
        print("mp_bench: no such measurement: " + " ".join(sorted(unknown)),
              file=sys.stderr)
        return 2
    for name, fn, per_count, unit in CASES:
        if wanted and name not in wanted:
            continue
        count = calibrate(fn, target)
        best = max(per_count * count / fn(count) for _ in range(REPEATS))
        print(f"{name}: {best:.0f} {unit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
