/*
 * text.c — text measurement and anti-aliased drawing with FreeType.
 *
 * A font owns an FT_Library and an FT_Face (FreeType objects are not
 * thread-safe, so each font has its own library and a mutex) and a cache
 * of rendered glyphs keyed by (codepoint, pixel size): an open-addressed
 * hash table of at most GLYPH_CACHE entries, emptied when full.  Every
 * public call takes the font's mutex for its whole duration; glyph
 * bitmaps are small and drawing 100 labels on a 1080p image costs well
 * under a millisecond per label, so the coarse lock is not a bottleneck.
 *
 * Layout is simple horizontal advance (no kerning, no shaping), which is
 * what label drawing needs.  The vertical metrics are the face's ascent
 * and descent at the requested size, so a label background computed from
 * vis_text_measure always contains the drawn glyphs.
 */
#include "vision/vision.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_OUTLINE_H
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

#define GLYPH_CACHE 2048 /* entries; power of two */

struct glyph {
    uint32_t cp;      /* codepoint; 0 = empty slot */
    int px;           /* pixel size */
    int bold;         /* extra stroke width in pixels (thickness - 1) */
    int left, top;    /* bitmap offset from the pen position (top: up) */
    int w, h;         /* bitmap size */
    int advance;      /* pen advance in pixels */
    uint8_t *bits;    /* w*h coverage, owned */
};

struct vis_font {
    pthread_mutex_t lock;
    FT_Library lib;
    FT_Face face;
    int cur_px;        /* size currently set on face, 0 = none */
    int nglyphs;
    struct glyph cache[GLYPH_CACHE];
};

int vis_font_open(const char *path, struct vis_font **out)
{
    struct vis_font *f;

    if (!path)
        return ERR_INVALID;
    f = try_calloc(1, sizeof *f);
    if (!f)
        return ERR_NOMEM;
    if (FT_Init_FreeType(&f->lib) != 0) {
        free(f);
        return ERR_INTERNAL;
    }
    if (FT_New_Face(f->lib, path, 0, &f->face) != 0) {
        FT_Done_FreeType(f->lib);
        free(f);
        return ERR_NOTFOUND;
    }
    pthread_mutex_init(&f->lock, NULL);
    *out = f;
    return 0;
}

static void cache_clear(struct vis_font *f)
{
    for (int i = 0; i < GLYPH_CACHE; i++) {
        free(f->cache[i].bits);
        memset(&f->cache[i], 0, sizeof f->cache[i]);
    }
    f->nglyphs = 0;
}

