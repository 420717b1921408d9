/*
 * Shifted running sums behind rolling sum/mean/var/std (see _rolling.pyx, "shifted running sums").
 *
 * A column's window is summed as d = x - K around an anchor K: s1 = sum d, s2 = sum d*d, n = count, and
 * peak = the largest d*d taken in since the last rebuild. A value v is present when v - v == 0 (NaN and
 * +-inf are missing); counts are doubles. The sums go stale when the anchor has drifted from the window mean
 * ((mean - K)^2 > drift * variance) or when the sum of squared deviations fell far below the largest squared
 * deviation it took in (peak > loss * variance: a large value left the window, or the window became constant
 * around an anchor that is not its value). Stale sums are rebuilt from the window.
 *
 * The anchor of a rebuild is the window's value nearest to its mean (not the mean itself): the deviations
 * d = x - K of data on a common grid (float32 fields, integers, prices in ticks) are then exact, their sums too,
 * and so is every result computed from them as n * (sum of products) - (sum) * (sum): exact inputs give the
 * same bits whatever rows came before the window. Nearest to the mean, K stays within one standard deviation of
 * it, so the one-pass variance keeps its precision.
 *
 * Results of other data carry rounding that depends on the rows before the window (where the sums were last
 * rebuilt). Where that rounding could decide a comparison with an exact value (a sum, covariance or slope
 * within its rounding bound of 0, an r-squared or correlation within it of 1), the window is rebuilt and the
 * result computed from it alone (qops_noise gives the bound): comparisons such as Sign(Cov(a, b, N)) or
 * Ge(1, Rsquare(x, N)) then do not depend on the query start, and an exactly zero moment comes out 0.
 *
 * Two drivers share the same arithmetic, so a column gets the same bits whichever one runs it:
 * qops_<stat>_row advances every column of a chunk by one row (branch-free, vectorised across columns; on
 * x86-64 Linux with GCC also compiled for AVX2 and picked at load time) and qops_moment_col runs one column
 * from top to bottom (narrow panels).
 *
 * Built with -fno-trapping-math (selects may evaluate both sides) and -fno-math-errno (vectorisable sqrt);
 * neither changes any result.
 */
#ifndef QOPS_ROWKERNELS_H
#define QOPS_ROWKERNELS_H

#include <math.h>
#include <stddef.h>

#define QOPS_MODE_SUM 0
#define QOPS_MODE_MEAN 1
#define QOPS_MODE_VAR 2
#define QOPS_MODE_STD 3

/* rebuild policy (see the file comment) */
#define QOPS_DRIFT 100.0
#define QOPS_LOSS 1000.0
#define QOPS_ANCHOR_RTOL 1e-13

/* unit roundoff of double (2^-53) */
#define QOPS_U 1.1102230246251565e-16

/*
 * Rounding bound of shifted sums over a window of w rows, m rows after the last periodic rebuild, relative to
 * the largest term they took in (a term t of the window: |t| <= sqrt(peak) for d, sqrt(peak_a * peak_b) for
 * da * db, and so on). The sums took in at most (m + w + 1) terms since their last rebuild, each addition
 * rounding by at most u times a partial sum of at most (w + 2) such terms; the terms themselves and the final
 * products and differences add a few u per window row. The factor 8 covers the recomputation the result is
 * compared with and leaves a margin (the bound is first order): a result whose distance from an exact value
 * exceeds F * scale has the sign of the exact one whatever the sums' history.
 */
static inline double qops_noise(double m, double w)
{
    return 8.0 * QOPS_U * ((m + w + 1.0) * (w + 2.0) + 10.0 * w);
}

typedef struct {
    double s1, s2, peak, n;
} qops_acc;

static inline double qops_moment_out(const qops_acc *a, double K, int mode)
{
    double n = a->n, q, S = n * K + a->s1;
    if (mode == QOPS_MODE_SUM)
        return n == 0.0 ? NAN : S;
    if (mode == QOPS_MODE_MEAN) /* the sum divided once (exact sums give pandas' mean); s1 == 0: exactly K */
        return n == 0.0 ? NAN : (a->s1 == 0.0 ? K : S / n);
    q = (n * a->s2 - a->s1 * a->s1) / (n * (n - 1.0));
    q = q < 0.0 ? 0.0 : q;
    if (mode == QOPS_MODE_STD)
        q = sqrt(q);
    return n < 2.0 ? NAN : q;
}

/* Whether a sum (or mean) is within its rounding bound of 0 (F from qops_noise): the result is then recomputed
 * from the window. Strict comparisons: sums that took in only zero deviations (peak 0) around K = 0 are exact. */
static inline int qops_moment_near(const qops_acc *a, double K, double F)
{
    /* |S| < F * (n |K| + sqrt(peak)) implies this (and is implied by it with F halved) */
    double S = a->n * K + a->s1, nK = a->n * K;
    return S * S < (2.0 * F * F) * (nK * nK + a->peak);
}

/* v enters the window and vo leaves it; returns whether the sums look stale (selects only). */
static inline int qops_moment_update(double v, double vo, double k, qops_acc *a)
{
    double din = (v - v == 0.0) ? v - k : 0.0;
    double dout = (vo - vo == 0.0) ? vo - k : 0.0;
    double n1 = a->n + ((v - v == 0.0) ? 1.0 : 0.0) - ((vo - vo == 0.0) ? 1.0 : 0.0);
    double a1 = n1 == 0.0 ? 0.0 : a->s1 + (din - dout);
    double a2 = n1 == 0.0 ? 0.0 : a->s2 + (din * din - dout * dout);
    double pk = n1 == 0.0 ? 0.0 : (din * din > a->peak ? din * din : a->peak);
    double s1sq = a1 * a1;
    double D = n1 * a2 - s1sq; /* n^2 * biased variance */
    a->s1 = a1;
    a->s2 = a2;
    a->peak = pk;
    a->n = n1;
    return (s1sq > QOPS_DRIFT * D) | (pk * n1 > QOPS_LOSS * D);
}

