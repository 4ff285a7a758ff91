/*
 * _fast.c - atrium._fast, the local transport's hot paths in C (CPython's
 * C API): locks (Lock and RLock: acquire, release, __enter__, __exit__),
 * semaphores' acquire and release, and values (.value, get, set, add).
 *
 * Why: through ctypes a lock's acquire + release cost about 280 ns a pair
 * in Python's call machinery (argument objects, the foreign call frame,
 * the closures around them) around 20 ns of work in the core, where
 * multiprocessing's SemLock, a C type, costs 37 ns. Here a call is one
 * C method of a C object that calls libatrium directly.
 *
 * Which libatrium: the one the package loaded with ctypes (_local.lib()).
 * bind() takes that library's dlopen handle and looks every function up
 * in it, so a process has one copy of the core whichever way a call goes
 * (the core keeps per-thread state, the thread's robust-list head and
 * nonce: two copies would not know each other's holds). So this module
 * links nothing but libc, and is built against include/atrium.h only.
 *
 * The objects here own no store memory: each is made by the package's
 * _local objects over a ctypes atr_handle (and atr_grant) that it keeps
 * a reference to, so the handle lives as long as any bound method of
 * ours. Rare paths (errors, whose exceptions the package builds with
 * their causes) call back into Python: the `fail` callable each object
 * is given returns the exception to raise for a core code.
 *
 * Waits release the GIL and sleep in the core's futex wait, in slices of
 * at most FAST_SLICE seconds (a signal that lands just before the futex
 * sleep starts is not seen by it); ATR_EINTR runs Python's signal handlers
 * at once (PyErr_CheckSignals), so Ctrl-C raises KeyboardInterrupt out of
 * a blocking acquire and a handler that does not raise lets the wait go
 * on with what is left of its timeout, as _local_sync.wait_call does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <dlfcn.h>
#include <stdint.h>
#include <time.h>

#include "atrium.h"

PyMODINIT_FUNC PyInit__fast(void);

/* Longest single sleep of a wait, in seconds (see the header). */
#define FAST_SLICE 1.0

/* ------------------------------------------------------------ the library */

/* libatrium's functions, as atrium.h declares them (the types come from
 * the header: a prototype that changes breaks this build, not a run). */
static struct {
  __typeof__(atr_type_class) *type_class;
  __typeof__(atr_value_get) *value_get;
  __typeof__(atr_value_set) *value_set;
  __typeof__(atr_value_add) *value_add;
  __typeof__(atr_lock_acquire) *lock_acquire;
  __typeof__(atr_lock_release) *lock_release;
  __typeof__(atr_sem_acquire) *sem_acquire;
  __typeof__(atr_sem_release) *sem_release;
} F;
static int fast_bound;
/* The warning an acquire that found its holder dead issues
 * (atrium.AbandonedWarning). */
static PyObject *fast_abandoned_category;

/* Looks name up in the library handle lib into *slot; 0, or -1 with
 * ImportError set. */
static int fast_sym(void *lib, const char *name, void *slot) {
  void *p = dlsym(lib, name);
  if (p == NULL) {
    PyErr_Format(PyExc_ImportError, "atrium._fast: libatrium has no %s",
                 name);
    return -1;
  }
  /* A data pointer into a function pointer's bytes: POSIX's own way for
   * dlsym results (ISO C has no conversion between the two). */
  memcpy(slot, &p, sizeof p);
  return 0;
}

PyDoc_STRVAR(fast_bind_doc,
             "bind(handle, abandoned_category)\n\n"
             "Binds this module to the libatrium whose dlopen handle is "
             "handle (ctypes' CDLL._handle) and sets the warning category "
             "of abandoned locks. ImportError if a function is missing.");

