/* Native directory listing for first-sync scans (irods_ingest.listing documents the API).
 *
 * One call lists a directory with readdir() and d_type -- no stat for regular files, as
 * `find -type f` -- and returns the regular files' names already encoded as the JSON arrays
 * that FILES tasks carry, files_per_task names each. The readdir loop and the encoding run
 * without the GIL. The encoding is exactly
 * json.dumps(wire_names(batch), ensure_ascii=True, separators=(",", ":"))
 * (tests/engine/test_listing.py compares the two on awkward names). A Lister reads the same
 * listing a page at a time from one open directory stream (bounded memory, any size).
 * Both encode:
 *   - a name that is valid UTF-8 is a JSON string with every character outside ' '..'~'
 *     escaped as json does (\" \\ \b \f \n \r \t, else \uXXXX, astral ones as a surrogate pair);
 *   - a name that is not valid UTF-8 travels as "\u0000b64:" + base64 of its bytes
 *     (tasks.wire_name).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_byte(Buf *b, char c) { return buf_put(b, &c, 1); }

/* Offsets into a Buf: where each piece starts (the next one's start ends it). */
typedef struct {
    size_t *at;
    size_t len;
    size_t cap;
} Offsets;

static int offsets_add(Offsets *o, size_t value) {
    if (o->len == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        size_t *at = realloc(o->at, cap * sizeof(size_t));
        if (!at) return -1;
        o->at = at;
        o->cap = cap;
    }
    o->at[o->len++] = value;
    return 0;
}

/* Strict UTF-8, as Python's decoder: no overlong forms, no surrogates, nothing past U+10FFFF.
 * Returns the code point and advances *i, or -1 for an invalid sequence. */
static long next_code_point(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    if (c < 0x80) { *i += 1; return c; }
    size_t need;
    long cp;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2; cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3; cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return -1;
    if (*i + need >= n) return -1; /* truncated */
    for (size_t k = 1; k <= need; k++) {
        unsigned char t = s[*i + k];
        if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) return -1;
        cp = (cp << 6) | (t & 0x3F);
    }
    *i += need + 1;
    return cp;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (next_code_point(s, n, &i) < 0) return 0;
    }
    return 1;
}

static const char HEX[] = "0123456789abcdef";

static int put_u_escape(Buf *b, unsigned int unit) {
    char esc[6] = {'\\', 'u', HEX[(unit >> 12) & 0xF], HEX[(unit >> 8) & 0xF], HEX[(unit >> 4) & 0xF], HEX[unit & 0xF]};
    return buf_put(b, esc, 6);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A name as a JSON string literal, quotes included (see the top of this file). */
static int put_json_name(Buf *b, const unsigned char *s, size_t n) {
    if (buf_byte(b, '"')) return -1;
    if (!valid_utf8(s, n)) {
        if (buf_put(b, "\\u0000b64:", 10)) return -1;
        for (size_t i = 0; i < n; i += 3) {
            unsigned long v = (unsigned long)s[i] << 16;
            if (i + 1 < n) v |= (unsigned long)s[i + 1] << 8;
            if (i + 2 < n) v |= s[i + 2];
            char out[4] = {B64[(v >> 18) & 63], B64[(v >> 12) & 63], i + 1 < n ? B64[(v >> 6) & 63] : '=',
                           i + 2 < n ? B64[v & 63] : '='};
            if (buf_put(b, out, 4)) return -1;
        }
        return buf_byte(b, '"');
    }
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\') {
            /* the common case: copy the whole run of plain characters */
            size_t start = i;
            while (i < n && s[i] >= 0x20 && s[i] <= 0x7E && s[i] != '"' && s[i] != '\\') i++;
            if (buf_put(b, (const char *)s + start, i - start)) return -1;
            continue;
        }
        long cp = next_code_point(s, n, &i); /* valid: checked above */
        int rc;
        switch (cp) {
            case '"': rc = buf_put(b, "\\\"", 2); break;
            case '\\': rc = buf_put(b, "\\\\", 2); break;
            case '\b': rc = buf_put(b, "\\b", 2); break;
            case '\f': rc = buf_put(b, "\\f", 2); break;
            case '\n': rc = buf_put(b, "\\n", 2); break;
            case '\r': rc = buf_put(b, "\\r", 2); break;
            case '\t': rc = buf_put(b, "\\t", 2); break;
            default:
                if (cp >= 0x10000) {
                    long v = cp - 0x10000;
                    rc = put_u_escape(b, 0xD800 | (unsigned int)(v >> 10)) || put_u_escape(b, 0xDC00 | (unsigned int)(v & 0x3FF));
                } else {
                    rc = put_u_escape(b, (unsigned int)cp);
                }
        }
        if (rc) return -1;
    }
    return buf_byte(b, '"');
}