/* The scalar re-check of a stale flag: a drift is only acted on above the rounding level of the anchor. */
static inline int qops_moment_needs_rebuild(const qops_acc *a, double K)
{
    double s1sq = a->s1 * a->s1;
    double D = a->n * a->s2 - s1sq;
    double noise = QOPS_ANCHOR_RTOL * fabs(K);
    return (s1sq > QOPS_DRIFT * D && fabs(a->s1) > noise * a->n) || a->peak * a->n > QOPS_LOSS * D;
}

/* The finite value of rows lo..hi (stride st) nearest to their mean, the first one on ties; their count in *count
 * and the sum of their row numbers in *rows (0.0 and 0 without any). Two passes. */
static inline double qops_anchor_rows(const double *x, ptrdiff_t st, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t *count,
                                      ptrdiff_t *rows)
{
    ptrdiff_t i, c = 0, r = 0;
    double v, first = 0.0, acc = 0.0, mean, best = 0.0, gap = INFINITY;
    for (i = lo; i <= hi; i++) {
        v = x[i * st];
        if (v - v == 0.0) {
            if (c == 0)
                first = v;
            else
                acc += v - first;
            c++;
            r += i;
        }
    }
    *count = c;
    *rows = r;
    if (c == 0)
        return 0.0;
    mean = first + acc / (double)c;
    for (i = lo; i <= hi; i++) { /* selects, not branches: which value is nearest is unpredictable */
        v = x[i * st];
        double g = v - v == 0.0 ? fabs(v - mean) : INFINITY;
        best = g < gap ? v : best;
        gap = g < gap ? g : gap;
    }
    return best;
}

/* qops_anchor_rows without the row numbers. */
static inline double qops_anchor_value(const double *x, ptrdiff_t st, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t *count)
{
    ptrdiff_t rows;
    return qops_anchor_rows(x, st, lo, hi, count, &rows);
}

/* Recompute anchor and sums from rows lo..hi (inclusive) of a column with stride st. */
static inline void qops_moment_rebuild(const double *x, ptrdiff_t st, ptrdiff_t lo, ptrdiff_t hi, double *K,
                                       qops_acc *a)
{
    ptrdiff_t i, c;
    double v, k = qops_anchor_value(x, st, lo, hi, &c), d, s1 = 0.0, s2 = 0.0, peak = 0.0;
    for (i = lo; c > 0 && i <= hi; i++) {
        v = x[i * st];
        if (v - v == 0.0) {
            d = v - k;
            s1 += d;
            s2 += d * d;
            if (d * d > peak)
                peak = d * d;
        }
    }
    *K = k;
    a->s1 = s1;
    a->s2 = s2;
    a->peak = peak;
    a->n = (double)c;
}

/* One row for the columns of a chunk; the state is kept as arrays (structure of arrays). Flags (1.0 in fl) the
 * columns the scalar pass must look at: sums that look stale (qops_moment_needs_rebuild decides), or (sum and
 * mean) a result within the noise bound F of 0; returns whether any is flagged. */
static inline int qops_moment_row(const double *restrict xr, const double *restrict xo, double *restrict yr,
                                  const double *restrict K, double *restrict s1, double *restrict s2,
                                  double *restrict peak, double *restrict nn, double *restrict fl, ptrdiff_t B,
                                  int mode, double F)
{
    double any = 0.0;
    for (ptrdiff_t b = 0; b < B; b++) {
        qops_acc a = {s1[b], s2[b], peak[b], nn[b]};
        int flag = qops_moment_update(xr[b], xo[b], K[b], &a);
        if (mode == QOPS_MODE_SUM || mode == QOPS_MODE_MEAN)
            flag |= qops_moment_near(&a, K[b], F);
        fl[b] = flag ? 1.0 : 0.0;
        any = flag ? 1.0 : any;
        s1[b] = a.s1;
        s2[b] = a.s2;
        peak[b] = a.peak;
        nn[b] = a.n;
        yr[b] = qops_moment_out(&a, K[b], mode);
    }
    return any != 0.0;
}

/*
 * One entry point per statistic. On x86-64 Linux with GCC they are compiled twice, for AVX2 (blends are one
 * instruction there) and for the baseline, and the dynamic loader picks the one the CPU supports.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define QOPS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QOPS_CLONES
#endif

/* the shared bodies below take their mode as a constant: inlined into each entry point, their branches on it
 * fold away and the loops vectorise */
#if defined(__GNUC__)
#define QOPS_FORCE_INLINE static inline __attribute__((always_inline))
#else
#define QOPS_FORCE_INLINE static inline
#endif

#define QOPS_ROW_ENTRY(name, mode)                                                                           \
    QOPS_CLONES static int name(const double *restrict xr, const double *restrict xo, double *restrict yr,  \
                                const double *restrict K, double *restrict s1, double *restrict s2,          \
                                double *restrict peak, double *restrict nn, double *restrict fl, ptrdiff_t B, \
                                double F)                                                                    \
    {                                                                                                        \
        return qops_moment_row(xr, xo, yr, K, s1, s2, peak, nn, fl, B, mode, F);                             \
    }

QOPS_ROW_ENTRY(qops_sum_row, QOPS_MODE_SUM)
QOPS_ROW_ENTRY(qops_mean_row, QOPS_MODE_MEAN)
QOPS_ROW_ENTRY(qops_var_row, QOPS_MODE_VAR)
QOPS_ROW_ENTRY(qops_std_row, QOPS_MODE_STD)

/* rolling count: non-NaN values (infinities count, as in pandas); vectorised like the rows above */
static inline void qops_count_row(const double *restrict xr, const double *restrict xo, double *restrict yr,
                                  double *restrict cnt, ptrdiff_t B)
{
    for (ptrdiff_t b = 0; b < B; b++) {
        double c = cnt[b] + (xr[b] == xr[b] ? 1.0 : 0.0) - (xo[b] == xo[b] ? 1.0 : 0.0);
        cnt[b] = c;
        yr[b] = c;
    }
}

