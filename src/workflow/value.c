/*
 * value.c — the values that flow between workflow steps (images with their
 * parent metadata, detections, plain JSON, lists and dicts of those) and
 * their serialization as Roboflow serializes them (WORKFLOWS.md section 3).
 *
 * Values are refcounted and immutable once a step has published them; a
 * value belongs to one run (one thread), so the count is a plain int.
 * Detections are an array of struct wf_det (one struct per box, owning its
 * strings) rather than numpy-style columns: blocks filter, copy and
 * rewrite single detections far more often than they do column maths.
 *
 * Floats: boxes are float32 as in supervision; when serialized each float is
 * turned into the shortest decimal that reads back as the same float
 * ("%.9g" round trip trimmed to 7 significant digits when exact), so 0.3f
 * prints as 0.3 and not 0.30000001192092896.
 */
#include "workflow/workflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "workflow/wf_int.h"

void wf__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

double wf__round_half_even(double x)
{
    return nearbyint(x); /* default rounding mode: to nearest, ties to even */
}

/* Shortest decimal that reads back as the same float32. */
static double f2d(float f)
{
    char b[32];
    if (!isfinite(f))
        return 0.0;
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if ((float)strtod(b, NULL) == f)
            return strtod(b, NULL);
    }
    return (double)f;
}

json_t *wf__real(double x)
{
    if (!isfinite(x))
        return json_null();
    return json_real(x);
}

/* ---- images ------------------------------------------------------------------ */

struct wf_image *wf_image_new_root(struct vis_image *px, const char *parent_id)
{
    struct wf_image *im = xcalloc(1, sizeof *im);
    im->img = px;
    im->parent_id = xstrdup(parent_id);
    im->root_parent_id = xstrdup(parent_id);
    im->parent = (struct wf_origin){0, 0, px->w, px->h};
    im->root = im->parent;
    return im;
}

struct wf_image *wf_image_new_child(const struct wf_image *parent, struct vis_image *px, int x,
                                    int y, const char *parent_id)
{
    struct wf_image *im = xcalloc(1, sizeof *im);
    im->img = px;
    im->parent_id = xstrdup(parent_id);
    im->parent = (struct wf_origin){x, y, parent->img->w, parent->img->h};
    im->root_parent_id = xstrdup(parent->root_parent_id);
    im->root = (struct wf_origin){parent->root.offset_x + x, parent->root.offset_y + y,
                                  parent->root.width, parent->root.height};
    if (parent->video_metadata)
        im->video_metadata = json_deep_copy(parent->video_metadata);
    return im;
}

struct wf_image *wf_image_derive(const struct wf_image *like, struct vis_image *px)
{
    struct wf_image *im = xcalloc(1, sizeof *im);
    im->img = px;
    im->parent_id = xstrdup(like->parent_id);
    im->parent = like->parent;
    im->root_parent_id = xstrdup(like->root_parent_id);
    im->root = like->root;
    if (like->video_metadata)
        im->video_metadata = json_incref(like->video_metadata);
    return im;
}

void wf_image_free(struct wf_image *im)
{
    if (!im)
        return;
    vis_image_free(im->img);
    free(im->parent_id);
    free(im->root_parent_id);
    json_decref(im->video_metadata);
    free(im);
}

static json_t *origin_json(const struct wf_origin *o)
{
    return json_pack("{s:i,s:i,s:i,s:i}", "offset_x", o->offset_x, "offset_y", o->offset_y,
                     "width", o->width, "height", o->height);
}

static json_t *video_metadata_json(const struct wf_image *im)
{
    char ts[TIME_ISO_LEN];
    if (im->video_metadata)
        return json_deep_copy(im->video_metadata);
    time_iso8601(time_now_ms(), ts);
    return json_pack("{s:s,s:i,s:s,s:i,s:n,s:n}", "video_identifier", im->parent_id,
                     "frame_number", 0, "frame_timestamp", ts, "fps", 30, "measured_fps",
                     "comes_from_video_file");
}