static PyObject *fast_bind(PyObject *mod, PyObject *args) {
  PyObject *handle, *category;
  (void)mod;
  if (!PyArg_ParseTuple(args, "OO:bind", &handle, &category))
    return NULL;
  void *lib = PyLong_AsVoidPtr(handle);
  if (lib == NULL) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "bind: a null library handle");
    return NULL;
  }
  if (fast_sym(lib, "atr_type_class", &F.type_class) < 0 ||
      fast_sym(lib, "atr_value_get", &F.value_get) < 0 ||
      fast_sym(lib, "atr_value_set", &F.value_set) < 0 ||
      fast_sym(lib, "atr_value_add", &F.value_add) < 0 ||
      fast_sym(lib, "atr_lock_acquire", &F.lock_acquire) < 0 ||
      fast_sym(lib, "atr_lock_release", &F.lock_release) < 0 ||
      fast_sym(lib, "atr_sem_acquire", &F.sem_acquire) < 0 ||
      fast_sym(lib, "atr_sem_release", &F.sem_release) < 0)
    return NULL;
  Py_INCREF(category);
  Py_XSETREF(fast_abandoned_category, category);
  fast_bound = 1;
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------- shared bits */

/* Raises the exception fail(rc) returns; always NULL. */
static PyObject *fast_raise(PyObject *fail, int rc) {
  PyObject *e = PyObject_CallFunction(fail, "i", rc);
  if (e != NULL) {
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
  }
  return NULL;
}

/* The address in addr (an int from ctypes.addressof), or NULL with
 * ValueError set. */
static void *fast_address(PyObject *addr, const char *what) {
  void *p = PyLong_AsVoidPtr(addr);
  if (p == NULL && !PyErr_Occurred())
    PyErr_Format(PyExc_ValueError, "a null %s", what);
  return p;
}

/* Whether an object was initialised (made with __new__ alone it has no
 * handle, and libatrium may not even be bound): 0, or -1 with
 * RuntimeError set. */
static int fast_check_ready(const void *h) {
  if (h != NULL)
    return 0;
  PyErr_SetString(PyExc_RuntimeError, "atrium._fast: object not initialised");
  return -1;
}

static int fast_check_bound(void) {
  if (fast_bound)
    return 0;
  PyErr_SetString(PyExc_RuntimeError, "atrium._fast: bind() first");
  return -1;
}

static double fast_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * An acquire's arguments, (block=True, timeout=None), as multiprocessing's
 * SemLock.acquire takes them: binds *block and *timeout (NULL: not given).
 * 0, or -1 with TypeError set.
 */
static int fast_acquire_args(PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames, PyObject **block,
                             PyObject **timeout) {
  Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError,
                 "acquire() takes from 0 to 2 positional arguments but %zd "
                 "were given",
                 nargs);
    return -1;
  }
  if (nargs > 0)
    *block = args[0];
  if (nargs > 1)
    *timeout = args[1];
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *key = PyTuple_GET_ITEM(kwnames, i);
    PyObject **slot = NULL;
    if (PyUnicode_CompareWithASCIIString(key, "block") == 0)
      slot = block;
    else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0)
      slot = timeout;
    if (slot == NULL || *slot != NULL) {
      PyErr_Format(PyExc_TypeError,
                   slot == NULL
                       ? "acquire() got an unexpected keyword argument '%U'"
                       : "acquire() got multiple values for argument '%U'",
                   key);
      return -1;
    }
    *slot = args[nargs + i];
  }
  return 0;
}

/*
 * Whether an acquire whose first try failed waits (*wait), until when
 * (*timed, *timeout in seconds): only then are block and timeout looked
 * at, as the ctypes path does (a free lock is taken whatever they are).
 * It waits if block is true and timeout is None or > 0. 0, or -1 with
 * an exception set.
 */
static int fast_acquire_how(PyObject *block, PyObject *to, int *wait,
                            int *timed, double *timeout) {
  *wait = 1;
  *timed = 0;
  if (block != NULL && (*wait = PyObject_IsTrue(block)) <= 0)
    return *wait;
  if (to != NULL && to != Py_None) {
    double t = PyFloat_AsDouble(to);
    if (t == -1.0 && PyErr_Occurred())
      return -1;
    *timed = 1;
    *timeout = t;
    *wait = t > 0;
  }
  return 0;
}

/* One try of a core wait, made without the GIL. */
typedef int (*fast_try_fn)(void *obj, double timeout);

/* Tries before the first sleep of a wait, and pauses between them. */
#ifndef FAST_SPIN
#define FAST_SPIN 64
#endif
#define FAST_SPIN_PAUSES 8