/*
 * One column (stride st) from top to bottom: window w (1..T), sums rebuilt every `every` rows, when stale and
 * (sum, mean) when the result is within its noise bound of 0. Same arithmetic as the row driver in _rolling.pyx.
 */
static inline void qops_moment_col(const double *x, double *y, ptrdiff_t T, ptrdiff_t st, ptrdiff_t w,
                                   ptrdiff_t every, int mode)
{
    qops_acc a = {0.0, 0.0, 0.0, 0.0};
    double K = 0.0;
    int exact_zero = mode == QOPS_MODE_SUM || mode == QOPS_MODE_MEAN;
    for (ptrdiff_t t = 0; t < T; t++) {
        ptrdiff_t lo = t - w + 1;
        double vo = lo > 0 ? x[(lo - 1) * st] : NAN;
        int stale = qops_moment_update(x[t * st], vo, K, &a);
        if (t % every == 0 || (stale && qops_moment_needs_rebuild(&a, K)) ||
            (exact_zero && qops_moment_near(&a, K, qops_noise((double)(t % every), (double)w))))
            qops_moment_rebuild(x, st, lo > 0 ? lo : 0, t, &K, &a);
        y[t * st] = qops_moment_out(&a, K, mode);
    }
}

/*
 * Rolling percentile rank of the newest value among the window's finite values (ties averaged, pandas'
 * rank(pct=True)) for columns j0..j0+B-1, by counting: each cell compares its value with the w rows of its
 * window. O(w) per cell without branches, which beats a sorted window buffer for the short windows of factor
 * libraries. Eight columns at a time go through GCC/Clang vector types, their counts held in registers; the
 * rest one by one. Counts are exact integers, so the result is bit-identical to the sorted buffer's
 * ((less + 1 + less_or_equal) / 2) / count.
 */
typedef double qops_d4 __attribute__((vector_size(32), aligned(8)));
typedef long long qops_i4 __attribute__((vector_size(32)));

static inline double qops_rank_value(double less, double eq, double cnt, double v)
{
    return v - v == 0.0 ? ((2.0 * less + eq + 1.0) / 2.0) / cnt : NAN;
}

/*
 * Ranks over several windows of one series from one scan (Alpha158's RANK5..RANK60): ws holds K window lengths in
 * ascending order, output k goes to y + k * plane. The scan of row t runs from t back to the widest window's
 * first row, and each window's counts are read off as the scan passes its first row max(0, t - ws[k] + 1). The
 * counts are integers, so each output is bit for bit that window's rank computed alone (qops_rank_rows); the work
 * is the widest window's alone (Alpha158's five windows: 5 + 10 + 20 + 30 + 60 comparisons per cell became 60).
 */
QOPS_CLONES static void qops_ranks_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                        ptrdiff_t B, const ptrdiff_t *ws, ptrdiff_t K, ptrdiff_t plane)
{
    for (ptrdiff_t t = 0; t < T; t++) {
        ptrdiff_t b = 0, i, k, m, lo;
        const double *xr = x + t * N + j0;
        double *yr = y + t * N + j0;
        for (; b + 8 <= B; b += 8) {
            qops_d4 v0 = *(const qops_d4 *)(xr + b), v1 = *(const qops_d4 *)(xr + b + 4);
            qops_i4 l0 = {0, 0, 0, 0}, e0 = {0, 0, 0, 0}, c0 = {0, 0, 0, 0};
            qops_i4 l1 = {0, 0, 0, 0}, e1 = {0, 0, 0, 0}, c1 = {0, 0, 0, 0};
            for (k = 0, i = t; k < K; k++) {
                lo = t - ws[k] + 1 > 0 ? t - ws[k] + 1 : 0;
                for (; i >= lo; i--) { /* the rows this window adds to the shorter one before it */
                    const double *row = x + i * N + j0 + b;
                    qops_d4 u0 = *(const qops_d4 *)row, u1 = *(const qops_d4 *)(row + 4);
                    qops_i4 f0 = (u0 - u0) == 0.0, f1 = (u1 - u1) == 0.0;
                    l0 -= f0 & (u0 < v0);
                    e0 -= f0 & (u0 == v0);
                    c0 -= f0;
                    l1 -= f1 & (u1 < v1);
                    e1 -= f1 & (u1 == v1);
                    c1 -= f1;
                }
                double *yk = yr + k * plane + b;
                for (m = 0; m < 4; m++) {
                    yk[m] = qops_rank_value((double)l0[m], (double)e0[m], (double)c0[m], v0[m]);
                    yk[4 + m] = qops_rank_value((double)l1[m], (double)e1[m], (double)c1[m], v1[m]);
                }
            }
        }
        for (; b < B; b++) {
            double v = xr[b], less = 0.0, eq = 0.0, cnt = 0.0;
            for (k = 0, i = t; k < K; k++) {
                lo = t - ws[k] + 1 > 0 ? t - ws[k] + 1 : 0;
                for (; i >= lo; i--) {
                    double u = x[i * N + j0 + b];
                    if (u - u == 0.0) {
                        less += u < v;
                        eq += u == v;
                        cnt += 1.0;
                    }
                }
                yr[k * plane + b] = qops_rank_value(less, eq, cnt, v);
            }
        }
    }
}

/* The rank over one window: qops_ranks_rows with that window alone. */
QOPS_CLONES static void qops_rank_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                       ptrdiff_t B, ptrdiff_t w)
{
    qops_ranks_rows(x, y, T, N, j0, B, &w, 1, T * N);
}

/*
 * Rolling max / min of the finite values (NaN and +-inf are missing; an all-missing window gives NaN) for
 * columns j0..j0+B-1, by van Herk / Gil-Werman: the rows are cut into blocks of w; a window ending at row t
 * is the tail of the previous block from t - w + 1 (its suffix extreme) plus the head of t's block up to t
 * (the running prefix extreme). Three comparisons per cell whatever w, row by row across the columns
 * (vectorised). `suf` holds w * B doubles (the previous block's suffix extremes), `pre` B doubles.
 */
static inline double qops_pick(double a, double b, int is_max)
{
    /* the extreme of a and b ignoring NaN (a NaN only when both are) */
    return (b != b || (is_max ? a > b : a < b)) ? a : b;
}

