/* The encoders' inner loops in C: level 1's search (coding/greedy_search.py search_tries),
 * the candidates' Gaussians and each search step's scores with their best pairs; and level
 * 2's candidates' log-weights (coding/importance.py importance_encode).
 *
 * torch makes a shard's candidates in a dozen passes over memory (the hash, the inverse-CDF
 * transform, the square) and its scores as a matrix product written out in full and then
 * sorted; here each candidate is made once in registers, and each score is compared with
 * the best kept so far as soon as it is computed, never stored.
 *
 * fill(keys, n_cand, dims, out, threads): keys, n contiguous int32 block keys; out, a
 *     contiguous float32 buffer of n x (2 dims + 1) x n_cand, receives for block b
 *         out[b, d, c] = G(word(keys[b], c, d)),  out[b, dims + d, c] = its square,
 *         out[b, 2 dims, c] = 1
 *     (words and G: formats/nnc-v1.md §4, nnc/coding/prng.py). The words are exact; G is
 *     Giles' single-precision erfinv (the spec's reference) evaluated in binary32, within
 *     3 binary32 ulps of the reference over all 2^24 inputs (tests/test_kernels.py; the
 *     spec allows 8). Encoder only: no decoder depends on it.
 * beam_step(s, idx, mu, var, sigma, look, act, rhs, n, tries, beams, dims, shards, n_cand,
 *     width, new_s, new_idx, threads): one shard of the beam search, for n blocks and their
 *     tries at once. Try t of block b has ``beams`` partial samples s[b, t] (dims floats) with
 *     their indices idx[b, t] (``shards`` int64 each), the standardized target N(mu[b],
 *     var[b]), the shard's scale sigma[b, t] and the variance look[b, t] its later shards
 *     will add; rhs[b] holds the shard's candidates ([g; g^2; 1] as fill writes it). Every
 *     (beam, candidate) pair is scored, sum_d w (s + sigma g - mu)^2 with w = 1 / (var +
 *     look), the ``width`` lowest kept (equal scores: either, as torch's topk), and written, best
 *     first, to new_s[b, t] (width x dims) and new_idx[b, t] (width x (shards + 1), the
 *     beam's indices and the candidate). A try with act[b, t] = 0 is finished: its beams are
 *     kept (padded with copies of the last one) and their indices get -1. The g^2 terms are
 *     summed once per try, not per beam (w and sigma are the try's), and the scores are
 *     compared with the best kept as they are computed, never stored.
 * level2_weights(keys, pos, mean, std, rows, logw, n_cand, threads): for each dimension i of a
 *     group of level 2, with x_c = G(word(keys[i], c, pos[i])) (keys: the group's block key),
 *     logw[rows[i], c] += x_c^2 / 2 - ((x_c - mean[i]) / std[i])^2 / 2, in the order of i:
 *     log q(x) - log p(x) summed over the group's dimensions (up to a constant).
 * gaussians(words, out): out[i] = G(words[i]) (the tests check G with it).
 * ISA: the kernels this CPU runs: "avx512" (AVX-512 F, VL and DQ), "avx2+fma" or
 *     "baseline" (on x86-64 they are compiled three times and picked when the module
 *     loads; elsewhere once, for the compiler's baseline). The environment variable
 *     NNC_KERNELS=avx2 or baseline caps the choice (for measuring the others' speed).
 *
 * Work is split over ``threads`` POSIX threads, the GIL released.
 */
#ifndef KERNELS

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_K 256          /* beam_step's width */
#define ROWS 4             /* beams scored together: ROWS x 2 vectors of candidates in registers */


static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

