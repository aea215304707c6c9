/*
 * test_workflow_sift.c — SIFT and the ratio-test matching (blocks/sift.c)
 * against python3-opencv 4.6's cv2.SIFT_create().detectAndCompute and
 * BFMatcher.knnMatch (test_workflow_sift_ref.h, from
 * test_workflow_sift_ref.py) on synthetic scenes computed by the same
 * integer formula.
 *
 * Tolerances (exact equality with OpenCV is not the goal: its separable
 * float filters sum in SIMD order, so DoG values differ in the last bits
 * and extrema near a threshold come and go):
 * - keypoint count within 5 % of OpenCV's on each image;
 * - >= 90 % of OpenCV's keypoints have one of ours within 0.5 px with the
 *   same octave byte, size within 1 % and angle within 2 degrees;
 * - for those, the descriptors' L2 distance (on OpenCV's 0..255 scale,
 *   norm 512) averages below 15;
 * - good-match counts within 10 % of OpenCV's for the moved scene and
 *   below 5 % of the keypoints for a different scene, so the images_match
 *   decision at Roboflow's default threshold (50) is the same.
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/blocks/cv_int.h"
#include "workflow/workflow.h"

#include "test_workflow_sift_ref.h"

static struct vis_image *scene(int w, int h, int shift, int variant)
{
    static const int discs[5][4] = {
        {60, 50, 18, 240}, {150, 110, 25, 20}, {100, 140, 12, 200}, {180, 40, 15, 10}, {40, 130, 20, 170}};
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int xs = x + shift, ys = y + shift / 2;
            int v = 90 + ((xs / 17 + ys / 13) % 2) * 60 + ((xs * ys) / 97) % 23;
            if (variant)
                v = 90 + ((xs / 11 + ys / 23) % 3) * 40 + ((xs * 3 + ys * ys / 7) % 29);
            for (int k = 0; k < 5; k++)
                if ((xs - discs[k][0]) * (xs - discs[k][0]) + (ys - discs[k][1]) * (ys - discs[k][1]) <
                    discs[k][2] * discs[k][2])
                    v = discs[k][3] + (xs % 5) * 3;
            uint8_t *p = vis_px(im, x, y);
            p[0] = p[1] = p[2] = (uint8_t)v;
        }
    return im;
}

TEST(sift_keypoints_and_descriptors_close_to_opencv)
{
    struct vis_image *a = scene(220, 170, 0, 0);
    struct cv_keypoint *k;
    float *d;
    size_t n;
    ASSERT_OK(cv__sift(a, &k, &d, &n));
    size_t nref = ARRAY_LEN(SIFT_A), matched = 0;
    double dsum = 0;
    for (size_t i = 0; i < nref; i++) {
        const struct sift_ref *r = &SIFT_A[i];
        for (size_t j = 0; j < n; j++) {
            double da = fabs(k[j].angle - r->angle);
            da = MIN(da, 360 - da);
            if (fabs(k[j].x - r->x) <= 0.5 && fabs(k[j].y - r->y) <= 0.5 &&
                (k[j].octave & 0xffff) == (r->octave & 0xffff) &&
                fabs(k[j].size - r->size) <= 0.01 * r->size && da <= 2) {
                double s = 0;
                for (int q = 0; q < 128; q++)
                    s += (d[j * 128 + q] - SIFT_A_DESC[i][q]) * (d[j * 128 + q] - SIFT_A_DESC[i][q]);
                dsum += sqrt(s);
                matched++;
                break;
            }
        }
    }
    fprintf(stderr, "SIFT: %zu keypoints (OpenCV %zu), %zu of OpenCV's matched, mean descriptor "
                    "distance %.2f\n",
            n, nref, matched, matched ? dsum / matched : 0);
    ASSERT(fabs((double)n - (double)nref) <= 0.05 * nref);
    ASSERT(matched >= 0.9 * nref);
    ASSERT(dsum / (double)matched < 15);
    /* descriptors are integers in 0..255 */
    for (size_t q = 0; q < n * 128; q++)
        ASSERT(d[q] >= 0 && d[q] <= 255 && d[q] == floorf(d[q]));
    /* the moved and the other scene */
    struct vis_image *b = scene(220, 170, 6, 0), *c = scene(220, 170, 0, 1);
    struct cv_keypoint *kb, *kc;
    float *db, *dc;
    size_t nb, nc;
    ASSERT_OK(cv__sift(b, &kb, &db, &nb));
    ASSERT_OK(cv__sift(c, &kc, &dc, &nc));
    ASSERT(fabs((double)nb - SIFT_NB) <= 0.05 * SIFT_NB);
    ASSERT(fabs((double)nc - SIFT_NC) <= 0.05 * SIFT_NC);
    size_t gab = cv__ratio_matches(d, n, db, nb, 0.7), gac = cv__ratio_matches(d, n, dc, nc, 0.7);
    size_t gaa = cv__ratio_matches(d, n, d, n, 0.7);
    fprintf(stderr, "good matches: moved %zu (OpenCV %d), other %zu (OpenCV %d), self %zu (%d)\n",
            gab, SIFT_GOOD_AB, gac, SIFT_GOOD_AC, gaa, SIFT_GOOD_AA);
    ASSERT(fabs((double)gab - SIFT_GOOD_AB) <= 0.1 * SIFT_GOOD_AB);
    ASSERT(gac < 0.05 * n);
    ASSERT_EQ(gab >= 50, SIFT_GOOD_AB >= 50);
    ASSERT_EQ(gac >= 50, SIFT_GOOD_AC >= 50);
    ASSERT_EQ(gaa, n);
    free(k), free(d), free(kb), free(db), free(kc), free(dc);
    vis_image_free(a), vis_image_free(b), vis_image_free(c);
}