QOPS_FORCE_INLINE void qops_extreme_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                     ptrdiff_t B, ptrdiff_t w, int is_max, double *suf, double *pre)
{
    for (ptrdiff_t r0 = 0; r0 < T; r0 += w) {
        ptrdiff_t r1 = r0 + w < T ? r0 + w : T;
        for (ptrdiff_t t = r0; t < r1; t++) {
            const double *restrict xr = x + t * N + j0;
            double *restrict yr = y + t * N + j0;
            double *restrict pr = pre;
            ptrdiff_t lo = t - w + 1;
            int fresh = t == r0, tail = lo > 0 && lo < r0;
            const double *restrict sr = tail ? suf + (lo - (r0 - w)) * B : suf;
            for (ptrdiff_t b = 0; b < B; b++) {
                double v = xr[b] - xr[b] == 0.0 ? xr[b] : NAN;
                double p = fresh ? v : qops_pick(v, pr[b], is_max);
                pr[b] = p;
                yr[b] = tail ? qops_pick(sr[b], p, is_max) : p;
            }
        }
        if (r1 == T)
            break;
        for (ptrdiff_t t = r1 - 1; t >= r0; t--) { /* suffix extremes of this block, for the next one */
            const double *restrict xr = x + t * N + j0;
            double *restrict sr = suf + (t - r0) * B;
            const double *restrict nr = suf + (t - r0 + 1) * B;
            int last = t == r1 - 1;
            for (ptrdiff_t b = 0; b < B; b++) {
                double v = xr[b] - xr[b] == 0.0 ? xr[b] : NAN;
                sr[b] = last ? v : qops_pick(v, nr[b], is_max);
            }
        }
    }
}

QOPS_CLONES static void qops_max_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                      ptrdiff_t B, ptrdiff_t w, double *suf, double *pre)
{
    qops_extreme_rows(x, y, T, N, j0, B, w, 1, suf, pre);
}

QOPS_CLONES static void qops_min_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                      ptrdiff_t B, ptrdiff_t w, double *suf, double *pre)
{
    qops_extreme_rows(x, y, T, N, j0, B, w, 0, suf, pre);
}

/*
 * Rolling 1-based position of the window's max (min) for columns j0..j0+B-1, with numpy's argmax rules as
 * Qlib applies them: the first occurrence of the extreme; if the window holds a missing row (NaN or +-inf),
 * the first missing row; NaN for a window without any value. Column b starts at row first[b] (its listing):
 * rows above it do not exist, so the window is clipped there and positions count from it.
 *
 * Same van Herk blocks as qops_extreme_rows, carrying (best value, its row, first missing row) per cell:
 * the prefix keeps the earlier row on ties, the suffix (scanned backwards) takes the earlier one, and the
 * tail of the previous block wins ties against the head of the current one. Row numbers are held in
 * doubles (exact), "no missing row" is +inf. `suf` holds 3 * (w + 1) * B doubles, `pre` 6 * B.
 */
QOPS_FORCE_INLINE void qops_argext_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                    ptrdiff_t B, ptrdiff_t w, const double *first, int is_max, double *suf,
                                    double *pre)
{
    double *restrict pv = pre, *restrict pi = pre + B, *restrict pm = pre + 2 * B;
    double *restrict none = pre + 3 * B; /* a neutral suffix (no value, no missing row) */
    for (ptrdiff_t b = 0; b < B; b++) {
        none[b] = NAN;
        none[B + b] = 0.0;
        none[2 * B + b] = INFINITY;
    }
    for (ptrdiff_t r0 = 0; r0 < T; r0 += w) {
        ptrdiff_t r1 = r0 + w < T ? r0 + w : T;
        for (ptrdiff_t t = r0; t < r1; t++) {
            const double *restrict xr = x + t * N + j0;
            double *restrict yr = y + t * N + j0;
            ptrdiff_t lo = t - w + 1;
            int tail = lo > 0 && lo < r0;
            const double *restrict sv = tail ? suf + (lo - (r0 - w)) * 3 * B : none;
            const double *restrict si = sv + B, *restrict sm = sv + 2 * B;
            if (t == r0) /* the prefix restarts at the block's first row */
                for (ptrdiff_t b = 0; b < 3 * B; b++)
                    pre[b] = none[b];
            double row = (double)t, wlo = (double)(lo > 0 ? lo : 0);
            for (ptrdiff_t b = 0; b < B; b++) {
                /* one comparison per select: the loop stays branch-free and vectorises */
                double v = xr[b], f = first[b];
                double has = v - v == 0.0 ? v : NAN, gap = v - v == 0.0 ? INFINITY : row;
                double vv = row >= f ? has : NAN;        /* the row's value, NaN if none or not listed */
                double miss = row >= f ? gap : INFINITY; /* the row if it is listed without a value */
                double bv = pv[b], bi = pi[b], bm = pm[b];
                /* the newer row wins only when strictly better (a NaN vv "winning" over a NaN bv is harmless) */
                double newer = bv != bv || (is_max ? vv > bv : vv < bv) ? 1.0 : 0.0;
                bv = newer != 0.0 ? vv : bv;
                bi = newer != 0.0 ? row : bi;
                bm = bm < miss ? bm : miss;
                pv[b] = bv;
                pi[b] = bi;
                pm[b] = bm;
            }
            for (ptrdiff_t b = 0; b < B; b++) { /* a separate loop: one this size still vectorises */
                double f = first[b], bv = pv[b], bi = pi[b], bm = pm[b];
                /* the older block tail wins ties (a NaN tail never wins over a value) */
                double tv = sv[b], ti = si[b], tm = sm[b];
                double older = bv != bv || (is_max ? tv >= bv : tv <= bv) ? 1.0 : 0.0;
                bv = older != 0.0 ? tv : bv;
                bi = older != 0.0 ? ti : bi;
                bm = tm < bm ? tm : bm;
                double start = wlo > f ? wlo : f;
                double pos = bm < INFINITY ? bm : bi;
                double out = bv == bv ? pos - start + 1.0 : NAN;
                yr[b] = row >= f ? out : NAN;
            }
        }
        if (r1 == T)
            break;
        for (ptrdiff_t t = r1 - 1; t >= r0; t--) { /* suffix (value, row, first missing) of this block */
            const double *restrict xr = x + t * N + j0;
            double *restrict sv = suf + (t - r0) * 3 * B, *restrict si = sv + B, *restrict sm = sv + 2 * B;
            const double *restrict nv = sv + 3 * B, *restrict ni = nv + B, *restrict nm = nv + 2 * B;
            if (t == r1 - 1) /* the block's last row starts the suffix: nothing after it */
                for (ptrdiff_t b = 0; b < 3 * B; b++)
                    sv[3 * B + b] = none[b];
            double row = (double)t;
            for (ptrdiff_t b = 0; b < B; b++) {
                double v = xr[b], f = first[b];
                double has = v - v == 0.0 ? v : NAN, gap = v - v == 0.0 ? INFINITY : row;
                double vv = row >= f ? has : NAN;
                double miss = row >= f ? gap : INFINITY;
                double bv = nv[b], bi = ni[b], bm = nm[b];
                /* scanning backwards the older row wins ties */
                double older = bv != bv || (is_max ? vv >= bv : vv <= bv) ? 1.0 : 0.0;
                sv[b] = older != 0.0 ? vv : bv;
                si[b] = older != 0.0 ? row : bi;
                sm[b] = miss < bm ? miss : bm;
            }
        }
    }
}