static inline float as_float(uint32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline uint32_t as_u32(float f) { uint32_t i; memcpy(&i, &f, 4); return i; }

/* natural log of a positive normal binary32 value: reduce to m in [sqrt(1/2), sqrt(2)),
 * then log(m) = 2 atanh(s), s = (m - 1) / (m + 1), by the usual minimax polynomial in s^2
 * (within 1 ulp) */
static inline float log_positive(float a) {
    uint32_t i = as_u32(a) + (0x3f800000u - 0x3f3504f3u);
    float k = (float)((int32_t)(i >> 23) - 0x7f);
    float f = as_float((i & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s, w = z * z;
    float r = z * (0.66666662693f + w * 0.28498786688f) + w * (0.40000972152f + w * 0.24279078841f);
    float hf = 0.5f * f * f;
    return s * (hf + r) + k * 9.0580006145e-06f - hf + f + k * 6.9313812256e-01f;
}

/* G of the 24 high bits of a word: sqrt(2) erfinv(x), x = (2k + 1) / 2^24 - 1, both of
 * Giles' branches computed and one kept (so that loops of it vectorize) */
static inline float gaussian(uint32_t word) {
    float x = (float)(int32_t)(word >> 8) * 0x1p-23f + (0x1p-24f - 1.0f);
    float w = -log_positive((1.0f - x) * (1.0f + x));
    float t = w - 2.5f;
    float p = 2.81022636e-08f;
    p = 3.43273939e-07f + p * t;
    p = -3.5233877e-06f + p * t;
    p = -4.39150654e-06f + p * t;
    p = 0.00021858087f + p * t;
    p = -0.00125372503f + p * t;
    p = -0.00417768164f + p * t;
    p = 0.246640727f + p * t;
    p = 1.50140941f + p * t;
    float u = __builtin_sqrtf(w) - 3.0f;
    float q = -0.000200214257f;
    q = 0.000100950558f + q * u;
    q = 0.00134934322f + q * u;
    q = -0.00367342844f + q * u;
    q = 0.00573950773f + q * u;
    q = -0.0076224613f + q * u;
    q = 0.00943887047f + q * u;
    q = 1.00167406f + q * u;
    q = 2.83297682f + q * u;
    return ((w < 5.0f ? p : q) * x) * 1.41421356f;
}

/* a < b, NaN after every number (so that a NaN score is never kept before a real one) */
static inline int before(float a, float b) { return a < b || (b != b && a == a); }

/* keeps the k lowest values seen (val, ascending; equal values: the one seen first) and
 * their positions */
static inline void keep(float v, int64_t p, float *val, int64_t *pos, int *kept, int k) {
    if (*kept == k && !before(v, val[k - 1]))
        return;
    int j = *kept < k ? (*kept)++ : k - 1;
    while (j > 0 && before(v, val[j - 1])) {
        val[j] = val[j - 1];
        pos[j] = pos[j - 1];
        j--;
    }
    val[j] = v;
    pos[j] = p;
}

typedef struct {
    const float *s;        /* n x tries x beams x dims */
    const int64_t *idx;    /* n x tries x beams x shards */
    const float *mu, *var; /* n x dims */
    const float *sigma, *look;   /* n x tries */
    const uint8_t *act;    /* n x tries */
    const float *rhs;      /* n x (2 dims + 1) x n_cand */
    Py_ssize_t tries, beams, dims, shards, n_cand;
    int width;
    float *new_s;          /* n x tries x width x dims */
    int64_t *new_idx;      /* n x tries x width x (shards + 1) */
    int failed;            /* out of memory */
} BeamCtx;

/* the kernels, once per instruction set: KERNEL(name) names each version */
#define KERNELS 1
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)   /* clang: no pragma target */
#define X86_KERNELS 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#define KERNEL(name) name##_avx512
#define VW 16
#include "_kernels.c"   /* this file, its KERNELS part */
#undef KERNEL
#undef VW
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define KERNEL(name) name##_avx2
#define VW 8
#include "_kernels.c"
#undef KERNEL
#undef VW
#pragma GCC pop_options
#endif
#define KERNEL(name) name##_base
#define VW 8
#include "_kernels.c"
#undef KERNEL
#undef VW

typedef struct {
    const char *isa;
    void (*fill_block)(uint32_t key, int n_cand, int dims, float *out, uint32_t *h);
    void (*beam_block)(const BeamCtx *bc, Py_ssize_t i, float *quad, float *lhs);
    void (*weights)(const uint32_t *keys, const int32_t *pos, const float *mean,
                    const float *std, const int32_t *rows, float *logw, Py_ssize_t n,
                    int n_cand);
    void (*map_gaussian)(const uint32_t *words, float *out, Py_ssize_t n);
} Kernels;

#define KERNEL_SET(isa, s) {isa, fill_block_##s, beam_block_##s, weights_##s, map_gaussian_##s}
static const Kernels BASE = KERNEL_SET("baseline", base);
#ifdef X86_KERNELS
static const Kernels AVX2 = KERNEL_SET("avx2+fma", avx2);
static const Kernels AVX512 = KERNEL_SET("avx512", avx512);
#endif
static const Kernels *K = &BASE;   /* the set this CPU runs (PyInit__kernels) */

/* ---- running a function over ranges of rows on several threads, the GIL released ---- */

typedef void (*RangeFn)(void *ctx, Py_ssize_t first, Py_ssize_t last);

typedef struct {
    RangeFn fn;
    void *ctx;
    Py_ssize_t first, last;
} Part;

static void *run_part(void *arg) {
    Part *p = (Part *)arg;
    p->fn(p->ctx, p->first, p->last);
    return NULL;
}

#define MAX_THREADS 64

/* fn over [0, n) in ``threads`` ranges (a thread that cannot start: its range runs here) */
static void parallel(RangeFn fn, void *ctx, Py_ssize_t n, int threads) {
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > n)
        threads = (int)n;
    if (threads < 1)
        threads = 1;
    Part parts[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS];
    Py_BEGIN_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        parts[t] = (Part){fn, ctx, n * t / threads, n * (t + 1) / threads};
        started[t] = t > 0 && pthread_create(&ids[t], NULL, run_part, &parts[t]) == 0;
    }
    for (int t = 0; t < threads; t++)
        if (!started[t])
            run_part(&parts[t]);
    for (int t = 0; t < threads; t++)
        if (started[t])
            pthread_join(ids[t], NULL);
    Py_END_ALLOW_THREADS
}

