# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cross-sectional kernels: one row (date) at a time along axis 1, rows spread over OpenMP threads.

A cell takes part when its value is not NaN and, if a mask is given, the mask is true there; every other
cell of the output is NaN. Unlike the time-series kernels, infinities are ordinary values here (pandas'
``rank``/``mean``/``std``/``quantile`` on a row keep them). Use :mod:`qops.kernels`, which validates input.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.math cimport NAN, floor, sqrt
from libc.stdlib cimport free, malloc
cimport openmp


cdef extern from "math.h" nogil:
    bint c_isfinite "isfinite"(double)


ctypedef void (*row_t)(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                       double* buf) noexcept nogil


cdef int _threads(int num_threads) noexcept nogil:
    if num_threads > 0:
        return num_threads
    return openmp.omp_get_max_threads()


cdef inline void _swap(double* a, Py_ssize_t* ix, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef double t = a[i]
    cdef Py_ssize_t k
    a[i] = a[j]
    a[j] = t
    if ix != NULL:
        k = ix[i]
        ix[i] = ix[j]
        ix[j] = k


cdef inline Py_ssize_t _partition(double* a, Py_ssize_t* ix, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Hoare partition of a[lo..hi] around the median of its first, middle and last values (``ix`` carried
    along, may be NULL); returns j with a[lo..j] <= pivot <= a[j + 1..hi]."""
    cdef Py_ssize_t mid = lo + (hi - lo) // 2, i = lo - 1, j = hi + 1
    cdef double p
    if a[mid] < a[lo]:
        _swap(a, ix, mid, lo)
    if a[hi] < a[lo]:
        _swap(a, ix, hi, lo)
    if a[hi] < a[mid]:
        _swap(a, ix, hi, mid)
    p = a[mid]
    while True:
        i += 1
        while a[i] < p:
            i += 1
        j -= 1
        while a[j] > p:
            j -= 1
        if i >= j:
            return j
        _swap(a, ix, i, j)


cdef void _sort(double* a, Py_ssize_t* ix, Py_ssize_t n) noexcept nogil:
    """Sort n doubles (no NaN) ascending, carrying ``ix`` (may be NULL) along: quicksort (median of three,
    Hoare partition, larger side pushed so the stack stays below 2 * 64 entries), insertion sort on short
    ranges."""
    cdef Py_ssize_t stack[128]
    cdef Py_ssize_t top, lo, hi, i, j, k
    cdef double v
    if n < 2:
        return
    stack[0] = 0
    stack[1] = n - 1
    top = 2
    while top > 0:
        top -= 2
        lo = stack[top]
        hi = stack[top + 1]
        while hi - lo > 16:
            j = _partition(a, ix, lo, hi)
            # [lo, j] and [j + 1, hi]: push the larger, keep going on the smaller
            if j - lo < hi - j - 1:
                stack[top] = j + 1
                stack[top + 1] = hi
                hi = j
            else:
                stack[top] = lo
                stack[top + 1] = j
                lo = j + 1
            top += 2
        for i in range(lo + 1, hi + 1):
            v = a[i]
            k = ix[i] if ix != NULL else 0
            j = i - 1
            while j >= lo and a[j] > v:
                a[j + 1] = a[j]
                if ix != NULL:
                    ix[j + 1] = ix[j]
                j -= 1
            a[j + 1] = v
            if ix != NULL:
                ix[j + 1] = k


cdef double _select(double* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The k-th smallest (0-based) of n doubles (no NaN), partially reordering them (quickselect); afterwards
    a[k + 1:] holds only values >= a[k]."""
    cdef Py_ssize_t lo = 0, hi = n - 1, j
    while hi - lo > 16:
        j = _partition(a, NULL, lo, hi)
        if k <= j:
            hi = j
        else:
            lo = j + 1
    _sort(a + lo, NULL, hi - lo + 1)
    return a[k]


cdef inline bint _valid(const double* x, const unsigned char* m, Py_ssize_t j) noexcept nogil:
    return x[j] == x[j] and (m == NULL or m[j] != 0)


cdef inline Py_ssize_t _gather(const double* x, const unsigned char* m, Py_ssize_t N, double* buf) noexcept nogil:
    cdef Py_ssize_t j, n = 0
    for j in range(N):
        if _valid(x, m, j):
            buf[n] = x[j]
            n += 1
    return n


cdef inline void _fill(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double value) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(N):
        y[j] = value if _valid(x, m, j) else NAN


cdef inline double _row_mean(const double* x, const unsigned char* m, Py_ssize_t N, Py_ssize_t* count,
                             bint* finite) noexcept nogil:
    """Mean of the valid cells, anchored on the first one (exact for a constant row)."""
    cdef Py_ssize_t j, n = 0
    cdef double v, first = 0.0, acc = 0.0, naive = 0.0
    cdef bint all_finite = True
    for j in range(N):
        if _valid(x, m, j):
            v = x[j]
            if n == 0:
                first = v
            else:
                acc = acc + (v - first)
            naive = naive + v
            if not c_isfinite(v):
                all_finite = False
            n += 1
    count[0] = n
    finite[0] = all_finite
    if n == 0:
        return NAN
    if not all_finite:
        return naive / n
    return first + acc / n


cdef void _row_rank(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                    double* buf) noexcept nogil:
    """pandas' rank(pct=True): sort the valid cells with their columns, then give each run of ties the
    average of its ranks."""
    cdef Py_ssize_t* ix = <Py_ssize_t*>(buf + N)      # sizeof(Py_ssize_t) <= sizeof(double)
    cdef Py_ssize_t j, n = 0, i, k
    cdef double r
    for j in range(N):
        y[j] = NAN
        if _valid(x, m, j):
            buf[n] = x[j]
            ix[n] = j
            n += 1
    _sort(buf, ix, n)
    i = 0
    while i < n:
        k = i + 1
        while k < n and buf[k] == buf[i]:
            k += 1
        r = ((i + 1 + k) / 2.0) / n
        for j in range(i, k):
            y[ix[j]] = r
        i = k


cdef void _row_mean_bc(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                       double* buf) noexcept nogil:
    cdef Py_ssize_t n
    cdef bint finite
    _fill(x, m, y, N, _row_mean(x, m, N, &n, &finite))


cdef void _row_demean(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                      double* buf) noexcept nogil:
    cdef Py_ssize_t n, j
    cdef bint finite
    cdef double mean = _row_mean(x, m, N, &n, &finite)
    for j in range(N):
        y[j] = x[j] - mean if _valid(x, m, j) else NAN


cdef void _row_zscore(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                      double* buf) noexcept nogil:
    cdef Py_ssize_t n, j
    cdef bint finite
    cdef double mean = _row_mean(x, m, N, &n, &finite)
    cdef double ss = 0.0, d, sd
    if n < 2 or not finite:
        _fill(x, m, y, N, NAN)
        return
    for j in range(N):
        if _valid(x, m, j):
            d = x[j] - mean
            ss = ss + d * d
    sd = sqrt(ss / (n - 1))
    if sd == 0:
        _fill(x, m, y, N, NAN)
        return
    for j in range(N):
        y[j] = (x[j] - mean) / sd if _valid(x, m, j) else NAN


cdef void _row_quantile(const double* x, const unsigned char* m, double* y, Py_ssize_t N, double q,
                        double* buf) noexcept nogil:
    """numpy's 'linear' quantile (including its two-sided lerp), broadcast to the valid cells."""
    cdef Py_ssize_t n, lo, hi, i
    cdef double vi, gamma, a, b, diff, res
    n = _gather(x, m, N, buf)
    if n == 0:
        _fill(x, m, y, N, NAN)
        return
    vi = q * (n - 1)
    lo = <Py_ssize_t>floor(vi)
    if lo < 0:
        lo = 0
    if lo > n - 1:
        lo = n - 1
    hi = lo + 1
    if hi > n - 1:
        hi = n - 1
    gamma = vi - lo
    a = _select(buf, n, lo)
    b = a
    for i in range(lo + 1, hi + 1):     # the next order statistic: the smallest value right of lo
        b = buf[i]
    for i in range(lo + 1, n):
        if buf[i] < b:
            b = buf[i]
    diff = b - a
    if gamma >= 0.5:
        res = b - diff * (1.0 - gamma)
    else:
        res = a + diff * gamma
    _fill(x, m, y, N, res)


cdef object _drive(row_t f, const double[:, ::1] x, object mask, double q, int num_threads):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], i
    cdef int nt = _threads(num_threads)
    cdef const unsigned char[:, ::1] mv
    cdef const unsigned char* mp = NULL
    cdef double* big
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    if mask is not None:
        mv = mask
        if mv.shape[0] != T or mv.shape[1] != N:
            raise ValueError("mask must have the same shape as x")
        mp = &mv[0, 0]
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0]
    big = <double*>malloc(2 * nt * N * sizeof(double))  # per thread: N values, N column indices
    if big == NULL:
        raise MemoryError("qops cross-sectional kernel could not allocate its work buffer")
    try:
        with nogil:
            for i in prange(T, num_threads=nt, schedule="static"):
                f(xp + i * N, (mp + i * N) if mp != NULL else NULL, op + i * N, N, q, big + 2 * threadid() * N)
    finally:
        free(big)
    return out


def cs_rank(const double[:, ::1] x, object mask=None, int num_threads=0):
    """Percentile rank (average ties, in (0, 1]) of each valid cell within its row."""
    return _drive(_row_rank, x, mask, 0.0, num_threads)


def cs_mean(const double[:, ::1] x, object mask=None, int num_threads=0):
    """Row mean of the valid cells, written to every valid cell."""
    return _drive(_row_mean_bc, x, mask, 0.0, num_threads)


def cs_demean(const double[:, ::1] x, object mask=None, int num_threads=0):
    """Each valid cell minus its row mean."""
    return _drive(_row_demean, x, mask, 0.0, num_threads)


def cs_zscore(const double[:, ::1] x, object mask=None, int num_threads=0):
    """(x - row mean) / row std (ddof=1); NaN for rows with < 2 valid cells, zero spread or infinities."""
    return _drive(_row_zscore, x, mask, 0.0, num_threads)


def cs_quantile(const double[:, ::1] x, double q, object mask=None, int num_threads=0):
    """Row q-quantile (linear interpolation) of the valid cells, written to every valid cell."""
    return _drive(_row_quantile, x, mask, q, num_threads)
