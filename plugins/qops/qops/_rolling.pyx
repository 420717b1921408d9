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

from cython.parallel cimport prange, threadid
from libc.math cimport NAN, fabs, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memmove
cimport openmp


cdef extern from "math.h" nogil:
    bint c_isfinite "isfinite"(double)
    bint c_signbit "signbit"(double)


# A column kernel reads T values x[0], x[st], ... and writes y likewise. ``work`` is a scratch area of
# WORK_PER_ROW * (T + 1) doubles owned by the calling thread.
ctypedef int (*col1_t)(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p, double* work) noexcept nogil
ctypedef int (*col2_t)(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st,
                       Py_ssize_t w, double p, double* work) noexcept nogil

# Rebuild policy of the shifted running sums (see "shifted running sums" below).
DEF REBUILD_EVERY = 4
cdef double DRIFT = 100.0
cdef double LOSS = 1000.0
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
# Each thread owns one work area, allocated once per call: its tile buffers, then the kernels' scratch.
DEF TILE = 16
DEF WORK_PER_ROW = 3


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


cdef inline Py_ssize_t _work_size(Py_ssize_t T, Py_ssize_t inputs) noexcept nogil:
    """Doubles per thread: (inputs + 1) tile buffers and the kernels' scratch."""
    return (inputs + 1) * TILE * T + WORK_PER_ROW * (T + 1)


cdef int _tile1(col1_t f, const double* xp, double* op, Py_ssize_t T, Py_ssize_t N, Py_ssize_t k,
                Py_ssize_t w, double p, double* ws) noexcept nogil:
    cdef Py_ssize_t j0 = k * TILE, B = N - k * TILE, b
    cdef int err = 0
    if B > TILE:
        B = TILE
    cdef double* xin = ws
    cdef double* yout = ws + TILE * T
    cdef double* scratch = ws + 2 * TILE * T
    _gather_tile(xp, xin, T, N, j0, B)
    for b in range(B):
        err += f(xin + b * T, yout + b * T, T, 1, w, p, scratch)
    _scatter_tile(yout, op, T, N, j0, B)
    return err


cdef int _tile2(col2_t f, const double* ap, const double* bp, double* op, Py_ssize_t T, Py_ssize_t N,
                Py_ssize_t k, Py_ssize_t w, double p, double* ws) noexcept nogil:
    cdef Py_ssize_t j0 = k * TILE, B = N - k * TILE, b
    cdef int err = 0
    if B > TILE:
        B = TILE
    cdef double* ain = ws
    cdef double* bin_ = ws + TILE * T
    cdef double* yout = ws + 2 * TILE * T
    cdef double* scratch = ws + 3 * TILE * T
    _gather_tile(ap, ain, T, N, j0, B)
    _gather_tile(bp, bin_, T, N, j0, B)
    for b in range(B):
        err += f(ain + b * T, bin_ + b * T, yout + b * T, T, 1, w, p, scratch)
    _scatter_tile(yout, op, T, N, j0, B)
    return err


cdef object _drive1(col1_t f, const double[:, ::1] x, Py_ssize_t window, double p, int num_threads):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], k, w, ntiles, per
    cdef int err = 0, nt = _threads(num_threads)
    cdef double* ws
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    ntiles = (N + TILE - 1) // TILE
    if nt > ntiles:
        nt = <int>ntiles
    per = _work_size(T, 1)
    ws = <double*>malloc(nt * per * sizeof(double))
    if ws == NULL:
        raise MemoryError("qops kernel could not allocate its work buffer")
    with nogil:
        if N == 1:
            err = f(xp, op, T, 1, w, p, ws)
        else:
            for k in prange(ntiles, num_threads=nt, schedule="static"):
                err += _tile1(f, xp, op, T, N, k, w, p, ws + threadid() * per)
    free(ws)
    if err:
        raise MemoryError("qops kernel failed")
    return out


cdef object _drive2(col2_t f, const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, double p,
                    int num_threads):
    cdef Py_ssize_t T = a.shape[0], N = a.shape[1], k, w, ntiles, per
    cdef int err = 0, nt = _threads(num_threads)
    cdef double* ws
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
    if nt > ntiles:
        nt = <int>ntiles
    per = _work_size(T, 2)
    ws = <double*>malloc(nt * per * sizeof(double))
    if ws == NULL:
        raise MemoryError("qops kernel could not allocate its work buffer")
    with nogil:
        if N == 1:
            err = f(ap, bp, op, T, 1, w, p, ws)
        else:
            for k in prange(ntiles, num_threads=nt, schedule="static"):
                err += _tile2(f, ap, bp, op, T, N, k, w, p, ws + threadid() * per)
    free(ws)
    if err:
        raise MemoryError("qops kernel failed")
    return out


