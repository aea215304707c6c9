/*
 * rle.c — COCO run-length encoding of binary masks, as pycocotools'
 * encode followed by rleToString (the "counts" string of an RLE mask in
 * Roboflow's responses and serialised workflow outputs).
 *
 * Runs are counted in column-major order and start with a run of "off"
 * pixels (possibly empty).  The string writes each count — less the count
 * two before it, from the fourth on — in 5-bit groups, low group first,
 * with 0x20 as the continuation bit, each group + 48.
 */
#include "vision/vision.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/base.h"

struct runs {
    long *cnt;
    size_t n, cap; /* cnt[0..n] are in use */
    bool cur;      /* value of the run being counted */
};

static void runs_add(struct runs *r, bool on, long k)
{
    if (k <= 0)
        return;
    if (on != r->cur) {
        if (r->n + 1 >= r->cap)
            r->cnt = xrealloc(r->cnt, (r->cap = r->cap * 2 + 16) * sizeof *r->cnt);
        r->cnt[++r->n] = 0;
        r->cur = on;
    }
    r->cnt[r->n] += k;
}

static bool pixel_on(uint8_t p, int value)
{
    return value < 0 ? p != 0 : p == (uint8_t)value;
}

char *vis_coco_rle(const uint8_t *mask, int mw, int mh, int x0, int y0, int W, int H, int value)
{
    struct runs r = {xmalloc(16 * sizeof(long)), 0, 16, false};
    size_t len = 0, cap = 64;
    char *s;
    r.cnt[0] = 0;
    W = MAX(W, 0), H = MAX(H, 0);
    int ya = MIN(MAX(0, y0), H), yb = MIN(MAX(0, y0 + mh), H);
    for (int x = 0; x < W; x++) {
        if (!mask || x < x0 || x >= x0 + mw || ya >= yb) {
            runs_add(&r, false, H);
            continue;
        }
        const uint8_t *col = mask + (size_t)(x - x0);
        runs_add(&r, false, ya);
        for (int y = ya; y < yb; y++)
            runs_add(&r, pixel_on(col[(size_t)(y - y0) * (size_t)mw], value), 1);
        runs_add(&r, false, H - yb);
    }
    s = xmalloc(cap);
    for (size_t i = 0; i <= r.n; i++) {
        long v = r.cnt[i];
        bool more = true;
        if (i > 2)
            v -= r.cnt[i - 2];
        while (more) {
            long c = v & 0x1f;
            v >>= 5; /* arithmetic shift of a negative difference, as pycocotools */
            more = (c & 0x10) ? v != -1 : v != 0;
            if (more)
                c |= 0x20;
            if (len + 2 > cap)
                s = xrealloc(s, cap *= 2);
            s[len++] = (char)(c + 48);
        }
    }
    s[len] = 0;
    free(r.cnt);
    return s;
}
