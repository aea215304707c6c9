/*
 * blocks/stateful.c — blocks that remember earlier frames: rate_limiter,
 * delta_filter, buffer and frame_delay (roboflow/inference flow_control/ and fusion/,
 * read, not copied).  Their memory is the step's state slot (wf_call_state), so
 * the jobs worker gives each video its own and an image run starts afresh,
 * as a separate Roboflow request does.
 *
 * - rate_limiter: the branch continues (next_steps) when no earlier
 *   element passed, or when at least cooldown_seconds elapsed since the last
 *   one that did; otherwise it terminates.  The time is frame_number / fps
 *   of video_reference_image's video metadata (an image without metadata is
 *   frame 0 at 30 fps, as Roboflow synthesizes it), or the wall clock when
 *   no reference image is given or its fps is 0.  One memory per step and
 *   state (Roboflow keeps one per block instance).
 * - delta_filter: the branch continues when `value` differs from the value
 *   this video (video_identifier of the image's metadata, else its
 *   parent_id) had last time, and that value is remembered.  JSON values
 *   compare by content; images and detections never compare equal (their
 *   ids are fresh on every frame, as sv.Detections' data differ).
 * - buffer: the last `length` values of `data`, newest first, padded with
 *   None up to `length` when `pad`; at most BUFFER_MAX values (Roboflow has
 *   no bound).  One buffer per step and state, as Roboflow keeps one per
 *   block instance.
 * - frame_delay: `data` of frame frame_number + offset (offset in
 *   -256..0) of the same video, or default_value; frames a lookup can no
 *   longer reach (older than the largest |offset| seen) are dropped, and a
 *   frame number going backwards starts the video afresh.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

static const char *video_id(const struct wf_image *im)
{
    const json_t *vm = im ? im->video_metadata : NULL;
    const char *id = json_string_value(json_object_get(vm, "video_identifier"));
    if (id)
        return id;
    return im && im->parent_id ? im->parent_id : "image";
}

static void select_next(struct wf_call *c, size_t i)
{
    const json_t *next = wf_arg_json(c, i, "next_steps");
    size_t k;
    const json_t *s;
    json_array_foreach(next, k, s) {
        const char *name = json_string_value(s);
        wf_out_next_steps(c, i, &name, 1);
    }
}

static int next_steps_check(const json_t *step, char *err, size_t errlen)
{
    if (!json_is_array(json_object_get(step, "next_steps"))) {
        wf__errf(err, errlen, "field 'next_steps': expected a list of step selectors");
        return ERR_INVALID;
    }
    return 0;
}

/* ---- rate_limiter ---------------------------------------------------------- */

struct rate_state {
    double last; /* seconds of the last element that passed */
};

static int rate_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        double cooldown = wf_arg_double(c, i, "cooldown_seconds", 1.0);
        const struct wf_value *ref = wf_arg(c, i, "video_reference_image");
        const struct wf_image *im = wf_arg_image(c, i, "video_reference_image");
        double now = (double)time_now_ms() / 1000.0;
        if (!wf_value_is_null(ref) && im) {
            const json_t *vm = im->video_metadata;
            const json_t *fps = json_object_get(vm, "fps"), *fno = json_object_get(vm, "frame_number");
            double f = vm ? (json_is_number(fps) ? json_number_value(fps) : 0) : 30;
            double n = vm ? (json_is_number(fno) ? json_number_value(fno) : 0) : 0;
            if (f != 0 && isfinite(f) && isfinite(n))
                now = n / f;
        }
        void **slot = wf_call_state(c, "rate_limiter", free);
        if (!slot)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct rate_state *st = *slot;
        if (st && now - st->last < cooldown)
            continue; /* throttled: the branch terminates */
        if (!st)
            *slot = st = xcalloc(1, sizeof *st);
        st->last = now;
        select_next(c, i);
    }
    return 0;
}

/* ---- delta_filter ------------------------------------------------------------ */

static void json_free(void *p)
{
    json_decref(p);
}

static int delta_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_value *v = wf_arg(c, i, "value");
        void **slot = wf_call_state(c, video_id(im), json_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        json_t *cur = NULL;
        if (wf_value_is_null(v))
            cur = json_null();
        else if (v->type == WF_V_JSON)
            cur = json_incref(v->json);
        /* cur NULL: an image, detections or a list of them — always a change */
        bool same = cur && *slot && json_equal(*slot, cur);
        if (same) {
            json_decref(cur);
            continue;
        }
        json_decref(*slot);
        *slot = cur;
        select_next(c, i);
    }
    return 0;
}

