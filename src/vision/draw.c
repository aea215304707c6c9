/*
 * draw.c — in-place drawing for the visualization blocks: rectangles,
 * lines, circles, polygons (outline and scanline fill) and alpha blending.
 *
 * Everything is clipped per pixel or per span against the target image (or
 * view), so shapes partly or wholly outside draw only what is inside and
 * never touch memory outside the image.  Coordinates beyond +-2^24 are
 * clamped first so that the integer arithmetic below cannot overflow.
 *
 * Thick lines are drawn as the set of pixels within thickness/2 of the
 * segment (a band with round caps), which is what cv2.line produces up to
 * its rasterisation details.
 */
#include "vision/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

#define COORD_MAX (1 << 24)

static int clampc(int v) { return v < -COORD_MAX ? -COORD_MAX : v > COORD_MAX ? COORD_MAX : v; }

static void color_bytes(const struct vis_image *img, struct vis_color c, uint8_t v[4])
{
    v[0] = c.b;
    v[1] = c.g;
    v[2] = c.r;
    v[3] = 255;
    if (img->fmt == VIS_GRAY)
        v[0] = (uint8_t)((c.r * 4899 + c.g * 9617 + c.b * 1868 + (1 << 13)) >> 14);
}

/* Horizontal span [x0, x1] on row y, clipped. */
static void hspan(struct vis_image *img, int x0, int x1, int y, const uint8_t v[4])
{
    int ch = (int)img->fmt;
    uint8_t *p;

    if (y < 0 || y >= img->h)
        return;
    if (x0 < 0)
        x0 = 0;
    if (x1 >= img->w)
        x1 = img->w - 1;
    if (x1 < x0)
        return;
    p = vis_px(img, x0, y);
    if (ch == 1) {
        memset(p, v[0], (size_t)(x1 - x0 + 1));
        return;
    }
    for (int x = x0; x <= x1; x++, p += ch)
        memcpy(p, v, (size_t)ch);
}

static void put(struct vis_image *img, int x, int y, const uint8_t v[4])
{
    if (x >= 0 && y >= 0 && x < img->w && y < img->h)
        memcpy(vis_px(img, x, y), v, (size_t)img->fmt);
}

static void fill_box(struct vis_image *img, int x0, int y0, int x1, int y1, const uint8_t v[4])
{
    if (y0 < 0)
        y0 = 0;
    if (y1 >= img->h)
        y1 = img->h - 1;
    for (int y = y0; y <= y1; y++)
        hspan(img, x0, x1, y, v);
}

void vis_draw_rect(struct vis_image *img, int x0, int y0, int x1, int y1, struct vis_color c,
                   int thickness)
{
    uint8_t v[4];
    int t, a, b;

    color_bytes(img, c, v);
    x0 = clampc(x0), y0 = clampc(y0), x1 = clampc(x1), y1 = clampc(y1);
    if (x1 < x0) {
        t = x0, x0 = x1, x1 = t;
    }
    if (y1 < y0) {
        t = y0, y0 = y1, y1 = t;
    }
    if (thickness < 0) {
        fill_box(img, x0, y0, x1, y1, v);
        return;
    }
    if (thickness == 0)
        return;
    if (thickness > COORD_MAX)
        thickness = COORD_MAX;
    a = thickness / 2;           /* extends this far outwards */
    b = (thickness - 1) - a;     /* and this far inwards */
    if (x1 - x0 <= 2 * b + 1 || y1 - y0 <= 2 * b + 1) {
        fill_box(img, x0 - a, y0 - a, x1 + a, y1 + a, v);
        return;
    }
    fill_box(img, x0 - a, y0 - a, x1 + a, y0 + b, v); /* top */
    fill_box(img, x0 - a, y1 - b, x1 + a, y1 + a, v); /* bottom */
    fill_box(img, x0 - a, y0 + b + 1, x0 + b, y1 - b - 1, v);
    fill_box(img, x1 - b, y0 + b + 1, x1 + a, y1 - b - 1, v);
}

/*
 * Liang-Barsky: clip the segment to the rectangle [lo, hi] in both axes.
 * Returns 0 when nothing is left.
 */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double lox, double loy,
                        double hix, double hiy)
{
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {*x0 - lox, hix - *x0, *y0 - loy, hiy - *y0};

    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0)
                return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > t1)
                return 0;
            if (r > t0)
                t0 = r;
        } else {
            if (r < t0)
                return 0;
            if (r < t1)
                t1 = r;
        }
    }
    *x1 = *x0 + t1 * dx;
    *y1 = *y0 + t1 * dy;
    *x0 = *x0 + t0 * dx;
    *y0 = *y0 + t0 * dy;
    return 1;
}

