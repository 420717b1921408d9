# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whole-panel time-series kernels (rolling, expanding, EWM) on C-contiguous float64 (T, N) panels.

Every public function takes a C-contiguous float64 panel of shape (T, N) (time x instruments) and computes
one column at a time along axis 0, in C with the GIL released; columns are spread over OpenMP threads
(``num_threads <= 0``: the OpenMP default). Use :mod:`qops.kernels` rather than calling these directly:
it validates and converts the input.

Conventions shared by every kernel here:

- ``w`` is the effective window: ``window`` if ``0 < window < T``, else ``T`` (``window == 0`` means
  expanding, and a window longer than the panel is the same thing). Windows count rows, NaN rows included.
- ``+-inf`` is a missing value like NaN (pandas' rolling/expanding/ewm replace inf by NaN before reducing);
  only ``rolling_count`` counts infinities, as pandas does.
- Running-sum kernels keep sums of values *shifted* by an anchor (the window mean at the last rebuild),
  rebuild them from the window every ``w`` steps (amortised O(1)) and as soon as the window mean drifts far
  from the anchor, so a large offset (1e6 + noise) costs no precision. Constant windows are detected exactly
  with a run-length counter of equal values.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport NAN, fabs, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memmove
cimport openmp


cdef extern from "math.h" nogil:
    bint c_isfinite "isfinite"(double)
    bint c_signbit "signbit"(double)


ctypedef int (*col1_t)(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p) noexcept nogil
ctypedef int (*col2_t)(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st,
                       Py_ssize_t w, double p) noexcept nogil

# Rebuild the shifted sums when (mean - anchor)^2 > DRIFT * variance: the relative precision lost by the
# single-pass variance formula is then at most ~DRIFT * eps.
cdef double DRIFT = 100.0
cdef double ANCHOR_RTOL = 1e-13


# ----------------------------------------------------------------------------------------------------------
# drivers


cdef int _threads(int num_threads) noexcept nogil:
    if num_threads > 0:
        return num_threads
    return openmp.omp_get_max_threads()


cdef inline Py_ssize_t _eff_window(Py_ssize_t window, Py_ssize_t T) noexcept nogil:
    if window <= 0 or window > T:
        return T
    return window


# Columns are processed in tiles of TILE adjacent columns: a tile is transposed into a thread-local buffer
# (one contiguous series per column), the 1-D kernels run on contiguous memory, and the results are
# transposed back. Reading a (T, N) panel column by column with stride N would miss the cache on every row.
DEF TILE = 16


cdef inline void _gather_tile(const double* src, double* dst, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                              Py_ssize_t B) noexcept nogil:
    cdef Py_ssize_t t, b
    cdef const double* row
    for t in range(T):
        row = src + t * N + j0
        for b in range(B):
            dst[b * T + t] = row[b]


cdef inline void _scatter_tile(const double* src, double* dst, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                               Py_ssize_t B) noexcept nogil:
    cdef Py_ssize_t t, b
    cdef double* row
    for t in range(T):
        row = dst + t * N + j0
        for b in range(B):
            row[b] = src[b * T + t]


cdef int _tile1(col1_t f, const double* xp, double* op, Py_ssize_t T, Py_ssize_t N, Py_ssize_t k,
                Py_ssize_t w, double p) noexcept nogil:
    cdef Py_ssize_t j0 = k * TILE, B = N - k * TILE, b
    cdef int err = 0
    if B > TILE:
        B = TILE
    cdef double* xin = <double*>malloc(2 * B * T * sizeof(double))
    if xin == NULL:
        return 1
    cdef double* yout = xin + B * T
    _gather_tile(xp, xin, T, N, j0, B)
    for b in range(B):
        err += f(xin + b * T, yout + b * T, T, 1, w, p)
    _scatter_tile(yout, op, T, N, j0, B)
    free(xin)
    return err


cdef int _tile2(col2_t f, const double* ap, const double* bp, double* op, Py_ssize_t T, Py_ssize_t N,
                Py_ssize_t k, Py_ssize_t w, double p) noexcept nogil:
    cdef Py_ssize_t j0 = k * TILE, B = N - k * TILE, b
    cdef int err = 0
    if B > TILE:
        B = TILE
    cdef double* ain = <double*>malloc(3 * B * T * sizeof(double))
    if ain == NULL:
        return 1
    cdef double* bin_ = ain + B * T
    cdef double* yout = ain + 2 * B * T
    _gather_tile(ap, ain, T, N, j0, B)
    _gather_tile(bp, bin_, T, N, j0, B)
    for b in range(B):
        err += f(ain + b * T, bin_ + b * T, yout + b * T, T, 1, w, p)
    _scatter_tile(yout, op, T, N, j0, B)
    free(ain)
    return err


cdef object _drive1(col1_t f, const double[:, ::1] x, Py_ssize_t window, double p, int num_threads):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], k, w, ntiles
    cdef int err = 0, nt = _threads(num_threads)
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    ntiles = (N + TILE - 1) // TILE
    with nogil:
        if N == 1:
            err = f(xp, op, T, 1, w, p)
        else:
            for k in prange(ntiles, num_threads=nt, schedule="static"):
                err += _tile1(f, xp, op, T, N, k, w, p)
    if err:
        raise MemoryError("qops kernel could not allocate its work buffer")
    return out