static inline void fast_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/*
 * Before a wait sleeps (without the GIL): up to FAST_SPIN tries that do
 * not wait, a few pauses apart, a few microseconds in all. A holder that
 * runs on another CPU (a short critical section, v.value += 1 under
 * get_lock()) has usually let go by then, and the lock changes hands
 * with no futex sleep and wake, two system calls and a context switch
 * that would each cost more than the whole spin (as glibc's adaptive
 * mutexes do; the core itself never spins: this is the client's choice
 * for Python's short critical sections). Returns the last try's code.
 */
static int fast_spin(fast_try_fn try_fn, void *obj) {
  int rc = ATR_ETIMEDOUT;
  for (int i = 0; i < FAST_SPIN && rc == ATR_ETIMEDOUT; i++) {
    for (int k = 0; k < FAST_SPIN_PAUSES; k++)
      fast_pause();
    rc = try_fn(obj, 0.0);
  }
  return rc;
}

/*
 * Waits by calling try_fn(obj, t) with the GIL released, in slices of
 * FAST_SLICE, until it returns something other than ATR_ETIMEDOUT before
 * the deadline, or ATR_EINTR; on ATR_EINTR Python's signal handlers run.
 * Returns the last code (ATR_ETIMEDOUT at the deadline), or INT32_MIN
 * with an exception set when a handler raised.
 */