/* ---- buffer ------------------------------------------------------------------- */

#define BUFFER_MAX 64 /* values kept (images stay in memory while buffered) */

struct buffer {
    size_t n;
    struct wf_value *v[BUFFER_MAX]; /* newest first, owned references */
};

static void buffer_free(void *p)
{
    struct buffer *b = p;
    for (size_t k = 0; b && k < b->n; k++)
        wf_value_unref(b->v[k]);
    free(b);
}

static int buffer_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        int64_t length = wf_arg_int(c, i, "length", 0);
        bool pad = wf_arg_bool(c, i, "pad", false);
        if (length < 0 || length > BUFFER_MAX)
            return wf_call_fail(c, "length must be between 0 and %d, got %lld", BUFFER_MAX,
                                (long long)length);
        void **slot = wf_call_state(c, "buffer", buffer_free);
        if (!slot)
            return wf_call_fail(c, "too many states at once (at most %d)", WF_STATE_MAX);
        struct buffer *b = *slot;
        if (!b)
            *slot = b = xcalloc(1, sizeof *b);
        /* insert at the front, keep the first `length` */
        if (b->n == BUFFER_MAX)
            wf_value_unref(b->v[--b->n]);
        memmove(b->v + 1, b->v, b->n * sizeof *b->v);
        b->v[0] = wf_value_ref((struct wf_value *)wf_arg(c, i, "data"));
        b->n++;
        while (b->n > (size_t)length)
            wf_value_unref(b->v[--b->n]);
        size_t out_n = pad ? (size_t)length : b->n;
        struct wf_value *list = wf_value_list(out_n);
        for (size_t k = 0; k < b->n; k++)
            wf_value_list_set(list, k, wf_value_ref(b->v[k]));
        wf_out_set(c, i, "output", list);
    }
    return 0;
}

/* ---- frame_delay ---------------------------------------------------------------- */

#define FD_MAX_OFFSET 256 /* Roboflow's MAX_OFFSET: every buffered frame is kept */

struct fd_entry {
    int64_t frame;
    struct wf_value *v; /* owned reference */
};

struct frame_delay {
    struct fd_entry e[FD_MAX_OFFSET + 2]; /* frame numbers increasing */
    size_t n;
    int64_t max_abs; /* the largest |offset| seen since the last reset */
};

static void fd_clear(struct frame_delay *b)
{
    for (size_t k = 0; k < b->n; k++)
        wf_value_unref(b->e[k].v);
    b->n = 0;
}

static void fd_free(void *p)
{
    if (p)
        fd_clear(p);
    free(p);
}

static int fd_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        int64_t offset = wf_arg_int(c, i, "offset", 0);
        if (offset > 0)
            return wf_call_fail(c, "Frame Delay only supports past offsets: `offset` must be <= 0 "
                                   "(got %lld).", (long long)offset);
        if (offset < -FD_MAX_OFFSET)
            return wf_call_fail(c, "Frame Delay supports an `offset` no smaller than -%d, since "
                                   "every buffered frame is retained in memory (got %lld).",
                                FD_MAX_OFFSET, (long long)offset);
        const json_t *vm = im ? im->video_metadata : NULL;
        const json_t *fno = json_object_get(vm, "frame_number");
        int64_t frame = json_is_integer(fno) ? json_integer_value(fno)
                        : json_is_number(fno) ? (int64_t)json_number_value(fno)
                                              : 0;
        void **slot = wf_call_state(c, video_id(im), fd_free);
        if (!slot)
            return wf_call_fail(c, "too many videos at once (at most %d)", WF_STATE_MAX);
        struct frame_delay *b = *slot;
        if (!b)
            *slot = b = xcalloc(1, sizeof *b);
        if (b->n && frame < b->e[b->n - 1].frame) { /* the numbering restarted */
            fd_clear(b);
            b->max_abs = 0;
        }
        b->max_abs = MAX(b->max_abs, -offset);
        struct wf_value *data = wf_value_ref((struct wf_value *)wf_arg(c, i, "data"));
        if (b->n && b->e[b->n - 1].frame == frame) {
            wf_value_unref(b->e[b->n - 1].v);
            b->e[b->n - 1].v = data;
        } else {
            if (b->n == ARRAY_LEN(b->e)) { /* cannot happen after eviction; keep it bounded */
                wf_value_unref(b->e[0].v);
                memmove(b->e, b->e + 1, --b->n * sizeof *b->e);
            }
            b->e[b->n++] = (struct fd_entry){frame, data};
        }
        int64_t target = frame + offset;
        struct wf_value *out = NULL;
        for (size_t k = 0; k < b->n && !out; k++)
            if (b->e[k].frame == target)
                out = wf_value_ref(b->e[k].v);
        bool available = out != NULL;
        if (!out)
            out = wf_value_json(json_deep_copy(wf_arg_json(c, i, "default_value")));
        /* keep only the frames a lookup can still reach */
        size_t drop = 0;
        while (drop < b->n && b->e[drop].frame < frame - b->max_abs)
            wf_value_unref(b->e[drop++].v);
        memmove(b->e, b->e + drop, (b->n - drop) * sizeof *b->e);
        b->n -= drop;
        wf_out_set(c, i, "output", out);
        wf_out_json(c, i, "is_available", json_boolean(available));
        wf_out_json(c, i, "reference_frame_number", json_integer((json_int_t)frame));
    }
    return 0;
}