# ----------------------------------------------------------------------------------------------------------
# shifted running sums
#
# A series is summed as d = x - K around an anchor K (the window mean at the last rebuild). The sums are
# rebuilt from the window (two passes, O(w)):
#   - every REBUILD_EVERY * w rows, to bound the accumulated rounding of add/remove pairs;
#   - when the window mean has drifted from K: (mean - K)^2 > DRIFT * variance (the one-pass variance then
#     loses at most ~DRIFT * eps relatively);
#   - when the largest squared deviation added since the last rebuild exceeds LOSS times the current sum of
#     squared deviations (a spike left the window and its rounding residue would dominate).
# Right after a rebuild none of these holds, so a rebuild is never repeated on the next row for nothing.


cdef struct Ser:
    double K        # anchor
    double s1       # sum of d
    double s2       # sum of d*d
    double peak     # largest d*d added since the last rebuild


cdef inline void _ser_reset(Ser* S, double K) noexcept nogil:
    S.K = K
    S.s1 = 0.0
    S.s2 = 0.0
    S.peak = 0.0


cdef inline double _ser_add(Ser* S, double v) noexcept nogil:
    cdef double d = v - S.K
    cdef double dd = d * d
    S.s1 = S.s1 + d
    S.s2 = S.s2 + dd
    if dd > S.peak:
        S.peak = dd
    return d


cdef inline double _ser_remove(Ser* S, double v) noexcept nogil:
    cdef double d = v - S.K
    S.s1 = S.s1 - d
    S.s2 = S.s2 - d * d
    return d


cdef inline bint _ser_stale(Ser* S, Py_ssize_t n) noexcept nogil:
    """Whether the sums of a window of n >= 1 values must be rebuilt (drift or loss of significance)."""
    cdef double s1sq = S.s1 * S.s1
    cdef double D = n * S.s2 - s1sq          # n * (sum of squared deviations from the mean)
    cdef double noise = ANCHOR_RTOL * fabs(S.K)
    if s1sq > DRIFT * D and fabs(S.s1) > noise * n:
        return True
    return S.peak > noise * noise and S.peak * n > LOSS * D


cdef inline Py_ssize_t _anchor(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                               double* K) noexcept nogil:
    """Count the finite values of rows lo..hi and set K to their mean (exact for a constant window)."""
    cdef Py_ssize_t i, c = 0
    cdef double v, first = 0.0, acc = 0.0
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            if c == 0:
                first = v
            else:
                acc = acc + (v - first)
            c += 1
    K[0] = first + acc / c if c > 0 else 0.0
    return c


cdef inline Py_ssize_t _rebuild1(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                                 Ser* S) noexcept nogil:
    """Recompute the shifted sums of rows lo..hi (inclusive); returns the number of finite values."""
    cdef Py_ssize_t i, c
    cdef double v, K
    c = _anchor(x, st, lo, hi, &K)
    _ser_reset(S, K)
    if c > 0:
        for i in range(lo, hi + 1):
            v = x[i * st]
            if c_isfinite(v):
                _ser_add(S, v)
    return c


# ----------------------------------------------------------------------------------------------------------
# sum / mean / var / std


