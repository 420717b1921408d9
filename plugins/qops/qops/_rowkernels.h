/*
 * Branch-free row updates of the shifted running sums behind rolling sum/mean/var/std (see _rolling.pyx).
 *
 * One call advances the B columns of a chunk by one row. The loop body uses selects only, so the compiler
 * vectorises it across columns. It returns whether some column's sums look stale (the anchor drifted from
 * the window mean, or a large value left the window); the caller then rebuilds those columns.
 *
 * Conventions: a value v is present when v - v == 0 (NaN and +-inf are missing); counts are kept as doubles.
 */
#ifndef QOPS_ROWKERNELS_H
#define QOPS_ROWKERNELS_H

#include <math.h>
#include <stddef.h>

#define QOPS_MODE_SUM 0
#define QOPS_MODE_MEAN 1
#define QOPS_MODE_VAR 2
#define QOPS_MODE_STD 3

static inline double qops_moment_out(double n, double K, double s1, double s2, double last, double run,
                                     double neg, int mode)
{
    double r, q;
    if (mode == QOPS_MODE_SUM) {
        r = n * K + s1;
        r = run >= n ? last * n : r;
        return n == 0.0 ? NAN : r;
    }
    if (mode == QOPS_MODE_MEAN) {
        r = K + s1 / n;
        /* pandas: a mean of non-negative values is never negative, of negative values never positive */
        r = (neg == 0.0 && r < 0.0) ? 0.0 : r;
        r = (neg == n && r > 0.0) ? 0.0 : r;
        r = run >= n ? last : r;
        return n == 0.0 ? NAN : r;
    }
    q = (n * s2 - s1 * s1) / (n * (n - 1.0));
    q = (q < 0.0 || run >= n) ? 0.0 : q;
    if (mode == QOPS_MODE_STD)
        q = sqrt(q);
    return n < 2.0 ? NAN : q;
}

static inline int qops_moment_row(const double *restrict xr, const double *restrict xo, int has_out,
                                  double *restrict yr, double *restrict K, double *restrict s1,
                                  double *restrict s2, double *restrict peak, double *restrict last,
                                  double *restrict nn, double *restrict run, double *restrict neg,
                                  ptrdiff_t B, int mode, double drift, double loss)
{
    int any_stale = 0;
    for (ptrdiff_t b = 0; b < B; b++) {
        double v = xr[b];
        double vo = has_out ? xo[b] : 0.0;
        double fi = (v - v == 0.0) ? 1.0 : 0.0;
        double fo = (has_out && vo - vo == 0.0) ? 1.0 : 0.0;
        double k = K[b];
        double din = fi != 0.0 ? v - k : 0.0;
        double dout = fo != 0.0 ? vo - k : 0.0;
        double n1 = nn[b] + (fi - fo);
        double a1 = s1[b] + (din - dout);
        double a2 = s2[b] + (din * din - dout * dout);
        double pk = din * din > peak[b] ? din * din : peak[b];
        double lst = last[b];
        double rn = fi != 0.0 ? (v == lst ? run[b] + 1.0 : 1.0) : run[b];
        double ng = 0.0;
        lst = fi != 0.0 ? v : lst;
        if (mode == QOPS_MODE_MEAN) {
            ng = neg[b] + ((fi != 0.0 && signbit(v)) ? 1.0 : 0.0) - ((fo != 0.0 && signbit(vo)) ? 1.0 : 0.0);
            neg[b] = ng;
        }
        a1 = n1 == 0.0 ? 0.0 : a1;
        a2 = n1 == 0.0 ? 0.0 : a2;
        pk = n1 == 0.0 ? 0.0 : pk;
        {
            double s1sq = a1 * a1;
            double D = n1 * a2 - s1sq;
            any_stale |= (s1sq > drift * D) | (pk * n1 > loss * D);
        }
        s1[b] = a1;
        s2[b] = a2;
        peak[b] = pk;
        last[b] = lst;
        nn[b] = n1;
        run[b] = rn;
        yr[b] = qops_moment_out(n1, k, a1, a2, lst, rn, ng, mode);
    }
    return any_stale;
}

#endif /* QOPS_ROWKERNELS_H */
