/*
 * blocks/memory.c — blocks that keep values between steps and frames:
 * cache_set v1, cache_get v1 and image_stack v1 (roboflow/inference
 * core_steps/cache/ and fusion/image_stack, read, not copied).
 *
 * - cache_set / cache_get: Roboflow's WorkflowMemoryCache is one dict per
 *   namespace, the image's video_identifier (else "default"), shared by
 *   every cache step of the process and cleared when the block instance
 *   goes away.  Here the namespaces live in the run's wf_state, shared by
 *   the cache steps of the run (not per step): the jobs worker gives each
 *   video its own state, so a video's cache lasts for the video, and an
 *   image run (no state) starts with an empty cache, as a fresh Roboflow
 *   workflow instance does.  cache_set stores `value` under `key` and
 *   outputs it; cache_get outputs the value, or false when the key is not
 *   set (Roboflow's cache.get(key, False)).  Steps run in the definition's
 *   topological order, so a cache_get reads what an earlier step (in
 *   that order, or an earlier frame) set.  At most CACHE_MAX_KEYS keys per
 *   namespace, keys of CACHE_MAX_KEY bytes and CACHE_MAX_BYTES of values
 *   (pixels, detections, JSON text: value_cost) per namespace (a step
 *   error beyond).
 * - image_stack: the last `stack_size` frames of the video (per step and
 *   video_identifier, as Roboflow's per-instance dict of deques), newest
 *   first; `clear` empties the stack before the frame is added; a change of
 *   stack_size keeps the newest frames that fit.  Frames larger than
 *   resolution_width x resolution_height are shrunk with INTER_AREA to
 *   int(w * scale) x int(h * scale), scale = min(max_w / w, max_h / h).
 *   Values are clamped as Roboflow's run() does (stack 1..64, width
 *   64..1920, height 64..1080).  Difference: Roboflow keeps each frame as
 *   JPEG bytes; here the frames are images (the list serializes them as
 *   base64 JPEG images, and downstream blocks can use them as images).
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision.h"
#include "workflow/wf_int.h"

#define CACHE_MAX_KEYS 10000
#define CACHE_MAX_KEY 4096
#define CACHE_MAX_BYTES ((size_t)512 << 20) /* per namespace: e.g. ~85 cached 1080p frames */
#define STACK_MAX 64
#define STACK_MAX_W 1920
#define STACK_MAX_H 1080

static const char *vid_of(const struct wf_image *im)
{
    const char *id = json_string_value(json_object_get(im ? im->video_metadata : NULL, "video_identifier"));
    return id && *id ? id : "default";
}

/* ---- cache ----------------------------------------------------------------------- */

struct cache {
    size_t n, cap;
    char **keys;
    struct wf_value **vals; /* owned references */
    size_t *cost;           /* value_cost() of each value when stored */
    size_t bytes;           /* their sum, at most CACHE_MAX_BYTES */
};

/* About the memory a value holds: pixels, detections with their polygons
 * and keypoints, JSON text, the sum over lists and dicts (depth-bounded
 * like every value).  Shared values count in full: a bound, not a measure. */
static size_t value_cost(const struct wf_value *v, int depth)
{
    if (!v || depth > 64)
        return 64;
    size_t b = 64;
    switch (v->type) {
    case WF_V_IMAGE:
        if (v->image && v->image->img)
            b += (size_t)v->image->img->stride * (size_t)v->image->img->h;
        break;
    case WF_V_DETS:
        if (v->dets)
            for (size_t k = 0; k < v->dets->n; k++)
                b += sizeof(struct wf_det) + v->dets->d[k].npoly * sizeof(struct wf_point) +
                     v->dets->d[k].nkp * sizeof(struct wf_keypoint);
        break;
    case WF_V_LIST:
    case WF_V_DICT:
        for (size_t k = 0; k < v->n; k++)
            b += value_cost(v->items[k], depth + 1) + (v->keys && v->keys[k] ? strlen(v->keys[k]) : 0);
        break;
    default:
        if (v->json) {
            char *t = json_dumps(v->json, JSON_COMPACT | JSON_ENCODE_ANY);
            b += t ? strlen(t) : 0;
            free(t);
        }
        break;
    }
    return b;
}

