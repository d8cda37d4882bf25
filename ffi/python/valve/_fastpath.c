/*
 * valve._fastpath: `Limiter.acquire()` and the permit's `with` protocol in C. Through cffi each
 * step of `with limiter.acquire():` costs Python frames around a cffi call; here it is one C call.
 *
 * libvalve is not linked: cffi loads it at runtime, so valve/__init__.py hands init() the
 * library's entry points, after comparing layout() with the valve_permit of cffi's declarations
 * (valve._ffi, generated from the header by the same build; a stale extension left in a source
 * tree or an install mixed from two builds would differ).
 *
 * Handle lifetime. valve.Limiter subclasses LimiterCore, which keeps the raw valve_limiter
 * pointer next to a strong reference to the cffi object that owns it (ffi.gc). That reference
 * means a collection, cycles included, frees the handle only when the core itself goes, and
 * every permit holds its core, so no permit can reach a freed handle that way. The handle is not
 * visited by the GC: it references nothing back. close() calls _unbind() before ffi.release(),
 * so raw is NULL before the handle is freed. Reading raw and calling the library happen with the
 * GIL held and nothing between them can run Python code, so a close() on another thread falls
 * before or after a call, never inside it. Only acquire_timeout, which waits, releases the GIL;
 * close() must not run concurrently with it, as with every other Limiter method. The module does
 * not declare free-threading support, so a free-threaded CPython enables the GIL to import it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include "valve.h"

typedef valve_status (*try_acquire_fn)(const valve_limiter *, valve_permit *);
typedef valve_status (*acquire_timeout_fn)(const valve_limiter *, uint64_t, valve_permit *);
typedef valve_status (*release_fn)(const valve_limiter *, valve_permit *, uint32_t);

/* Set once by init(), and NULL until then. */
static try_acquire_fn try_acquire;
static acquire_timeout_fn acquire_timeout;
static release_fn release;
static PyObject *address; /* cdata -> int, as ffi.cast("uintptr_t", cdata) */
static PyObject *closed_error, *rejected_error, *raise_status_fn;

static PyObject *dropped_on_name;

typedef struct {
    PyObject_HEAD
    const valve_limiter *raw; /* NULL when closed or never bound */
    PyObject *handle;         /* the ffi.gc object that owns raw */
} Core;

typedef struct {
    PyObject_HEAD
    Core *core; /* NULL only after the GC cleared a cycle through the permit */
    valve_permit permit;
} Permit;

static PyTypeObject PermitType;

/* Raises error_class(*args), so the exceptions are built as valve's Python code builds them. */
static PyObject *raise_new(PyObject *error_class, PyObject *args)
{
    PyObject *error = args != NULL ? PyObject_CallObject(error_class, args) : NULL;
    Py_XDECREF(args);
    if (error != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
    }
    return NULL;
}

static PyObject *set_closed(void)
{
    if (closed_error == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "valve._fastpath.init() was not called");
        return NULL;
    }
    return raise_new(closed_error, PyTuple_New(0));
}

/* valve's own _raise picks the exception class, so both paths raise the same one. */
static PyObject *set_status(valve_status status)
{
    Py_XDECREF(PyObject_CallFunction(raise_status_fn, "I", (unsigned)status));
    return NULL;
}

/* A new permit and the limiter's raw handle, or NULL with an exception set (Closed when the
 * limiter is). The handle is read after the allocation: that may run a collection, and with it
 * a finaliser that closes the limiter. */
static Permit *new_permit(Core *core, const valve_limiter **raw)
{
    Permit *permit = PyObject_GC_New(Permit, &PermitType);
    if (permit == NULL)
        return NULL;
    permit->core = NULL;
    permit->permit = (valve_permit){0};
    *raw = core->raw;
    if (*raw == NULL) {
        Py_DECREF(permit);
        set_closed();
        return NULL;
    }
    return permit;
}

/* As the Python path: acquire() says how many were in flight when it rejects, acquire_timeout()
 * raises through _raise like every other failure. */
static PyObject *admitted(Core *self, Permit *permit, valve_status status, int timed)
{
    if (status == VALVE_OK) {
        Py_INCREF(self);
        permit->core = self;
        PyObject_GC_Track(permit);
        return (PyObject *)permit;
    }
    uint32_t in_flight = permit->permit.in_flight;
    Py_DECREF(permit);
    if (status == VALVE_REJECTED && !timed)
        return raise_new(rejected_error, Py_BuildValue("(IN)", (unsigned)status,
                                                       PyUnicode_FromFormat("%u in flight",
                                                                            (unsigned)in_flight)));
    return set_status(status);
}