/* ---- manifests (spec/blocks.json) ------------------------------------------- */

static const struct wf_output no_outs[1] = {{NULL, 0}};

static const struct wf_field rate_fields[] = {
    {"cooldown_seconds", NULL, WF_FT_FLOAT, "1.0", 0, WF_F_NO_SELECTOR, NULL},
    {"depends_on", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"next_steps", NULL, WF_FT_LIST, NULL, 0, WF_F_STEP_SELECTORS, NULL},
    {"video_reference_image", NULL, WF_FT_IMAGE, "null", WF_K_IMAGE,
     WF_F_SELECTOR_ONLY | WF_F_NULLABLE, NULL},
};
static const struct wf_block rate = {
    (const char *const[]){"roboflow_core/rate_limiter@v1", NULL},
    rate_fields, ARRAY_LEN(rate_fields), no_outs, 0, 0, WF_BLOCK_FLOW_CONTROL, NULL,
    rate_run, next_steps_check};

static const struct wf_field delta_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"value", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"next_steps", NULL, WF_FT_LIST, NULL, 0, WF_F_STEP_SELECTORS, NULL},
};
static const struct wf_block delta = {
    (const char *const[]){"roboflow_core/delta_filter@v1", NULL},
    delta_fields, ARRAY_LEN(delta_fields), no_outs, 0, 0, WF_BLOCK_FLOW_CONTROL, NULL,
    delta_run, next_steps_check};

static const struct wf_field buffer_fields[] = {
    {"data", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"length", NULL, WF_FT_INT_NONNEG, NULL, 0, WF_F_NO_SELECTOR, NULL},
    {"pad", NULL, WF_FT_BOOL, "false", 0, WF_F_NO_SELECTOR, NULL},
};
static const struct wf_output buffer_outs[] = {{"output", WF_K_LIST}};
static const struct wf_block buffer = {
    (const char *const[]){"roboflow_core/buffer@v1", "Buffer", NULL},
    buffer_fields, ARRAY_LEN(buffer_fields), buffer_outs, ARRAY_LEN(buffer_outs), 0, 0, NULL,
    buffer_run, NULL};

static const struct wf_field fd_fields[] = {
    {"image", NULL, WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"data", NULL, WF_FT_ANY, NULL, 0, WF_F_SELECTOR_ONLY, NULL},
    {"offset", NULL, WF_FT_INT, NULL, WF_K_INT, 0, NULL},
    {"default_value", NULL, WF_FT_ANY, "null", 0, WF_F_NO_SELECTOR | WF_F_NULLABLE, NULL},
};
static const struct wf_output fd_outs[] = {
    {"output", 0}, {"is_available", WF_K_BOOL}, {"reference_frame_number", WF_K_INT}};
static const struct wf_block frame_delay = {
    (const char *const[]){"roboflow_core/frame_delay@v1", "FrameDelay",
                          "roboflow_core/time_travel@v1", "TimeTravel", NULL},
    fd_fields, ARRAY_LEN(fd_fields), fd_outs, ARRAY_LEN(fd_outs), 0, 0, NULL, fd_run, NULL};

const struct wf_block *const wf_blocks_stateful[] = {&rate, &delta, &buffer, &frame_delay, NULL};