QOPS_CLONES static void qops_argmax_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                         ptrdiff_t B, ptrdiff_t w, const double *first, double *suf,
                                         double *pre)
{
    qops_argext_rows(x, y, T, N, j0, B, w, first, 1, suf, pre);
}

QOPS_CLONES static void qops_argmin_rows(const double *x, double *y, ptrdiff_t T, ptrdiff_t N, ptrdiff_t j0,
                                         ptrdiff_t B, ptrdiff_t w, const double *first, double *suf,
                                         double *pre)
{
    qops_argext_rows(x, y, T, N, j0, B, w, first, 0, suf, pre);
}

/*
 * Rolling covariance (mode 0) / correlation (mode 1) of column pairs, row by row across the columns of a
 * chunk (vectorised), over the rows where both sides have a value. The state of B columns is a structure of
 * arrays, QOPS_PAIR_FIELDS arrays of B doubles (see the enum): anchors, shifted sums, the largest squared
 * deviation taken in since the last rebuild (peak), the count, runs of equal values (exact constant windows),
 * the count of rows where exactly one side has a value (odd) and a flag. One pass updates every column without
 * branches and flags the columns that need the scalar pass (bit 1: sums gone stale, as in the moments above,
 * or a correlation guard that needs each side's own values, odd > 0, see _rolling.pyx; bit 2: a result within
 * its rounding bound of 0, or a correlation within it of +-1, recomputed from the window).
 */
enum {
    QP_KA, QP_KB, QP_SA, QP_SB, QP_SAA, QP_SBB, QP_SAB, QP_PA, QP_PB, QP_N, QP_RUNA, QP_RUNB, QP_LASTA,
    QP_LASTB, QP_ODD, QP_FLAG, QOPS_PAIR_FIELDS
};

/* The statistic from the sums, as n * (sum of products) - (sum) * (sum): exact for exact sums. One comparison
 * per select (vectorisable). With atol >= 0 (corr), NaN where a side's std from the pair's sums is <= atol:
 * right when odd == 0, else the scalar pass decides. With F >= 0, *near tells whether the result is within its
 * rounding bound (qops_noise) of 0, or (corr) of +-1; pa and pb are the peaks. */
QOPS_FORCE_INLINE double qops_pair_eval(double n, double sa, double sb, double saa, double sbb, double sab,
                                        double runa, double runb, double pa, double pb, int mode, double atol,
                                        double F, double *near)
{
    double caa = n * saa - sa * sa, cbb = n * sbb - sb * sb, cab = n * sab - sa * sb;
    /* |cab| has at most F * n * sqrt(pa * pb) of rounding (the terms da * db are <= sqrt(pa * pb)) */
    double close0 = cab * cab < (F * F) * (n * n) * (pa * pb) ? 1.0 : 0.0;
    if (mode == 0) {
        double cov = cab / (n * (n - 1.0));
        cov = runa >= n ? 0.0 : cov;
        cov = runb >= n ? 0.0 : cov;
        close0 = runa >= n ? 0.0 : close0;
        close0 = runb >= n ? 0.0 : close0;
        *near = n >= 2.0 ? close0 : 0.0;
        return n < 2.0 ? NAN : cov;
    }
    double r = cab / sqrt(caa * cbb);
    /* near +-1: the loss rule keeps n * peak <= QOPS_LOSS * caa, so each of cab, caa and cbb carries at most
     * F * QOPS_LOSS of relative rounding there */
    double close1 = 1.0 - fabs(r) < 4.0 * QOPS_LOSS * F ? 1.0 : 0.0;
    r = r > 1.0 ? 1.0 : r;
    r = r < -1.0 ? -1.0 : r;
    r = caa <= 0.0 ? NAN : r;
    r = cbb <= 0.0 ? NAN : r;
    r = runa >= n ? NAN : r;
    r = runb >= n ? NAN : r;
    r = n < 1.0 ? NAN : r;
    double vaa = caa / (n * (n - 1.0)), vbb = cbb / (n * (n - 1.0));
    r = sqrt(vaa) <= atol ? NAN : r; /* atol < 0: no guard (a std is never negative) */
    r = sqrt(vbb) <= atol ? NAN : r;
    close0 = close1 != 0.0 ? 1.0 : close0;
    *near = r == r ? close0 : 0.0;
    return r;
}

/* The statistic alone (the scalar pass, after a rebuild). */
static inline double qops_pair_value(double n, double sa, double sb, double saa, double sbb, double sab,
                                     double runa, double runb, int mode, double atol)
{
    double near;
    return qops_pair_eval(n, sa, sb, saa, sbb, sab, runa, runb, 0.0, 0.0, mode, atol, -1.0, &near);
}