static PyObject *core_acquire(Core *self, PyObject *Py_UNUSED(unused))
{
    const valve_limiter *raw;
    Permit *permit = new_permit(self, &raw);
    if (permit == NULL)
        return NULL;
    return admitted(self, permit, try_acquire(raw, &permit->permit), 0);
}

static PyObject *core_acquire_timeout(Core *self, PyObject *arg)
{
    uint64_t timeout_ns = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred())
        return NULL;
    const valve_limiter *raw;
    Permit *permit = new_permit(self, &raw);
    if (permit == NULL)
        return NULL;
    valve_status status;
    Py_BEGIN_ALLOW_THREADS
    status = acquire_timeout(raw, timeout_ns, &permit->permit);
    Py_END_ALLOW_THREADS
    return admitted(self, permit, status, 1);
}

static PyObject *core_bind(Core *self, PyObject *handle)
{
    if (release == NULL)
        return set_closed();
    PyObject *value = PyObject_CallOneArg(address, handle);
    if (value == NULL)
        return NULL;
    uintptr_t raw = (uintptr_t)PyLong_AsUnsignedLongLong(value);
    Py_DECREF(value);
    if (PyErr_Occurred())
        return NULL;
    /* raw first: dropping a former handle may free it and let another thread run. */
    self->raw = (const valve_limiter *)raw;
    Py_INCREF(handle);
    Py_XSETREF(self->handle, handle);
    Py_RETURN_NONE;
}

static PyObject *core_unbind(Core *self, PyObject *Py_UNUSED(unused))
{
    self->raw = NULL;
    Py_CLEAR(self->handle);
    Py_RETURN_NONE;
}