static int fast_wait(fast_try_fn try_fn, void *obj, int timed, double timeout) {
  double deadline = timed ? fast_now() + (timeout > 0 ? timeout : 0) : 0;
  int rc;
  /* The spin releases the GIL too: the holder may be a thread of this
   * process that needs it to let go. */
  Py_BEGIN_ALLOW_THREADS
  rc = fast_spin(try_fn, obj);
  Py_END_ALLOW_THREADS
  if (rc != ATR_ETIMEDOUT)
    return rc;
  if (PyErr_CheckSignals() < 0) /* one that came during the spin */
    return INT32_MIN;
  for (;;) {
    double t = FAST_SLICE;
    if (timed) {
      double left = deadline - fast_now();
      if (left <= 0)
        return ATR_ETIMEDOUT;
      if (left < t)
        t = left;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = try_fn(obj, t);
    Py_END_ALLOW_THREADS
    if (rc == ATR_EINTR) {
      if (PyErr_CheckSignals() < 0)
        return INT32_MIN;
      continue;
    }
    if (rc != ATR_ETIMEDOUT)
      return rc;
  }
}

/*
 * An acquire (of a lock or a semaphore, by try_fn): its arguments, the
 * first try (with the GIL: uncontended it never waits), then the wait
 * its block and timeout ask for. Returns the last code, or INT32_MIN
 * with an exception set.
 */
static inline __attribute__((always_inline)) int
fast_acquire(const atr_handle *h, fast_try_fn try_fn, void *obj,
             PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *block = NULL, *to = NULL;
  int wait, timed;
  double timeout = 0;
  if (fast_check_ready(h) < 0 ||
      ((nargs != 0 || kwnames != NULL) &&
       fast_acquire_args(args, nargs, kwnames, &block, &to) < 0))
    return INT32_MIN;
  int rc = try_fn(obj, 0.0);
  if (rc == ATR_ETIMEDOUT) {
    if (fast_acquire_how(block, to, &wait, &timed, &timeout) < 0)
      return INT32_MIN;
    if (wait)
      rc = fast_wait(try_fn, obj, timed, timeout);
  }
  return rc;
}

/* ------------------------------------------------------- what all share */

/* The head of every object here (a semaphore is nothing more): */
#define FAST_OBJ_HEAD                                                          \
  PyObject_HEAD                                                                \
  const atr_handle *h; /* the object's handle, in keep's memory     */        \
  PyObject *keep;      /* what h (and a lock's g) point into: ctypes */        \
  PyObject *fail;      /* fail(rc) -> the exception to raise         */        \
  PyObject *name;      /* a lock's name, for its warning; else NULL  */

typedef struct {
  FAST_OBJ_HEAD
} fast_obj;

/* Sets the head of o from the constructor's arguments (haddr: the
 * handle's address, an int); 0, or -1 with an exception set. */
static int fast_obj_init(fast_obj *o, PyObject *haddr, PyObject *keep,
                         PyObject *fail, PyObject *name) {
  const atr_handle *h = fast_address(haddr, "handle");
  if (h == NULL)
    return -1;
  o->h = h;
  Py_INCREF(keep);
  Py_XSETREF(o->keep, keep);
  Py_INCREF(fail);
  Py_XSETREF(o->fail, fail);
  Py_XINCREF(name);
  Py_XSETREF(o->name, name);
  return 0;
}

static int fast_obj_traverse(PyObject *op, visitproc visit, void *arg) {
  fast_obj *self = (fast_obj *)op;
  Py_VISIT(self->keep);
  Py_VISIT(self->fail);
  Py_VISIT(self->name);
  return 0;
}

static int fast_obj_clear(PyObject *op) {
  fast_obj *self = (fast_obj *)op;
  Py_CLEAR(self->keep);
  Py_CLEAR(self->fail);
  Py_CLEAR(self->name);
  return 0;
}

static void fast_obj_dealloc(PyObject *op) {
  PyObject_GC_UnTrack(op);
  fast_obj_clear(op);
  Py_TYPE(op)->tp_free(op);
}

/* The type slots every object here has. */
#define FAST_OBJ_SLOTS                                                         \
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                         \
  .tp_new = PyType_GenericNew, .tp_dealloc = fast_obj_dealloc,                 \
  .tp_traverse = fast_obj_traverse, .tp_clear = fast_obj_clear

/* The end of an acquire whose last code is rc (ATR_ABANDONED is the
 * caller's): Py_True, Py_False or NULL. */
static PyObject *fast_acquire_end(fast_obj *o, int rc) {
  if (rc == 0)
    Py_RETURN_TRUE;
  if (rc == ATR_ETIMEDOUT)
    Py_RETURN_FALSE;
  if (rc == INT32_MIN)
    return NULL;
  return fast_raise(o->fail, rc);
}

/* ------------------------------------------------------------------- locks */

typedef struct {
  FAST_OBJ_HEAD
  atr_grant *g;   /* the lock's grant (its fence), in keep's memory */
  char abandoned; /* the latest acquisition found its holder dead  */
} fast_lock;

static int fast_lock_try(void *obj, double timeout) {
  fast_lock *self = obj;
  return F.lock_acquire(self->h, timeout, self->g);
}

/* The end of an acquire, from its last core code: Py_True, Py_False or
 * NULL. */
static PyObject *fast_lock_result(fast_lock *self, int rc) {
  if (rc == 0)
    self->abandoned = 0;
  if (rc == ATR_ABANDONED) {
    self->abandoned = 1;
    /* stacklevel 1 from C: the Python line that called acquire, as the
     * ctypes path's stacklevel 3 from its helper. The lock is held
     * whether or not the warning raises (a filter may make it an error). */
    if (PyErr_WarnFormat(fast_abandoned_category, 1,
                         "atrium: lock %R was abandoned by a holder that "
                         "died; it is now yours (what it protects may be "
                         "inconsistent)",
                         self->name) < 0)
      return NULL;
    Py_RETURN_TRUE;
  }
  return fast_acquire_end((fast_obj *)self, rc);
}

static PyObject *fast_lock_acquire(PyObject *op, PyObject *const *args,
                                   Py_ssize_t nargs, PyObject *kwnames) {
  fast_lock *self = (fast_lock *)op;
  return fast_lock_result(self, fast_acquire(self->h, fast_lock_try, self,
                                             args, nargs, kwnames));
}

static PyObject *fast_lock_enter(PyObject *op, PyObject *unused) {
  fast_lock *self = (fast_lock *)op;
  (void)unused;
  return fast_lock_result(
      self, fast_acquire(self->h, fast_lock_try, self, NULL, 0, NULL));
}

/* release(), and __exit__(type, value, traceback): any arguments are
 * taken and ignored, so one bound method serves both (the package's
 * Lock.__exit__ is the bound release). */
static PyObject *fast_lock_release(PyObject *op, PyObject *const *args,
                                   Py_ssize_t nargs) {
  fast_lock *self = (fast_lock *)op;
  (void)args;
  (void)nargs;
  if (fast_check_ready(self->h) < 0)
    return NULL;
  int rc = F.lock_release(self->h);
  if (rc != 0)
    return fast_raise(self->fail, rc);
  Py_RETURN_NONE;
}

static int fast_lock_init(PyObject *op, PyObject *args, PyObject *kw) {
  fast_lock *self = (fast_lock *)op;
  PyObject *haddr, *gaddr, *keep, *name, *fail;
  static char *kwlist[] = {"handle", "grant", "keep", "name", "fail", NULL};
  if (fast_check_bound() < 0 ||
      !PyArg_ParseTupleAndKeywords(args, kw, "OOOUO:Lock", kwlist, &haddr,
                                   &gaddr, &keep, &name, &fail))
    return -1;
  atr_grant *g = fast_address(gaddr, "grant");
  if (g == NULL || fast_obj_init((fast_obj *)self, haddr, keep, fail, name) < 0)
    return -1;
  self->g = g;
  self->abandoned = 0;
  return 0;
}

static PyMethodDef fast_lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))fast_lock_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None): True once taken, False if not "
     "(a try, or the timeout ran out)."},
    {"release", (PyCFunction)(void (*)(void))fast_lock_release, METH_FASTCALL,
     "release(*ignored): gives one level of this thread's hold back."},
    {"__enter__", fast_lock_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)(void (*)(void))fast_lock_release, METH_FASTCALL,
     "release()"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef fast_lock_members[] = {
    {"abandoned", T_BOOL, offsetof(fast_lock, abandoned), 0,
     "the latest acquisition took the lock from a holder that died"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject fast_lock_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atrium._fast.Lock",
    .tp_basicsize = sizeof(fast_lock),
    FAST_OBJ_SLOTS,
    .tp_doc = "Lock(handle, grant, keep, name, fail): a lock of libatrium "
              "(handle and grant: addresses of an atr_handle and an "
              "atr_grant inside keep).",
    .tp_init = fast_lock_init,
    .tp_methods = fast_lock_methods,
    .tp_members = fast_lock_members,
};

/* -------------------------------------------------------------- semaphores */

typedef fast_obj fast_sem;

static int fast_sem_try(void *obj, double timeout) {
  return F.sem_acquire(((fast_sem *)obj)->h, timeout, NULL);
}

static PyObject *fast_sem_acquire(PyObject *op, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames) {
  fast_sem *self = (fast_sem *)op;
  int rc = fast_acquire(self->h, fast_sem_try, self, args, nargs, kwnames);
  /* A permit a dead holder gave back is as good as any (no warning: a
   * semaphore guards a count, not a state). */
  return fast_acquire_end(self, rc == ATR_ABANDONED ? 0 : rc);
}

static PyObject *fast_sem_release(PyObject *op, PyObject *const *args,
                                  Py_ssize_t nargs) {
  fast_sem *self = (fast_sem *)op;
  unsigned long long n = 1;
  if (fast_check_ready(self->h) < 0)
    return NULL;
  if (nargs > 1) {
    PyErr_Format(PyExc_TypeError,
                 "release() takes at most 1 argument (%zd given)", nargs);
    return NULL;
  }
  if (nargs == 1) {
    n = PyLong_AsUnsignedLongLong(args[0]);
    if (n == (unsigned long long)-1 && PyErr_Occurred())
      return NULL;
  }
  int rc = F.sem_release(self->h, n, NULL);
  if (rc != 0)
    return fast_raise(self->fail, rc);
  Py_RETURN_NONE;
}

static int fast_sem_init(PyObject *op, PyObject *args, PyObject *kw) {
  fast_sem *self = (fast_sem *)op;
  PyObject *haddr, *keep, *fail;
  static char *kwlist[] = {"handle", "keep", "fail", NULL};
  if (fast_check_bound() < 0 ||
      !PyArg_ParseTupleAndKeywords(args, kw, "OOO:Semaphore", kwlist, &haddr,
                                   &keep, &fail))
    return -1;
  return fast_obj_init(self, haddr, keep, fail, NULL);
}

static PyMethodDef fast_sem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))fast_sem_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None): True once a permit is taken."},
    {"release", (PyCFunction)(void (*)(void))fast_sem_release, METH_FASTCALL,
     "release(n=1): gives n permits back."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject fast_sem_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atrium._fast.Semaphore",
    .tp_basicsize = sizeof(fast_sem),
    FAST_OBJ_SLOTS,
    .tp_doc = "Semaphore(handle, keep, fail): a semaphore of libatrium.",
    .tp_init = fast_sem_init,
    .tp_methods = fast_sem_methods,
};