json_t *wf__image_serialize(const struct wf_image *im, int quality)
{
    uint8_t *jpg = NULL;
    size_t len = 0;
    char *b64;
    json_t *o;

    if (vis_encode_jpeg(im->img, quality > 0 ? quality : 95, &jpg, &len) < 0)
        return json_null();
    b64 = base64_encode(jpg, len);
    free(jpg);
    o = json_object();
    json_object_set_new(o, "type", json_string("base64"));
    json_object_set_new(o, "value", json_string(b64));
    free(b64);
    json_object_set_new(o, "video_metadata", video_metadata_json(im));
    if (strcmp(im->parent_id, im->root_parent_id) != 0) {
        json_object_set_new(o, "parent_id", json_string(im->parent_id));
        json_object_set_new(o, "parent_origin", origin_json(&im->parent));
        json_object_set_new(o, "root_parent_id", json_string(im->root_parent_id));
        json_object_set_new(o, "root_parent_origin", origin_json(&im->root));
    }
    return o;
}

struct wf_image *wf__image_from_input(const struct vis_image *px, const char *parent_id)
{
    struct vis_image *copy = vis_image_clone(px);
    if (!copy)
        return NULL;
    return wf_image_new_root(copy, parent_id);
}

/* ---- detections ------------------------------------------------------------- */

struct wf_dets *wf_dets_new(void)
{
    return xcalloc(1, sizeof(struct wf_dets));
}

void wf_det_release(struct wf_det *d)
{
    free(d->class_name);
    free(d->parent_id);
    free(d->root_parent_id);
    free(d->inference_id);
    free(d->prediction_type);
    free(d->poly);
    for (size_t k = 0; k < d->nkp; k++)
        free(d->kp[k].class_name);
    free(d->kp);
    json_decref(d->extra);
    memset(d, 0, sizeof *d);
}

void wf_dets_free(struct wf_dets *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->n; i++)
        wf_det_release(&ds->d[i]);
    free(ds->d);
    free(ds);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void wf_det_copy(struct wf_det *dst, const struct wf_det *src)
{
    *dst = *src;
    dst->class_name = xstrdup(src->class_name ? src->class_name : "");
    dst->parent_id = xstrdup(src->parent_id ? src->parent_id : "");
    dst->root_parent_id = xstrdup(src->root_parent_id ? src->root_parent_id : "");
    dst->inference_id = dup_or_null(src->inference_id);
    dst->prediction_type = dup_or_null(src->prediction_type);
    dst->poly = NULL;
    if (src->npoly) {
        dst->poly = xmalloc(src->npoly * sizeof *dst->poly);
        memcpy(dst->poly, src->poly, src->npoly * sizeof *dst->poly);
    }
    dst->kp = NULL;
    if (src->nkp) {
        dst->kp = xmalloc(src->nkp * sizeof *dst->kp);
        for (size_t k = 0; k < src->nkp; k++) {
            dst->kp[k] = src->kp[k];
            dst->kp[k].class_name = xstrdup(src->kp[k].class_name ? src->kp[k].class_name : "");
        }
    }
    dst->extra = src->extra ? json_deep_copy(src->extra) : NULL;
}

static struct wf_det *dets_grow(struct wf_dets *ds)
{
    if (ds->n == ds->cap) {
        ds->cap = ds->cap ? ds->cap * 2 : 8;
        ds->d = xrealloc(ds->d, ds->cap * sizeof *ds->d);
    }
    return &ds->d[ds->n++];
}

struct wf_det *wf_dets_push_copy(struct wf_dets *ds, const struct wf_det *det)
{
    struct wf_det tmp;
    wf_det_copy(&tmp, det); /* det may point into ds->d: copy before growing */
    struct wf_det *d = dets_grow(ds);
    *d = tmp;
    return d;
}

struct wf_det *wf_dets_push_new(struct wf_dets *ds)
{
    struct wf_det *d = dets_grow(ds);
    memset(d, 0, sizeof *d);
    d->class_name = xstrdup("");
    d->parent_id = xstrdup("");
    d->root_parent_id = xstrdup("");
    d->tracker_id = WF_NO_TRACKER;
    uuid4(d->detection_id);
    return d;
}