/* The shifted sums of one row (restrict parameters rather than offsets into one block: GCC honours them and
 * vectorises). Every array element is loaded into a local before any select: GCC does not speculate a load
 * that only one arm of a select makes, and would give up on the loop. */
QOPS_FORCE_INLINE void qops_pair_sums(const double *restrict ar, const double *restrict br,
                                      const double *restrict ao, const double *restrict bo,
                                      const double *restrict Ka, const double *restrict Kb, double *restrict Sa,
                                      double *restrict Sb, double *restrict Saa, double *restrict Sbb,
                                      double *restrict Sab, double *restrict Pa, double *restrict Pb,
                                      double *restrict Nn, ptrdiff_t B)
{
    for (ptrdiff_t b = 0; b < B; b++) {
        double va = ar[b], vb = br[b], vao = ao[b], vbo = bo[b], ka = Ka[b], kb = Kb[b];
        double pa = Pa[b], pb = Pb[b];
        double fa = va - va == 0.0 ? 1.0 : 0.0, fb = vb - vb == 0.0 ? 1.0 : 0.0;
        double fao = vao - vao == 0.0 ? 1.0 : 0.0, fbo = vbo - vbo == 0.0 ? 1.0 : 0.0;
        double f = fa * fb, fo = fao * fbo;
        double xa = va - ka, xb = vb - kb, xao = vao - ka, xbo = vbo - kb;
        double da = f != 0.0 ? xa : 0.0, db = f != 0.0 ? xb : 0.0;
        double doa = fo != 0.0 ? xao : 0.0, dob = fo != 0.0 ? xbo : 0.0;
        double n = Nn[b] + f - fo;
        double keep = n == 0.0 ? 0.0 : 1.0; /* an empty window restarts its sums (anchors stay) */
        Nn[b] = n;
        Sa[b] = keep * (Sa[b] + (da - doa));
        Sb[b] = keep * (Sb[b] + (db - dob));
        Saa[b] = keep * (Saa[b] + (da * da - doa * doa));
        Sbb[b] = keep * (Sbb[b] + (db * db - dob * dob));
        Sab[b] = keep * (Sab[b] + (da * db - doa * dob));
        Pa[b] = keep * (da * da > pa ? da * da : pa);
        Pb[b] = keep * (db * db > pb ? db * db : pb);
    }
}

/* Runs of equal values (exact constant windows) and the rows where one side alone has a value. The state is
 * kept finite (runs and last values start at 0) so that it blends with arithmetic: GCC turns a select that
 * keeps the stored value into a conditional store, which it does not vectorise. */
QOPS_FORCE_INLINE void qops_pair_runs(const double *restrict ar, const double *restrict br,
                                      const double *restrict ao, const double *restrict bo, double *restrict Ra,
                                      double *restrict Rb, double *restrict La, double *restrict Lb,
                                      double *restrict Od, ptrdiff_t B)
{
    for (ptrdiff_t b = 0; b < B; b++) {
        double va = ar[b], vb = br[b], vao = ao[b], vbo = bo[b];
        double ra = Ra[b], rb = Rb[b], la = La[b], lb = Lb[b], od = Od[b];
        double fa = va - va == 0.0 ? 1.0 : 0.0, fb = vb - vb == 0.0 ? 1.0 : 0.0;
        double fao = vao - vao == 0.0 ? 1.0 : 0.0, fbo = vbo - vbo == 0.0 ? 1.0 : 0.0;
        double f = fa * fb;
        double sa = f != 0.0 ? va : 0.0, sb = f != 0.0 ? vb : 0.0; /* finite stand-ins */
        double eqa = sa == la ? 1.0 : 0.0, eqb = sb == lb ? 1.0 : 0.0;
        Ra[b] = f * (eqa * ra + 1.0) + (1.0 - f) * ra;
        Rb[b] = f * (eqb * rb + 1.0) + (1.0 - f) * rb;
        La[b] = f * sa + (1.0 - f) * la;
        Lb[b] = f * sb + (1.0 - f) * lb;
        Od[b] = od + (fa - fb) * (fa - fb) - (fao - fbo) * (fao - fbo);
    }
}

/* The statistic of every column, and its flag (Fl): 1 for sums gone stale or a correlation guard that needs
 * each side's own values, plus 2 for a result within its rounding bound of an exact value; returns whether any
 * column is flagged. One loop reads the state once; the stale test is integer logic rather than chained
 * selects, which keeps the loop vectorisable without AVX2 too. */
QOPS_FORCE_INLINE int qops_pair_values(const double *restrict Nn, const double *restrict Sa,
                                       const double *restrict Sb, const double *restrict Saa,
                                       const double *restrict Sbb, const double *restrict Sab,
                                       const double *restrict Ra, const double *restrict Rb,
                                       const double *restrict Pa, const double *restrict Pb,
                                       const double *restrict Od, double *restrict Fl, double *restrict yr,
                                       ptrdiff_t B, int mode, double atol, double F)
{
    double any = 0.0, guard = atol >= 0.0 ? 1.0 : 0.0;
    for (ptrdiff_t b = 0; b < B; b++) {
        double n = Nn[b], sa = Sa[b], sb = Sb[b], saa = Saa[b], sbb = Sbb[b], pa = Pa[b], pb = Pb[b], near;
        double Da = n * saa - sa * sa, Db = n * sbb - sb * sb;
        int stale = (sa * sa > QOPS_DRIFT * Da) | (pa * n > QOPS_LOSS * Da) | (sb * sb > QOPS_DRIFT * Db) |
                    (pb * n > QOPS_LOSS * Db) | (guard * Od[b] > 0.0);
        yr[b] = qops_pair_eval(n, sa, sb, saa, sbb, Sab[b], Ra[b], Rb[b], pa, pb, mode, atol, F, &near);
        double flag = (stale ? 1.0 : 0.0) + 2.0 * near;
        Fl[b] = flag;
        any += flag;
    }
    return any != 0.0;
}