cdef inline int _col_moments(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                             int mode) noexcept nogil:
    # mode: 0 sum, 1 mean, 2 var, 3 std (a constant argument: each wrapper gets its own specialised copy)
    cdef Ser S
    cdef Py_ssize_t t, lo, n = 0, run = 0, neg = 0, every = REBUILD_EVERY * w, since = every
    cdef double v, vo, din, dout, last = NAN, r
    cdef bint fin, fout
    _ser_reset(&S, 0.0)
    for t in range(T):
        v = x[t * st]
        lo = t - w + 1
        fin = c_isfinite(v)
        if lo > 0:
            vo = x[(lo - 1) * st]
            fout = c_isfinite(vo)
        else:
            vo = 0.0
            fout = False
        # bookkeeping that does not depend on the sums: negative count and run of equal values
        if mode == 1:
            neg += (fin and c_signbit(v)) - (fout and c_signbit(vo))
        if fin:
            if v == last:
                run += 1
            else:
                run = 1
            last = v
        # shifted sums: one combined (branch-free) update per row
        if since < every:
            din = v - S.K if fin else 0.0
            dout = vo - S.K if fout else 0.0
            n += fin - fout
            S.s1 = S.s1 + (din - dout)
            S.s2 = S.s2 + (din * din - dout * dout)
            if din * din > S.peak:
                S.peak = din * din
            since += 1
            if n == 0:
                _ser_reset(&S, S.K)
            elif _ser_stale(&S, n):
                since = every
        if since >= every:
            n = _rebuild1(x, st, lo if lo > 0 else 0, t, &S)
            since = 0
        # output
        if mode == 0:
            if n == 0:
                r = NAN
            elif run >= n:
                r = last * n
            else:
                r = n * S.K + S.s1
        elif mode == 1:
            if n == 0:
                r = NAN
            elif run >= n:
                r = last
            else:
                r = S.K + S.s1 / n
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
                r = (n * S.s2 - S.s1 * S.s1) / (<double>n * (n - 1))
                if r < 0:
                    r = 0.0
            if mode == 3:
                r = sqrt(r)
        y[t * st] = r
    return 0