/* ------------------------------------------------------------------ values */

typedef struct {
  FAST_OBJ_HEAD
  char type;  /* the type code         */
  int tclass; /* atr_type_class(type)  */
} fast_value;

static PyTypeObject fast_value_type;

/* The Python object of a core scalar, as multiprocessing gives it for the
 * type code: bytes for 'c', bool for '?'. */
static PyObject *fast_value_out(const fast_value *self, atr_scalar v) {
  switch (self->tclass) {
  case ATR_TINT:
    if (self->type == '?')
      return PyBool_FromLong(v.i != 0);
    return PyLong_FromLongLong(v.i);
  case ATR_TUINT:
    if (self->type == 'c') {
      char c = (char)(unsigned char)v.u;
      return PyBytes_FromStringAndSize(&c, 1);
    }
    return PyLong_FromUnsignedLongLong(v.u);
  default:
    return PyFloat_FromDouble(v.f);
  }
}

/* An int's core word for the class: 0, or ATR_ERANGE when it does not
 * fit 64 bits of that sign, or -1 with an exception set. */
static int fast_int_word(int tclass, PyObject *v, atr_scalar *out) {
  int overflow;
  long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (x == -1 && PyErr_Occurred())
    return -1;
  if (tclass == ATR_TINT) {
    if (overflow != 0)
      return ATR_ERANGE;
    out->i = x;
    return 0;
  }
  if (overflow < 0 || (overflow == 0 && x < 0))
    return ATR_ERANGE;
  if (overflow == 0) {
    out->u = (uint64_t)x;
    return 0;
  }
  unsigned long long u = PyLong_AsUnsignedLongLong(v);
  if (u == (unsigned long long)-1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear();
    return ATR_ERANGE;
  }
  out->u = u;
  return 0;
}