static int run_def(const char *steps, const char *outputs, const struct vis_image *im1,
                   const struct vis_image *im2, json_t **row, char *err, size_t errlen)
{
    char *def = xasprintf("{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":"
                          "\"a\"},{\"type\":\"WorkflowImage\",\"name\":\"b\"}],\"steps\":[%s],"
                          "\"outputs\":[%s]}",
                          steps, outputs);
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    free(def);
    if (rc < 0)
        return rc;
    const struct vis_image *i1[1] = {im1}, *i2[1] = {im2};
    struct wf_image_input ii[2] = {{"a", i1, 1, false, NULL}, {"b", i2, 1, false, NULL}};
    struct wf_run_inputs in = {ii, 2, NULL};
    struct wf_env env = {NULL, NULL, 95, NULL, NULL};
    json_t *res = NULL;
    rc = wf_run(wf, &env, &in, &res, err, errlen);
    if (rc == 0)
        *row = json_incref(json_array_get(res, 0));
    json_decref(res);
    wf_free(wf);
    return rc;
}

TEST(sift_blocks_through_the_engine)
{
    struct vis_image *a = scene(220, 170, 0, 0), *b = scene(220, 170, 6, 0), *c = scene(220, 170, 0, 1);
    char err[512];
    json_t *row = NULL;
    /* sift v1 twice + sift_comparison v1 on the descriptors */
    if (run_def("{\"type\":\"roboflow_core/sift@v1\",\"name\":\"s1\",\"image\":\"$inputs.a\"},"
                "{\"type\":\"roboflow_core/sift@v1\",\"name\":\"s2\",\"images\":\"$inputs.b\"},"
                "{\"type\":\"roboflow_core/sift_comparison@v1\",\"name\":\"c\","
                "\"descriptor_1\":\"$steps.s1.descriptors\",\"descriptor_2\":\"$steps.s2.descriptors\"}",
                "{\"type\":\"JsonField\",\"name\":\"n\",\"selector\":\"$steps.c.good_matches_count\"},"
                "{\"type\":\"JsonField\",\"name\":\"m\",\"selector\":\"$steps.c.images_match\"},"
                "{\"type\":\"JsonField\",\"name\":\"k\",\"selector\":\"$steps.s1.keypoints\"},"
                "{\"type\":\"JsonField\",\"name\":\"img\",\"selector\":\"$steps.s1.image\"}",
                a, b, &row, err, sizeof err) < 0)
        T_FAIL("%s", err);
    json_int_t good = json_integer_value(json_object_get(row, "n"));
    ASSERT(fabs((double)good - SIFT_GOOD_AB) <= 0.1 * SIFT_GOOD_AB);
    ASSERT(json_is_true(json_object_get(row, "m")));
    const json_t *k0 = json_array_get(json_object_get(row, "k"), 0);
    ASSERT(json_is_array(json_object_get(k0, "pt")) && json_array_size(json_object_get(k0, "pt")) == 2);
    ASSERT(json_is_number(json_object_get(k0, "size")) && json_is_number(json_object_get(k0, "angle")));
    ASSERT_EQ(json_integer_value(json_object_get(k0, "class_id")), -1);
    ASSERT(json_is_object(json_object_get(row, "img")));
    json_decref(row);
    /* sift_comparison v2 on images, both matchers; a different scene does not match */
    static const char *const matchers[] = {"BFMatcher", "FlannBasedMatcher"};
    for (int m = 0; m < 2; m++) {
        char steps[512];
        snprintf(steps, sizeof steps,
                 "{\"type\":\"roboflow_core/sift_comparison@v2\",\"name\":\"c\",\"input_1\":"
                 "\"$inputs.a\",\"input_2\":\"$inputs.b\",\"matcher\":\"%s\",\"visualize\":true}",
                 matchers[m]);
        row = NULL;
        ASSERT_OK(run_def(steps,
                          "{\"type\":\"JsonField\",\"name\":\"r\",\"selector\":\"$steps.c.*\"}", a,
                          c, &row, err, sizeof err));
        const json_t *r = json_object_get(row, "r");
        ASSERT(json_is_false(json_object_get(r, "images_match")));
        ASSERT(json_integer_value(json_object_get(r, "good_matches_count")) < 20);
        ASSERT(json_array_size(json_object_get(r, "descriptors_1")) > 300);
        ASSERT(json_is_object(json_object_get(r, "visualization_1")));
        /* cv2.drawMatchesKnn's canvas: both 220 x 170 images side by side */
        const char *b64 = json_string_value(json_object_get(json_object_get(r, "visualization_matches"), "value"));
        ASSERT(b64 != NULL);
        size_t blen = 0;
        uint8_t *bytes = base64_decode(b64, strlen(b64), &blen);
        struct vis_image *vm = NULL;
        ASSERT(bytes && vis_decode(bytes, blen, &vm) == 0);
        ASSERT(vm->w == 440 && vm->h == 170);
        vis_image_free(vm);
        free(bytes);
        json_decref(row);
    }
    /* malformed descriptors and a too-small image are step errors */
    ASSERT(run_def("{\"type\":\"roboflow_core/sift@v1\",\"name\":\"s1\",\"image\":\"$inputs.a\"},"
                   "{\"type\":\"roboflow_core/json_parser@v1\",\"name\":\"j\",\"raw_json\":\"[[1,2]]\","
                   "\"expected_fields\":[\"x\"]},"
                   "{\"type\":\"roboflow_core/sift_comparison@v2\",\"name\":\"c\",\"input_1\":"
                   "\"$inputs.a\",\"input_2\":\"$steps.j.x\"}",
                   "{\"type\":\"JsonField\",\"name\":\"r\",\"selector\":\"$steps.c.*\"}", a, c, &row,
                   err, sizeof err) < 0);
    /* a 3 x 3 image has no keypoints (descriptors None, as OpenCV's); 1 x 1 is too small */
    struct vis_image *tiny = vis_image_new(3, 3, VIS_BGR), *one = vis_image_new(1, 1, VIS_BGR);
    row = NULL;
    ASSERT_OK(run_def("{\"type\":\"roboflow_core/sift@v1\",\"name\":\"s1\",\"image\":\"$inputs.a\"}",
                      "{\"type\":\"JsonField\",\"name\":\"r\",\"selector\":\"$steps.s1.*\"}",
                      tiny, tiny, &row, err, sizeof err));
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(row, "r"), "keypoints")), 0);
    ASSERT(json_is_null(json_object_get(json_object_get(row, "r"), "descriptors")));
    json_decref(row);
    ASSERT(run_def("{\"type\":\"roboflow_core/sift@v1\",\"name\":\"s1\",\"image\":\"$inputs.a\"}",
                   "{\"type\":\"JsonField\",\"name\":\"r\",\"selector\":\"$steps.s1.keypoints\"}",
                   one, one, &row, err, sizeof err) < 0);
    ASSERT(strstr(err, "step 's1'") && strstr(err, "too small"));
    vis_image_free(tiny), vis_image_free(one);
    vis_image_free(a), vis_image_free(b), vis_image_free(c);
}

TEST_MAIN()