QOPS_FORCE_INLINE int qops_pair_row_body(const double *ar, const double *br, const double *ao, const double *bo,
                                         double *yr, double *S, ptrdiff_t B, int mode, double atol, double F)
{
    double *F_[QOPS_PAIR_FIELDS];
    for (int k = 0; k < QOPS_PAIR_FIELDS; k++)
        F_[k] = S + k * B;
    qops_pair_sums(ar, br, ao, bo, F_[QP_KA], F_[QP_KB], F_[QP_SA], F_[QP_SB], F_[QP_SAA], F_[QP_SBB],
                   F_[QP_SAB], F_[QP_PA], F_[QP_PB], F_[QP_N], B);
    qops_pair_runs(ar, br, ao, bo, F_[QP_RUNA], F_[QP_RUNB], F_[QP_LASTA], F_[QP_LASTB], F_[QP_ODD], B);
    return qops_pair_values(F_[QP_N], F_[QP_SA], F_[QP_SB], F_[QP_SAA], F_[QP_SBB], F_[QP_SAB], F_[QP_RUNA],
                            F_[QP_RUNB], F_[QP_PA], F_[QP_PB], F_[QP_ODD], F_[QP_FLAG], yr, B, mode, atol, F);
}

QOPS_CLONES static int qops_cov_row(const double *ar, const double *br, const double *ao, const double *bo,
                                    double *yr, double *S, ptrdiff_t B, double atol, double F)
{
    return qops_pair_row_body(ar, br, ao, bo, yr, S, B, 0, atol, F);
}

QOPS_CLONES static int qops_corr_row(const double *ar, const double *br, const double *ao, const double *bo,
                                     double *yr, double *S, ptrdiff_t B, double atol, double F)
{
    return qops_pair_row_body(ar, br, ao, bo, yr, S, B, 1, atol, F);
}

/*
 * Least-squares line of the values on their row position, row by row across the columns of a chunk
 * (vectorised): slope (mode 0), r-squared (1; NaN where the window's std is <= atol when atol >= 0), the
 * newest value's residual (2) and the linear weighted mean (3). Positions are kept as u = row - r0 around an
 * anchor row r0 and values as d = x - K around an anchor K (both set at the last rebuild, see _rolling.pyx);
 * the state of B columns is QOPS_REG_FIELDS arrays of B doubles (see the enum). Runs of equal values make
 * constant windows exact. The pass flags the columns that need the scalar pass (bit 1: sums that look stale;
 * bit 2: a result within its rounding bound of 0, or an r-squared within it of 1, recomputed from the window).
 */
enum {
    QR_K, QR_R0, QR_N, QR_SU, QR_SUU, QR_SUE, QR_S1, QR_S2, QR_PK, QR_LAST, QR_RUN, QR_FLAG, QOPS_REG_FIELDS
};

/* The statistic from the sums, every difference taken as n * (sum of products) - (sum) * (sum) (exact for exact
 * sums; positions are integers, so their sums are exact). With F >= 0, *near tells whether the result is within
 * its rounding bound of 0 (of 1 too for r-squared): sums of terms u * d carry at most F * g * sqrt(peak) of
 * rounding, g = |row - r0| + w bounding the positions taken in since the rebuild. */
QOPS_FORCE_INLINE double qops_reg_eval(double n, double r0, double su, double suu, double sue, double K, double s1,
                                       double s2, double pk, double last, double run, double v, double row,
                                       double start, double w, int mode, double atol, double F, double *near)
{
    double g = fabs(row - r0) + w, close;
    if (mode == 3) { /* weights row - start + 1 = u + wc */
        double wc = r0 - start + 1.0;
        double den = su + wc * n, S = K * den + (sue + wc * s1);
        double out = S / den;
        close = fabs(S) < F * fabs(K) * den ? 1.0 : 0.0;
        close = S * S < (F * F) * (g * g) * (n * n) * pk ? 1.0 : close;
        close = run >= n ? 0.0 : close;
        *near = n == 0.0 ? 0.0 : close;
        out = run >= n ? last : out;
        return n == 0.0 ? NAN : out;
    }
    double cuu = n * suu - su * su, cue = n * sue - su * s1;
    double slope = cue / cuu, out = slope;
    double ng2 = (n * g) * (n * g), A = (16.0 * F * F) * ng2 * pk; /* (rounding bound of cue)^2 */
    close = cue * cue < A ? 1.0 : 0.0;
    if (mode == 1) {
        double cee = n * s2 - s1 * s1;
        double sd = sqrt(cee / (n * (n - 1.0)));
        out = (cue * cue) / (cuu * cee);
        /* near 1: cee carries at most F * QOPS_LOSS of relative rounding (the loss rule), cue at most sqrt(A)
         * absolutely; 1 - r^2 within twice the sum of the relative errors is recomputed */
        double gap = 1.0 - out;
        close = gap < 8.0 * QOPS_LOSS * F ? 1.0 : close;
        close = (gap * gap) * (cue * cue) < 32.0 * A ? 1.0 : close;
        out = out > 1.0 ? 1.0 : out; /* cue^2 <= cuu * cee: r-squared never exceeds 1 */
        out = cee > 0.0 ? out : NAN;
        out = sd <= atol ? NAN : out; /* atol < 0: no guard */
    } else if (mode == 2) {
        double ut = row - r0, dt = v - K;
        double R = cuu * (n * dt - s1) - cue * (n * ut - su);
        out = R / (n * cuu);
        close = R * R < 16.0 * A * ng2 ? 1.0 : 0.0;
    }
    out = run >= n ? (mode == 1 ? NAN : 0.0) : out; /* constant window: a flat line */
    if (mode == 2)
        out = v - v == 0.0 ? out : NAN;
    close = run >= n ? 0.0 : close;
    close = n < 2.0 ? 0.0 : close;
    *near = out == out ? close : 0.0;
    return n < 2.0 ? NAN : out;
}