/*
 * v as the core holds it for the value's type, with the checks and
 * messages of the package's _to_core: 0, an ATR_E* code (the value does
 * not fit), or -1 with TypeError (or what float() raises) set.
 */
static int fast_value_in(const fast_value *self, PyObject *v,
                         atr_scalar *out) {
  if (self->type == 'c') {
    if ((PyBytes_Check(v) && PyBytes_GET_SIZE(v) == 1) ||
        (PyByteArray_Check(v) && PyByteArray_GET_SIZE(v) == 1)) {
      out->u = (unsigned char)(PyBytes_Check(v) ? PyBytes_AS_STRING(v)[0]
                                                : PyByteArray_AS_STRING(v)[0]);
      return 0;
    }
    if (PyLong_Check(v) && !PyBool_Check(v))
      return fast_int_word(ATR_TUINT, v, out);
    PyErr_SetString(PyExc_TypeError,
                    "one character bytes, bytearray or integer expected");
    return -1;
  }
  if (self->type == '?') {
    int b = PyObject_IsTrue(v);
    if (b < 0)
      return -1;
    out->i = b;
    return 0;
  }
  if (self->tclass == ATR_TFLOAT) {
    if (!PyLong_Check(v) && !PyFloat_Check(v)) {
      PyErr_Format(PyExc_TypeError, "must be real number, not %.200s",
                   Py_TYPE(v)->tp_name);
      return -1;
    }
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred())
      return -1;
    out->f = d;
    return 0;
  }
  if (!PyLong_Check(v)) {
    PyErr_Format(PyExc_TypeError, "int expected instead of %.200s",
                 Py_TYPE(v)->tp_name);
    return -1;
  }
  return fast_int_word(self->tclass, v, out);
}

static PyObject *fast_value_get(PyObject *op, PyObject *unused) {
  fast_value *self = (fast_value *)op;
  atr_scalar v;
  (void)unused;
  if (fast_check_ready(self->h) < 0)
    return NULL;
  int rc = F.value_get(self->h, &v, NULL);
  if (rc < 0)
    return fast_raise(self->fail, rc);
  return fast_value_out(self, v);
}