static void cache_free(void *p)
{
    struct cache *ch = p;
    if (!ch)
        return;
    for (size_t k = 0; k < ch->n; k++) {
        free(ch->keys[k]);
        wf_value_unref(ch->vals[k]);
    }
    free(ch->keys);
    free(ch->vals);
    free(ch->cost);
    free(ch);
}

static struct cache *cache_of(struct wf_call *c, size_t i)
{
    char *key = xasprintf("cache\x1f%s", vid_of(wf_arg_image(c, i, "image")));
    void **slot = wf__call_shared_state(c, key, cache_free);
    free(key);
    if (!slot)
        return NULL;
    if (!*slot)
        *slot = xcalloc(1, sizeof(struct cache));
    return *slot;
}

static int cache_key(struct wf_call *c, size_t i, const char **key)
{
    *key = wf_arg_str(c, i, "key");
    if (!*key)
        return wf_call_fail(c, "field 'key': expected a string");
    if (strlen(*key) > CACHE_MAX_KEY)
        return wf_call_fail(c, "field 'key': longer than %d bytes", CACHE_MAX_KEY);
    return 0;
}

static int cache_set_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *key;
        if (cache_key(c, i, &key) < 0)
            return ERR_INVALID;
        struct cache *ch = cache_of(c, i);
        if (!ch)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct wf_value *v = (struct wf_value *)wf_arg(c, i, "value");
        size_t k = 0;
        while (k < ch->n && strcmp(ch->keys[k], key))
            k++;
        size_t cost = value_cost(v, 0) + strlen(key);
        size_t old = k < ch->n ? ch->cost[k] : 0;
        if (ch->bytes - old + cost > CACHE_MAX_BYTES)
            return wf_call_fail(c, "the cache would hold more than %zu MiB", CACHE_MAX_BYTES >> 20);
        if (k == ch->n) {
            if (ch->n >= CACHE_MAX_KEYS)
                return wf_call_fail(c, "the cache holds %d keys already", CACHE_MAX_KEYS);
            if (ch->n == ch->cap) {
                ch->cap = ch->cap ? 2 * ch->cap : 8;
                ch->keys = xrealloc(ch->keys, ch->cap * sizeof *ch->keys);
                ch->vals = xrealloc(ch->vals, ch->cap * sizeof *ch->vals);
                ch->cost = xrealloc(ch->cost, ch->cap * sizeof *ch->cost);
            }
            ch->keys[k] = xstrdup(key);
            ch->vals[k] = NULL;
            ch->cost[k] = 0;
            ch->n++;
        }
        ch->bytes = ch->bytes - ch->cost[k] + cost;
        ch->cost[k] = cost;
        wf_value_unref(ch->vals[k]);
        ch->vals[k] = wf_value_ref(v);
        wf_out_set(c, i, "output", wf_value_ref(v));
    }
    return 0;
}

static int cache_get_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *key;
        if (cache_key(c, i, &key) < 0)
            return ERR_INVALID;
        struct cache *ch = cache_of(c, i);
        if (!ch)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct wf_value *out = NULL;
        for (size_t k = 0; k < ch->n && !out; k++)
            if (!strcmp(ch->keys[k], key))
                out = wf_value_ref(ch->vals[k]);
        wf_out_set(c, i, "output", out ? out : wf_value_json(json_false()));
    }
    return 0;
}

/* ---- image_stack ------------------------------------------------------------------ */

struct stack {
    size_t n;
    struct wf_value *v[STACK_MAX]; /* newest first, owned */
};