/* The statistic alone (the scalar pass, after a rebuild). */
static inline double qops_reg_value(double n, double r0, double su, double suu, double sue, double K, double s1,
                                    double s2, double last, double run, double v, double row, double start,
                                    int mode, double atol)
{
    double near;
    return qops_reg_eval(n, r0, su, suu, sue, K, s1, s2, 0.0, last, run, v, row, start, 0.0, mode, atol, -1.0,
                         &near);
}

/* The sums of one row: v enters at `row`, vo (NaN if none) leaves from `row_out`. */
QOPS_FORCE_INLINE void qops_reg_sums(const double *restrict xr, const double *restrict xo, double row, double row_out,
                                     const double *restrict Kk, const double *restrict R0, double *restrict Nn,
                                     double *restrict Su, double *restrict Suu, double *restrict Sue,
                                     double *restrict S1, double *restrict S2, double *restrict Pk,
                                     double *restrict La, double *restrict Ru, ptrdiff_t B)
{
    for (ptrdiff_t b = 0; b < B; b++) {
        double v = xr[b], vo = xo[b], k = Kk[b], r0 = R0[b], pk = Pk[b], last = La[b], run = Ru[b];
        double fv = v - v == 0.0 ? 1.0 : 0.0, fo = vo - vo == 0.0 ? 1.0 : 0.0;
        double xi = v - k, xq = vo - k;
        double di = fv != 0.0 ? xi : 0.0, dq = fo != 0.0 ? xq : 0.0;
        double ui = row - r0, uq = row_out - r0;
        double n = Nn[b] + fv - fo;
        double keep = n == 0.0 ? 0.0 : 1.0; /* an empty window restarts its sums (anchors stay) */
        Nn[b] = n;
        Su[b] = keep * (Su[b] + fv * ui - fo * uq);
        Suu[b] = keep * (Suu[b] + fv * ui * ui - fo * uq * uq);
        Sue[b] = keep * (Sue[b] + ui * di - uq * dq);
        S1[b] = keep * (S1[b] + di - dq);
        S2[b] = keep * (S2[b] + di * di - dq * dq);
        Pk[b] = keep * (di * di > pk ? di * di : pk);
        double sv = fv != 0.0 ? v : 0.0; /* finite stand-in: the runs blend with arithmetic */
        double eq = sv == last ? 1.0 : 0.0;
        Ru[b] = fv * (eq * run + 1.0) + (1.0 - fv) * run;
        La[b] = fv * sv + (1.0 - fv) * last;
    }
}

/* The statistic of every column, and its flag (Fl): 1 for sums that look stale (the scalar pass re-checks them),
 * plus 2 for a result within its rounding bound of an exact value; returns whether any column is flagged. One
 * loop reads the state once. */
QOPS_FORCE_INLINE int qops_reg_values(const double *restrict Nn, const double *restrict R0,
                                      const double *restrict Su, const double *restrict Suu,
                                      const double *restrict Sue, const double *restrict Kk,
                                      const double *restrict S1, const double *restrict S2,
                                      const double *restrict Pk, const double *restrict La,
                                      const double *restrict Ru, const double *restrict xr, double *restrict Fl,
                                      double *restrict yr, ptrdiff_t B, double row, double start, double w, int mode,
                                      double atol, double F)
{
    double any = 0.0;
    for (ptrdiff_t b = 0; b < B; b++) {
        double n = Nn[b], su = Su[b], suu = Suu[b], s1 = S1[b], s2 = S2[b], pk = Pk[b], near;
        double D = n * s2 - s1 * s1, Du = n * suu - su * su;
        double stale = s1 * s1 > QOPS_DRIFT * D ? 1.0 : 0.0;
        stale = pk * n > QOPS_LOSS * D ? 1.0 : stale;
        double drift = su * su > QOPS_DRIFT * Du ? 1.0 : 0.0; /* the positions' mean left the anchor row */
        drift = fabs(su) >= n ? drift : 0.0;
        stale = drift != 0.0 ? 1.0 : stale;
        yr[b] = qops_reg_eval(n, R0[b], su, suu, Sue[b], Kk[b], s1, s2, pk, La[b], Ru[b], xr[b], row, start, w, mode,
                              atol, F, &near);
        Fl[b] = stale + 2.0 * near;
        any += Fl[b];
    }
    return any != 0.0;
}

QOPS_FORCE_INLINE int qops_reg_row_body(const double *xr, const double *xo, double *yr, double *S, ptrdiff_t B,
                                        double row, double row_out, double start, double w, int mode, double atol,
                                        double F)
{
    double *F_[QOPS_REG_FIELDS];
    for (int k = 0; k < QOPS_REG_FIELDS; k++)
        F_[k] = S + k * B;
    qops_reg_sums(xr, xo, row, row_out, F_[QR_K], F_[QR_R0], F_[QR_N], F_[QR_SU], F_[QR_SUU], F_[QR_SUE], F_[QR_S1],
                  F_[QR_S2], F_[QR_PK], F_[QR_LAST], F_[QR_RUN], B);
    return qops_reg_values(F_[QR_N], F_[QR_R0], F_[QR_SU], F_[QR_SUU], F_[QR_SUE], F_[QR_K], F_[QR_S1], F_[QR_S2],
                           F_[QR_PK], F_[QR_LAST], F_[QR_RUN], xr, F_[QR_FLAG], yr, B, row, start, w, mode, atol, F);
}

#define QOPS_REG_ENTRY(name, mode)                                                                           \
    QOPS_CLONES static int name(const double *xr, const double *xo, double *yr, double *S, ptrdiff_t B,      \
                                double row, double row_out, double start, double w, double atol, double F)   \
    {                                                                                                        \
        return qops_reg_row_body(xr, xo, yr, S, B, row, row_out, start, w, mode, atol, F);                   \
    }

QOPS_REG_ENTRY(qops_slope_row, 0)
QOPS_REG_ENTRY(qops_rsquare_row, 1)
QOPS_REG_ENTRY(qops_resi_row, 2)
QOPS_REG_ENTRY(qops_wma_row, 3)

#endif /* QOPS_ROWKERNELS_H */