static void release(Py_buffer *bufs, int count) {
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&bufs[i]);
}

/* the product of ``count`` sizes, or -1 where one is negative or it overflows */
static Py_ssize_t product(const Py_ssize_t *f, int count) {
    Py_ssize_t r = 1;
    for (int i = 0; i < count; i++)
        if (f[i] < 0 || __builtin_mul_overflow(r, f[i], &r))
            return -1;
    return r;
}

/* whether a buffer's items are of ``kind``: 'f' float32, 'i' 32-bit integers, 'l' 64-bit
 * integers, 'b' bytes */
static int of_kind(const Py_buffer *b, char kind) {
    const char *f = b->format ? b->format : "B";
    while (*f && strchr("@=<>!", *f))
        f++;
    if (f[0] && f[1])
        return 0;
    switch (kind) {
    case 'f': return b->itemsize == 4 && *f == 'f';
    case 'i': return b->itemsize == 4 && strchr("iIlL", *f) != NULL;
    case 'l': return b->itemsize == 8 && strchr("lLqQ", *f) != NULL;
    default: return b->itemsize == 1 && strchr("bB?c", *f) != NULL;
    }
}

/* buffers of Python objects: C-contiguous, of the given item kinds (types[i]) and numbers of
 * items (counts[i]; -1: any); the arguments from ``outputs`` on are written to */
static int get_buffers(PyObject **objs, Py_buffer *bufs, const char *types,
                       const Py_ssize_t *counts, int count, int outputs, const char *what) {
    for (int i = 0; i < count; i++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (i >= outputs ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objs[i], &bufs[i], flags) < 0) {
            release(bufs, i);
            return -1;
        }
        const char *problem = NULL;
        if (!of_kind(&bufs[i], types[i]))
            problem = types[i] == 'f' ? "is not float32" : types[i] == 'i' ? "is not int32"
                      : types[i] == 'l' ? "is not int64" : "is not bytes";
        else if (counts[i] >= 0 && bufs[i].len != counts[i] * bufs[i].itemsize)
            problem = "has the wrong size";
        if (problem) {
            PyErr_Format(PyExc_ValueError, "%s: argument %d %s", what, i, problem);
            release(bufs, i + 1);
            return -1;
        }
    }
    return 0;
}

/* ---- fill ---- */

typedef struct {
    const uint32_t *keys;
    int n_cand, dims;
    float *out;
    int failed;            /* out of memory */
} FillCtx;