struct wf_dets *wf_dets_clone(const struct wf_dets *ds)
{
    struct wf_dets *c = wf_dets_new();
    if (ds->n) {
        c->cap = ds->n;
        c->d = xmalloc(c->cap * sizeof *c->d);
        for (size_t i = 0; i < ds->n; i++)
            wf_det_copy(&c->d[i], &ds->d[i]);
        c->n = ds->n;
    }
    return c;
}

void wf_dets_keep(struct wf_dets *ds, const bool *keep)
{
    size_t j = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (keep[i])
            ds->d[j++] = ds->d[i];
        else
            wf_det_release(&ds->d[i]);
    }
    ds->n = j;
}

void wf_det_set_str(char **field, const char *s)
{
    char *n = xstrdup(s ? s : "");
    free(*field);
    *field = n;
}

void wf_det_attach_image(struct wf_det *d, const struct wf_image *im)
{
    wf_det_set_str(&d->parent_id, im->parent_id);
    wf_det_set_str(&d->root_parent_id, im->root_parent_id);
    d->img_w = im->img->w;
    d->img_h = im->img->h;
    d->parent = im->parent;
    d->root = im->root;
}

static double jnum(const json_t *o, const char *k, double def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

static bool class_allowed(const json_t *filter, const char *cls)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(filter))
        return true;
    json_array_foreach(filter, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), cls))
            return true;
    }
    return false;
}

int wf_dets_from_inference(const json_t *resp, const struct wf_image *im,
                           const char *prediction_type, const char *inference_id,
                           const json_t *class_filter, struct wf_dets **out)
{
    const json_t *preds = json_object_get(resp, "predictions");
    const json_t *p;
    size_t i;
    struct wf_dets *ds;

    if (!json_is_array(preds))
        return ERR_PARSE;
    ds = wf_dets_new();
    json_array_foreach(preds, i, p) {
        const json_t *cls = json_object_get(p, "class");
        const char *cname = json_is_string(cls) ? json_string_value(cls) : "";
        const json_t *pts, *kps, *did;
        struct wf_det *d;
        double x, y, w, h;

        if (!json_is_object(p))
            continue;
        if (!class_allowed(class_filter, cname))
            continue;
        pts = json_object_get(p, "points");
        if (pts && json_array_size(pts) < 3)
            continue; /* sv.Detections.from_inference drops polygons of < 3 points */
        x = jnum(p, "x", 0), y = jnum(p, "y", 0), w = jnum(p, "width", 0), h = jnum(p, "height", 0);
        d = wf_dets_push_new(ds);
        d->x1 = (float)(x - w / 2), d->y1 = (float)(y - h / 2);
        d->x2 = (float)(x + w / 2), d->y2 = (float)(y + h / 2);
        d->confidence = (float)jnum(p, "confidence", 0);
        d->class_id = (int)jnum(p, "class_id", 0);
        wf_det_set_str(&d->class_name, cname);
        did = json_object_get(p, "detection_id");
        if (json_is_string(did) && strlen(json_string_value(did)) < sizeof d->detection_id)
            snprintf(d->detection_id, sizeof d->detection_id, "%s", json_string_value(did));
        if (json_is_integer(json_object_get(p, "tracker_id")))
            d->tracker_id = json_integer_value(json_object_get(p, "tracker_id"));
        wf_det_attach_image(d, im);
        /* image_dimensions come from the response, as in Roboflow */
        if (json_is_integer(json_object_get(json_object_get(resp, "image"), "width")) &&
            json_is_integer(json_object_get(json_object_get(resp, "image"), "height"))) {
            d->img_w = (int)json_integer_value(json_object_get(json_object_get(resp, "image"), "width"));
            d->img_h = (int)json_integer_value(json_object_get(json_object_get(resp, "image"), "height"));
        }
        d->inference_id = dup_or_null(inference_id);
        d->prediction_type = dup_or_null(prediction_type);
        if (json_is_array(pts)) {
            size_t k, n = json_array_size(pts);
            const json_t *pt;
            d->has_mask = true;
            if (n) {
                d->poly = xmalloc(n * sizeof *d->poly);
                json_array_foreach(pts, k, pt) {
                    d->poly[k].x = (float)jnum(pt, "x", 0);
                    d->poly[k].y = (float)jnum(pt, "y", 0);
                }
                d->npoly = n;
            }
        }
        kps = json_object_get(p, "keypoints");
        if (json_is_array(kps)) {
            size_t k, n = json_array_size(kps);
            const json_t *kp;
            d->has_kp = true;
            if (n) {
                d->kp = xcalloc(n, sizeof *d->kp);
                json_array_foreach(kps, k, kp) {
                    const json_t *kc = json_object_get(kp, "class");
                    d->kp[k].x = (float)jnum(kp, "x", 0);
                    d->kp[k].y = (float)jnum(kp, "y", 0);
                    d->kp[k].confidence = (float)jnum(kp, "confidence", 0);
                    d->kp[k].class_id = (int)jnum(kp, "class_id", 0);
                    d->kp[k].class_name = xstrdup(json_is_string(kc) ? json_string_value(kc) : "");
                }
                d->nkp = n;
            }
        }
    }
    *out = ds;
    return 0;
}