static void stack_free(void *p)
{
    struct stack *s = p;
    for (size_t k = 0; s && k < s->n; k++)
        wf_value_unref(s->v[k]);
    free(s);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int stack_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        if (!im)
            return wf_call_fail(c, "field 'image': expected an image");
        size_t size = (size_t)clamp64(wf_arg_int(c, i, "stack_size", 10), 1, STACK_MAX);
        int mw = (int)clamp64(wf_arg_int(c, i, "resolution_width", STACK_MAX_W), 64, STACK_MAX_W);
        int mh = (int)clamp64(wf_arg_int(c, i, "resolution_height", STACK_MAX_H), 64, STACK_MAX_H);
        void **slot = wf_call_state(c, vid_of(im), stack_free);
        if (!slot)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct stack *s = *slot;
        if (!s)
            *slot = s = xcalloc(1, sizeof *s);
        if (wf_arg_bool(c, i, "clear", false))
            while (s->n)
                wf_value_unref(s->v[--s->n]);
        /* the frame, shrunk to fit */
        struct wf_value *frame;
        int w = im->img->w, h = im->img->h;
        if (w > mw || h > mh) {
            double scale = (double)mw / w < (double)mh / h ? (double)mw / w : (double)mh / h;
            int nw = (int)(w * scale), nh = (int)(h * scale);
            struct vis_image *px = NULL;
            if (nw < 1 || nh < 1 || vis_resize(im->img, nw, nh, VIS_INTER_AREA, &px) < 0)
                return wf_call_fail(c, "cannot shrink a %dx%d frame to %dx%d", w, h, nw, nh);
            frame = wf_value_image(wf_image_derive(im, px));
        } else {
            frame = wf_value_ref((struct wf_value *)wf_arg(c, i, "image"));
        }
        /* a deque of maxlen `size`: appendleft drops the oldest */
        while (s->n >= size)
            wf_value_unref(s->v[--s->n]);
        memmove(s->v + 1, s->v, s->n * sizeof *s->v);
        s->v[0] = frame;
        s->n++;
        struct wf_value *list = wf_value_list(s->n);
        for (size_t k = 0; k < s->n; k++)
            wf_value_list_set(list, k, wf_value_ref(s->v[k]));
        wf_out_set(c, i, "frames", list);
        wf_out_set(c, i, "frames_count", wf_value_json(json_integer((json_int_t)s->n)));
    }
    return 0;
}

static const struct wf_field cache_set_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"key", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"value", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY | WF_F_NULLABLE, NULL},
};
static const struct wf_field cache_get_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"key", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
};
static const struct wf_output cache_outs[] = {{"output", 0}};
static const struct wf_block cache_set_v1 = {
    (const char *const[]){"roboflow_core/cache_set@v1", NULL},
    cache_set_fields, ARRAY_LEN(cache_set_fields), cache_outs, ARRAY_LEN(cache_outs), 0, 0, NULL,
    cache_set_run, NULL};
static const struct wf_block cache_get_v1 = {
    (const char *const[]){"roboflow_core/cache_get@v1", NULL},
    cache_get_fields, ARRAY_LEN(cache_get_fields), cache_outs, ARRAY_LEN(cache_outs), 0, 0, NULL,
    cache_get_run, NULL};

static const struct wf_field stack_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"stack_size", NULL, WF_FT_INT, "10", WF_K_INT, 0, NULL},
    {"resolution_width", NULL, WF_FT_INT, "1920", WF_K_INT, 0, NULL},
    {"resolution_height", NULL, WF_FT_INT, "1080", WF_K_INT, 0, NULL},
    {"clear", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
};
static const struct wf_output stack_outs[] = {{"frames", WF_K_LIST}, {"frames_count", WF_K_INT}};

/* Roboflow's field validators: literal values out of range are refused. */
static int stack_check(const json_t *step, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int lo, hi;
    } r[] = {{"stack_size", 1, STACK_MAX}, {"resolution_width", 64, STACK_MAX_W},
             {"resolution_height", 64, STACK_MAX_H}};
    for (size_t k = 0; k < ARRAY_LEN(r); k++) {
        const json_t *v = json_object_get(step, r[k].name);
        if (json_is_number(v) && (json_number_value(v) < r[k].lo || json_number_value(v) > r[k].hi)) {
            wf__errf(err, errlen, "field '%s': `%s` must be between %d and %d", r[k].name, r[k].name,
                     r[k].lo, r[k].hi);
            return ERR_INVALID;
        }
    }
    return 0;
}

static const struct wf_block image_stack_v1 = {
    (const char *const[]){"roboflow_core/image_stack@v1", NULL},
    stack_fields, ARRAY_LEN(stack_fields), stack_outs, ARRAY_LEN(stack_outs), 0, 0, NULL, stack_run,
    stack_check};

const struct wf_block *const wf_blocks_memory[] = {&cache_get_v1, &cache_set_v1, &image_stack_v1, NULL};