static void fill_range(void *arg, Py_ssize_t first, Py_ssize_t last) {
    FillCtx *fc = (FillCtx *)arg;
    size_t stride = (size_t)(2 * fc->dims + 1) * fc->n_cand;
    uint32_t *h = malloc(sizeof(uint32_t) * (size_t)fc->n_cand);
    if (!h) {
        fc->failed = 1;
        return;
    }
    for (Py_ssize_t b = first; b < last; b++)
        K->fill_block(fc->keys[b], fc->n_cand, fc->dims, fc->out + stride * b, h);
    free(h);
}

static PyObject *fill(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    int n_cand, dims, threads;
    if (!PyArg_ParseTuple(args, "OiiOi", &objs[0], &n_cand, &dims, &objs[1], &threads))
        return NULL;
    if (n_cand <= 0 || dims <= 0 || dims > (1 << 16) || n_cand > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "fill: n_cand and dims out of range");
        return NULL;
    }
    Py_buffer bufs[2];
    Py_ssize_t counts[2] = {-1, -1};
    if (get_buffers(objs, bufs, "if", counts, 2, 1, "fill") < 0)
        return NULL;
    Py_ssize_t n = bufs[0].len / 4, f[3] = {n, 2 * (Py_ssize_t)dims + 1, n_cand};
    Py_ssize_t want = product(f, 3);
    if (want < 0 || bufs[1].len != want * 4) {
        release(bufs, 2);
        PyErr_SetString(PyExc_ValueError, "fill: out must hold n x (2 dims + 1) x n_cand");
        return NULL;
    }
    FillCtx fc = {(const uint32_t *)bufs[0].buf, n_cand, dims, (float *)bufs[1].buf, 0};
    parallel(fill_range, &fc, n, threads);
    release(bufs, 2);
    if (fc.failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- beam_step ---- */

static void beam_range(void *arg, Py_ssize_t first, Py_ssize_t last) {
    BeamCtx *bc = (BeamCtx *)arg;
    float *quad = malloc(sizeof(float) * (size_t)bc->n_cand);
    float *lhs = malloc(sizeof(float) * (size_t)(bc->beams * (2 * bc->dims + 1)));
    if (quad && lhs)
        for (Py_ssize_t i = first; i < last; i++)
            K->beam_block(bc, i, quad, lhs);
    else
        bc->failed = 1;
    free(quad);
    free(lhs);
}

static PyObject *beam_step(PyObject *self, PyObject *args) {
    PyObject *objs[10];
    Py_ssize_t n, tries, beams, dims, shards, n_cand;
    int width, threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnnnnnniOOi", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &objs[6], &objs[7], &n, &tries, &beams, &dims,
                          &shards, &n_cand, &width, &objs[8], &objs[9], &threads))
        return NULL;
    if (n < 0 || n > (1L << 40) || tries < 1 || tries > 1024 || beams < 1 || beams > MAX_K
            || dims < 1 || dims > (1 << 16) || shards < 0 || shards > (1 << 16) || n_cand < 32
            || n_cand > (1 << 24) || n_cand % 32 || width < 1 || width > MAX_K
            || width > beams * n_cand) {
        PyErr_SetString(PyExc_ValueError, "beam_step: sizes out of range (n_cand: a multiple "
                        "of 32; beams and width at most 256, width <= beams n_cand)");
        return NULL;
    }
    Py_ssize_t J = 2 * dims + 1;
    Py_ssize_t f[10][4] = {{n, tries, beams, dims}, {n, tries, beams, shards}, {n, dims, 1, 1},
                           {n, dims, 1, 1}, {n, tries, 1, 1}, {n, tries, 1, 1},
                           {n, tries, 1, 1}, {n, J, n_cand, 1}, {n, tries, width, dims},
                           {n, tries, width, shards + 1}};
    Py_ssize_t counts[10];
    for (int i = 0; i < 10; i++)
        if ((counts[i] = product(f[i], 4)) < 0) {
            PyErr_SetString(PyExc_ValueError, "beam_step: sizes out of range");
            return NULL;
        }
    Py_buffer bufs[10];
    if (get_buffers(objs, bufs, "flffffbffl", counts, 10, 8, "beam_step") < 0)
        return NULL;
    BeamCtx bc = {bufs[0].buf, bufs[1].buf, bufs[2].buf, bufs[3].buf, bufs[4].buf, bufs[5].buf,
                  bufs[6].buf, bufs[7].buf, tries, beams, dims, shards, n_cand, width,
                  bufs[8].buf, bufs[9].buf, 0};
    parallel(beam_range, &bc, n, threads);
    release(bufs, 10);
    if (bc.failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- level2_weights ---- */

typedef struct {
    const uint32_t *keys;
    const int32_t *pos;
    const float *mean, *std;
    const int32_t *rows;
    float *logw;
    int n_cand;
    Py_ssize_t bounds[MAX_THREADS + 1];    /* thread t: dimensions bounds[t] ... bounds[t+1] */
} WeightsCtx;

static void weights_range(void *arg, Py_ssize_t first, Py_ssize_t last) {
    const WeightsCtx *wc = (const WeightsCtx *)arg;
    for (Py_ssize_t t = first; t < last; t++) {
        Py_ssize_t a = wc->bounds[t], n = wc->bounds[t + 1] - a;
        K->weights(wc->keys + a, wc->pos + a, wc->mean + a, wc->std + a, wc->rows + a,
                   wc->logw, n, wc->n_cand);
    }
}

static PyObject *level2_weights(PyObject *self, PyObject *args) {
    PyObject *objs[6];
    int n_cand, threads;
    if (!PyArg_ParseTuple(args, "OOOOOOii", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &n_cand, &threads))
        return NULL;
    if (n_cand <= 0 || n_cand > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "level2_weights: n_cand must be positive");
        return NULL;
    }
    Py_buffer bufs[6];
    Py_ssize_t counts[6] = {-1, -1, -1, -1, -1, -1};
    if (get_buffers(objs, bufs, "iiffif", counts, 6, 5, "level2_weights") < 0)
        return NULL;
    Py_ssize_t n = bufs[0].len / 4, n_rows = bufs[5].len / 4 / n_cand;
    if (bufs[1].len != n * 4 || bufs[2].len != n * 4 || bufs[3].len != n * 4
            || bufs[4].len != n * 4 || bufs[5].len != n_rows * n_cand * 4) {
        release(bufs, 6);
        PyErr_SetString(PyExc_ValueError, "level2_weights: keys, pos, mean, std and rows must "
                        "have one item per dimension, logw rows of n_cand");
        return NULL;
    }
    const int32_t *rows = (const int32_t *)bufs[4].buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= n_rows || (i > 0 && rows[i] < rows[i - 1])) {
            release(bufs, 6);
            PyErr_SetString(PyExc_ValueError, "level2_weights: rows must ascend within logw");
            return NULL;
        }
    /* threads take whole rows (a group's dimensions add to one row): split where rows change */
    WeightsCtx wc = {bufs[0].buf, bufs[1].buf, bufs[2].buf, bufs[3].buf, rows, bufs[5].buf,
                     n_cand, {0}};
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    for (int t = 1; t < threads; t++) {
        Py_ssize_t b = n * t / threads;
        if (b < wc.bounds[t - 1])
            b = wc.bounds[t - 1];
        while (b > 0 && b < n && rows[b] == rows[b - 1])
            b++;
        wc.bounds[t] = b;
    }
    wc.bounds[threads] = n;
    parallel(weights_range, &wc, threads, threads);
    release(bufs, 6);
    Py_RETURN_NONE;
}