json_t *wf_dets_serialize(const struct wf_dets *ds)
{
    json_t *preds = json_array(), *img, *res;
    const struct wf_det *last = NULL;

    for (size_t i = 0; i < ds->n; i++) {
        const struct wf_det *d = &ds->d[i];
        double x1 = f2d(d->x1), y1 = f2d(d->y1), x2 = f2d(d->x2), y2 = f2d(d->y2);
        double w = fabs(x2 - x1), h = fabs(y2 - y1);
        json_t *o;

        last = d;
        if (d->has_mask && d->npoly == 0)
            continue; /* Roboflow drops an instance whose mask has no contour */
        o = json_object();
        json_object_set_new(o, "width", wf__real(w));
        json_object_set_new(o, "height", wf__real(h));
        json_object_set_new(o, "x", wf__real(x1 + w / 2));
        json_object_set_new(o, "y", wf__real(y1 + h / 2));
        json_object_set_new(o, "confidence", wf__real(f2d(d->confidence)));
        json_object_set_new(o, "class_id", json_integer(d->class_id));
        if (d->has_mask) {
            json_t *pts = json_array();
            size_t n = d->npoly < 3 ? 3 : d->npoly; /* padded with the last point */
            for (size_t k = 0; k < n; k++) {
                const struct wf_point *pt = &d->poly[k < d->npoly ? k : d->npoly - 1];
                json_array_append_new(pts, json_pack("{s:o,s:o}", "x", wf__real(f2d(pt->x)), "y",
                                                     wf__real(f2d(pt->y))));
            }
            json_object_set_new(o, "points", pts);
        }
        if (d->tracker_id != WF_NO_TRACKER)
            json_object_set_new(o, "tracker_id", json_integer(d->tracker_id));
        json_object_set_new(o, "class", json_string(d->class_name ? d->class_name : ""));
        json_object_set_new(o, "detection_id", json_string(d->detection_id));
        if (!d->no_parent) /* absent for detections_merge's output */
            json_object_set_new(o, "parent_id", json_string(d->parent_id));
        if (!d->no_parent && strcmp(d->parent_id, d->root_parent_id) != 0) {
            json_object_set_new(o, "parent_origin", origin_json(&d->parent));
            json_object_set_new(o, "root_parent_id", json_string(d->root_parent_id));
            json_object_set_new(o, "root_parent_origin", origin_json(&d->root));
        }
        if (d->has_kp) {
            json_t *kps = json_array();
            for (size_t k = 0; k < d->nkp; k++) {
                const struct wf_keypoint *kp = &d->kp[k];
                if (!kp->class_name || !kp->class_name[0])
                    continue;
                json_array_append_new(
                    kps, json_pack("{s:i,s:s,s:o,s:o,s:o}", "class_id", kp->class_id, "class",
                                   kp->class_name, "confidence", wf__real(f2d(kp->confidence)),
                                   "x", wf__real(f2d(kp->x)), "y", wf__real(f2d(kp->y))));
            }
            json_object_set_new(o, "keypoints", kps);
        }
        if (d->extra) /* e.g. bounding_rect's width/height replace the box's, as in Roboflow */
            json_object_update(o, d->extra);
        json_array_append_new(preds, o);
    }
    if (last && (last->img_w || last->img_h))
        img = json_pack("{s:i,s:i}", "width", last->img_w, "height", last->img_h);
    else
        img = json_pack("{s:n,s:n}", "width", "height");
    res = json_object();
    json_object_set_new(res, "image", img);
    json_object_set_new(res, "predictions", preds);
    return res;
}