static int fast_value_store(fast_value *self, PyObject *value) {
  atr_scalar v;
  if (fast_check_ready(self->h) < 0)
    return -1;
  if (value == NULL) {
    PyErr_SetString(PyExc_AttributeError, "a value cannot be deleted");
    return -1;
  }
  int rc = fast_value_in(self, value, &v);
  if (rc == 0)
    rc = F.value_set(self->h, v, 0, NULL);
  if (rc < 0 && rc != -1) {
    fast_raise(self->fail, rc);
    return -1;
  }
  return rc;
}

static PyObject *fast_value_set(PyObject *op, PyObject *value) {
  if (fast_value_store((fast_value *)op, value) < 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *fast_value_add(PyObject *op, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames) {
  fast_value *self = (fast_value *)op;
  PyObject *delta = NULL;
  atr_scalar d, out;
  if (fast_check_ready(self->h) < 0)
    return NULL;
  if (nargs > 1 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) != 1 ||
                                        nargs != 0 ||
                                        PyUnicode_CompareWithASCIIString(
                                            PyTuple_GET_ITEM(kwnames, 0),
                                            "delta") != 0))) {
    PyErr_SetString(PyExc_TypeError, "add() takes one argument, delta=1");
    return NULL;
  }
  if (nargs + (kwnames != NULL) == 1)
    delta = args[0];
  if (self->tclass == ATR_TFLOAT) {
    d.f = 1.0;
    if (delta != NULL) {
      if (!PyLong_Check(delta) && !PyFloat_Check(delta)) {
        PyErr_Format(PyExc_TypeError, "must be real number, not %.200s",
                     Py_TYPE(delta)->tp_name);
        return NULL;
      }
      d.f = PyFloat_AsDouble(delta);
      if (d.f == -1.0 && PyErr_Occurred())
        return NULL;
    }
  } else {
    d.i = 1;
    if (delta != NULL) {
      if (!PyLong_Check(delta)) {
        PyErr_Format(PyExc_TypeError, "int expected instead of %.200s",
                     Py_TYPE(delta)->tp_name);
        return NULL;
      }
      int rc = fast_int_word(ATR_TINT, delta, &d);
      if (rc == ATR_ERANGE) /* no result can fit: as the core would say */
        return fast_raise(self->fail, ATR_EOVERFLOW);
      if (rc < 0)
        return NULL;
    }
  }
  int rc = F.value_add(self->h, d, &out, NULL);
  if (rc < 0)
    return fast_raise(self->fail, rc);
  if (self->tclass == ATR_TFLOAT)
    return PyFloat_FromDouble(out.f);
  return self->tclass == ATR_TINT ? PyLong_FromLongLong(out.i)
                                  : PyLong_FromUnsignedLongLong(out.u);
}

static PyObject *fast_value_prop_get(PyObject *op, void *closure) {
  (void)closure;
  return fast_value_get(op, NULL);
}

static int fast_value_prop_set(PyObject *op, PyObject *value, void *closure) {
  (void)closure;
  return fast_value_store((fast_value *)op, value);
}

static int fast_value_init(PyObject *op, PyObject *args, PyObject *kw) {
  fast_value *self = (fast_value *)op;
  PyObject *haddr, *keep, *fail;
  int type;
  static char *kwlist[] = {"handle", "keep", "type", "fail", NULL};
  if (fast_check_bound() < 0 ||
      !PyArg_ParseTupleAndKeywords(args, kw, "OOCO:Value", kwlist, &haddr,
                                   &keep, &type, &fail))
    return -1;
  int tclass = type > 0 && type < 128 ? (int)F.type_class((char)type) : 0;
  if (tclass == ATR_TNONE) {
    PyErr_Format(PyExc_ValueError, "Value: %c is not a type code", type);
    return -1;
  }
  if (fast_obj_init((fast_obj *)self, haddr, keep, fail, NULL) < 0)
    return -1;
  self->type = (char)type;
  self->tclass = tclass;
  return 0;
}