cdef object _drive2(col2_t f, const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, double p,
                    int num_threads):
    cdef Py_ssize_t T = a.shape[0], N = a.shape[1], k, w, ntiles
    cdef int err = 0, nt = _threads(num_threads)
    if b.shape[0] != T or b.shape[1] != N:
        raise ValueError("a and b must have the same shape")
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    cdef double[:, ::1] o = out
    cdef const double* ap = &a[0, 0]
    cdef const double* bp = &b[0, 0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    ntiles = (N + TILE - 1) // TILE
    with nogil:
        if N == 1:
            err = f(ap, bp, op, T, 1, w, p)
        else:
            for k in prange(ntiles, num_threads=nt, schedule="static"):
                err += _tile2(f, ap, bp, op, T, N, k, w, p)
    if err:
        raise MemoryError("qops kernel could not allocate its work buffer")
    return out


# ----------------------------------------------------------------------------------------------------------
# sum / mean / var / std: shifted sums with periodic rebuild


cdef inline void _rebuild1(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t* n,
                           double* K, double* s1, double* s2) noexcept nogil:
    """Recompute count, anchor (= window mean) and the shifted sums over rows lo..hi (inclusive)."""
    cdef Py_ssize_t i, c = 0
    cdef double v, first = 0.0, acc = 0.0, k = 0.0, d, a1 = 0.0, a2 = 0.0
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            if c == 0:
                first = v
            else:
                acc = acc + (v - first)
            c += 1
    if c > 0:
        k = first + acc / c
        for i in range(lo, hi + 1):
            v = x[i * st]
            if c_isfinite(v):
                d = v - k
                a1 = a1 + d
                a2 = a2 + d * d
    n[0] = c
    K[0] = k
    s1[0] = a1
    s2[0] = a2


cdef inline bint _drifted(Py_ssize_t n, double K, double s1, double s2) noexcept nogil:
    """Whether the anchor is so far from the window mean that the shifted sums lose precision."""
    cdef double m, vb
    if n <= 0:
        return False
    m = s1 / n
    vb = s2 / n - m * m
    return m * m > DRIFT * vb and fabs(m) > ANCHOR_RTOL * fabs(K)


cdef int _col_moments(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                      int mode) noexcept nogil:
    # mode: 0 sum, 1 mean, 2 var, 3 std
    cdef Py_ssize_t t, lo, n = 0, run = 0, neg = 0, since = w
    cdef double v, vo, d, K = 0.0, s1 = 0.0, s2 = 0.0, last = NAN, r
    for t in range(T):
        v = x[t * st]
        lo = t - w + 1
        # bookkeeping that does not depend on the sums: negative count and run of equal values
        if lo > 0:
            vo = x[(lo - 1) * st]
            if c_isfinite(vo) and c_signbit(vo):
                neg -= 1
        if c_isfinite(v):
            if c_signbit(v):
                neg += 1
            if v == last:
                run += 1
            else:
                run = 1
            last = v
        # shifted sums
        if since >= w:
            _rebuild1(x, st, lo if lo > 0 else 0, t, &n, &K, &s1, &s2)
            since = 0
        else:
            if lo > 0:
                vo = x[(lo - 1) * st]
                if c_isfinite(vo):
                    n -= 1
                    d = vo - K
                    s1 = s1 - d
                    s2 = s2 - d * d
            if c_isfinite(v):
                n += 1
                d = v - K
                s1 = s1 + d
                s2 = s2 + d * d
            since += 1
            if n == 0:
                s1 = 0.0
                s2 = 0.0
            elif _drifted(n, K, s1, s2):
                _rebuild1(x, st, lo if lo > 0 else 0, t, &n, &K, &s1, &s2)
                since = 0
        # output
        if mode == 0:
            if n == 0:
                r = NAN
            elif run >= n:
                r = last * n
            else:
                r = n * K + s1
        elif mode == 1:
            if n == 0:
                r = NAN
            elif run >= n:
                r = last
            else:
                r = K + s1 / n
                if neg == 0 and r < 0:
                    r = 0.0
                elif neg == n and r > 0:
                    r = 0.0
        else:
            if n < 2:
                r = NAN
            elif run >= n:
                r = 0.0
            else:
                r = (s2 - s1 * (s1 / n)) / (n - 1)
                if r < 0:
                    r = 0.0
            if mode == 3:
                r = sqrt(r)
        y[t * st] = r
    return 0


cdef int _col_sum(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_moments(x, y, T, st, w, 0)


cdef int _col_mean(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    return _col_moments(x, y, T, st, w, 1)


cdef int _col_var(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_moments(x, y, T, st, w, 2)


cdef int _col_std(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_moments(x, y, T, st, w, 3)


# ----------------------------------------------------------------------------------------------------------
# count


cdef int _col_count(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                    double p) noexcept nogil:
    cdef Py_ssize_t t, lo, c = 0
    cdef double v
    for t in range(T):
        lo = t - w + 1
        if lo > 0:
            v = x[(lo - 1) * st]
            if v == v:
                c -= 1
        v = x[t * st]
        if v == v:
            c += 1
        y[t * st] = <double>c
    return 0


# ----------------------------------------------------------------------------------------------------------
# max / min / idxmax / idxmin: monotonic deques (ring buffers of row indices)


cdef int _col_extreme(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                      bint is_max, bint want_index) noexcept nogil:
    """Rolling max/min (value) or numpy-argmax/argmin-style 1-based position (index).

    The value deque keeps, for argmax, values in non-increasing order and pops only strictly smaller ones,
    so its front is the *first* occurrence of the maximum, as numpy's argmax returns. A second deque holds
    the missing rows of the window: numpy's argmax/argmin return the first NaN (pandas has turned inf into
    NaN before), so the answer is that row when there is one.
    """
    cdef Py_ssize_t cap = w + 1
    cdef Py_ssize_t* dq = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
    cdef double* dv = <double*>malloc(cap * sizeof(double))
    cdef Py_ssize_t* nq = NULL
    cdef Py_ssize_t head = 0, size = 0, nhead = 0, nsize = 0, back, t, lo, s, n = 0
    cdef double v, bv
    cdef bint pop
    if want_index:
        nq = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
    if dq == NULL or dv == NULL or (want_index and nq == NULL):
        free(dq)
        free(dv)
        free(nq)
        return 1
    for t in range(T):
        lo = t - w + 1
        s = lo if lo > 0 else 0
        if lo > 0 and c_isfinite(x[(lo - 1) * st]):
            n -= 1
        while size > 0 and dq[head] < lo:
            head += 1
            if head == cap:
                head = 0
            size -= 1
        if want_index:
            while nsize > 0 and nq[nhead] < lo:
                nhead += 1
                if nhead == cap:
                    nhead = 0
                nsize -= 1
        v = x[t * st]
        if c_isfinite(v):
            n += 1
            while size > 0:
                back = head + size - 1
                if back >= cap:
                    back -= cap
                bv = dv[back]
                if want_index:
                    pop = (bv < v) if is_max else (bv > v)
                else:
                    pop = (bv <= v) if is_max else (bv >= v)
                if pop:
                    size -= 1
                else:
                    break
            back = head + size
            if back >= cap:
                back -= cap
            dq[back] = t
            dv[back] = v
            size += 1
        elif want_index:
            back = nhead + nsize
            if back >= cap:
                back -= cap
            nq[back] = t
            nsize += 1
        if n == 0:
            y[t * st] = NAN
        elif not want_index:
            y[t * st] = dv[head]
        elif nsize > 0:
            y[t * st] = <double>(nq[nhead] - s + 1)
        else:
            y[t * st] = <double>(dq[head] - s + 1)
    free(dq)
    free(dv)
    free(nq)
    return 0


cdef int _col_max(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_extreme(x, y, T, st, w, True, False)


cdef int _col_min(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_extreme(x, y, T, st, w, False, False)


cdef int _col_idxmax(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p) noexcept nogil:
    return _col_extreme(x, y, T, st, w, True, True)


cdef int _col_idxmin(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p) noexcept nogil:
    return _col_extreme(x, y, T, st, w, False, True)


# ----------------------------------------------------------------------------------------------------------
# median / quantile / rank: a sorted buffer of the window's valid values (O(w) memmove per step)


cdef inline Py_ssize_t _bisect_left(const double* a, Py_ssize_t n, double v) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _bisect_right(const double* a, Py_ssize_t n, double v) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if v < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef inline void _sorted_insert(double* a, Py_ssize_t* n, double v) noexcept nogil:
    cdef Py_ssize_t pos = _bisect_right(a, n[0], v)
    if pos < n[0]:
        memmove(a + pos + 1, a + pos, (n[0] - pos) * sizeof(double))
    a[pos] = v
    n[0] += 1


cdef inline void _sorted_remove(double* a, Py_ssize_t* n, double v) noexcept nogil:
    cdef Py_ssize_t pos = _bisect_left(a, n[0], v)
    if pos >= n[0]:
        return
    if pos < n[0] - 1:
        memmove(a + pos, a + pos + 1, (n[0] - pos - 1) * sizeof(double))
    n[0] -= 1


cdef inline double _quantile_sorted(const double* a, Py_ssize_t n, double q) noexcept nogil:
    """pandas' rolling quantile with linear interpolation (same arithmetic as roll_quantile)."""
    cdef double iwf, vlow
    cdef Py_ssize_t idx
    if n == 0:
        return NAN
    if n == 1:
        return a[0]
    iwf = q * (n - 1)
    idx = <Py_ssize_t>iwf
    if iwf == idx:
        return a[idx]
    vlow = a[idx]
    return vlow + (a[idx + 1] - vlow) * (iwf - idx)


cdef int _col_order(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                    double q, int mode) noexcept nogil:
    # mode: 0 median, 1 quantile(q), 2 pct rank of the newest value
    cdef double* buf = <double*>malloc((w if w > 0 else 1) * sizeof(double))
    cdef Py_ssize_t t, lo, n = 0, h, l, r
    cdef double v, vo, res
    if buf == NULL:
        return 1
    for t in range(T):
        lo = t - w + 1
        if lo > 0:
            vo = x[(lo - 1) * st]
            if c_isfinite(vo):
                _sorted_remove(buf, &n, vo)
        v = x[t * st]
        if c_isfinite(v):
            _sorted_insert(buf, &n, v)
        if n == 0:
            res = NAN
        elif mode == 0:
            h = n >> 1
            if n & 1:
                res = buf[h]
            else:
                res = (buf[h - 1] + buf[h]) / 2
        elif mode == 1:
            res = _quantile_sorted(buf, n, q)
        else:
            if c_isfinite(v):
                l = _bisect_left(buf, n, v)
                r = _bisect_right(buf, n, v)
                res = ((l + 1 + r) / 2.0) / n
            else:
                res = NAN
        y[t * st] = res
    free(buf)
    return 0


cdef int _col_median(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 0)


cdef int _col_quantile(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 1)


cdef int _col_rank(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 2)


# ----------------------------------------------------------------------------------------------------------
# mad / skew / kurt: exact two-pass per window over a contiguous copy of the column (O(w) per step);
# expanding skew/kurt use pandas' add-only online central moments (O(1) per step).


cdef inline double _skew_from(Py_ssize_t n, double m2, double m3) noexcept nogil:
    """pandas' calc_skew: adjusted Fisher-Pearson; 0/0 = NaN for a constant window."""
    cdef double dn
    if n < 3:
        return NAN
    dn = <double>n
    return (m3 / (m2 * sqrt(m2))) * ((dn * sqrt(dn - 1.0)) / (dn - 2.0))


cdef inline double _kurt_from(Py_ssize_t n, double m2, double m4) noexcept nogil:
    """pandas' calc_kurt: bias-corrected excess kurtosis; 0/0 = NaN for a constant window."""
    cdef double dn, ratio
    if n < 4:
        return NAN
    dn = <double>n
    ratio = m4 / (m2 * m2)
    return ((dn - 1.0) / ((dn - 2.0) * (dn - 3.0))) * (dn * (dn + 1.0) * ratio - 3.0 * (dn - 1.0))


cdef int _col_window_stats(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                           int mode) noexcept nogil:
    # mode: 0 mad, 1 skew, 2 kurt
    cdef double* col = <double*>malloc((T if T > 0 else 1) * sizeof(double))
    cdef Py_ssize_t t, i, lo, c
    cdef double v, first, acc, mean, d, d2, m1, m2, m3, m4, res
    if col == NULL:
        return 1
    for t in range(T):
        col[t] = x[t * st]
    for t in range(T):
        lo = t - w + 1
        if lo < 0:
            lo = 0
        c = 0
        first = 0.0
        acc = 0.0
        for i in range(lo, t + 1):
            v = col[i]
            if c_isfinite(v):
                if c == 0:
                    first = v
                else:
                    acc = acc + (v - first)
                c += 1
        if c == 0 or (mode == 1 and c < 3) or (mode == 2 and c < 4):
            y[t * st] = NAN
            continue
        mean = first + acc / c
        m1 = 0.0
        m2 = 0.0
        m3 = 0.0
        m4 = 0.0
        if mode == 0:
            for i in range(lo, t + 1):
                v = col[i]
                if c_isfinite(v):
                    m1 = m1 + fabs(v - mean)
            res = m1 / c
        else:
            for i in range(lo, t + 1):
                v = col[i]
                if c_isfinite(v):
                    d = v - mean
                    d2 = d * d
                    m2 = m2 + d2
                    m3 = m3 + d2 * d
                    m4 = m4 + d2 * d2
            if mode == 1:
                res = _skew_from(c, m2, m3)
            else:
                res = _kurt_from(c, m2, m4)
        y[t * st] = res
    free(col)
    return 0


cdef int _col_online_moments(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, int mode) noexcept nogil:
    """Expanding skew (mode 1) / kurt (mode 2): pandas' moments_add_value, anchored on the first value."""
    cdef Py_ssize_t t, n = 0
    cdef double v, origin = 0.0, mean = 0.0, m2 = 0.0, m3 = 0.0, m4 = 0.0, dn, delta, delta_n, term1
    for t in range(T):
        v = x[t * st]
        if c_isfinite(v):
            if n == 0:
                origin = v
            v = v - origin
            delta = v - mean
            n += 1
            dn = <double>n
            delta_n = delta / dn
            term1 = delta * delta_n * (dn - 1.0)
            m4 = m4 + delta_n * (-4.0 * m3 + delta_n * (6.0 * m2 + term1 * (dn * dn - 3.0 * dn + 3.0)))
            m3 = m3 + delta_n * (term1 * (dn - 2.0) - 3.0 * m2)
            m2 = m2 + term1
            mean = mean + delta_n
        if mode == 1:
            y[t * st] = _skew_from(n, m2, m3)
        else:
            y[t * st] = _kurt_from(n, m2, m4)
    return 0


cdef int _col_mad(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_window_stats(x, y, T, st, w, 0)


cdef int _col_skew(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    if w >= T:
        return _col_online_moments(x, y, T, st, 1)
    return _col_window_stats(x, y, T, st, w, 1)


cdef int _col_kurt(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    if w >= T:
        return _col_online_moments(x, y, T, st, 2)
    return _col_window_stats(x, y, T, st, w, 2)


# ----------------------------------------------------------------------------------------------------------
# slope / rsquare / resi / wma: regression on the row position, shifted sums with periodic rebuild


cdef struct RegAcc:
    Py_ssize_t n
    Py_ssize_t r0       # row anchor: u = row - r0
    double K            # value anchor: e = value - K
    double su
    double suu
    double se
    double see
    double sue


cdef inline void _reg_rebuild(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                              RegAcc* A) noexcept nogil:
    cdef Py_ssize_t i, c = 0, rows = 0
    cdef double v, first = 0.0, acc = 0.0, u, e
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            if c == 0:
                first = v
            else:
                acc = acc + (v - first)
            c += 1
            rows += i
    A.n = c
    A.su = 0.0
    A.suu = 0.0
    A.se = 0.0
    A.see = 0.0
    A.sue = 0.0
    if c == 0:
        A.K = 0.0
        A.r0 = hi
        return
    A.K = first + acc / c
    A.r0 = rows // c
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            u = <double>(i - A.r0)
            e = v - A.K
            A.su = A.su + u
            A.suu = A.suu + u * u
            A.se = A.se + e
            A.see = A.see + e * e
            A.sue = A.sue + u * e


cdef inline void _reg_add(RegAcc* A, Py_ssize_t row, double v, double sign) noexcept nogil:
    cdef double u = <double>(row - A.r0)
    cdef double e = v - A.K
    A.n += <Py_ssize_t>sign
    A.su = A.su + sign * u
    A.suu = A.suu + sign * (u * u)
    A.se = A.se + sign * e
    A.see = A.see + sign * (e * e)
    A.sue = A.sue + sign * (u * e)


cdef inline bint _reg_drifted(RegAcc* A) noexcept nogil:
    cdef double m, vb
    if A.n <= 0:
        return False
    m = A.su / A.n
    vb = A.suu / A.n - m * m
    if m * m > DRIFT * vb and fabs(m) >= 1.0:
        return True
    return _drifted(A.n, A.K, A.se, A.see)


cdef int _col_regression(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                         int mode) noexcept nogil:
    # mode: 0 slope, 1 rsquare, 2 resi, 3 wma
    cdef RegAcc A
    cdef Py_ssize_t t, lo, s, run = 0, since = w
    cdef double v, vo, last = NAN, mu, me, cuu, cue, cee, slope, c, r
    A.n = 0
    A.r0 = 0
    A.K = 0.0
    A.su = 0.0
    A.suu = 0.0
    A.se = 0.0
    A.see = 0.0
    A.sue = 0.0
    for t in range(T):
        v = x[t * st]
        lo = t - w + 1
        s = lo if lo > 0 else 0
        if c_isfinite(v):
            if v == last:
                run += 1
            else:
                run = 1
            last = v
        if since >= w:
            _reg_rebuild(x, st, s, t, &A)
            since = 0
        else:
            if lo > 0:
                vo = x[(lo - 1) * st]
                if c_isfinite(vo):
                    _reg_add(&A, lo - 1, vo, -1.0)
            if c_isfinite(v):
                _reg_add(&A, t, v, 1.0)
            since += 1
            if A.n == 0:
                A.su = 0.0
                A.suu = 0.0
                A.se = 0.0
                A.see = 0.0
                A.sue = 0.0
            elif _reg_drifted(&A):
                _reg_rebuild(x, st, s, t, &A)
                since = 0
        if mode == 3:
            if A.n == 0:
                r = NAN
            elif run >= A.n:
                r = last
            else:
                # weight of row i is i - s + 1 = u_i + c
                c = <double>(A.r0 - s + 1)
                r = A.K + (A.sue + c * A.se) / (A.su + c * A.n)
            y[t * st] = r
            continue
        if A.n < 2 or (mode == 2 and not c_isfinite(v)):
            y[t * st] = NAN
            continue
        if run >= A.n:
            # constant window: flat line, no explained variance
            if mode == 1:
                y[t * st] = NAN
            else:
                y[t * st] = 0.0
            continue
        mu = A.su / A.n
        me = A.se / A.n
        cuu = A.suu - A.su * mu
        cue = A.sue - A.su * me
        cee = A.see - A.se * me
        slope = cue / cuu
        if mode == 0:
            r = slope
        elif mode == 1:
            if cee > 0:
                r = (cue * cue) / (cuu * cee)
            else:
                r = NAN
        else:
            r = (v - A.K) - (me + slope * (<double>(t - A.r0) - mu))
        y[t * st] = r
    return 0


cdef int _col_slope(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                    double p) noexcept nogil:
    return _col_regression(x, y, T, st, w, 0)


cdef int _col_rsquare(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                      double p) noexcept nogil:
    return _col_regression(x, y, T, st, w, 1)


cdef int _col_resi(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    return _col_regression(x, y, T, st, w, 2)


cdef int _col_wma(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_regression(x, y, T, st, w, 3)


# ----------------------------------------------------------------------------------------------------------
# corr / cov: pairwise-complete shifted sums with periodic rebuild


cdef struct PairAcc:
    Py_ssize_t n
    double Ka
    double Kb
    double sa
    double saa
    double sb
    double sbb
    double sab


cdef inline void _pair_rebuild(const double* a, const double* b, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                               PairAcc* A) noexcept nogil:
    cdef Py_ssize_t i, c = 0
    cdef double va, vb, fa = 0.0, fb = 0.0, acca = 0.0, accb = 0.0, da, db
    for i in range(lo, hi + 1):
        va = a[i * st]
        vb = b[i * st]
        if c_isfinite(va) and c_isfinite(vb):
            if c == 0:
                fa = va
                fb = vb
            else:
                acca = acca + (va - fa)
                accb = accb + (vb - fb)
            c += 1
    A.n = c
    A.sa = 0.0
    A.saa = 0.0
    A.sb = 0.0
    A.sbb = 0.0
    A.sab = 0.0
    if c == 0:
        A.Ka = 0.0
        A.Kb = 0.0
        return
    A.Ka = fa + acca / c
    A.Kb = fb + accb / c
    for i in range(lo, hi + 1):
        va = a[i * st]
        vb = b[i * st]
        if c_isfinite(va) and c_isfinite(vb):
            da = va - A.Ka
            db = vb - A.Kb
            A.sa = A.sa + da
            A.saa = A.saa + da * da
            A.sb = A.sb + db
            A.sbb = A.sbb + db * db
            A.sab = A.sab + da * db


cdef inline void _pair_add(PairAcc* A, double va, double vb, double sign) noexcept nogil:
    cdef double da = va - A.Ka
    cdef double db = vb - A.Kb
    A.n += <Py_ssize_t>sign
    A.sa = A.sa + sign * da
    A.saa = A.saa + sign * (da * da)
    A.sb = A.sb + sign * db
    A.sbb = A.sbb + sign * (db * db)
    A.sab = A.sab + sign * (da * db)


cdef int _col_pair(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   int mode) noexcept nogil:
    # mode: 0 cov (ddof=1), 1 corr
    cdef PairAcc A
    cdef Py_ssize_t t, lo, s, runa = 0, runb = 0, since = w
    cdef double va, vb, lasta = NAN, lastb = NAN, caa, cbb, cab, r
    A.n = 0
    A.Ka = 0.0
    A.Kb = 0.0
    A.sa = 0.0
    A.saa = 0.0
    A.sb = 0.0
    A.sbb = 0.0
    A.sab = 0.0
    for t in range(T):
        va = a[t * st]
        vb = b[t * st]
        lo = t - w + 1
        s = lo if lo > 0 else 0
        if c_isfinite(va) and c_isfinite(vb):
            if va == lasta:
                runa += 1
            else:
                runa = 1
            lasta = va
            if vb == lastb:
                runb += 1
            else:
                runb = 1
            lastb = vb
        if since >= w:
            _pair_rebuild(a, b, st, s, t, &A)
            since = 0
        else:
            if lo > 0:
                if c_isfinite(a[(lo - 1) * st]) and c_isfinite(b[(lo - 1) * st]):
                    _pair_add(&A, a[(lo - 1) * st], b[(lo - 1) * st], -1.0)
            if c_isfinite(va) and c_isfinite(vb):
                _pair_add(&A, va, vb, 1.0)
            since += 1
            if A.n == 0:
                A.sa = 0.0
                A.saa = 0.0
                A.sb = 0.0
                A.sbb = 0.0
                A.sab = 0.0
            elif _drifted(A.n, A.Ka, A.sa, A.saa) or _drifted(A.n, A.Kb, A.sb, A.sbb):
                _pair_rebuild(a, b, st, s, t, &A)
                since = 0
        if mode == 0:
            if A.n < 2:
                r = NAN
            elif runa >= A.n or runb >= A.n:
                r = 0.0
            else:
                r = (A.sab - A.sa * (A.sb / A.n)) / (A.n - 1)
        else:
            if A.n < 1 or runa >= A.n or runb >= A.n:
                r = NAN
            else:
                caa = A.saa - A.sa * (A.sa / A.n)
                cbb = A.sbb - A.sb * (A.sb / A.n)
                cab = A.sab - A.sa * (A.sb / A.n)
                if caa <= 0 or cbb <= 0:
                    r = NAN
                else:
                    r = cab / sqrt(caa * cbb)
                    if r > 1.0:
                        r = 1.0
                    elif r < -1.0:
                        r = -1.0
        y[t * st] = r
    return 0


cdef int _col_cov(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p) noexcept nogil:
    return _col_pair(a, b, y, T, st, w, 0)


cdef int _col_corr(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p) noexcept nogil:
    return _col_pair(a, b, y, T, st, w, 1)


# ----------------------------------------------------------------------------------------------------------
# EWM (pandas recurrence) and Qlib's EMA(x, 0)


cdef int _col_ewm(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double com) noexcept nogil:
    """pandas' ewm(com=com, adjust=True, ignore_na=False, min_periods=1).mean(), step for step."""
    cdef double alpha = 1.0 / (1.0 + com)
    cdef double old_wt_factor = 1.0 - alpha
    cdef double new_wt = 1.0
    cdef double weighted, old_wt = 1.0, cur
    cdef Py_ssize_t t
    cdef bint obs
    if T == 0:
        return 0
    weighted = x[0]
    if not c_isfinite(weighted):
        weighted = NAN
    y[0] = weighted
    for t in range(1, T):
        cur = x[t * st]
        obs = c_isfinite(cur)
        if weighted == weighted:
            old_wt = old_wt * old_wt_factor
            if obs:
                if weighted != cur:
                    weighted = old_wt * weighted + new_wt * cur
                    weighted = weighted / (old_wt + new_wt)
                old_wt = old_wt + new_wt
        elif obs:
            weighted = cur
        y[t * st] = weighted
    return 0


cdef int _col_ema_qlib(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p) noexcept nogil:
    """Qlib's EMA(x, 0): O(t) per row, the decay a = 1 - 2/(1+n) changes with every row."""
    cdef double* col = <double*>malloc((T if T > 0 else 1) * sizeof(double))
    cdef Py_ssize_t t, k
    cdef bint seen = False
    cdef double v, a, num, den
    if col == NULL:
        return 1
    for t in range(T):
        v = x[t * st]
        if c_isfinite(v):
            col[t] = v
            seen = True
        else:
            col[t] = 0.0
        if not seen:
            y[t * st] = NAN
            continue
        a = 1.0 - 2.0 / (1.0 + (t + 1))
        num = 0.0
        den = 0.0
        for k in range(t + 1):
            num = num * a + col[k]
            den = den * a + 1.0
        y[t * st] = num / den
    free(col)
    return 0


# ----------------------------------------------------------------------------------------------------------
# public entry points (inputs are validated by qops.kernels)


def rolling_sum(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling sum of the non-missing values; NaN for an all-missing window."""
    return _drive1(_col_sum, x, window, 0.0, num_threads)


def rolling_mean(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling mean of the non-missing values; NaN for an all-missing window."""
    return _drive1(_col_mean, x, window, 0.0, num_threads)


def rolling_var(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling sample variance (ddof=1) of the non-missing values; NaN below 2 values."""
    return _drive1(_col_var, x, window, 0.0, num_threads)


def rolling_std(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling sample standard deviation (ddof=1); NaN below 2 values."""
    return _drive1(_col_std, x, window, 0.0, num_threads)


def rolling_count(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Number of non-NaN values in the window (infinities count)."""
    return _drive1(_col_count, x, window, 0.0, num_threads)


def rolling_max(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling maximum of the non-missing values."""
    return _drive1(_col_max, x, window, 0.0, num_threads)


def rolling_min(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling minimum of the non-missing values."""
    return _drive1(_col_min, x, window, 0.0, num_threads)


def rolling_idxmax(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """1-based position (oldest = 1) of numpy's argmax in the possibly partial window."""
    return _drive1(_col_idxmax, x, window, 0.0, num_threads)


def rolling_idxmin(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """1-based position (oldest = 1) of numpy's argmin in the possibly partial window."""
    return _drive1(_col_idxmin, x, window, 0.0, num_threads)


def rolling_median(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling median of the non-missing values."""
    return _drive1(_col_median, x, window, 0.0, num_threads)


def rolling_quantile(const double[:, ::1] x, Py_ssize_t window, double q, int num_threads=0):
    """Rolling q-quantile (linear interpolation) of the non-missing values."""
    return _drive1(_col_quantile, x, window, q, num_threads)


def rolling_rank(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Percentile rank (average ties) of the newest value among the window's values."""
    return _drive1(_col_rank, x, window, 0.0, num_threads)


def rolling_mad(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling mean absolute deviation around the mean."""
    return _drive1(_col_mad, x, window, 0.0, num_threads)


def rolling_skew(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling adjusted Fisher-Pearson skewness; NaN below 3 values or for a constant window."""
    return _drive1(_col_skew, x, window, 0.0, num_threads)


def rolling_kurt(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling bias-corrected excess kurtosis; NaN below 4 values or for a constant window."""
    return _drive1(_col_kurt, x, window, 0.0, num_threads)


def rolling_slope(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Slope of the least-squares line of the values on their row position."""
    return _drive1(_col_slope, x, window, 0.0, num_threads)


def rolling_rsquare(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """R-squared of the least-squares line of the values on their row position."""
    return _drive1(_col_rsquare, x, window, 0.0, num_threads)


def rolling_resi(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Residual of the newest value from the window's least-squares line."""
    return _drive1(_col_resi, x, window, 0.0, num_threads)


def rolling_wma(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Linear weighted mean (weights 1..L, newest heaviest) normalised over the non-missing positions."""
    return _drive1(_col_wma, x, window, 0.0, num_threads)


def rolling_cov(const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, int num_threads=0):
    """Rolling sample covariance (ddof=1) over the rows where both are present."""
    return _drive2(_col_cov, a, b, window, 0.0, num_threads)


def rolling_corr(const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, int num_threads=0):
    """Rolling Pearson correlation over the rows where both are present."""
    return _drive2(_col_corr, a, b, window, 0.0, num_threads)


def ewm_mean(const double[:, ::1] x, double com, int num_threads=0):
    """pandas' adjusted exponentially weighted mean with centre of mass ``com`` (ignore_na=False)."""
    return _drive1(_col_ewm, x, 0, com, num_threads)


def expanding_ema_qlib(const double[:, ::1] x, int num_threads=0):
    """Qlib's EMA(x, 0) (expanding, decay 1 - 2/(1+n), missing values count as 0)."""
    return _drive1(_col_ema_qlib, x, 0, 0.0, num_threads)