/* Bresenham.  Endpoints outside the image are first clipped to a margin
 * around it, so the walk is bounded by the image size. */
static void line1(struct vis_image *img, int x0, int y0, int x1, int y1, const uint8_t v[4])
{
    if (x0 < 0 || y0 < 0 || x1 < 0 || y1 < 0 || x0 >= img->w || x1 >= img->w || y0 >= img->h ||
        y1 >= img->h) {
        double a = x0, b = y0, c = x1, d = y1;
        if (!clip_segment(&a, &b, &c, &d, -2, -2, img->w + 1, img->h + 1))
            return;
        x0 = (int)lrint(a), y0 = (int)lrint(b), x1 = (int)lrint(c), y1 = (int)lrint(d);
    }
    int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;

    for (;;) {
        put(img, x0, y0, v);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* Pixels whose centre lies within r of segment (x0,y0)-(x1,y1). */
static void line_thick(struct vis_image *img, double x0, double y0, double x1, double y1,
                       double r, const uint8_t v[4])
{
    int bx0 = (int)floor(fmin(x0, x1) - r), bx1 = (int)ceil(fmax(x0, x1) + r);
    int by0 = (int)floor(fmin(y0, y1) - r), by1 = (int)ceil(fmax(y0, y1) + r);
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, r2 = r * r;

    if (bx0 < 0)
        bx0 = 0;
    if (by0 < 0)
        by0 = 0;
    if (bx1 >= img->w)
        bx1 = img->w - 1;
    if (by1 >= img->h)
        by1 = img->h - 1;
    for (int y = by0; y <= by1; y++) {
        int first = -1, last = -2;
        for (int x = bx0; x <= bx1; x++) {
            double t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0;
            double px, py;
            if (t < 0)
                t = 0;
            if (t > 1)
                t = 1;
            px = x0 + t * dx - x;
            py = y0 + t * dy - y;
            if (px * px + py * py <= r2) {
                if (first < 0)
                    first = x;
                last = x;
            } else if (first >= 0) {
                break; /* the band is convex: one span per row */
            }
        }
        if (first >= 0)
            hspan(img, first, last, y, v);
    }
}

void vis_draw_line(struct vis_image *img, int x0, int y0, int x1, int y1, struct vis_color c,
                   int thickness)
{
    uint8_t v[4];

    color_bytes(img, c, v);
    x0 = clampc(x0), y0 = clampc(y0), x1 = clampc(x1), y1 = clampc(y1);
    if (thickness <= 0)
        return;
    if (thickness == 1)
        line1(img, x0, y0, x1, y1, v);
    else
        line_thick(img, x0, y0, x1, y1, thickness / 2.0, v);
}

void vis_draw_circle(struct vis_image *img, int cx, int cy, int r, struct vis_color c,
                     int thickness)
{
    uint8_t v[4];
    double ro, ri;

    color_bytes(img, c, v);
    cx = clampc(cx), cy = clampc(cy);
    if (r < 0 || r > COORD_MAX || thickness == 0)
        return;
    if (thickness == 1) {
        /* midpoint circle */
        int x = r, y = 0, err = 1 - r;
        while (x >= y) {
            put(img, cx + x, cy + y, v); put(img, cx + y, cy + x, v);
            put(img, cx - y, cy + x, v); put(img, cx - x, cy + y, v);
            put(img, cx - x, cy - y, v); put(img, cx - y, cy - x, v);
            put(img, cx + y, cy - x, v); put(img, cx + x, cy - y, v);
            y++;
            if (err < 0) {
                err += 2 * y + 1;
            } else {
                x--;
                err += 2 * (y - x) + 1;
            }
        }
        return;
    }
    if (thickness > COORD_MAX)
        thickness = COORD_MAX;
    ro = thickness < 0 ? r + 0.5 : r + thickness / 2.0;
    ri = thickness < 0 ? -1 : r - thickness / 2.0;
    int R = (int)ceil(ro), dya = MAX(-R, -cy), dyb = MIN(R, img->h - 1 - cy);
    for (int dy = dya; dy <= dyb; dy++) {
        int y = cy + dy;
        double wo2 = ro * ro - (double)dy * dy, wi2 = ri * ri - (double)dy * dy;
        int xo, xi;
        if (y < 0 || y >= img->h || wo2 < 0)
            continue;
        xo = (int)floor(sqrt(wo2));
        if (ri < 0 || wi2 <= 0) {
            hspan(img, cx - xo, cx + xo, y, v);
            continue;
        }
        xi = (int)ceil(sqrt(wi2));
        if (xi > xo)
            continue;
        hspan(img, cx - xo, cx - xi, y, v);
        hspan(img, cx + xi, cx + xo, y, v);
    }
}

/*
 * cv2.ellipse: points every `delta` degrees from start to end (cv2's
 * ellipse2Poly picks delta from the larger axis), rotated by angle; drawn
 * as an open polyline, or filled as a pie with the centre.
 */
void vis_draw_ellipse(struct vis_image *img, int cx, int cy, int ax, int ay, double angle,
                      double start, double end, struct vis_color c, int thickness)
{
    int pts[2 * 80], n = 0, big, delta;
    double ca, sa;

    if (ax < 0 || ay < 0 || ax > COORD_MAX || ay > COORD_MAX || !(start == start) ||
        !(end == end) || !(angle == angle) || thickness == 0)
        return;
    cx = clampc(cx), cy = clampc(cy);
    if (start > end) {
        double t = start;
        start = end;
        end = t;
    }
    if (end - start > 360) {
        start = 0;
        end = 360;
    }
    big = MAX(ax, ay);
    delta = big < 3 ? 90 : big < 10 ? 30 : big < 15 ? 18 : 5;
    ca = cos(angle * M_PI / 180.0);
    sa = sin(angle * M_PI / 180.0);
    if (thickness < 0) {
        pts[n++] = cx;
        pts[n++] = cy;
    }
    for (double t = start;; t += delta) {
        double u = (t > end ? end : t) * M_PI / 180.0;
        double x = ax * cos(u), y = ay * sin(u);
        pts[n++] = cx + (int)lrint(x * ca - y * sa);
        pts[n++] = cy + (int)lrint(x * sa + y * ca);
        if (t >= end || n >= (int)ARRAY_LEN(pts))
            break;
    }
    if (thickness < 0) {
        vis_fill_polygon(img, pts, n / 2, c, VIS_FILL_NONZERO);
        return;
    }
    for (int i = 0; i + 3 < n; i += 2)
        vis_draw_line(img, pts[i], pts[i + 1], pts[i + 2], pts[i + 3], c, thickness);
    if (n == 2)
        vis_draw_line(img, pts[0], pts[1], pts[0], pts[1], c, thickness);
}

int vis_draw_polygon(struct vis_image *img, const int *pts, int n, struct vis_color c,
                     int thickness)
{
    if (n < 0 || n > VIS_MAX_POLY_POINTS)
        return ERR_LIMIT;
    if (thickness < 0)
        return vis_fill_polygon(img, pts, n, c, VIS_FILL_EVEN_ODD);
    for (int i = 0; i < n && n > 1; i++) {
        int j = (i + 1) % n;
        vis_draw_line(img, pts[2 * i], pts[2 * i + 1], pts[2 * j], pts[2 * j + 1], c, thickness);
    }
    if (n == 1)
        vis_draw_line(img, pts[0], pts[1], pts[0], pts[1], c, thickness);
    return 0;
}

struct edge { double ya, yb, xa, slope; int dir; };
struct xing { double x; int dir; };

static int edge_cmp(const void *a, const void *b)
{
    double d = ((const struct edge *)a)->ya - ((const struct edge *)b)->ya;
    return d < 0 ? -1 : d > 0;
}

static int xing_cmp(const void *a, const void *b)
{
    double d = ((const struct xing *)a)->x - ((const struct xing *)b)->x;
    return d < 0 ? -1 : d > 0;
}

/*
 * Scanline fill with an edge table: edges sorted by their top y, an active
 * list updated per row.  Each pixel row y is sampled at y itself (so that
 * edges on integer coordinates are included like cv2.fillPoly); an edge is
 * active on the half-open range [ya, yb).  Crossings are sorted and spans
 * filled between pairs (even-odd) or where the winding count is non-zero.
 * The outline is drawn as well so that the bottom and right edges count.
 */
int vis_fill_polygon(struct vis_image *img, const int *pts, int n, struct vis_color c,
                     enum vis_fill_rule rule)
{
    struct edge *es = NULL;
    struct xing *xs = NULL;
    int *act = NULL;
    uint8_t v[4];
    int ne = 0, nact = 0, next = 0, rc = 0;
    double ymin = 1e18, ymax = -1e18;

    if (n < 0 || n > VIS_MAX_POLY_POINTS)
        return ERR_LIMIT;
    if (n < 3)
        return vis_draw_polygon(img, pts, n, c, 1);
    color_bytes(img, c, v);
    es = try_alloc((size_t)n, sizeof *es);
    xs = try_alloc((size_t)n, sizeof *xs);
    act = try_alloc((size_t)n, sizeof *act);
    if (!es || !xs || !act) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        double xa = clampc(pts[2 * i]), ya = clampc(pts[2 * i + 1]);
        double xb = clampc(pts[2 * j]), yb = clampc(pts[2 * j + 1]);
        int dir = 1;
        if (ya == yb)
            continue;
        if (ya > yb) {
            double t = xa; xa = xb; xb = t;
            t = ya; ya = yb; yb = t;
            dir = -1;
        }
        es[ne++] = (struct edge){ya, yb, xa, (xb - xa) / (yb - ya), dir};
        ymin = fmin(ymin, ya);
        ymax = fmax(ymax, yb);
    }
    qsort(es, (size_t)ne, sizeof *es, edge_cmp);
    if (ne == 0) /* all points on one row: the outline is the shape */
        ymin = 0, ymax = -1;
    int y0 = (int)fmax(ymin, 0), y1 = (int)fmin(ymax, img->h - 1);
    for (int y = y0; y <= y1; y++) {
        int k = 0, keep = 0, wind = 0;
        while (next < ne && es[next].ya <= y)
            act[nact++] = next++;
        for (int i = 0; i < nact; i++) {
            struct edge *e = &es[act[i]];
            if (y >= e->yb)
                continue; /* retired */
            act[keep++] = act[i];
            xs[k].x = e->xa + (y - e->ya) * e->slope;
            xs[k++].dir = e->dir;
        }
        nact = keep;
        qsort(xs, (size_t)k, sizeof *xs, xing_cmp);
        for (int i = 0; i + 1 < k; i++) {
            int inside;
            if (rule == VIS_FILL_NONZERO) {
                wind += xs[i].dir;
                inside = wind != 0;
            } else {
                inside = !(i & 1);
            }
            if (inside) {
                double l = ceil(xs[i].x), r = floor(xs[i + 1].x);
                if (l <= r && r >= 0 && l < img->w)
                    hspan(img, (int)fmax(l, 0), (int)fmin(r, img->w - 1), y, v);
            }
        }
    }
    rc = vis_draw_polygon(img, pts, n, c, 1);
out:
    free(es);
    free(xs);
    free(act);
    return rc;
}

/* ---- blending ------------------------------------------------------------- */

static int opacity_q(double opacity)
{
    if (!(opacity > 0))
        return 0;
    if (opacity >= 1)
        return 1 << 15;
    return (int)lrint(opacity * (1 << 15));
}

static uint8_t mix(int fg, int bg, int a)
{
    return (uint8_t)((fg * a + bg * ((1 << 15) - a) + (1 << 14)) >> 15);
}

void vis_blend_color(struct vis_image *img, struct vis_color c, double opacity)
{
    int a = opacity_q(opacity), ch = (int)img->fmt, nc = ch == 4 ? 3 : ch;
    uint8_t v[4];

    color_bytes(img, c, v);
    if (a == 0)
        return;
    for (int y = 0; y < img->h; y++) {
        uint8_t *p = vis_px(img, 0, y);
        for (int x = 0; x < img->w; x++, p += ch)
            for (int k = 0; k < nc; k++)
                p[k] = mix(v[k], p[k], a);
    }
}

int vis_blend_image(struct vis_image *dst, const struct vis_image *src, int x, int y,
                    double opacity)
{
    int cx = x, cy = y, cw = src->w, chh = src->h, a = opacity_q(opacity);
    size_t n;

    if (dst->fmt != src->fmt)
        return ERR_INVALID;
    if (!vis_rect_clip(dst, &cx, &cy, &cw, &chh) || a == 0)
        return 0;
    n = (size_t)cw * (size_t)dst->fmt;
    for (int r = 0; r < chh; r++) {
        uint8_t *d = vis_px(dst, cx, cy + r);
        const uint8_t *s = vis_px(src, cx - x, cy - y + r);
        for (size_t i = 0; i < n; i++)
            d[i] = mix(s[i], d[i], a);
    }
    return 0;
}

int vis_mask_overlay(struct vis_image *img, const struct vis_image *mask, struct vis_color c,
                     double opacity)
{
    int a = opacity_q(opacity), ch = (int)img->fmt, nc = ch == 4 ? 3 : ch;
    uint8_t v[4];

    if (mask->fmt != VIS_GRAY || mask->w != img->w || mask->h != img->h)
        return ERR_INVALID;
    color_bytes(img, c, v);
    for (int y = 0; y < img->h && a; y++) {
        uint8_t *p = vis_px(img, 0, y);
        const uint8_t *m = vis_px(mask, 0, y);
        for (int x = 0; x < img->w; x++, p += ch)
            if (m[x])
                for (int k = 0; k < nc; k++)
                    p[k] = mix(v[k], p[k], a);
    }
    return 0;
}
