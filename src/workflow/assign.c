/*
 * assign.c — the linear assignment solver of the engine's trackers
 * (byte_tracker, trackers_sort, trackers_bytetrack): minimum-cost
 * assignment by shortest augmenting paths with potentials (the Hungarian
 * algorithm), as scipy's linear_sum_assignment solves it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

void wf__assign_min(const double *cost, int n, int m, int *col_of)
{
    double *u = xcalloc((size_t)n + 1, sizeof *u), *v = xcalloc((size_t)m + 1, sizeof *v);
    double *minv = xmalloc(((size_t)m + 1) * sizeof *minv);
    int *p = xcalloc((size_t)m + 1, sizeof *p), *way = xcalloc((size_t)m + 1, sizeof *way);
    char *used = xmalloc((size_t)m + 1);

    for (int i = 1; i <= n; i++) {
        int j0 = 0;
        p[0] = i;
        for (int j = 0; j <= m; j++)
            minv[j] = INFINITY;
        memset(used, 0, (size_t)m + 1);
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= m; j++) {
                if (used[j])
                    continue;
                double cur = cost[(size_t)(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= m; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; j <= m; j++)
        if (p[j])
            col_of[p[j] - 1] = j - 1;
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
}