void vis_font_free(struct vis_font *f)
{
    if (!f)
        return;
    cache_clear(f);
    FT_Done_Face(f->face);
    FT_Done_FreeType(f->lib);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct vis_font *default_font;

static void default_init(void)
{
    const char *p = getenv("VBATCH_FONT");
    if (vis_font_open(p && *p ? p : VIS_FONT_DEFAULT_PATH, &default_font) < 0) {
        log_warn("vision", "cannot open font '%s'", p && *p ? p : VIS_FONT_DEFAULT_PATH);
        default_font = NULL;
    }
    /* Never freed: threads may still draw while the process exits, and a
     * static pointer keeps it reachable for leak checkers. */
}

struct vis_font *vis_font_default(void)
{
    pthread_once(&default_once, default_init);
    return default_font;
}

int vis_text_px_for_scale(double scale)
{
    double px = scale * 22.0 / 0.73;
    if (!(px >= 1))
        return 1;
    if (px > VIS_TEXT_MAX_PX)
        return VIS_TEXT_MAX_PX;
    return (int)lrint(px);
}

/* Decode one UTF-8 sequence at s[*i] (n bytes), advancing *i; invalid or
 * overlong sequences give U+FFFD and consume one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    int len;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07;
    else
        goto bad;
    if (n - *i < (size_t)len)
        goto bad;
    for (int k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            goto bad;
        cp = cp << 6 | (s[*i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        goto bad;
    *i += (size_t)len;
    return cp;
bad:
    (*i)++;
    return 0xFFFD;
}

static int set_size(struct vis_font *f, int px)
{
    if (f->cur_px == px)
        return 0;
    if (FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)px) != 0)
        return ERR_INTERNAL;
    f->cur_px = px;
    return 0;
}

/* Cached glyph for cp at px, emboldened by `bold` pixels (font locked);
 * NULL when FreeType fails. */
static const struct glyph *glyph_get(struct vis_font *f, uint32_t cp, int px, int bold)
{
    uint32_t hsh = (cp * 2654435761u) ^ ((uint32_t)px * 40503u) ^ ((uint32_t)bold * 9973u);
    size_t i = hsh & (GLYPH_CACHE - 1);
    struct glyph *g;
    FT_GlyphSlot slot;

    for (;;) {
        g = &f->cache[i];
        if (g->cp == 0)
            break;
        if (g->cp == cp && g->px == px && g->bold == bold)
            return g;
        i = (i + 1) & (GLYPH_CACHE - 1);
    }
    if (f->nglyphs >= GLYPH_CACHE * 3 / 4) {
        cache_clear(f);
        i = hsh & (GLYPH_CACHE - 1);
        g = &f->cache[i];
    }
    if (set_size(f, px) < 0 || FT_Load_Char(f->face, cp, FT_LOAD_DEFAULT) != 0)
        return NULL;
    slot = f->face->glyph;
    if (bold > 0 && slot->format == FT_GLYPH_FORMAT_OUTLINE) {
        /* widen every stroke by `bold` pixels (26.6 fixed point) */
        if (FT_Outline_Embolden(&slot->outline, (FT_Pos)bold * 64) != 0)
            return NULL;
        slot->advance.x += (FT_Pos)bold * 64;
    }
    if (FT_Render_Glyph(slot, FT_RENDER_MODE_NORMAL) != 0)
        return NULL;
    if (slot->bitmap.pixel_mode != FT_PIXEL_MODE_GRAY && slot->bitmap.width > 0)
        return NULL;
    g->w = (int)slot->bitmap.width;
    g->h = (int)slot->bitmap.rows;
    g->left = slot->bitmap_left;
    g->top = slot->bitmap_top;
    g->advance = (int)((slot->advance.x + 32) >> 6);
    g->bits = NULL;
    if (g->w > 0 && g->h > 0) {
        g->bits = try_alloc((size_t)g->w, (size_t)g->h);
        if (!g->bits)
            return NULL;
        for (int y = 0; y < g->h; y++)
            memcpy(g->bits + (size_t)y * g->w, slot->bitmap.buffer + (ptrdiff_t)y * slot->bitmap.pitch,
                   (size_t)g->w);
    }
    g->cp = cp;
    g->px = px;
    g->bold = bold;
    f->nglyphs++;
    return g;
}

static int check_args(struct vis_font *f, const char *s, int px, int thickness)
{
    if (!f || !s || thickness < 1 || thickness > px)
        return ERR_INVALID;
    if (px < 1 || px > VIS_TEXT_MAX_PX)
        return ERR_INVALID;
    if (strnlen(s, VIS_TEXT_MAX + 1) > VIS_TEXT_MAX)
        return ERR_LIMIT;
    return 0;
}

/* Ascent/descent (pixels, rounded outwards) of the face at the set size,
 * widened by the emboldening (which grows glyphs by bold/2 each way). */
static void vmetrics(struct vis_font *f, int bold, int *asc, int *desc)
{
    *asc = (int)((f->face->size->metrics.ascender + 63) >> 6) + (bold + 1) / 2;
    *desc = (int)((-f->face->size->metrics.descender + 63) >> 6) + (bold + 1) / 2;
}

/*
 * Walk the text: for each glyph call fn with the pen x.  Returns the total
 * advance, or <0 on error.  The font is locked by the caller.
 */
static int layout(struct vis_font *f, const char *s, int px, int bold, int *minx, int *maxx,
                  void (*fn)(const struct glyph *, int, void *), void *arg)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    int pen = 0;

    *minx = 0;
    *maxx = 0;
    while (i < n) {
        uint32_t cp = utf8_next(u, n, &i);
        const struct glyph *g;
        if (cp < 0x20 || cp == 0x7F)
            continue;
        g = glyph_get(f, cp, px, bold);
        if (!g)
            continue; /* a glyph FreeType cannot render is skipped */
        if (g->w > 0) {
            *minx = MIN(*minx, pen + g->left);
            *maxx = MAX(*maxx, pen + g->left + g->w);
        }
        if (fn)
            fn(g, pen, arg);
        pen += g->advance;
    }
    *maxx = MAX(*maxx, pen);
    return pen;
}