/* ---- gaussians ---- */

static PyObject *gaussians(PyObject *self, PyObject *args) {
    PyObject *objs[2];
    if (!PyArg_ParseTuple(args, "OO", &objs[0], &objs[1]))
        return NULL;
    Py_buffer bufs[2];
    Py_ssize_t counts[2] = {-1, -1};
    if (get_buffers(objs, bufs, "if", counts, 2, 1, "gaussians") < 0)
        return NULL;
    if (bufs[0].len != bufs[1].len) {
        release(bufs, 2);
        PyErr_SetString(PyExc_ValueError, "gaussians: words and out of one length");
        return NULL;
    }
    K->map_gaussian((const uint32_t *)bufs[0].buf, (float *)bufs[1].buf, bufs[0].len / 4);
    release(bufs, 2);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS,
     "fill(keys, n_cand, dims, out, threads): the candidates' Gaussians, their squares and "
     "ones, per block (see the module's source)."},
    {"beam_step", beam_step, METH_VARARGS,
     "beam_step(s, idx, mu, var, sigma, look, act, rhs, n, tries, beams, dims, shards, "
     "n_cand, width, new_s, new_idx, threads): one shard of the beam search (see the "
     "module's source)."},
    {"level2_weights", level2_weights, METH_VARARGS,
     "level2_weights(keys, pos, mean, std, rows, logw, n_cand, threads): level 2's log-weights of "
     "each dimension's candidates, added to logw's rows (see the module's source)."},
    {"gaussians", gaussians, METH_VARARGS, "gaussians(words, out): out[i] = G(words[i])."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The encoders' inner loops in C.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    const char *want = getenv("NNC_KERNELS");    /* avx512, avx2 or baseline: at most that */
    want = want && *want ? want : "avx512";
#ifdef X86_KERNELS
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                 && __builtin_cpu_supports("avx512dq");
    if (avx512 && !strcmp(want, "avx512"))
        K = &AVX512;
    else if (avx2 && strcmp(want, "baseline"))
        K = &AVX2;
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "ISA", K->isa) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