static PyMethodDef fast_value_methods[] = {
    {"get", fast_value_get, METH_NOARGS, "the value"},
    {"set", fast_value_set, METH_O, "set(v): stores v"},
    {"add", (PyCFunction)(void (*)(void))fast_value_add,
     METH_FASTCALL | METH_KEYWORDS,
     "add(delta=1): adds atomically in the store; the new value"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef fast_value_getset[] = {
    {"value", fast_value_prop_get, fast_value_prop_set,
     "the value, as multiprocessing gives and takes it", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject fast_value_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atrium._fast.Value",
    .tp_basicsize = sizeof(fast_value),
    FAST_OBJ_SLOTS,
    .tp_doc = "Value(handle, keep, type, fail): a value of libatrium.",
    .tp_init = fast_value_init,
    .tp_methods = fast_value_methods,
    .tp_getset = fast_value_getset,
};

/* ------------------------------------------- the .value of the package's */

/*
 * ValueAttr(name): a data descriptor for the package's value classes, so
 * that `v.value` and `v.value = x` cost one attribute look-up (of the
 * instance's `name`, its transport's value object) and no Python frame:
 * a Value of this module is read and written here, any other object
 * through its own `value` attribute (the remote transport's).
 */
typedef struct {
  PyObject_HEAD
  PyObject *name;
} fast_attr;

static PyObject *fast_attr_value; /* "value", interned */

static PyObject *fast_attr_get(PyObject *op, PyObject *obj, PyObject *type) {
  fast_attr *self = (fast_attr *)op;
  (void)type;
  if (obj == NULL || obj == Py_None) {
    Py_INCREF(op);
    return op;
  }
  if (fast_check_ready(self->name) < 0)
    return NULL;
  PyObject *inner = PyObject_GetAttr(obj, self->name);
  if (inner == NULL)
    return NULL;
  PyObject *r = Py_IS_TYPE(inner, &fast_value_type)
                    ? fast_value_get(inner, NULL)
                    : PyObject_GetAttr(inner, fast_attr_value);
  Py_DECREF(inner);
  return r;
}

static int fast_attr_set(PyObject *op, PyObject *obj, PyObject *value) {
  fast_attr *self = (fast_attr *)op;
  if (fast_check_ready(self->name) < 0)
    return -1;
  PyObject *inner = PyObject_GetAttr(obj, self->name);
  if (inner == NULL)
    return -1;
  int rc = Py_IS_TYPE(inner, &fast_value_type)
               ? fast_value_store((fast_value *)inner, value)
               : PyObject_SetAttr(inner, fast_attr_value, value);
  Py_DECREF(inner);
  return rc;
}

static int fast_attr_init(PyObject *op, PyObject *args, PyObject *kw) {
  fast_attr *self = (fast_attr *)op;
  PyObject *name;
  static char *kwlist[] = {"name", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U:ValueAttr", kwlist, &name))
    return -1;
  Py_INCREF(name);
  PyUnicode_InternInPlace(&name);
  Py_XSETREF(self->name, name);
  return 0;
}

static void fast_attr_dealloc(PyObject *op) {
  Py_CLEAR(((fast_attr *)op)->name);
  Py_TYPE(op)->tp_free(op);
}

static PyTypeObject fast_attr_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atrium._fast.ValueAttr",
    .tp_basicsize = sizeof(fast_attr),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ValueAttr(name): `value` read and written through the "
              "instance's attribute name",
    .tp_new = PyType_GenericNew,
    .tp_init = fast_attr_init,
    .tp_dealloc = fast_attr_dealloc,
    .tp_descr_get = fast_attr_get,
    .tp_descr_set = fast_attr_set,
};

/* ------------------------------------------------------------------ module */

static PyMethodDef fast_functions[] = {
    {"bind", fast_bind, METH_VARARGS, fast_bind_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "atrium._fast",
    .m_doc = "The local transport's hot paths in C (see _local.py).",
    .m_size = -1,
    .m_methods = fast_functions,
};

PyMODINIT_FUNC PyInit__fast(void) {
  static PyTypeObject *types[] = {&fast_lock_type, &fast_sem_type,
                                  &fast_value_type, &fast_attr_type};
  fast_attr_value = PyUnicode_InternFromString("value");
  if (fast_attr_value == NULL)
    return NULL;
  PyObject *m = PyModule_Create(&fast_module);
  if (m == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    const char *dot = strrchr(types[i]->tp_name, '.');
    if (PyType_Ready(types[i]) < 0 ||
        PyModule_AddObjectRef(m, dot + 1, (PyObject *)types[i]) < 0) {
      Py_DECREF(m);
      return NULL;
    }
  }
  return m;
}