typedef struct {
    Buf batches;       /* "[...]" arrays back to back */
    Offsets batch_at;  /* start of each array */
    Py_ssize_t files;  /* regular files in the arrays */
    Buf directories;   /* NUL-terminated names of subdirectories */
    Offsets directory_at;
    Buf others;        /* NUL-terminated names: links, special files, entries that vanished */
    Offsets other_at;
    Buf unreadable;    /* NUL-terminated names of regular files the worker cannot read */
    Offsets unreadable_at;
} Listing;

static void listing_free(Listing *l) {
    free(l->batches.data);
    free(l->batch_at.at);
    free(l->directories.data);
    free(l->directory_at.at);
    free(l->others.data);
    free(l->other_at.at);
    free(l->unreadable.data);
    free(l->unreadable_at.at);
}

static int add_name(Buf *b, Offsets *o, const char *name, size_t n) {
    return offsets_add(o, b->len) || buf_put(b, name, n) || buf_byte(b, '\0');
}

/* The GIL-free part: read up to `limit` entries (every entry but "." and ".."; < 0: all) of
 * an open directory into `l`. *done is set when readdir reached the end. Returns 0, or an
 * errno value (ENOMEM for allocation failures). */
static int list_some(DIR *dir, Py_ssize_t batch, int check_readable, Py_ssize_t limit, Listing *l, int *done) {
    int fd = dirfd(dir);
    Py_ssize_t in_batch = 0, seen = 0;
    int err = 0;
    *done = 0;
    while (limit < 0 || seen < limit) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (!entry) {
            err = errno;
            if (!err) *done = 1;
            break;
        }
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        seen++;
        size_t n = strlen(name);
        unsigned char type = entry->d_type;
        if (type == DT_UNKNOWN) { /* some filesystems do not fill d_type */
            struct stat st;
            if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISREG(st.st_mode)) type = DT_REG;
                else if (S_ISDIR(st.st_mode)) type = DT_DIR;
            }
        }
        if (type == DT_DIR) {
            if (add_name(&l->directories, &l->directory_at, name, n)) { err = ENOMEM; break; }
            continue;
        }
        if (type != DT_REG) {
            if (add_name(&l->others, &l->other_at, name, n)) { err = ENOMEM; break; }
            continue;
        }
        if (check_readable && faccessat(fd, name, R_OK, 0) != 0) { /* as os.access: real ids */
            if (add_name(&l->unreadable, &l->unreadable_at, name, n)) { err = ENOMEM; break; }
            continue;
        }
        if (in_batch == batch) {
            if (buf_byte(&l->batches, ']')) { err = ENOMEM; break; }
            in_batch = 0;
        }
        if (in_batch == 0) {
            if (offsets_add(&l->batch_at, l->batches.len) || buf_byte(&l->batches, '[')) { err = ENOMEM; break; }
        } else if (buf_byte(&l->batches, ',')) { err = ENOMEM; break; }
        if (put_json_name(&l->batches, (const unsigned char *)name, n)) { err = ENOMEM; break; }
        in_batch++;
        l->files++;
    }
    if (!err && in_batch > 0 && buf_byte(&l->batches, ']')) err = ENOMEM;
    return err;
}

static int list_into(const char *path, Py_ssize_t batch, int check_readable, Listing *l) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int err = errno;
        close(fd);
        return err;
    }
    int done;
    int err = list_some(dir, batch, check_readable, -1, l, &done);
    closedir(dir); /* closes fd */
    return err;
}

static PyObject *names_list(Buf *b, Offsets *o) {
    PyObject *list = PyList_New((Py_ssize_t)o->len);
    if (!list) return NULL;
    for (size_t i = 0; i < o->len; i++) {
        const char *name = b->data + o->at[i];
        PyObject *text = PyUnicode_DecodeFSDefault(name); /* surrogateescape, as os.listdir */
        if (!text) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, text);
    }
    return list;
}

static PyObject *batches_list(Listing *l) {
    PyObject *list = PyList_New((Py_ssize_t)l->batch_at.len);
    if (!list) return NULL;
    for (size_t i = 0; i < l->batch_at.len; i++) {
        size_t start = l->batch_at.at[i];
        size_t end = i + 1 < l->batch_at.len ? l->batch_at.at[i + 1] : l->batches.len;
        PyObject *text = PyUnicode_DecodeASCII(l->batches.data + start, (Py_ssize_t)(end - start), "strict");
        if (!text) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, text);
    }
    return list;
}

/* (batches, files, directories, others, unreadable), plus done when done >= 0. */
static PyObject *listing_tuple(Listing *l, int done) {
    PyObject *batches = batches_list(l);
    PyObject *directories = batches ? names_list(&l->directories, &l->directory_at) : NULL;
    PyObject *others = directories ? names_list(&l->others, &l->other_at) : NULL;
    PyObject *unreadable = others ? names_list(&l->unreadable, &l->unreadable_at) : NULL;
    if (!unreadable) {
        Py_XDECREF(batches);
        Py_XDECREF(directories);
        Py_XDECREF(others);
        return NULL;
    }
    if (done < 0) return Py_BuildValue("(NnNNN)", batches, l->files, directories, others, unreadable);
    return Py_BuildValue("(NnNNNO)", batches, l->files, directories, others, unreadable, done ? Py_True : Py_False);
}

