/*
 * blocks/overlap.c — overlap_analysis v1 and geotag_detection v1
 * (roboflow/inference core_steps/fusion/overlap_analysis and
 * transformations/geotag_detection, read, not copied).
 *
 * geotag_detection: each box centre projected to the ground for a nadir
 * pinhole camera at `altitude` metres over flat ground (ground width
 * 2 · altitude · tan(fov / 2), height in the image's aspect), rotated by
 * `heading` (clockwise from North) and converted with 111,320 m per degree
 * of latitude (× cos(latitude) for longitude); altitude <= 0 gives the
 * camera's position.  Records {class, confidence (4 decimals), lat, lon
 * (7 decimals), pixel_x, pixel_y, width, height (1 decimal)} rounded as
 * Python's round(), and a GeoJSON FeatureCollection of Points [lon, lat]
 * with class and confidence.  The box centre is computed in float32 as on
 * supervision's float32 xyxy, the projection in double.  A projection that
 * is not finite (a field of view of 180 degrees or more, a latitude of
 * ±90) is a step error.
 *
 * For every reference detection i and candidate j (in that order) whose
 * boxes have a positive IoU (sv.box_iou_batch), the overlap ratio is the
 * area of the intersection of their shapes over the area of the reference
 * shape (shapely's Polygon.intersection().area / area).  A shape is the
 * mask polygon of an instance-segmentation detection (3 points or more),
 * else the box.  Pairs whose ratio is below min_overlap, or whose reference
 * has no area, are left out.  Each record: reference_class,
 * reference_confidence, candidate_class, candidate_confidence,
 * overlap_ratio, reference_detection_id, candidate_detection_id.
 *
 * The intersection area of two simple polygons is exact: the signed sum,
 * over every edge pair, of the intersection areas of the triangles the two
 * edges make with a common point (each a convex clip).  Difference: Roboflow
 * rasterizes the mask and takes its longest contour (cv2 pixel outline);
 * vbatch keeps masks as the model's polygon and intersects that polygon, so
 * ratios of mask pairs can differ from Roboflow's by the rasterization (up
 * to a pixel along the outlines).  At most OVL_MAX_WORK edge pairs per step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define OVL_MAX_WORK 50000000.0

struct pt {
    double x, y;
};

/* Shortest decimal that reads back as the same float32 (as the serializer). */
static double f32(float f)
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