static void core_dealloc(Core *self)
{
    self->raw = NULL;
    Py_CLEAR(self->handle);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef core_methods[] = {
    {"acquire", (PyCFunction)core_acquire, METH_NOARGS,
     "Admits one call if in-flight is below the limit, else raises ``Rejected`` at once."},
    {"_acquire_timeout", (PyCFunction)core_acquire_timeout, METH_O, NULL},
    {"_bind", (PyCFunction)core_bind, METH_O, NULL},
    {"_unbind", (PyCFunction)core_unbind, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "valve._fastpath.LimiterCore",
    .tp_basicsize = sizeof(Core),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C half of valve.Limiter: its raw handle and acquire().",
    .tp_methods = core_methods,
    .tp_new = PyType_GenericNew,
};

/* Python's Permit._release and __exit__ in one: on exit a closed limiter matters only while the
 * permit is held, and a permit already reported (VALVE_STALE_PERMIT) is fine. */
static PyObject *permit_release(Permit *self, uint32_t outcome, int exiting)
{
    const valve_limiter *raw = self->core != NULL ? self->core->raw : NULL;
    if (raw == NULL) {
        if (exiting && self->permit.state != VALVE_PERMIT_HELD)
            Py_RETURN_FALSE;
        return set_closed();
    }
    valve_status status = release(raw, &self->permit, outcome);
    if (status != VALVE_OK && !(exiting && status == VALVE_STALE_PERMIT))
        return set_status(status);
    if (exiting)
        Py_RETURN_FALSE;
    Py_RETURN_NONE;
}

static PyObject *permit_success(Permit *self, PyObject *Py_UNUSED(unused))
{
    return permit_release(self, VALVE_OUTCOME_SUCCESS, 0);
}

static PyObject *permit_dropped(Permit *self, PyObject *Py_UNUSED(unused))
{
    return permit_release(self, VALVE_OUTCOME_DROPPED, 0);
}

static PyObject *permit_ignore(Permit *self, PyObject *Py_UNUSED(unused))
{
    return permit_release(self, VALVE_OUTCOME_IGNORED, 0);
}

static PyObject *permit_enter(Permit *self, PyObject *Py_UNUSED(unused))
{
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *permit_exit(Permit *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "__exit__ takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    uint32_t outcome = VALVE_OUTCOME_SUCCESS;
    /* Without a core the limiter is gone: permit_release answers before the outcome counts. */
    if (args[0] != Py_None && self->core != NULL) {
        PyObject *dropped_on = PyObject_GetAttr((PyObject *)self->core, dropped_on_name);
        if (dropped_on == NULL)
            return NULL;
        int dropped = PyObject_IsSubclass(args[0], dropped_on);
        Py_DECREF(dropped_on);
        if (dropped < 0)
            return NULL;
        outcome = dropped ? VALVE_OUTCOME_DROPPED : VALVE_OUTCOME_IGNORED;
    }
    return permit_release(self, outcome, 1);
}

static PyObject *permit_held(Permit *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->permit.state == VALVE_PERMIT_HELD);
}

static int permit_traverse(Permit *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    return 0;
}

static int permit_clear(Permit *self)
{
    Py_CLEAR(self->core);
    return 0;
}

static void permit_dealloc(Permit *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->core);
    PyObject_GC_Del(self);
}

static PyMethodDef permit_methods[] = {
    {"success", (PyCFunction)permit_success, METH_NOARGS,
     "The work completed normally: its RTT is a sample."},
    {"dropped", (PyCFunction)permit_dropped, METH_NOARGS,
     "An overload signal (timeout, 503): the limit backs off."},
    {"ignore", (PyCFunction)permit_ignore, METH_NOARGS,
     "Releases the slot and teaches nothing (client cancel, bad request)."},
    {"__enter__", (PyCFunction)permit_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))permit_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef permit_getset[] = {
    {"held", (getter)permit_held, NULL, "Whether the permit still holds its slot.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PermitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "valve.Permit",
    .tp_basicsize = sizeof(Permit),
    .tp_dealloc = (destructor)permit_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The right to run one unit of work; report how it ended once, or use it in "
              "``with``.",
    .tp_traverse = (traverseproc)permit_traverse,
    .tp_clear = (inquiry)permit_clear,
    .tp_methods = permit_methods,
    .tp_getset = permit_getset,
};

static PyObject *layout(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return Py_BuildValue(
        "(nnnnnIIIIIII)", (Py_ssize_t)sizeof(valve_permit),
        (Py_ssize_t)offsetof(valve_permit, limiter_id), (Py_ssize_t)offsetof(valve_permit, start_ns),
        (Py_ssize_t)offsetof(valve_permit, in_flight), (Py_ssize_t)offsetof(valve_permit, state),
        (unsigned)VALVE_OK, (unsigned)VALVE_REJECTED, (unsigned)VALVE_STALE_PERMIT,
        (unsigned)VALVE_PERMIT_HELD, (unsigned)VALVE_OUTCOME_SUCCESS,
        (unsigned)VALVE_OUTCOME_DROPPED, (unsigned)VALVE_OUTCOME_IGNORED);
}

/* The entry points come as addresses: ffi.cast("uintptr_t", lib.valve_limiter_...). */
static PyObject *init(PyObject *Py_UNUSED(module), PyObject *args)
{
    unsigned long long entries[3];
    PyObject *objects[4]; /* address, Closed, Rejected, _raise */
    if (!PyArg_ParseTuple(args, "OKKKOOO:init", &objects[0], &entries[0], &entries[1],
                          &entries[2], &objects[1], &objects[2], &objects[3]))
        return NULL;
    if (release != NULL || !entries[0] || !entries[1] || !entries[2]) {
        PyErr_SetString(PyExc_ValueError, "valve._fastpath.init(): called twice, or a NULL entry");
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        Py_INCREF(objects[i]);
    address = objects[0];
    closed_error = objects[1];
    rejected_error = objects[2];
    raise_status_fn = objects[3];
    try_acquire = (try_acquire_fn)(uintptr_t)entries[0];
    acquire_timeout = (acquire_timeout_fn)(uintptr_t)entries[1];
    release = (release_fn)(uintptr_t)entries[2];
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"layout", layout, METH_NOARGS,
     "sizeof(valve_permit), the offsets of its fields and the constants used, as compiled."},
    {"init", init, METH_VARARGS,
     "init(address, try_acquire, acquire_timeout, release, Closed, Rejected, raise_status)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "valve._fastpath",
    .m_doc = "The C fast path of valve.Limiter.acquire() and valve.Permit.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (dropped_on_name == NULL)
        dropped_on_name = PyUnicode_InternFromString("dropped_on");
    if (dropped_on_name == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL || PyModule_AddType(m, &CoreType) < 0 || PyModule_AddType(m, &PermitType) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