void wf_dets_to_root(struct wf_dets *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        struct wf_det *d = &ds->d[i];
        float sx = (float)d->root.offset_x, sy = (float)d->root.offset_y;
        if (d->no_parent)
            continue; /* no root metadata: left as is, like Roboflow */
        d->x1 += sx, d->x2 += sx, d->y1 += sy, d->y2 += sy;
        for (size_t k = 0; k < d->npoly; k++)
            d->poly[k].x += sx, d->poly[k].y += sy;
        for (size_t k = 0; k < d->nkp; k++)
            d->kp[k].x += sx, d->kp[k].y += sy;
        d->img_w = d->root.width, d->img_h = d->root.height;
        wf_det_set_str(&d->parent_id, d->root_parent_id);
        d->root = (struct wf_origin){0, 0, d->img_w, d->img_h};
        d->parent = d->root;
    }
}

/* ---- values ------------------------------------------------------------------ */

static struct wf_value *value_new(enum wf_vtype t)
{
    struct wf_value *v = xcalloc(1, sizeof *v);
    v->type = t;
    v->_refs = 1;
    return v;
}

struct wf_value *wf_value_null(void)
{
    return value_new(WF_V_NULL);
}

struct wf_value *wf_value_json(json_t *j)
{
    struct wf_value *v;
    if (!j || json_is_null(j)) {
        json_decref(j);
        return wf_value_null();
    }
    v = value_new(WF_V_JSON);
    v->json = j;
    return v;
}

struct wf_value *wf_value_image(struct wf_image *im)
{
    struct wf_value *v;
    if (!im)
        return wf_value_null();
    v = value_new(WF_V_IMAGE);
    v->image = im;
    return v;
}

struct wf_value *wf_value_dets(struct wf_dets *ds)
{
    struct wf_value *v;
    if (!ds)
        return wf_value_null();
    v = value_new(WF_V_DETS);
    v->dets = ds;
    return v;
}

struct wf_value *wf_value_list(size_t n)
{
    struct wf_value *v = value_new(WF_V_LIST);
    v->n = n;
    v->items = xcalloc(n ? n : 1, sizeof *v->items);
    for (size_t i = 0; i < n; i++)
        v->items[i] = wf_value_null();
    return v;
}

void wf_value_list_set(struct wf_value *list, size_t i, struct wf_value *v)
{
    if (i >= list->n) {
        wf_value_unref(v);
        return;
    }
    wf_value_unref(list->items[i]);
    list->items[i] = v ? v : wf_value_null();
}

struct wf_value *wf_value_dict_new(void)
{
    return value_new(WF_V_DICT);
}

void wf_value_dict_add(struct wf_value *dict, const char *key, struct wf_value *v)
{
    dict->items = xrealloc(dict->items, (dict->n + 1) * sizeof *dict->items);
    dict->keys = xrealloc(dict->keys, (dict->n + 1) * sizeof *dict->keys);
    dict->items[dict->n] = v ? v : wf_value_null();
    dict->keys[dict->n] = xstrdup(key);
    dict->n++;
}