static double cross(struct pt o, struct pt a, struct pt b)
{
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

static double poly_area(const struct pt *p, size_t n)
{
    double s = 0;
    for (size_t k = 0; k < n; k++) {
        size_t l = (k + 1) % n;
        s += p[k].x * p[l].y - p[l].x * p[k].y;
    }
    return s / 2;
}

/* Area of the intersection of two counter-clockwise triangles (convex clip). */
static double tri_inter(const struct pt a[3], const struct pt b[3])
{
    struct pt buf1[12], buf2[12], *in = buf1, *out = buf2;
    size_t n = 3;
    memcpy(in, a, 3 * sizeof *a);
    for (int e = 0; e < 3 && n > 0; e++) {
        struct pt p0 = b[e], p1 = b[(e + 1) % 3];
        size_t m = 0;
        for (size_t k = 0; k < n; k++) {
            struct pt cur = in[k], nxt = in[(k + 1) % n];
            double dc = cross(p0, p1, cur), dn = cross(p0, p1, nxt);
            if (dc >= 0)
                out[m++] = cur;
            if ((dc >= 0) != (dn >= 0)) {
                double t = dc / (dc - dn);
                out[m++] = (struct pt){cur.x + t * (nxt.x - cur.x), cur.y + t * (nxt.y - cur.y)};
            }
        }
        n = m;
        struct pt *tmp = in;
        in = out, out = tmp;
    }
    return n >= 3 ? poly_area(in, n) : 0.0;
}

/* |area(A ∩ B)| of two simple polygons by the triangle-fan decomposition. */
static double poly_inter(const struct pt *a, size_t na, const struct pt *b, size_t nb)
{
    struct pt o = a[0];
    double sum = 0;
    for (size_t i = 0; i < na; i++) {
        struct pt ta[3] = {o, a[i], a[(i + 1) % na]};
        double sa = cross(ta[0], ta[1], ta[2]);
        if (sa == 0)
            continue;
        if (sa < 0) {
            struct pt t = ta[1];
            ta[1] = ta[2], ta[2] = t;
        }
        for (size_t j = 0; j < nb; j++) {
            struct pt tb[3] = {o, b[j], b[(j + 1) % nb]};
            double sb = cross(tb[0], tb[1], tb[2]);
            if (sb == 0)
                continue;
            if (sb < 0) {
                struct pt t = tb[1];
                tb[1] = tb[2], tb[2] = t;
            }
            double v = tri_inter(ta, tb);
            sum += (sa > 0) == (sb > 0) ? v : -v;
        }
    }
    return fabs(sum);
}

/* The shape of a detection: its mask polygon, else its box (malloc'd). */
static struct pt *shape(const struct wf_det *d, size_t *n)
{
    struct pt *p;
    if (d->has_mask && d->npoly >= 3) {
        p = xcalloc(d->npoly, sizeof *p);
        for (size_t k = 0; k < d->npoly; k++)
            p[k] = (struct pt){d->poly[k].x, d->poly[k].y};
        *n = d->npoly;
        return p;
    }
    p = xcalloc(4, sizeof *p);
    p[0] = (struct pt){d->x1, d->y1}, p[1] = (struct pt){d->x2, d->y1};
    p[2] = (struct pt){d->x2, d->y2}, p[3] = (struct pt){d->x1, d->y2};
    *n = 4;
    return p;
}

static double box_iou(const struct wf_det *a, const struct wf_det *b)
{
    double iw = fmin(a->x2, b->x2) - fmax(a->x1, b->x1), ih = fmin(a->y2, b->y2) - fmax(a->y1, b->y1);
    if (iw <= 0 || ih <= 0)
        return 0;
    double inter = iw * ih;
    double ua = ((double)a->x2 - a->x1) * ((double)a->y2 - a->y1) + ((double)b->x2 - b->x1) * ((double)b->y2 - b->y1) - inter;
    return ua > 0 ? inter / ua : 0;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int overlap_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_dets *ref = wf_arg_dets(c, i, "reference_predictions");
        const struct wf_dets *cand = wf_arg_dets(c, i, "candidate_predictions");
        double min_overlap = wf_arg_double(c, i, "min_overlap", 0.1);
        if (!ref || !cand)
            return wf_call_fail(c, "reference_predictions and candidate_predictions must be detections");
        json_t *out = json_array();
        double work = 0;
        for (size_t a = 0; a < ref->n; a++) {
            size_t na = 0;
            struct pt *pa = NULL;
            double area_a = 0;
            for (size_t b = 0; b < cand->n; b++) {
                if (box_iou(&ref->d[a], &cand->d[b]) <= 0)
                    continue;
                if (!pa) {
                    pa = shape(&ref->d[a], &na);
                    area_a = fabs(poly_area(pa, na));
                }
                if (area_a <= 0)
                    continue;
                size_t nb;
                struct pt *pb = shape(&cand->d[b], &nb);
                work += (double)na * (double)nb;
                if (work > OVL_MAX_WORK) {
                    free(pa);
                    free(pb);
                    json_decref(out);
                    return wf_call_fail(c, "too many polygon points to intersect (over %.0f edge pairs)",
                                        OVL_MAX_WORK);
                }
                double ratio = poly_inter(pa, na, pb, nb) / area_a;
                free(pb);
                if (ratio < min_overlap)
                    continue;
                const struct wf_det *r = &ref->d[a], *q = &cand->d[b];
                json_t *rec = json_object();
                json_object_set_new(rec, "reference_class", str_or_null(r->class_name));
                json_object_set_new(rec, "reference_confidence", json_real(f32(r->confidence)));
                json_object_set_new(rec, "candidate_class", str_or_null(q->class_name));
                json_object_set_new(rec, "candidate_confidence", json_real(f32(q->confidence)));
                json_object_set_new(rec, "overlap_ratio", json_real(ratio));
                json_object_set_new(rec, "reference_detection_id", json_string(r->detection_id));
                json_object_set_new(rec, "candidate_detection_id", json_string(q->detection_id));
                json_array_append_new(out, rec);
            }
            free(pa);
        }
        wf_out_json(c, i, "overlaps", out);
    }
    return 0;
}