int vis_text_measure(struct vis_font *f, const char *s, int px, struct vis_text_metrics *m)
{
    return vis_text_measure_ex(f, s, px, 1, m);
}

int vis_text_measure_ex(struct vis_font *f, const char *s, int px, int thickness,
                        struct vis_text_metrics *m)
{
    int rc = check_args(f, s, px, thickness), asc, desc, minx, maxx;

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->lock);
    rc = set_size(f, px);
    if (rc == 0) {
        vmetrics(f, thickness - 1, &asc, &desc);
        layout(f, s, px, thickness - 1, &minx, &maxx, NULL, NULL);
        /* The box starts at the origin; a glyph overhanging to the left
         * (negative bearing) is clipped when drawn. */
        m->width = maxx;
        m->height = asc;
        m->baseline = desc;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

struct draw_ctx {
    struct vis_image *img;
    int x, y, asc, desc;
    uint8_t v[4];
};

static void draw_glyph(const struct glyph *g, int pen, void *arg)
{
    struct draw_ctx *d = arg;
    struct vis_image *img = d->img;
    int ch = (int)img->fmt, nc = ch == 4 ? 3 : ch;
    long long gx = (long long)d->x + pen + g->left, gy = (long long)d->y - g->top;

    for (int r = 0; r < g->h; r++) {
        long long y = gy + r;
        /* keep inside the measured box as promised by vis_text_measure */
        if (y < 0 || y >= img->h || y < (long long)d->y - d->asc || y >= (long long)d->y + d->desc)
            continue;
        for (int c = 0; c < g->w; c++) {
            long long x = gx + c;
            int a = g->bits[(size_t)r * g->w + c];
            if (x < 0 || x >= img->w || x < d->x || a == 0)
                continue;
            uint8_t *p = vis_px(img, (int)x, (int)y);
            for (int k = 0; k < nc; k++)
                p[k] = (uint8_t)((d->v[k] * a + p[k] * (255 - a) + 127) / 255);
        }
    }
}

int vis_text_draw(struct vis_image *img, struct vis_font *f, const char *s, int px, int x, int y,
                  struct vis_color c)
{
    return vis_text_draw_ex(img, f, s, px, 1, x, y, c);
}

int vis_text_draw_ex(struct vis_image *img, struct vis_font *f, const char *s, int px,
                     int thickness, int x, int y, struct vis_color c)
{
    int rc = check_args(f, s, px, thickness), minx, maxx;
    struct draw_ctx d;

    if (rc < 0)
        return rc;
    d.img = img;
    d.x = x;
    d.y = y;
    d.v[0] = c.b;
    d.v[1] = c.g;
    d.v[2] = c.r;
    d.v[3] = 255;
    if (img->fmt == VIS_GRAY)
        d.v[0] = (uint8_t)((c.r * 4899 + c.g * 9617 + c.b * 1868 + (1 << 13)) >> 14);
    pthread_mutex_lock(&f->lock);
    rc = set_size(f, px);
    if (rc == 0) {
        vmetrics(f, thickness - 1, &d.asc, &d.desc);
        layout(f, s, px, thickness - 1, &minx, &maxx, draw_glyph, &d);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}