#else  /* KERNELS: included twice above, once per instruction set */

static void KERNEL(fill_block)(uint32_t key, int n_cand, int dims, float *out, uint32_t *h) {
    for (int c = 0; c < n_cand; c++)
        h[c] = mix32(key ^ (uint32_t)c);
    for (int d = 0; d < dims; d++) {
        float *restrict g = out + (size_t)d * n_cand;
        float *restrict g2 = out + (size_t)(dims + d) * n_cand;
        const uint32_t *restrict hc = h;
        for (int c = 0; c < n_cand; c++) {
            float v = gaussian(mix32(hc[c] ^ (uint32_t)d));
            g[c] = v;
            g2[c] = v * v;
        }
    }
    float *one = out + (size_t)2 * dims * n_cand;
    for (int c = 0; c < n_cand; c++)
        one[c] = 1.0f;
}

static void KERNEL(map_gaussian)(const uint32_t *words, float *out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = gaussian(words[i]);
}

/* vectors of VW floats (the pass's width: 16 with AVX-512, else 8) */
typedef float KERNEL(vf) __attribute__((vector_size(VW * 4)));
typedef int32_t KERNEL(vi) __attribute__((vector_size(VW * 4)));
#define VF KERNEL(vf)
#define VI KERNEL(vi)

/* the ``k`` lowest scores lhs (B x J) @ rhs (J x C), J = 2 D + 1, of rows [2 sigma w r |
 * sigma^2 w | sum w r^2] whose middle part is the same for every row, against rhs = [g;
 * g^2; 1]: their positions b C + c in pos, ascending */
static void KERNEL(lowest)(const float *lhs, const float *rhs, Py_ssize_t B, Py_ssize_t D,
                           Py_ssize_t C, int k, float *quad, float *val, int64_t *pos) {
    Py_ssize_t J = 2 * D + 1;
    for (Py_ssize_t c = 0; c < C; c++)      /* quad = lhs[0, D:2D] @ g^2: once, not per row */
        quad[c] = 0.0f;
    for (Py_ssize_t j = D; j < 2 * D; j++) {
        const float *restrict g2 = rhs + j * C;
        float *restrict qd = quad;
        float a = lhs[j];
        for (Py_ssize_t c = 0; c < C; c++)
            qd[c] += a * g2[c];
    }
    int kept = 0;
    for (Py_ssize_t b0 = 0; b0 < B; b0 += ROWS) {
        int rows = B - b0 < ROWS ? (int)(B - b0) : ROWS;
        const float *a[ROWS];
        for (int q = 0; q < ROWS; q++)
            a[q] = lhs + (b0 + (q < rows ? q : 0)) * J;
        for (Py_ssize_t c0 = 0; c0 < C; c0 += 2 * VW) {
            VF acc[ROWS][2], q0, q1;
            memcpy(&q0, quad + c0, sizeof(VF));
            memcpy(&q1, quad + c0 + VW, sizeof(VF));
            for (int q = 0; q < ROWS; q++) {       /* + the row's constant, sum w r^2 */
                acc[q][0] = q0 + a[q][2 * D];
                acc[q][1] = q1 + a[q][2 * D];
            }
            for (Py_ssize_t j = 0; j < D; j++) {
                VF g0, g1;
                memcpy(&g0, rhs + j * C + c0, sizeof(VF));
                memcpy(&g1, rhs + j * C + c0 + VW, sizeof(VF));
                for (int q = 0; q < ROWS; q++) {
                    acc[q][0] += a[q][j] * g0;
                    acc[q][1] += a[q][j] * g1;
                }
            }
            for (int q = 0; q < rows; q++) {
                /* once k are kept, most tiles hold no score under the k-th: one vector test
                 * (scores that are not numbers go through keep(), which puts them last) */
                if (kept == k && val[k - 1] == val[k - 1]) {
                    float worst = val[k - 1];
                    VI lower = (acc[q][0] < worst) | (acc[q][1] < worst);
                    uint64_t any[VW / 2], some = 0;
                    memcpy(any, &lower, sizeof(VI));
                    for (int w = 0; w < VW / 2; w++)
                        some |= any[w];
                    if (!some)
                        continue;
                }
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < VW; l++)
                        keep(acc[q][h][l], (b0 + q) * C + c0 + h * VW + l, val, pos, &kept, k);
            }
        }
    }
}