static const struct wf_field overlap_fields[] = {
    {"reference_predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"candidate_predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"min_overlap", NULL, WF_FT_FLOAT01, "0.1", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output overlap_outs[] = {{"overlaps", WF_K_LIST}};
static const struct wf_block overlap_analysis_v1 = {
    (const char *const[]){"roboflow_core/overlap_analysis@v1", "OverlapAnalysis", NULL},
    overlap_fields, ARRAY_LEN(overlap_fields), overlap_outs, ARRAY_LEN(overlap_outs), 0, 0, NULL,
    overlap_run, NULL};

/* ---- geotag_detection ----------------------------------------------------------------- */

#define METERS_PER_DEG_LAT 111320.0

/* Python's round(x, nd): the exact binary value rounded to nd decimals. */
static double py_round(double x, int nd)
{
    char b[64];
    snprintf(b, sizeof b, "%.*f", nd, x);
    return strtod(b, NULL);
}

static int geotag_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const struct wf_image *im = wf_arg_image(c, i, "image");
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        double lat = wf_arg_double(c, i, "latitude", 0), lon = wf_arg_double(c, i, "longitude", 0);
        double alt = wf_arg_double(c, i, "altitude", 0), fov = wf_arg_double(c, i, "horizontal_fov", 73.7);
        double heading = wf_arg_double(c, i, "heading", 0);
        if (!im || !ds)
            return wf_call_fail(c, "image and predictions are required");
        int w = im->img->w, h = im->img->h;
        json_t *recs = json_array(), *feats = json_array();
        for (size_t k = 0; k < ds->n; k++) {
            const struct wf_det *d = &ds->d[k];
            float cx = (d->x1 + d->x2) / 2.0f, cy = (d->y1 + d->y2) / 2.0f;
            float bw = d->x2 - d->x1, bh = d->y2 - d->y1;
            double dlat = lat, dlon = lon;
            if (alt > 0) {
                double gw = 2 * alt * tan(fov * M_PI / 180.0 / 2), gh = gw * ((double)h / w);
                double right = ((double)cx - w / 2.0) / w * gw, up = -((double)cy - h / 2.0) / h * gh;
                double psi = heading * M_PI / 180.0;
                double east = right * cos(psi) + up * sin(psi), north = -right * sin(psi) + up * cos(psi);
                dlat = lat + north / METERS_PER_DEG_LAT;
                dlon = lon + east / (METERS_PER_DEG_LAT * cos(lat * M_PI / 180.0));
            }
            if (!isfinite(dlat) || !isfinite(dlon)) {
                json_decref(recs);
                json_decref(feats);
                return wf_call_fail(c, "the projection is not finite (horizontal_fov %g, latitude %g)", fov, lat);
            }
            const char *cls = d->class_name ? d->class_name : "unknown";
            double conf = py_round((double)d->confidence, 4);
            double rlat = py_round(dlat, 7), rlon = py_round(dlon, 7);
            json_array_append_new(recs, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "class", cls,
                                                  "confidence", conf, "lat", rlat, "lon", rlon, "pixel_x",
                                                  py_round(cx, 1), "pixel_y", py_round(cy, 1), "width",
                                                  py_round(bw, 1), "height", py_round(bh, 1)));
            json_array_append_new(feats, json_pack("{s:s,s:{s:s,s:[f,f]},s:{s:s,s:f}}", "type", "Feature",
                                                   "geometry", "type", "Point", "coordinates", rlon, rlat,
                                                   "properties", "class", cls, "confidence", conf));
        }
        wf_out_json(c, i, "geo_detections", recs);
        wf_out_json(c, i, "geojson", json_pack("{s:s,s:o}", "type", "FeatureCollection", "features", feats));
    }
    return 0;
}

static const struct wf_field geotag_fields[] = {
    {"image", "images", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"latitude", NULL, WF_FT_FLOAT, NULL, WF_K_FLOAT, 0, NULL},
    {"longitude", NULL, WF_FT_FLOAT, NULL, WF_K_FLOAT, 0, NULL},
    {"altitude", NULL, WF_FT_FLOAT, NULL, WF_K_FLOAT, 0, NULL},
    {"horizontal_fov", NULL, WF_FT_FLOAT, "73.7", WF_K_FLOAT, 0, NULL},
    {"heading", NULL, WF_FT_FLOAT, "0.0", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output geotag_outs[] = {{"geo_detections", WF_K_LIST}, {"geojson", WF_K_DICT}};
static const struct wf_block geotag_detection_v1 = {
    (const char *const[]){"roboflow_core/geotag_detection@v1", NULL},
    geotag_fields, ARRAY_LEN(geotag_fields), geotag_outs, ARRAY_LEN(geotag_outs), 0, 0, NULL, geotag_run, NULL};

const struct wf_block *const wf_blocks_overlap[] = {&overlap_analysis_v1, &geotag_detection_v1, NULL};
