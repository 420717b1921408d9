/*
 * Branch-free row updates of the shifted running sums behind rolling sum/mean/var/std (see _rolling.pyx).
 *
 * One call advances the B columns of a chunk by one row. The loop body uses selects only, so the compiler
 * vectorises it across columns. It returns whether some column's sums look stale (the anchor drifted from
 * the window mean, or the sum of squared deviations fell far below the largest squared deviation it took
 * in: a large value left, or the window became constant around an anchor that is not its value); the
 * caller then rebuilds those columns, which also makes constant windows exact (variance 0, mean = value).
 *
 * Conventions: a value v is present when v - v == 0 (NaN and +-inf are missing); counts are kept as doubles;
 * the row leaving the window is ``xo`` (a row of NaN while the window is still filling). Built with
 * -fno-trapping-math (selects may evaluate both sides) and -fno-math-errno (vectorisable sqrt); neither
 * changes any result.
 */
#ifndef QOPS_ROWKERNELS_H
#define QOPS_ROWKERNELS_H

#include <math.h>
#include <stddef.h>

#define QOPS_MODE_SUM 0  /* modes of qops_moment_row */
#define QOPS_MODE_MEAN 1
#define QOPS_MODE_VAR 2
#define QOPS_MODE_STD 3

static inline double qops_moment_out(double n, double K, double s1, double s2, int mode)
{
    double q;
    if (mode == QOPS_MODE_SUM)
        return n == 0.0 ? NAN : n * K + s1;
    if (mode == QOPS_MODE_MEAN)
        return n == 0.0 ? NAN : K + s1 / n;
    q = (n * s2 - s1 * s1) / (n * (n - 1.0));
    q = q < 0.0 ? 0.0 : q;
    if (mode == QOPS_MODE_STD)
        q = sqrt(q);
    return n < 2.0 ? NAN : q;
}

/* Advance the columns of one row: x_in = xr[b] enters the window, x_out = xo[b] leaves it. */
static inline int qops_moment_row(const double *restrict xr, const double *restrict xo, double *restrict yr,
                                  const double *restrict K, double *restrict s1, double *restrict s2,
                                  double *restrict peak, double *restrict nn, ptrdiff_t B, int mode,
                                  double drift, double loss)
{
    double any_stale = 0.0;
    for (ptrdiff_t b = 0; b < B; b++) {
        double v = xr[b], vo = xo[b], k = K[b];
        double din = (v - v == 0.0) ? v - k : 0.0;
        double dout = (vo - vo == 0.0) ? vo - k : 0.0;
        double n1 = nn[b] + ((v - v == 0.0) ? 1.0 : 0.0) - ((vo - vo == 0.0) ? 1.0 : 0.0);
        double a1 = n1 == 0.0 ? 0.0 : s1[b] + (din - dout);
        double a2 = n1 == 0.0 ? 0.0 : s2[b] + (din * din - dout * dout);
        double pk = n1 == 0.0 ? 0.0 : (din * din > peak[b] ? din * din : peak[b]);
        double s1sq = a1 * a1;
        double D = n1 * a2 - s1sq;
        any_stale = ((s1sq > drift * D) | (pk * n1 > loss * D)) ? 1.0 : any_stale;
        s1[b] = a1;
        s2[b] = a2;
        peak[b] = pk;
        nn[b] = n1;
        yr[b] = qops_moment_out(n1, k, a1, a2, mode);
    }
    return any_stale != 0.0;
}

#endif /* QOPS_ROWKERNELS_H */