cdef int _col_sum(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_moments(x, y, T, st, w, 0)


cdef int _col_mean(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_moments(x, y, T, st, w, 1)


cdef int _col_var(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_moments(x, y, T, st, w, 2)


cdef int _col_std(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_moments(x, y, T, st, w, 3)


# ----------------------------------------------------------------------------------------------------------
# count


cdef int _col_count(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                    double p, double* work) noexcept nogil:
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
                      bint is_max, bint want_index, double* work) noexcept nogil:
    """Rolling max/min (value) or numpy-argmax/argmin-style 1-based position (index).

    The value deque keeps, for argmax, values in non-increasing order and pops only strictly smaller ones,
    so its front is the *first* occurrence of the maximum, as numpy's argmax returns. A second deque holds
    the missing rows of the window: numpy's argmax/argmin return the first NaN (pandas has turned inf into
    NaN before), so the answer is that row when there is one.
    """
    cdef Py_ssize_t cap = w + 1
    cdef Py_ssize_t* dq = <Py_ssize_t*>work                 # sizeof(Py_ssize_t) <= sizeof(double)
    cdef double* dv = work + cap
    cdef Py_ssize_t* nq = <Py_ssize_t*>(work + 2 * cap)
    cdef Py_ssize_t head = 0, size = 0, nhead = 0, nsize = 0, back, t, lo, s, n = 0
    cdef double v, bv
    cdef bint pop
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
    return 0


cdef int _col_max(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_extreme(x, y, T, st, w, True, False, work)


cdef int _col_min(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_extreme(x, y, T, st, w, False, False, work)


cdef int _col_idxmax(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p, double* work) noexcept nogil:
    return _col_extreme(x, y, T, st, w, True, True, work)


cdef int _col_idxmin(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p, double* work) noexcept nogil:
    return _col_extreme(x, y, T, st, w, False, True, work)


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
                    double q, int mode, double* work) noexcept nogil:
    # mode: 0 median, 1 quantile(q), 2 pct rank of the newest value
    cdef double* buf = work
    cdef Py_ssize_t t, lo, n = 0, h, l, r
    cdef double v, vo, res
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
    return 0


cdef int _col_median(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                     double p, double* work) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 0, work)


cdef int _col_quantile(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p, double* work) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 1, work)


cdef int _col_rank(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_order(x, y, T, st, w, p, 2, work)


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
                           int mode, double* work) noexcept nogil:
    # mode: 0 mad, 1 skew, 2 kurt
    cdef const double* col = x
    cdef Py_ssize_t t, i, lo, c
    cdef double v, first, acc, mean, d, d2, m1, m2, m3, m4, res
    if st != 1:
        for t in range(T):
            work[t] = x[t * st]
        col = work
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
                  double p, double* work) noexcept nogil:
    return _col_window_stats(x, y, T, st, w, 0, work)


cdef int _col_skew(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    if w >= T:
        return _col_online_moments(x, y, T, st, 1)
    return _col_window_stats(x, y, T, st, w, 1, work)


cdef int _col_kurt(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    if w >= T:
        return _col_online_moments(x, y, T, st, 2)
    return _col_window_stats(x, y, T, st, w, 2, work)


# ----------------------------------------------------------------------------------------------------------
# slope / rsquare / resi / wma: regression on the row position, shifted sums with rebuilds
#
# The regressor is the row index shifted by an integer anchor r0 (u = row - r0, exact in floating point);
# slope, r-squared and the residual do not depend on where the positions start, so u stands for Qlib's
# "position 1..window inside the window" (and the expanding kernels' 1..t).


cdef struct Reg:
    Py_ssize_t n
    Py_ssize_t r0
    double su
    double suu
    double sue
    Ser e


cdef inline void _reg_rebuild(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                              Reg* A) noexcept nogil:
    cdef Py_ssize_t i, c, rows = 0
    cdef double v, u, d, K
    c = _anchor(x, st, lo, hi, &K)
    for i in range(lo, hi + 1):
        if c_isfinite(x[i * st]):
            rows += i
    A.n = c
    A.r0 = rows // c if c > 0 else hi
    A.su = 0.0
    A.suu = 0.0
    A.sue = 0.0
    _ser_reset(&A.e, K)
    if c == 0:
        return
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            u = <double>(i - A.r0)
            d = _ser_add(&A.e, v)
            A.su = A.su + u
            A.suu = A.suu + u * u
            A.sue = A.sue + u * d


cdef inline void _reg_add(Reg* A, Py_ssize_t row, double v) noexcept nogil:
    cdef double u = <double>(row - A.r0)
    cdef double d = _ser_add(&A.e, v)
    A.n += 1
    A.su = A.su + u
    A.suu = A.suu + u * u
    A.sue = A.sue + u * d


cdef inline void _reg_remove(Reg* A, Py_ssize_t row, double v) noexcept nogil:
    cdef double u = <double>(row - A.r0)
    cdef double d = _ser_remove(&A.e, v)
    A.n -= 1
    A.su = A.su - u
    A.suu = A.suu - u * u
    A.sue = A.sue - u * d


cdef inline bint _reg_stale(Reg* A) noexcept nogil:
    cdef double susq = A.su * A.su
    if susq > DRIFT * (A.n * A.suu - susq) and fabs(A.su) >= A.n:
        return True
    return _ser_stale(&A.e, A.n)


cdef int _col_regression(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                         int mode) noexcept nogil:
    # mode: 0 slope, 1 rsquare, 2 resi, 3 wma
    cdef Reg A
    cdef Py_ssize_t t, lo, s, run = 0, every = REBUILD_EVERY * w, since = every
    cdef double v, vo, last = NAN, mu, me, cuu, cue, cee, slope, c, r
    A.n = 0
    A.r0 = 0
    A.su = 0.0
    A.suu = 0.0
    A.sue = 0.0
    _ser_reset(&A.e, 0.0)
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
        if since >= every:
            _reg_rebuild(x, st, s, t, &A)
            since = 0
        else:
            if lo > 0:
                vo = x[(lo - 1) * st]
                if c_isfinite(vo):
                    _reg_remove(&A, lo - 1, vo)
            if c_isfinite(v):
                _reg_add(&A, t, v)
            since += 1
            if A.n == 0:
                A.su = 0.0
                A.suu = 0.0
                A.sue = 0.0
                _ser_reset(&A.e, A.e.K)
            elif _reg_stale(&A):
                _reg_rebuild(x, st, s, t, &A)
                since = 0
        if mode == 3:
            if A.n == 0:
                r = NAN
            elif run >= A.n:
                r = last
            else:
                # the weight of row i is i - s + 1 = u_i + c
                c = <double>(A.r0 - s + 1)
                r = A.e.K + (A.sue + c * A.e.s1) / (A.su + c * A.n)
            y[t * st] = r
            continue
        if A.n < 2 or (mode == 2 and not c_isfinite(v)):
            y[t * st] = NAN
            continue
        if run >= A.n:
            # constant window: flat line, nothing to explain
            y[t * st] = NAN if mode == 1 else 0.0
            continue
        mu = A.su / A.n
        me = A.e.s1 / A.n
        cuu = A.suu - A.su * mu
        cue = A.sue - A.su * me
        cee = A.e.s2 - A.e.s1 * me
        slope = cue / cuu
        if mode == 0:
            r = slope
        elif mode == 1:
            r = (cue * cue) / (cuu * cee) if cee > 0 else NAN
        else:
            r = (v - A.e.K) - (me + slope * (<double>(t - A.r0) - mu))
        y[t * st] = r
    return 0


cdef int _col_slope(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                    double p, double* work) noexcept nogil:
    return _col_regression(x, y, T, st, w, 0)


cdef int _col_rsquare(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                      double p, double* work) noexcept nogil:
    return _col_regression(x, y, T, st, w, 1)


cdef int _col_resi(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_regression(x, y, T, st, w, 2)


cdef int _col_wma(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double p, double* work) noexcept nogil:
    return _col_regression(x, y, T, st, w, 3)


# ----------------------------------------------------------------------------------------------------------
# corr / cov: pairwise-complete shifted sums with rebuilds


cdef struct Pair:
    Py_ssize_t n
    double sab
    Ser a
    Ser b


cdef inline void _pair_rebuild(const double* a, const double* b, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                               Pair* A) noexcept nogil:
    cdef Py_ssize_t i, c = 0
    cdef double va, vb, fa = 0.0, fb = 0.0, acca = 0.0, accb = 0.0
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
    A.sab = 0.0
    _ser_reset(&A.a, fa + acca / c if c > 0 else 0.0)
    _ser_reset(&A.b, fb + accb / c if c > 0 else 0.0)
    if c == 0:
        return
    for i in range(lo, hi + 1):
        va = a[i * st]
        vb = b[i * st]
        if c_isfinite(va) and c_isfinite(vb):
            A.sab = A.sab + _ser_add(&A.a, va) * _ser_add(&A.b, vb)


cdef int _col_pair(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   int mode) noexcept nogil:
    # mode: 0 cov (ddof=1), 1 corr
    cdef Pair A
    cdef Py_ssize_t t, lo, s, runa = 0, runb = 0, every = REBUILD_EVERY * w, since = every
    cdef double va, vb, lasta = NAN, lastb = NAN, caa, cbb, cab, r
    A.n = 0
    A.sab = 0.0
    _ser_reset(&A.a, 0.0)
    _ser_reset(&A.b, 0.0)
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
        if since >= every:
            _pair_rebuild(a, b, st, s, t, &A)
            since = 0
        else:
            if lo > 0 and c_isfinite(a[(lo - 1) * st]) and c_isfinite(b[(lo - 1) * st]):
                A.n -= 1
                A.sab = A.sab - _ser_remove(&A.a, a[(lo - 1) * st]) * _ser_remove(&A.b, b[(lo - 1) * st])
            if c_isfinite(va) and c_isfinite(vb):
                A.n += 1
                A.sab = A.sab + _ser_add(&A.a, va) * _ser_add(&A.b, vb)
            since += 1
            if A.n == 0:
                A.sab = 0.0
                _ser_reset(&A.a, A.a.K)
                _ser_reset(&A.b, A.b.K)
            elif _ser_stale(&A.a, A.n) or _ser_stale(&A.b, A.n):
                _pair_rebuild(a, b, st, s, t, &A)
                since = 0
        if mode == 0:
            if A.n < 2:
                r = NAN
            elif runa >= A.n or runb >= A.n:
                r = 0.0
            else:
                r = (A.sab - A.a.s1 * (A.b.s1 / A.n)) / (A.n - 1)
        else:
            if A.n < 1 or runa >= A.n or runb >= A.n:
                r = NAN
            else:
                caa = A.a.s2 - A.a.s1 * (A.a.s1 / A.n)
                cbb = A.b.s2 - A.b.s1 * (A.b.s1 / A.n)
                cab = A.sab - A.a.s1 * (A.b.s1 / A.n)
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
                  double p, double* work) noexcept nogil:
    return _col_pair(a, b, y, T, st, w, 0)


cdef int _col_corr(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_pair(a, b, y, T, st, w, 1)


# ----------------------------------------------------------------------------------------------------------
# EWM (pandas recurrence) and Qlib's EMA(x, 0)


cdef int _col_ewm(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                  double com, double* work) noexcept nogil:
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
                       double p, double* work) noexcept nogil:
    """Qlib's EMA(x, 0): O(t) per row, the decay a = 1 - 2/(1+n) changes with every row."""
    cdef double* col = work
    cdef Py_ssize_t t, k
    cdef bint seen = False
    cdef double v, a, num, den
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
