# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whole-panel time-series kernels (rolling, expanding, EWM) on C-contiguous float64 (T, N) panels.

Every public function takes a C-contiguous float64 panel of shape (T, N) (time x instruments) and computes
each column along axis 0, in C with the GIL released; contiguous ranges of columns are spread over OpenMP
threads (``num_threads <= 0``: the OpenMP default). Use :mod:`qops.kernels` rather than calling these
directly: it validates and converts the input. Every column is computed the same way whatever the number of
threads, so results do not depend on it.

Conventions shared by every kernel here:

- ``w`` is the effective window: ``window`` if ``0 < window < T``, else ``T`` (``window == 0`` means
  expanding, and a window longer than the panel is the same thing). Windows count rows, NaN rows included.
- ``+-inf`` is a missing value like NaN (pandas' rolling/expanding/ewm replace inf by NaN before reducing);
  only ``rolling_count`` counts infinities, as pandas does.
- Running-sum kernels (sum/mean/var/std, slope/rsquare/resi/wma, corr/cov) keep sums of values *shifted*
  by an anchor (the window's value nearest to its mean at the last rebuild) and rebuild them from the window
  every ``REBUILD_EVERY * w`` rows (amortised O(1)), as soon as the window mean drifts far from the anchor,
  and when the sums have lost significance (a large value left the window), so a large offset (1e6 + noise)
  or a spike costs no precision. Constant windows come out exact (variance 0, slope 0, corr NaN).
- Query-start invariance: a window's result must not depend on the rows before it (the engine starts the
  panel at the query start minus the expression's lookback). The anchors are data values, so data on a common
  grid (float32 fields, integers, ticks) has exact shifted sums and results that are the same bits whatever
  the history; where rounding of other data could decide a comparison with an exact value (a sum, covariance,
  slope, residual or weighted mean within its rounding bound of 0, an r-squared or correlation within it of
  1), the window is rebuilt and the result computed from it alone (``qops_noise`` in _rowkernels.h).
- Two ways of walking the panel. Most kernels go row by row over a chunk of columns per thread: the
  running-sum families (sum/mean/var/std, slope/rsquare/resi/wma, cov/corr), max/min/idxmax/idxmin (van Herk
  / Gil-Werman blocks) and rank over short windows (direct counting) make one branch-free pass per row that
  the compiler vectorises across the columns (``_rowkernels.h``), then fix the few columns that need it in a
  scalar pass; median/quantile/long-window rank step one sorted buffer per column, the columns in turn. The
  exact per-window kernels (mad/skew/kurt, Qlib's EMA(x, 0)) transpose tiles of 16 columns into contiguous
  buffers.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY, NAN, fabs, sqrt
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t
from libc.string cimport memmove
cimport openmp


cdef extern from "math.h" nogil:
    bint c_isfinite "isfinite"(double)


# A column kernel reads T values x[0], x[st], ... and writes y likewise. ``work`` is a scratch area of
# WORK_PER_ROW * (T + 1) doubles owned by the calling thread.
ctypedef int (*col1_t)(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                       double p, double* work) noexcept nogil

# Rebuild policy of the shifted running sums (see "shifted running sums" below and _rowkernels.h).
DEF REBUILD_EVERY = 16

cdef extern from "_rowkernels.h" nogil:
    const double DRIFT "QOPS_DRIFT"
    const double LOSS "QOPS_LOSS"
    const double ANCHOR_RTOL "QOPS_ANCHOR_RTOL"
    double qops_noise(double m, double w)
    double qops_anchor_value(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t* count)
    double qops_anchor_rows(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t* count,
                            Py_ssize_t* rows)


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


cdef inline Py_ssize_t _work_size(Py_ssize_t T) noexcept nogil:
    """Doubles per thread: the input and output tiles and the kernels' scratch."""
    return 2 * TILE * T + WORK_PER_ROW * (T + 1)


cdef int _tile1(col1_t f, const double* xp, double* op, Py_ssize_t T, Py_ssize_t N, Py_ssize_t k,
                Py_ssize_t w, double p, double* ws, const int64_t* starts) noexcept nogil:
    cdef Py_ssize_t j0 = k * TILE, B = N - k * TILE, b, s, i
    cdef int err = 0
    if B > TILE:
        B = TILE
    cdef double* xin = ws
    cdef double* yout = ws + TILE * T
    cdef double* scratch = ws + 2 * TILE * T
    _gather_tile(xp, xin, T, N, j0, B)
    for b in range(B):
        s = 0
        if starts != NULL:
            s = <Py_ssize_t>starts[j0 + b]
            s = 0 if s < 0 else (T if s > T else s)
            for i in range(s):
                yout[b * T + i] = NAN
        if s < T:
            err += f(xin + b * T + s, yout + b * T + s, T - s, 1, w if w < T - s else T - s, p, scratch)
    _scatter_tile(yout, op, T, N, j0, B)
    return err


cdef object _drive1(col1_t f, const double[:, ::1] x, Py_ssize_t window, double p, int num_threads,
                    object starts=None):
    """Run a column kernel over every column; with ``starts`` (int64 per column) column j begins at row
    starts[j]: the rows above it do not exist for the kernel and come out NaN."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], k, w, ntiles, per
    cdef int err = 0, nt = _threads(num_threads)
    cdef double* ws
    cdef const int64_t[::1] sv
    cdef const int64_t* sp = NULL
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    if starts is not None:
        sv = np.ascontiguousarray(starts, dtype=np.int64)
        if sv.shape[0] != N:
            raise ValueError(f"starts must hold one row per column ({N}), got {sv.shape[0]}")
        sp = &sv[0]
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    ntiles = (N + TILE - 1) // TILE
    if nt > ntiles:
        nt = <int>ntiles
    per = _work_size(T)
    ws = <double*>malloc(nt * per * sizeof(double))
    if ws == NULL:
        raise MemoryError("qops kernel could not allocate its work buffer")
    with nogil:
        for k in prange(ntiles, num_threads=nt, schedule="static"):
            err += _tile1(f, xp, op, T, N, k, w, p, ws + threadid() * per, sp)
    free(ws)
    if err:
        raise MemoryError("qops kernel failed")
    return out


# Row-order kernels (the O(1) running-sum family) avoid the transposition: each thread owns a contiguous
# range of columns (split on cache lines) with one small state record per column. sum/mean/var/std advance
# all their columns one row at a time; the others walk blocks of ROW_BLOCK rows, advancing one column at a
# time (its state held in registers) down the block. Either way a block of rows (plus the rows leaving the
# window) stays in cache while the columns of a cache line are processed, so memory is read about once.
DEF ROW_BLOCK = 64

ctypedef int (*rm1_t)(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                      Py_ssize_t w, double p) noexcept nogil
ctypedef int (*rm2_t)(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t N,
                      Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t w, double p) noexcept nogil


cdef inline Py_ssize_t _chunk_edge(Py_ssize_t c, Py_ssize_t nchunks, Py_ssize_t N) noexcept nogil:
    """First column of chunk c: an even split rounded down to whole cache lines (8 doubles)."""
    if c >= nchunks:
        return N
    return (c * N // nchunks) // 8 * 8


cdef inline Py_ssize_t _nchunks(int nt, Py_ssize_t N) noexcept nogil:
    cdef Py_ssize_t lines = (N + 7) // 8
    return nt if nt < lines else lines


cdef object _drive_rm1(rm1_t f, const double[:, ::1] x, Py_ssize_t window, double p, int num_threads):
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], c, w, nch
    cdef int err = 0, nt = _threads(num_threads)
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    nch = _nchunks(nt, N)
    with nogil:
        if nch == 1:
            err = f(xp, op, T, N, 0, N, w, p)
        else:
            for c in prange(nch, num_threads=nt, schedule="static"):
                err += f(xp, op, T, N, _chunk_edge(c, nch, N), _chunk_edge(c + 1, nch, N), w, p)
    if err:
        raise MemoryError("qops kernel could not allocate its state")
    return out


cdef object _drive_rm2(rm2_t f, const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, double p,
                       int num_threads):
    cdef Py_ssize_t T = a.shape[0], N = a.shape[1], c, w, nch
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
    nch = _nchunks(nt, N)
    with nogil:
        if nch == 1:
            err = f(ap, bp, op, T, N, 0, N, w, p)
        else:
            for c in prange(nch, num_threads=nt, schedule="static"):
                err += f(ap, bp, op, T, N, _chunk_edge(c, nch, N), _chunk_edge(c + 1, nch, N), w, p)
    if err:
        raise MemoryError("qops kernel could not allocate its state")
    return out


# ----------------------------------------------------------------------------------------------------------
# shifted running sums
#
# A series is summed as d = x - K around an anchor K (the window's value nearest to its mean at the last
# rebuild, see _rowkernels.h). The sums are rebuilt from the window (three passes, O(w)):
#   - every REBUILD_EVERY * w rows, to bound the accumulated rounding of add/remove pairs;
#   - when the window mean has drifted from K: (mean - K)^2 > DRIFT * variance (the one-pass variance then
#     loses at most ~DRIFT * eps relatively), unless the drift is at the rounding level of K itself;
#   - when the largest squared deviation added since the last rebuild exceeds LOSS times the current sum of
#     squared deviations (a spike left the window and its rounding residue would dominate, or the window
#     became constant around an anchor that is not its value);
#   - when the result is within its rounding bound of an exact value it could be compared with (0, or 1 for
#     r-squared and correlation): the rebuilt sums give the result from the window alone, whatever the history.
# Right after a rebuild neither of the first three holds, so a rebuild is never repeated on the next row for
# nothing (the last one repeats only while results stay at an exact value, which rebuilt sums of an exact
# window keep without a further rebuild for sums and moments).


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


cdef inline bint _ser_stale(Ser* S, Py_ssize_t n) noexcept nogil:
    """Whether the sums of a window of n >= 1 values must be rebuilt (drift or loss of significance)."""
    cdef double s1sq = S.s1 * S.s1
    cdef double D = n * S.s2 - s1sq          # n * (sum of squared deviations from the mean)
    cdef double noise = ANCHOR_RTOL * fabs(S.K)
    if s1sq > DRIFT * D and fabs(S.s1) > noise * n:
        return True
    return S.peak * n > LOSS * D


# ----------------------------------------------------------------------------------------------------------
# sum / mean / var / std


ctypedef int (*row_t)(const double* xr, const double* xo, double* yr, const double* K, double* s1, double* s2,
                      double* peak, double* nn, double* fl, Py_ssize_t B, double F) noexcept nogil


cdef extern from "_rowkernels.h" nogil:
    ctypedef struct qops_acc:
        double s1
        double s2
        double peak
        double n
    double qops_moment_out(const qops_acc* a, double K, int mode)
    int qops_moment_needs_rebuild(const qops_acc* a, double K)
    int qops_moment_near(const qops_acc* a, double K, double F)
    void qops_moment_rebuild(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi, double* K,
                             qops_acc* a)
    void qops_moment_col(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w, Py_ssize_t every,
                         int mode)
    void qops_count_row(const double* xr, const double* xo, double* yr, double* cnt, Py_ssize_t B)
    void qops_rank_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                        Py_ssize_t w)
    void qops_ranks_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                         const Py_ssize_t* ws, Py_ssize_t K, Py_ssize_t plane)
    void qops_max_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                       Py_ssize_t w, double* suf, double* pre)
    void qops_min_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                       Py_ssize_t w, double* suf, double* pre)
    void qops_argmax_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                          Py_ssize_t w, const double* first, double* suf, double* pre)
    void qops_argmin_rows(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t B,
                          Py_ssize_t w, const double* first, double* suf, double* pre)
    int QOPS_PAIR_FIELDS
    int QP_KA, QP_KB, QP_SA, QP_SB, QP_SAA, QP_SBB, QP_SAB, QP_PA, QP_PB, QP_N, QP_RUNA, QP_RUNB, QP_LASTA
    int QP_LASTB, QP_ODD, QP_FLAG
    double qops_pair_value(double n, double sa, double sb, double saa, double sbb, double sab, double runa,
                           double runb, int mode, double atol)
    int QOPS_REG_FIELDS
    int QR_K, QR_R0, QR_N, QR_SU, QR_SUU, QR_SUE, QR_S1, QR_S2, QR_PK, QR_LAST, QR_RUN, QR_FLAG
    double qops_reg_value(double n, double r0, double su, double suu, double sue, double K, double s1, double s2,
                          double last, double run, double v, double row, double start, int mode, double atol)
    int qops_slope_row(const double* xr, const double* xo, double* yr, double* S, Py_ssize_t B, double row,
                       double row_out, double start, double w, double atol, double F)
    int qops_rsquare_row(const double* xr, const double* xo, double* yr, double* S, Py_ssize_t B, double row,
                         double row_out, double start, double w, double atol, double F)
    int qops_resi_row(const double* xr, const double* xo, double* yr, double* S, Py_ssize_t B, double row,
                      double row_out, double start, double w, double atol, double F)
    int qops_wma_row(const double* xr, const double* xo, double* yr, double* S, Py_ssize_t B, double row,
                     double row_out, double start, double w, double atol, double F)
    int qops_cov_row(const double* ar, const double* br, const double* ao, const double* bo, double* yr,
                     double* S, Py_ssize_t B, double atol, double F)
    int qops_corr_row(const double* ar, const double* br, const double* ao, const double* bo, double* yr,
                      double* S, Py_ssize_t B, double atol, double F)
    int qops_sum_row(const double* xr, const double* xo, double* yr, const double* K, double* s1, double* s2,
                     double* peak, double* nn, double* fl, Py_ssize_t B, double F)
    int qops_mean_row(const double* xr, const double* xo, double* yr, const double* K, double* s1, double* s2,
                      double* peak, double* nn, double* fl, Py_ssize_t B, double F)
    int qops_var_row(const double* xr, const double* xo, double* yr, const double* K, double* s1, double* s2,
                     double* peak, double* nn, double* fl, Py_ssize_t B, double F)
    int qops_std_row(const double* xr, const double* xo, double* yr, const double* K, double* s1, double* s2,
                     double* peak, double* nn, double* fl, Py_ssize_t B, double F)


# Panels narrower than this run each column top to bottom (qops_moment_col); wider ones row by row.
DEF MIN_ROW_COLUMNS = 8


cdef inline int _rm_moments(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                            Py_ssize_t j1, Py_ssize_t w, int mode) noexcept nogil:
    """Rolling sum (mode 0), mean (1), var (2) or std (3) of columns j0..j1-1 (see _rowkernels.h).

    Row by row: one branch-free, vectorised pass over the columns per row, which also flags the columns that may
    need a rebuild (sums that look stale, or for sum and mean a result within its rounding bound of 0), then a
    scalar pass rebuilding the sums of every column every REBUILD_EVERY * w rows, and of the flagged columns
    that do need it.
    """
    cdef Py_ssize_t B = j1 - j0, b, t, lo, every = REBUILD_EVERY * w
    cdef double F
    cdef bint exact_zero = mode <= 1
    cdef double* mem
    cdef double* K
    cdef double* s1
    cdef double* s2
    cdef double* peak
    cdef double* nn
    cdef double* nan_row
    cdef double* fl
    cdef double* yr
    cdef bint periodic
    cdef qops_acc a
    cdef row_t row
    if B <= 0:
        return 0
    if N < MIN_ROW_COLUMNS:
        for b in range(j0, j1):
            qops_moment_col(x + b, y + b, T, N, w, every, mode)
        return 0
    if mode == 0:
        row = qops_sum_row
    elif mode == 1:
        row = qops_mean_row
    elif mode == 2:
        row = qops_var_row
    else:
        row = qops_std_row
    mem = <double*>malloc(7 * B * sizeof(double))
    if mem == NULL:
        return 1
    K = mem
    s1 = mem + B
    s2 = mem + 2 * B
    peak = mem + 3 * B
    nn = mem + 4 * B
    nan_row = mem + 5 * B
    fl = mem + 6 * B
    for b in range(B):
        K[b] = 0.0
        s1[b] = 0.0
        s2[b] = 0.0
        peak[b] = 0.0
        nn[b] = 0.0
        nan_row[b] = NAN
    for t in range(T):
        lo = t - w + 1
        yr = y + t * N + j0
        periodic = t % every == 0
        F = qops_noise(<double>(t % every), <double>w)
        if not row(x + t * N + j0, x + (lo - 1) * N + j0 if lo > 0 else nan_row, yr, K, s1, s2, peak, nn, fl,
                   B, F) and not periodic:
            continue
        # scalar pass: periodic rebuild of every column, or of the flagged ones whose sums are stale beyond the
        # anchor's rounding level or whose sum is within its rounding bound of 0
        for b in range(B):
            if not periodic:
                if fl[b] == 0:
                    continue
                a.s1 = s1[b]
                a.s2 = s2[b]
                a.peak = peak[b]
                a.n = nn[b]
                if not qops_moment_needs_rebuild(&a, K[b]) and not (exact_zero and qops_moment_near(&a, K[b], F)):
                    continue
            qops_moment_rebuild(x + j0 + b, N, lo if lo > 0 else 0, t, &K[b], &a)
            s1[b] = a.s1
            s2[b] = a.s2
            peak[b] = a.peak
            nn[b] = a.n
            yr[b] = qops_moment_out(&a, K[b], mode)
    free(mem)
    return 0


cdef int _rm_sum(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_moments(x, y, T, N, j0, j1, w, 0)


cdef int _rm_mean(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                  Py_ssize_t w, double p) noexcept nogil:
    return _rm_moments(x, y, T, N, j0, j1, w, 1)


cdef int _rm_var(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_moments(x, y, T, N, j0, j1, w, 2)


cdef int _rm_std(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_moments(x, y, T, N, j0, j1, w, 3)


# ----------------------------------------------------------------------------------------------------------
# count


cdef int _rm_count(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                   Py_ssize_t w, double p) noexcept nogil:
    cdef Py_ssize_t B = j1 - j0, b, t, lo
    cdef double* mem
    if B <= 0:
        return 0
    mem = <double*>malloc(2 * B * sizeof(double))
    if mem == NULL:
        return 1
    for b in range(B):
        mem[b] = 0.0
        mem[B + b] = NAN
    for t in range(T):
        lo = t - w + 1
        qops_count_row(x + t * N + j0, x + (lo - 1) * N + j0 if lo > 0 else mem + B, y + t * N + j0, mem, B)
    free(mem)
    return 0


# ----------------------------------------------------------------------------------------------------------
# max / min / idxmax / idxmin: van Herk / Gil-Werman blocks, row by row (_rowkernels.h)


cdef inline int _rm_extreme(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                            Py_ssize_t j1, Py_ssize_t w, bint is_max) noexcept nogil:
    """Rolling max/min of columns j0..j1-1 row by row (van Herk / Gil-Werman, see _rowkernels.h)."""
    cdef Py_ssize_t B = j1 - j0
    cdef double* mem
    if B <= 0:
        return 0
    mem = <double*>malloc(((w if w < T else 1) + 1) * B * sizeof(double))
    if mem == NULL:
        return 1
    if is_max:
        qops_max_rows(x, y, T, N, j0, B, w, mem + B, mem)
    else:
        qops_min_rows(x, y, T, N, j0, B, w, mem + B, mem)
    free(mem)
    return 0


cdef int _rm_max(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_extreme(x, y, T, N, j0, j1, w, True)


cdef int _rm_min(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_extreme(x, y, T, N, j0, j1, w, False)


cdef int _rm_argext(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                    Py_ssize_t w, const double* first, bint is_max) noexcept nogil:
    """Rolling idxmax/idxmin of columns j0..j1-1 row by row (van Herk blocks, see _rowkernels.h)."""
    cdef Py_ssize_t B = j1 - j0
    cdef double* mem
    if B <= 0:
        return 0
    # prefix + neutral rows (6 B), then w suffix rows and the neutral row past the block's end (3 B each)
    mem = <double*>malloc(3 * ((w if w < T else 1) + 3) * B * sizeof(double))
    if mem == NULL:
        return 1
    if is_max:
        qops_argmax_rows(x, y, T, N, j0, B, w, first + j0, mem + 6 * B, mem)
    else:
        qops_argmin_rows(x, y, T, N, j0, B, w, first + j0, mem + 6 * B, mem)
    free(mem)
    return 0


cdef object _drive_argext(const double[:, ::1] x, Py_ssize_t window, int num_threads, object starts,
                          bint is_max):
    """idxmax/idxmin over every column, chunks of columns spread over the threads; ``starts`` as _drive1."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], c, w, nch
    cdef int err = 0, nt = _threads(num_threads)
    out = np.empty((T, N), dtype=np.float64)
    if T == 0 or N == 0:
        return out
    firsts = np.zeros(N) if starts is None else np.asarray(starts, dtype=np.float64)
    if firsts.shape != (N,):
        raise ValueError(f"starts must hold one row per column ({N}), got {firsts.shape[0]}")
    cdef const double[::1] fv = np.ascontiguousarray(firsts)
    cdef double[:, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef const double* fp = &fv[0]
    cdef double* op = &o[0, 0]
    w = _eff_window(window, T)
    nch = _nchunks(nt, N)
    with nogil:
        for c in prange(nch, num_threads=nt, schedule="static"):
            err += _rm_argext(xp, op, T, N, _chunk_edge(c, nch, N), _chunk_edge(c + 1, nch, N), w, fp, is_max)
    if err:
        raise MemoryError("qops kernel could not allocate its state")
    return out


# ----------------------------------------------------------------------------------------------------------
# median / quantile / rank: a sorted buffer of the window's valid values (O(w) memmove per step)


cdef inline Py_ssize_t _bisect_left(const double* a, Py_ssize_t n, double v) noexcept nogil:
    """Index of the first element >= v in sorted a[0:n] (branch-free halving: conditional moves, no
    mispredicted branches on random data)."""
    cdef const double* base = a
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half] < v else base
        n -= half
    return (base - a) + (1 if base[0] < v else 0)


cdef inline Py_ssize_t _bisect_right(const double* a, Py_ssize_t n, double v) noexcept nogil:
    """Index of the first element > v in sorted a[0:n] (branch-free, as _bisect_left)."""
    cdef const double* base = a
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half] <= v else base
        n -= half
    return (base - a) + (1 if base[0] <= v else 0)


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


cdef inline void _sorted_replace(double* a, Py_ssize_t n, double vo, double v) noexcept nogil:
    """Remove vo (present) from sorted a[0:n] and insert v: only the values between the two positions move,
    and the buffer ends exactly as after _sorted_remove then _sorted_insert."""
    cdef Py_ssize_t out = _bisect_left(a, n, vo), pos
    if v >= vo:
        pos = _bisect_right(a, n, v) - 1
        if pos > out:
            memmove(a + out, a + out + 1, (pos - out) * sizeof(double))
    else:
        pos = _bisect_right(a, n, v)
        if out > pos:
            memmove(a + pos + 1, a + pos, (out - pos) * sizeof(double))
    a[pos] = v


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


cdef inline double _order_value(const double* buf, Py_ssize_t n, double v, double q, int mode) noexcept nogil:
    """Median (mode 0), q-quantile (1) or the pct rank of v (2) from the sorted window buffer."""
    cdef Py_ssize_t h
    if n == 0:
        return NAN
    if mode == 0:
        h = n >> 1
        return buf[h] if n & 1 else (buf[h - 1] + buf[h]) / 2
    if mode == 1:
        return _quantile_sorted(buf, n, q)
    if not c_isfinite(v):
        return NAN
    return ((_bisect_left(buf, n, v) + 1 + _bisect_right(buf, n, v)) / 2.0) / n


cdef inline int _rm_order(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                          Py_ssize_t w, double q, int mode) noexcept nogil:
    """Median / quantile / rank of columns j0..j1-1 from one sorted buffer of its window's values per column.

    Row by row, the columns of the chunk in turn: reads are contiguous, and the steps of different columns
    are independent, so the processor overlaps their bisections instead of waiting on one column's chain.
    """
    cdef Py_ssize_t B = j1 - j0, b, t, lo, cap = w + 1
    cdef double* bufs
    cdef Py_ssize_t* counts
    cdef double* buf
    cdef double v, vo
    if B <= 0:
        return 0
    bufs = <double*>malloc(B * cap * sizeof(double))
    counts = <Py_ssize_t*>malloc(B * sizeof(Py_ssize_t))
    if bufs == NULL or counts == NULL:
        free(bufs)
        free(counts)
        return 1
    for b in range(B):
        counts[b] = 0
    for t in range(T):
        lo = t - w + 1
        for b in range(B):
            buf = bufs + b * cap
            v = x[t * N + j0 + b]
            vo = x[(lo - 1) * N + j0 + b] if lo > 0 else NAN
            if c_isfinite(vo) and c_isfinite(v):
                _sorted_replace(buf, counts[b], vo, v)
            else:
                if c_isfinite(vo):
                    _sorted_remove(buf, &counts[b], vo)
                if c_isfinite(v):
                    _sorted_insert(buf, &counts[b], v)
            y[t * N + j0 + b] = _order_value(buf, counts[b], v, q, mode)
    free(bufs)
    free(counts)
    return 0


cdef int _rm_quantiles(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                       Py_ssize_t w, const double* qs, Py_ssize_t K) noexcept nogil:
    """K quantiles of columns j0..j1-1 from one sorted buffer per column (as _rm_order in mode 1, which each
    output equals bit for bit); output k goes to y + k * T * N."""
    cdef Py_ssize_t B = j1 - j0, b, t, k, lo, cap = w + 1, plane = T * N
    cdef double* bufs
    cdef Py_ssize_t* counts
    cdef double* buf
    cdef double v, vo
    if B <= 0:
        return 0
    bufs = <double*>malloc(B * cap * sizeof(double))
    counts = <Py_ssize_t*>malloc(B * sizeof(Py_ssize_t))
    if bufs == NULL or counts == NULL:
        free(bufs)
        free(counts)
        return 1
    for b in range(B):
        counts[b] = 0
    for t in range(T):
        lo = t - w + 1
        for b in range(B):
            buf = bufs + b * cap
            v = x[t * N + j0 + b]
            vo = x[(lo - 1) * N + j0 + b] if lo > 0 else NAN
            if c_isfinite(vo) and c_isfinite(v):
                _sorted_replace(buf, counts[b], vo, v)
            else:
                if c_isfinite(vo):
                    _sorted_remove(buf, &counts[b], vo)
                if c_isfinite(v):
                    _sorted_insert(buf, &counts[b], v)
            for k in range(K):
                y[k * plane + t * N + j0 + b] = _quantile_sorted(buf, counts[b], qs[k])
    free(bufs)
    free(counts)
    return 0


cdef int _rm_median(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                    Py_ssize_t w, double p) noexcept nogil:
    return _rm_order(x, y, T, N, j0, j1, w, p, 0)


cdef int _rm_quantile(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                      Py_ssize_t w, double p) noexcept nogil:
    return _rm_order(x, y, T, N, j0, j1, w, p, 1)


cdef int _rm_rank_sorted(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                         Py_ssize_t w, double p) noexcept nogil:
    return _rm_order(x, y, T, N, j0, j1, w, p, 2)


# Windows up to this many rows rank by counting (qops_rank_rows, O(w) vectorised); longer ones, and expanding
# windows, keep the sorted buffer.
DEF RANK_COUNT_MAX = 256
#: The longest window :func:`rolling_rank` ranks by counting (and :func:`rolling_ranks` takes), for Python callers.
COUNTING_RANK_MAX = RANK_COUNT_MAX


cdef int _rm_rank(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                  Py_ssize_t w, double p) noexcept nogil:
    if j1 > j0:
        qops_rank_rows(x, y, T, N, j0, j1 - j0, w)
    return 0


# ----------------------------------------------------------------------------------------------------------
# mad / skew / kurt: exact two-pass per window over a contiguous copy of the column (O(w) per step);
# skew/kurt of a window that starts at the panel's first row (expanding windows, and the partial windows of the
# first window - 1 rows) use pandas' add-only online central moments (O(1) per step). Which of the two a cell
# gets depends only on its row and the window, never on the panel's length (the query's end).


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
                           int mode, double* work, Py_ssize_t t0=0) noexcept nogil:
    # mode: 0 mad, 1 skew, 2 kurt; rows t0..T-1
    cdef const double* col = x
    cdef Py_ssize_t t, i, lo, c
    cdef double v, first, acc, mean, d, d2, m1, m2, m3, m4, res
    if st != 1:
        for t in range(T):
            work[t] = x[t * st]
        col = work
    for t in range(t0, T):
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
    """Expanding skew (mode 1) / kurt (mode 2) of rows 0..T-1: pandas' moments_add_value, anchored on the first
    value."""
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


cdef int _col_higher_moment(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                            double window, int mode, double* work) noexcept nogil:
    """Skew (mode 1) / kurt (mode 2): rows whose window starts at row 0 online, the others two-pass.

    ``window`` is the requested window (0: expanding): rows before ``window - 1`` have a partial window
    starting at row 0 whatever the panel's length, so they always take the online path.
    """
    cdef Py_ssize_t head = T
    if window > 0 and window - 1 < T:
        head = <Py_ssize_t>window - 1
    _col_online_moments(x, y, head, st, mode)
    if head < T:
        _col_window_stats(x, y, T, st, w, mode, work, head)
    return 0


cdef int _col_skew(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_higher_moment(x, y, T, st, w, p, 1, work)


cdef int _col_kurt(const double* x, double* y, Py_ssize_t T, Py_ssize_t st, Py_ssize_t w,
                   double p, double* work) noexcept nogil:
    return _col_higher_moment(x, y, T, st, w, p, 2, work)


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
    cdef Py_ssize_t i, c, rows
    cdef double v, u, d, K = qops_anchor_rows(x, st, lo, hi, &c, &rows)
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


cdef inline bint _reg_stale(Reg* A) noexcept nogil:
    cdef double susq = A.su * A.su
    if susq > DRIFT * (A.n * A.suu - susq) and fabs(A.su) >= A.n:
        return True
    return _ser_stale(&A.e, A.n)


cdef inline void _move(double* field, double* value, bint to_rows) noexcept nogil:
    if to_rows:
        field[0] = value[0]
    else:
        value[0] = field[0]


cdef inline void _reg_copy(double* S, Py_ssize_t B, Reg* A, bint to_rows) noexcept nogil:
    """Copy one column's sums between the row kernel's arrays (``S`` at the column, field k at S[k * B]) and A."""
    cdef double n = <double>A.n if to_rows else 0.0, r0 = <double>A.r0 if to_rows else 0.0
    _move(S + QR_N * B, &n, to_rows)
    _move(S + QR_R0 * B, &r0, to_rows)
    _move(S + QR_SU * B, &A.su, to_rows)
    _move(S + QR_SUU * B, &A.suu, to_rows)
    _move(S + QR_SUE * B, &A.sue, to_rows)
    _move(S + QR_K * B, &A.e.K, to_rows)
    _move(S + QR_S1 * B, &A.e.s1, to_rows)
    _move(S + QR_S2 * B, &A.e.s2, to_rows)
    _move(S + QR_PK * B, &A.e.peak, to_rows)
    A.n = <Py_ssize_t>n
    A.r0 = <Py_ssize_t>r0


ctypedef int (*reg_row_t)(const double* xr, const double* xo, double* yr, double* S, Py_ssize_t B, double row,
                         double row_out, double start, double w, double atol, double F) noexcept nogil


cdef inline int _rm_regression(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                               Py_ssize_t j1, Py_ssize_t w, int mode, double atol=-1.0) noexcept nogil:
    """Slope (mode 0), r-squared (1), residual (2) or WMA (3) of columns j0..j1-1, row by row.

    A vectorised pass per row (qops_*_row in _rowkernels.h) updates every column and flags the columns whose
    sums look stale (bit 1) or whose result is within its rounding bound of an exact value (bit 2); a scalar
    pass rebuilds those from the window (re-checking stale ones with the anchor's rounding level), and every
    column every REBUILD_EVERY * w rows.
    """
    cdef Py_ssize_t B = j1 - j0, b, t, lo, s, every = REBUILD_EVERY * w
    cdef double* S
    cdef double* nan_row
    cdef double flag
    cdef bint periodic
    cdef Reg A
    cdef reg_row_t row
    if mode == 0:
        row = qops_slope_row
    elif mode == 1:
        row = qops_rsquare_row
    elif mode == 2:
        row = qops_resi_row
    else:
        row = qops_wma_row
    if B <= 0:
        return 0
    S = <double*>malloc((QOPS_REG_FIELDS + 1) * B * sizeof(double))
    if S == NULL:
        return 1
    nan_row = S + QOPS_REG_FIELDS * B
    for b in range(QOPS_REG_FIELDS * B):
        S[b] = 0.0
    for b in range(B):
        nan_row[b] = NAN
    for t in range(T):
        lo = t - w + 1
        s = lo if lo > 0 else 0
        periodic = t % every == 0
        if not row(x + t * N + j0, x + (lo - 1) * N + j0 if lo > 0 else nan_row, y + t * N + j0, S, B, <double>t,
                   <double>(lo - 1), <double>s, <double>w, atol, qops_noise(<double>(t % every), <double>w)) \
                and not periodic:
            continue
        for b in range(B):
            flag = S[QR_FLAG * B + b]
            if not periodic and flag == 0:
                continue
            _reg_copy(S + b, B, &A, False)
            if not periodic and flag < 2 and (A.n == 0 or not _reg_stale(&A)):
                continue
            _reg_rebuild(x + j0 + b, N, s, t, &A)
            _reg_copy(S + b, B, &A, True)
            y[t * N + j0 + b] = qops_reg_value(<double>A.n, <double>A.r0, A.su, A.suu, A.sue, A.e.K, A.e.s1, A.e.s2,
                                               S[QR_LAST * B + b], S[QR_RUN * B + b], x[t * N + j0 + b], <double>t,
                                               <double>s, mode, atol)
    free(S)
    return 0


cdef int _rm_slope(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                   Py_ssize_t w, double p) noexcept nogil:
    return _rm_regression(x, y, T, N, j0, j1, w, 0)


cdef int _rm_rsquare(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                     Py_ssize_t w, double p) noexcept nogil:
    return _rm_regression(x, y, T, N, j0, j1, w, 1, p)


cdef int _rm_resi(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                  Py_ssize_t w, double p) noexcept nogil:
    return _rm_regression(x, y, T, N, j0, j1, w, 2)


cdef int _rm_wma(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double p) noexcept nogil:
    return _rm_regression(x, y, T, N, j0, j1, w, 3)


# ----------------------------------------------------------------------------------------------------------
# corr / cov: pairwise-complete shifted sums with rebuilds


cdef struct Pair:
    Py_ssize_t n
    double sab
    Ser a
    Ser b


cdef inline void _pair_rebuild(const double* a, const double* b, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi,
                               Pair* A) noexcept nogil:
    """Sums of the rows lo..hi where both sides have a value, each side anchored at its value nearest to its
    mean over those rows (see _rowkernels.h)."""
    cdef Py_ssize_t i, c = 0
    cdef double va, vb, fa = 0.0, fb = 0.0, acca = 0.0, accb = 0.0, ma, mb, ka = 0.0, kb = 0.0
    cdef double gapa = INFINITY, gapb = INFINITY, ga, gb
    cdef bint ok
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
    if c > 0:
        ma = fa + acca / c
        mb = fb + accb / c
        for i in range(lo, hi + 1):  # selects rather than branches: which value is nearest is unpredictable
            va = a[i * st]
            vb = b[i * st]
            ok = c_isfinite(va) & c_isfinite(vb)
            ga = fabs(va - ma) if ok else INFINITY
            gb = fabs(vb - mb) if ok else INFINITY
            ka = va if ga < gapa else ka
            gapa = ga if ga < gapa else gapa
            kb = vb if gb < gapb else kb
            gapb = gb if gb < gapb else gapb
    _ser_reset(&A.a, ka)
    _ser_reset(&A.b, kb)
    if c == 0:
        return
    for i in range(lo, hi + 1):
        va = a[i * st]
        vb = b[i * st]
        if c_isfinite(va) and c_isfinite(vb):
            A.sab = A.sab + _ser_add(&A.a, va) * _ser_add(&A.b, vb)


cdef inline double _own_var(const double* x, Py_ssize_t st, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Sample variance (ddof=1) of the finite values of rows lo..hi, two passes; NaN below 2 values."""
    cdef Py_ssize_t i, c = 0
    cdef double v, m = 0.0, acc = 0.0, first = 0.0
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            if c == 0:
                first = v
            else:
                m = m + (v - first)
            c += 1
    if c < 2:
        return NAN
    m = first + m / c
    for i in range(lo, hi + 1):
        v = x[i * st]
        if c_isfinite(v):
            acc = acc + (v - m) * (v - m)
    return acc / (c - 1)


cdef inline void _pair_copy(double* S, Py_ssize_t B, Pair* A, bint to_rows) noexcept nogil:
    """Copy one column's sums between the row kernel's arrays (``S`` at the column, field k at S[k * B]) and A."""
    cdef double n = <double>A.n if to_rows else 0.0
    _move(S + QP_N * B, &n, to_rows)
    _move(S + QP_SAB * B, &A.sab, to_rows)
    _move(S + QP_KA * B, &A.a.K, to_rows)
    _move(S + QP_SA * B, &A.a.s1, to_rows)
    _move(S + QP_SAA * B, &A.a.s2, to_rows)
    _move(S + QP_PA * B, &A.a.peak, to_rows)
    _move(S + QP_KB * B, &A.b.K, to_rows)
    _move(S + QP_SB * B, &A.b.s1, to_rows)
    _move(S + QP_SBB * B, &A.b.s2, to_rows)
    _move(S + QP_PB * B, &A.b.peak, to_rows)
    A.n = <Py_ssize_t>n


ctypedef int (*pair_row_t)(const double* ar, const double* br, const double* ao, const double* bo, double* yr,
                          double* S, Py_ssize_t B, double atol, double F) noexcept nogil


cdef inline int _rm_pair(const double* a, const double* bb, double* y, Py_ssize_t T, Py_ssize_t N,
                         Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t w, int mode, double atol=-1.0) noexcept nogil:
    """Rolling cov (mode 0) / corr (mode 1) of columns j0..j1-1, row by row.

    A vectorised pass per row (qops_cov_row / qops_corr_row in _rowkernels.h) updates every column; a scalar
    pass follows on the rows where some column needs it: every REBUILD_EVERY * w rows all sums are rebuilt from
    the window, stale ones and those whose result is within its rounding bound of 0 (or of +-1 for corr) in
    between, and where a correlation guard (atol >= 0) meets a window whose two sides miss different rows,
    each side's own std is computed from its window directly.
    """
    cdef Py_ssize_t B = j1 - j0, b, t, lo, s, every = REBUILD_EVERY * w
    cdef double* S
    cdef double* nan_row
    cdef double value, flag
    cdef bint periodic, rebuild
    cdef Pair A
    cdef pair_row_t row = qops_cov_row if mode == 0 else qops_corr_row
    if B <= 0:
        return 0
    S = <double*>malloc((QOPS_PAIR_FIELDS + 1) * B * sizeof(double))
    if S == NULL:
        return 1
    nan_row = S + QOPS_PAIR_FIELDS * B
    for b in range(QOPS_PAIR_FIELDS * B):
        S[b] = 0.0
    for b in range(B):
        nan_row[b] = NAN
    for t in range(T):
        lo = t - w + 1
        s = lo if lo > 0 else 0
        periodic = t % every == 0
        if not row(a + t * N + j0, bb + t * N + j0, a + (lo - 1) * N + j0 if lo > 0 else nan_row,
                   bb + (lo - 1) * N + j0 if lo > 0 else nan_row, y + t * N + j0, S, B, atol,
                   qops_noise(<double>(t % every), <double>w)) and not periodic:
            continue
        for b in range(B):
            flag = S[QP_FLAG * B + b]
            if not periodic and flag == 0:
                continue
            _pair_copy(S + b, B, &A, False)
            rebuild = periodic or flag >= 2 or (A.n > 0 and (_ser_stale(&A.a, A.n) or _ser_stale(&A.b, A.n)))
            if rebuild:
                _pair_rebuild(a + j0 + b, bb + j0 + b, N, s, t, &A)
                _pair_copy(S + b, B, &A, True)
            if atol >= 0 and S[QP_ODD * B + b] > 0:
                # the two sides miss different rows: the guard needs each side's own std
                value = qops_pair_value(<double>A.n, A.a.s1, A.b.s1, A.a.s2, A.b.s2, A.sab, S[QP_RUNA * B + b],
                                        S[QP_RUNB * B + b], mode, -1.0)
                if value == value and (sqrt(_own_var(a + j0 + b, N, s, t)) <= atol
                                       or sqrt(_own_var(bb + j0 + b, N, s, t)) <= atol):
                    value = NAN
                y[t * N + j0 + b] = value
            elif rebuild:
                y[t * N + j0 + b] = qops_pair_value(<double>A.n, A.a.s1, A.b.s1, A.a.s2, A.b.s2, A.sab,
                                                    S[QP_RUNA * B + b], S[QP_RUNB * B + b], mode, atol)
    free(S)
    return 0


cdef int _rm_cov(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                 Py_ssize_t j1, Py_ssize_t w, double p) noexcept nogil:
    return _rm_pair(a, b, y, T, N, j0, j1, w, 0)


cdef int _rm_corr(const double* a, const double* b, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0,
                  Py_ssize_t j1, Py_ssize_t w, double p) noexcept nogil:
    return _rm_pair(a, b, y, T, N, j0, j1, w, 1, p)


# ----------------------------------------------------------------------------------------------------------
# EWM (pandas recurrence) and Qlib's EMA(x, 0)


cdef int _rm_ewm(const double* x, double* y, Py_ssize_t T, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1,
                 Py_ssize_t w, double com) noexcept nogil:
    """pandas' ewm(com=com, adjust=True, ignore_na=False, min_periods=1).mean(), step for step."""
    cdef double alpha = 1.0 / (1.0 + com)
    cdef double old_wt_factor = 1.0 - alpha
    cdef double new_wt = 1.0
    cdef Py_ssize_t B = j1 - j0, b, t
    cdef double weighted, cur
    cdef const double* xr
    cdef double* yr
    cdef double* mem
    cdef double* wt
    cdef double* old
    if B <= 0:
        return 0
    mem = <double*>malloc(2 * B * sizeof(double))
    if mem == NULL:
        return 1
    wt = mem
    old = mem + B
    for b in range(B):
        wt[b] = NAN
        old[b] = 1.0
    for t in range(T):
        xr = x + t * N + j0
        yr = y + t * N + j0
        for b in range(B):
            cur = xr[b]
            weighted = wt[b]
            if weighted == weighted:
                old[b] = old[b] * old_wt_factor
                if c_isfinite(cur):
                    if weighted != cur:
                        weighted = old[b] * weighted + new_wt * cur
                        weighted = weighted / (old[b] + new_wt)
                    old[b] = old[b] + new_wt
            elif c_isfinite(cur):
                weighted = cur
            wt[b] = weighted
            yr[b] = weighted
    free(mem)
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
    return _drive_rm1(_rm_sum, x, window, 0.0, num_threads)


def rolling_mean(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling mean of the non-missing values; NaN for an all-missing window."""
    return _drive_rm1(_rm_mean, x, window, 0.0, num_threads)


def rolling_var(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling sample variance (ddof=1) of the non-missing values; NaN below 2 values."""
    return _drive_rm1(_rm_var, x, window, 0.0, num_threads)


def rolling_std(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling sample standard deviation (ddof=1); NaN below 2 values."""
    return _drive_rm1(_rm_std, x, window, 0.0, num_threads)


def rolling_count(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Number of non-NaN values in the window (infinities count)."""
    return _drive_rm1(_rm_count, x, window, 0.0, num_threads)


def rolling_max(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling maximum of the non-missing values."""
    return _drive_rm1(_rm_max, x, window, 0.0, num_threads)


def rolling_min(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling minimum of the non-missing values."""
    return _drive_rm1(_rm_min, x, window, 0.0, num_threads)


def rolling_idxmax(const double[:, ::1] x, Py_ssize_t window, int num_threads=0, starts=None):
    """1-based position (oldest = 1) of numpy's argmax in the possibly partial window."""
    return _drive_argext(x, window, num_threads, starts, True)


def rolling_idxmin(const double[:, ::1] x, Py_ssize_t window, int num_threads=0, starts=None):
    """1-based position (oldest = 1) of numpy's argmin in the possibly partial window."""
    return _drive_argext(x, window, num_threads, starts, False)


def rolling_median(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling median of the non-missing values."""
    return _drive_rm1(_rm_median, x, window, 0.0, num_threads)


def rolling_quantile(const double[:, ::1] x, Py_ssize_t window, double q, int num_threads=0):
    """Rolling q-quantile (linear interpolation) of the non-missing values."""
    return _drive_rm1(_rm_quantile, x, window, q, num_threads)


def rolling_rank(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Percentile rank (average ties) of the newest value among the window's values."""
    if 0 < window <= RANK_COUNT_MAX:
        return _drive_rm1(_rm_rank, x, window, 0.0, num_threads)
    return _drive_rm1(_rm_rank_sorted, x, window, 0.0, num_threads)


def rolling_ranks(const double[:, ::1] x, windows, int num_threads=0):
    """Percentile ranks over several windows from one scan of the widest (qops_ranks_rows): a list of K arrays
    (T, N), the k-th equal to :func:`rolling_rank` with ``windows[k]`` bit for bit. Each window must be between 1
    and RANK_COUNT_MAX rows (a window longer than the panel is the whole panel, as there)."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], K = len(windows), c, nch
    cdef int nt = _threads(num_threads)
    given = [int(w) for w in windows]
    if any(not 0 < w <= RANK_COUNT_MAX for w in given):
        raise ValueError(f"rolling_ranks takes windows of 1 to {RANK_COUNT_MAX} rows, got {given}")
    order = sorted(range(K), key=lambda j: given[j])  # the kernel wants them shortest first
    planes = np.empty((K, T, N), dtype=np.float64)  # plane k: the k-th shortest window
    if T == 0 or N == 0 or K == 0:
        return list(planes)
    sorted_windows = np.array([_eff_window(given[j], T) for j in order], dtype=np.intp)
    cdef const Py_ssize_t[::1] wv = sorted_windows
    cdef double[:, :, ::1] o = planes
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0, 0]
    cdef const Py_ssize_t* wp = &wv[0]
    cdef Py_ssize_t plane = T * N
    nch = _nchunks(nt, N)
    with nogil:
        if nch == 1:
            qops_ranks_rows(xp, op, T, N, 0, N, wp, K, plane)
        else:
            for c in prange(nch, num_threads=nt, schedule="static"):
                qops_ranks_rows(xp, op, T, N, _chunk_edge(c, nch, N),
                                _chunk_edge(c + 1, nch, N) - _chunk_edge(c, nch, N), wp, K, plane)
    position = {j: k for k, j in enumerate(order)}
    return [planes[position[j]] for j in range(K)]


def rolling_mad(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling mean absolute deviation around the mean."""
    return _drive1(_col_mad, x, window, 0.0, num_threads)


def rolling_skew(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling adjusted Fisher-Pearson skewness; NaN below 3 values or for a constant window."""
    return _drive1(_col_skew, x, window, <double>window, num_threads)


def rolling_kurt(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Rolling bias-corrected excess kurtosis; NaN below 4 values or for a constant window."""
    return _drive1(_col_kurt, x, window, <double>window, num_threads)


def rolling_slope(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Slope of the least-squares line of the values on their row position."""
    return _drive_rm1(_rm_slope, x, window, 0.0, num_threads)


def rolling_rsquare(const double[:, ::1] x, Py_ssize_t window, double std_atol=-1.0, int num_threads=0):
    """R-squared of the least-squares line of the values on their row position (NaN where the window's std
    is <= std_atol, when std_atol >= 0)."""
    return _drive_rm1(_rm_rsquare, x, window, std_atol, num_threads)


def rolling_resi(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Residual of the newest value from the window's least-squares line."""
    return _drive_rm1(_rm_resi, x, window, 0.0, num_threads)


def rolling_wma(const double[:, ::1] x, Py_ssize_t window, int num_threads=0):
    """Linear weighted mean (weights 1..L, newest heaviest) normalised over the non-missing positions."""
    return _drive_rm1(_rm_wma, x, window, 0.0, num_threads)


def rolling_cov(const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, int num_threads=0):
    """Rolling sample covariance (ddof=1) over the rows where both are present."""
    return _drive_rm2(_rm_cov, a, b, window, 0.0, num_threads)


def rolling_corr(const double[:, ::1] a, const double[:, ::1] b, Py_ssize_t window, double std_atol=-1.0,
                 int num_threads=0):
    """Rolling Pearson correlation over the rows where both are present (NaN where either side's own std
    is <= std_atol, when std_atol >= 0)."""
    return _drive_rm2(_rm_corr, a, b, window, std_atol, num_threads)


def ewm_mean(const double[:, ::1] x, double com, int num_threads=0):
    """pandas' adjusted exponentially weighted mean with centre of mass ``com`` (ignore_na=False)."""
    return _drive_rm1(_rm_ewm, x, 0, com, num_threads)


def expanding_ema_qlib(const double[:, ::1] x, int num_threads=0, starts=None):
    """Qlib's EMA(x, 0) (expanding, decay 1 - 2/(1+n), missing values count as 0)."""
    return _drive1(_col_ema_qlib, x, 0, 0.0, num_threads, starts)


# ----------------------------------------------------------------------------------------------------------
# sibling batches: several quantiles of one window of one input from one sorted buffer
#
# (Several windows of the running-sum and max/min kernels in one call, column strip by column strip, were
# measured slower than one call per window: those kernels already stream the panel at memory speed.)


def rolling_quantiles(const double[:, ::1] x, Py_ssize_t window, qs, int num_threads=0):
    """Several rolling quantiles of one window from one sorted buffer per column: an array (K, T, N) whose
    k-th plane equals :func:`rolling_quantile` at ``qs[k]`` bit for bit."""
    cdef Py_ssize_t T = x.shape[0], N = x.shape[1], K = len(qs), c, w, nch
    cdef int err = 0, nt = _threads(num_threads)
    out = np.empty((K, T, N), dtype=np.float64)
    if T == 0 or N == 0 or K == 0:
        return out
    levels = np.ascontiguousarray(qs, dtype=np.float64)
    cdef const double[::1] qv = levels
    cdef double[:, :, ::1] o = out
    cdef const double* xp = &x[0, 0]
    cdef double* op = &o[0, 0, 0]
    cdef const double* qp = &qv[0]
    w = _eff_window(window, T)
    nch = _nchunks(nt, N)
    with nogil:
        if nch == 1:
            err = _rm_quantiles(xp, op, T, N, 0, N, w, qp, K)
        else:
            for c in prange(nch, num_threads=nt, schedule="static"):
                err += _rm_quantiles(xp, op, T, N, _chunk_edge(c, nch, N), _chunk_edge(c + 1, nch, N), w, qp, K)
    if err:
        raise MemoryError("qops kernel could not allocate its state")
    return out