struct wf_value *wf_value_dict_get(const struct wf_value *dict, const char *key)
{
    if (!dict || dict->type != WF_V_DICT)
        return NULL;
    for (size_t i = 0; i < dict->n; i++)
        if (!strcmp(dict->keys[i], key))
            return dict->items[i];
    return NULL;
}

struct wf_value *wf_value_ref(struct wf_value *v)
{
    if (v)
        v->_refs++;
    return v;
}

void wf_value_unref(struct wf_value *v)
{
    if (!v)
        return;
    if (v->_refs <= 0)
        abort(); /* underflow: a bug */
    if (--v->_refs > 0)
        return;
    json_decref(v->json);
    wf_image_free(v->image);
    wf_dets_free(v->dets);
    for (size_t i = 0; i < v->n; i++) {
        wf_value_unref(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v);
}

static json_t *value_conv(const struct wf_value *v, bool serialize, int quality)
{
    json_t *r;
    if (!v)
        return json_null();
    switch (v->type) {
    case WF_V_NULL:
        return json_null();
    case WF_V_JSON:
        return json_deep_copy(v->json);
    case WF_V_IMAGE:
        return serialize ? wf__image_serialize(v->image, quality) : json_string("<image>");
    case WF_V_DETS:
        return wf_dets_serialize(v->dets);
    case WF_V_LIST:
        r = json_array();
        for (size_t i = 0; i < v->n; i++)
            json_array_append_new(r, value_conv(v->items[i], serialize, quality));
        return r;
    case WF_V_DICT:
        r = json_object();
        for (size_t i = 0; i < v->n; i++)
            json_object_set_new(r, v->keys[i], value_conv(v->items[i], serialize, quality));
        return r;
    }
    return json_null();
}

json_t *wf_value_serialize(const struct wf_value *v, int quality)
{
    return value_conv(v, true, quality);
}

json_t *wf_value_to_json(const struct wf_value *v, bool encode_images)
{
    return value_conv(v, encode_images, 95);
}

/* ---- colours ----------------------------------------------------------------- */

static const struct {
    const char *name;
    uint8_t r, g, b;
} named_colors[] = {
    {"WHITE", 255, 255, 255}, {"BLACK", 0, 0, 0},     {"RED", 255, 0, 0},
    {"GREEN", 0, 255, 0},     {"BLUE", 0, 0, 255},    {"YELLOW", 255, 255, 0},
    {"ROBOFLOW", 163, 81, 251}, {"GREY", 128, 128, 128}, {"GRAY", 128, 128, 128},
};

int wf_color_parse(const json_t *v, uint8_t bgr[3])
{
    int r, g, b;
    const char *s;
    if (json_is_array(v) && json_array_size(v) == 3) {
        /* tuples in Roboflow manifests are (R, G, B) for rgb_color kinds */
        for (int k = 0; k < 3; k++)
            if (!json_is_integer(json_array_get(v, (size_t)k)))
                return ERR_INVALID;
        r = (int)json_integer_value(json_array_get(v, 0));
        g = (int)json_integer_value(json_array_get(v, 1));
        b = (int)json_integer_value(json_array_get(v, 2));
        goto set;
    }
    if (!json_is_string(v))
        return ERR_INVALID;
    s = json_string_value(v);
    if (s[0] == '#' && strlen(s) == 7 && sscanf(s + 1, "%2x%2x%2x", &r, &g, &b) == 3)
        goto set;
    if (s[0] == '#' && strlen(s) == 4 && sscanf(s + 1, "%1x%1x%1x", &r, &g, &b) == 3) {
        r *= 17, g *= 17, b *= 17;
        goto set;
    }
    if (sscanf(s, "rgb(%d , %d , %d )", &r, &g, &b) == 3 ||
        sscanf(s, "(%d , %d , %d )", &r, &g, &b) == 3)
        goto set;
    for (size_t i = 0; i < ARRAY_LEN(named_colors); i++)
        if (!strcasecmp(s, named_colors[i].name)) {
            r = named_colors[i].r, g = named_colors[i].g, b = named_colors[i].b;
            goto set;
        }
    return ERR_INVALID;
set:
    if (r < 0 || r > 255 || g < 0 || g > 255 || b < 0 || b > 255)
        return ERR_INVALID;
    bgr[0] = (uint8_t)b, bgr[1] = (uint8_t)g, bgr[2] = (uint8_t)r;
    return 0;
}

/* ---- Python str()/repr() of JSON values -------------------------------------------- */
/* Python's repr of a float: the shortest decimal that reads back exactly,
 * fixed notation for exponents in [-4, 16), else d.ddde+XX. */
static void py_float(struct buf *b, double d)
{
    char e[40], digits[24];
    int p, exp, nd = 0;
    if (isnan(d)) {
        buf_puts(b, "nan");
        return;
    }
    if (isinf(d)) {
        buf_puts(b, d < 0 ? "-inf" : "inf");
        return;
    }
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = "-d.ddde+XX": collect the digits and the exponent */
    const char *q = e;
    if (*q == '-') {
        buf_puts(b, "-");
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < 20)
            digits[nd++] = *q;
    digits[nd] = 0;
    exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            buf_puts(b, "0.");
            for (int k = -1; k > exp; k--)
                buf_puts(b, "0");
            buf_puts(b, digits);
        } else {
            for (int k = 0; k <= exp; k++)
                buf_append(b, k < nd ? &digits[k] : "0", 1);
            buf_puts(b, ".");
            if (nd > exp + 1)
                buf_puts(b, digits + exp + 1);
            else
                buf_puts(b, "0");
        }
    } else {
        buf_append(b, digits, 1);
        if (nd > 1) {
            buf_puts(b, ".");
            buf_puts(b, digits + 1);
        }
        buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void py_repr(struct buf *b, const json_t *j, int depth)
{
    size_t i;
    const char *k;
    json_t *v;
    if (depth > 64) {
        buf_puts(b, "...");
        return;
    }
    switch (json_typeof(j)) {
    case JSON_NULL: buf_puts(b, "None"); return;
    case JSON_TRUE: buf_puts(b, "True"); return;
    case JSON_FALSE: buf_puts(b, "False"); return;
    case JSON_INTEGER: buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(j)); return;
    case JSON_REAL: py_float(b, json_real_value(j)); return;
    case JSON_STRING: {
        const char *s = json_string_value(j);
        char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
        buf_append(b, &quote, 1);
        for (; *s; s++) {
            unsigned char ch = (unsigned char)*s;
            if (ch == '\\' || ch == (unsigned char)quote)
                buf_printf(b, "\\%c", ch);
            else if (ch == '\n')
                buf_puts(b, "\\n");
            else if (ch == '\r')
                buf_puts(b, "\\r");
            else if (ch == '\t')
                buf_puts(b, "\\t");
            else if (ch < 0x20 || ch == 0x7f)
                buf_printf(b, "\\x%02x", ch);
            else
                buf_append(b, s, 1);
        }
        buf_append(b, &quote, 1);
        return;
    }
    case JSON_ARRAY:
        buf_puts(b, "[");
        json_array_foreach(j, i, v) {
            if (i)
                buf_puts(b, ", ");
            py_repr(b, v, depth + 1);
        }
        buf_puts(b, "]");
        return;
    case JSON_OBJECT:
        buf_puts(b, "{");
        i = 0;
        json_object_foreach((json_t *)j, k, v) {
            json_t *key = json_string(k);
            if (i++)
                buf_puts(b, ", ");
            py_repr(b, key, depth + 1);
            json_decref(key);
            buf_puts(b, ": ");
            py_repr(b, v, depth + 1);
        }
        buf_puts(b, "}");
        return;
    }
}

char *wf__py_str(const json_t *j)
{
    struct buf b = BUF_INIT;
    if (json_is_string(j))
        return xstrdup(json_string_value(j));
    py_repr(&b, j, 0);
    return buf_detach(&b, NULL);
}