static void KERNEL(beam_block)(const BeamCtx *bc, Py_ssize_t i, float *quad, float *lhs) {
    Py_ssize_t T = bc->tries, B = bc->beams, D = bc->dims, S = bc->shards, C = bc->n_cand;
    Py_ssize_t J = 2 * D + 1, W = bc->width;
    const float *rhs = bc->rhs + i * J * C, *mu = bc->mu + i * D, *var = bc->var + i * D;
    for (Py_ssize_t t = 0; t < T; t++) {
        Py_ssize_t it = i * T + t;
        const float *s = bc->s + it * B * D;
        const int64_t *idx = bc->idx + it * B * S;
        float *ns = bc->new_s + it * W * D;
        int64_t *ni = bc->new_idx + it * W * (S + 1);
        if (!bc->act[it]) {                 /* finished: its beams kept, padded with copies */
            for (Py_ssize_t j = 0; j < W; j++) {
                Py_ssize_t b = j < B ? j : B - 1;
                memcpy(ns + j * D, s + b * D, sizeof(float) * (size_t)D);
                memcpy(ni + j * (S + 1), idx + b * S, sizeof(int64_t) * (size_t)S);
                ni[j * (S + 1) + S] = -1;
            }
            continue;
        }
        float sigma = bc->sigma[it], look = bc->look[it], two_sigma = 2.0f * sigma;
        float sigma2 = sigma * sigma;
        for (Py_ssize_t b = 0; b < B; b++) {       /* the rows [2 sigma w r | sigma^2 w | w r^2] */
            float *row = lhs + b * J, sum = 0.0f;
            for (Py_ssize_t d = 0; d < D; d++) {
                float w = 1.0f / (var[d] + look), r = s[b * D + d] - mu[d], wr = w * r;
                row[d] = wr * two_sigma;
                row[D + d] = w * sigma2;
                sum += wr * r;
            }
            row[2 * D] = sum;
        }
        float val[MAX_K];
        int64_t pos[MAX_K];
        KERNEL(lowest)(lhs, rhs, B, D, C, (int)W, quad, val, pos);
        for (Py_ssize_t j = 0; j < W; j++) {       /* the new beams, best first */
            Py_ssize_t b = pos[j] / C, c = pos[j] % C;
            for (Py_ssize_t d = 0; d < D; d++)
                ns[j * D + d] = s[b * D + d] + rhs[d * C + c] * sigma;
            memcpy(ni + j * (S + 1), idx + b * S, sizeof(int64_t) * (size_t)S);
            ni[j * (S + 1) + S] = c;
        }
    }
}

static void KERNEL(weights)(const uint32_t *keys, const int32_t *pos, const float *mean,
                           const float *std, const int32_t *rows, float *logw, Py_ssize_t n,
                           int n_cand) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t key = keys[i], p = (uint32_t)pos[i];
        float m = mean[i], s = std[i];
        float *restrict row = logw + (size_t)rows[i] * n_cand;
        for (int c = 0; c < n_cand; c++) {
            float x = gaussian(mix32(mix32(key ^ (uint32_t)c) ^ p));
            float d = (x - m) / s;
            row[c] += 0.5f * (x * x) - 0.5f * (d * d);
        }
    }
}

#undef VF
#undef VI
#endif