static PyObject *list_by_name(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path_bytes = NULL;
    Py_ssize_t batch;
    int check_readable;
    if (!PyArg_ParseTuple(args, "O&np:list_by_name", PyUnicode_FSConverter, &path_bytes, &batch, &check_readable)) return NULL;
    if (batch < 1) {
        Py_DECREF(path_bytes);
        PyErr_SetString(PyExc_ValueError, "batch must be at least 1");
        return NULL;
    }
    Listing l;
    memset(&l, 0, sizeof l);
    const char *path = PyBytes_AS_STRING(path_bytes);
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = list_into(path, batch, check_readable, &l);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (err == ENOMEM) {
        PyErr_NoMemory();
    } else if (err) {
        errno = err;
        PyObject *name = PyUnicode_DecodeFSDefault(path);
        if (name) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
            Py_DECREF(name);
        }
    } else {
        result = listing_tuple(&l, -1);
    }
    listing_free(&l);
    Py_DECREF(path_bytes);
    return result;
}

/* Lister: one directory read a page at a time through one open stream (readdir returns
 * every entry present throughout exactly once per stream), so a listing of any size needs
 * memory for one page only. */
typedef struct {
    PyObject_HEAD
    DIR *dir;
    Py_ssize_t batch;
    int check_readable;
    int busy; /* a page is being read (the GIL is released meanwhile) */
} Lister;

static void lister_close_dir(Lister *self) {
    if (self->dir) {
        closedir(self->dir);
        self->dir = NULL;
    }
}

static int lister_init(Lister *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"path", "batch", "check_readable", NULL};
    PyObject *path_bytes = NULL;
    Py_ssize_t batch;
    int check_readable;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&np:Lister", kwlist, PyUnicode_FSConverter, &path_bytes, &batch,
                                     &check_readable))
        return -1;
    if (batch < 1) {
        Py_DECREF(path_bytes);
        PyErr_SetString(PyExc_ValueError, "batch must be at least 1");
        return -1;
    }
    lister_close_dir(self);
    const char *path = PyBytes_AS_STRING(path_bytes);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (!dir) {
        int err = errno;
        if (fd >= 0) close(fd);
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, PyTuple_GET_ITEM(args, 0));
        Py_DECREF(path_bytes);
        return -1;
    }
    Py_DECREF(path_bytes);
    self->dir = dir;
    self->batch = batch;
    self->check_readable = check_readable;
    self->busy = 0;
    return 0;
}

static void lister_dealloc(Lister *self) {
    lister_close_dir(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *lister_page(Lister *self, PyObject *args) {
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n:page", &limit)) return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be at least 1");
        return NULL;
    }
    if (!self->dir || self->busy) {
        PyErr_SetString(PyExc_ValueError, self->busy ? "Lister is in use by another thread" : "Lister is closed");
        return NULL;
    }
    Listing l;
    memset(&l, 0, sizeof l);
    int err, done;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    err = list_some(self->dir, self->batch, self->check_readable, limit, &l, &done);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyObject *result = NULL;
    if (err == ENOMEM) PyErr_NoMemory();
    else if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    } else result = listing_tuple(&l, done);
    listing_free(&l);
    return result;
}

static PyObject *lister_close(Lister *self, PyObject *unused) {
    (void)unused;
    if (self->busy) {
        PyErr_SetString(PyExc_ValueError, "Lister is in use by another thread");
        return NULL;
    }
    lister_close_dir(self);
    Py_RETURN_NONE;
}

static PyMethodDef lister_methods[] = {
    {"page", (PyCFunction)lister_page, METH_VARARGS,
     "page(limit) -> (batches, files, directories, others, unreadable, done): the next at most limit entries"},
    {"close", (PyCFunction)lister_close, METH_NOARGS, "close() -> None: close the directory (idempotent)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ListerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "irods_ingest._listing.Lister",
    .tp_basicsize = sizeof(Lister),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lister(path, batch, check_readable): a directory listed by name, a page at a time",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)lister_init,
    .tp_dealloc = (destructor)lister_dealloc,
    .tp_methods = lister_methods,
};

static PyMethodDef methods[] = {
    {"list_by_name", list_by_name, METH_VARARGS,
     "list_by_name(path, batch, check_readable) -> (batches, files, directories, others, unreadable)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "irods_ingest._listing", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__listing(void) {
    if (PyType_Ready(&ListerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ListerType);
    if (PyModule_AddObject(m, "Lister", (PyObject *)&ListerType) < 0) {
        Py_DECREF(&ListerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
