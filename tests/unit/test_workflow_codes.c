/*
 * test_workflow_codes.c — barcode_detector and qr_code_detector (ZBar).
 * The QR code and the box OpenCV's QRCodeDetector finds for it (what
 * Roboflow's qr_code_detector runs) come from test_workflow_codes_ref.py
 * (python3-opencv 4.6); the EAN-13 is drawn here from the standard's L/G/R
 * tables, so its digits are known by construction.
 */
#include "t.h"

#include "base/base.h"
#include "workflow/wf_int.h"

static const char *const QR[] = {
/* 25x25 modules; cv2.QRCodeDetector: '', xyxy 48.00 48.00 215.00 215.00 */
    ".........................",
    ".........................",
    "..#######.#####.#######..",
    "..#.....#..#.#..#.....#..",
    "..#.###.#..##...#.###.#..",
    "..#.###.#..###..#.###.#..",
    "..#.###.#...#.#.#.###.#..",
    "..#.....#....##.#.....#..",
    "..#######.#.#.#.#######..",
    "..........#####..........",
    "..##.##.#..##.#.#.....#..",
    ".....###.#....#.#..##....",
    "..####.###.##.......###..",
    ".....#.#.##.##.#....#....",
    "....######.##..#..##.#...",
    "..........#.#.######.#...",
    "..#######.....#...#.#....",
    "..#.....#...#.###.###.#..",
    "..#.###.#.##.#.#.#.#.#...",
    "..#.###.#.#..#.#.........",
    "..#.###.#..##.#########..",
    "..#.....#.##.#..#######..",
    "..#######.#...###........",
    ".........................",
    ".........................",
};

/* the QR at 8 px per module, a 4-module white border (264 x 264), BGR */
static struct vis_image *qr_image(void)
{
    int n = 25, s = 8, b = 4, side = (n + 2 * b) * s;
    struct vis_image *im = vis_image_new(side, side, VIS_BGR);
    memset(im->px, 255, (size_t)im->stride * (size_t)side);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
            if (QR[y][x] == '#')
                for (int yy = 0; yy < s; yy++)
                    memset(im->px + (size_t)((y + b) * s + yy) * (size_t)im->stride + (size_t)((x + b) * s) * 3, 0,
                           (size_t)s * 3);
    return im;
}

/* EAN-13 "5901234123457": 95 modules at 3 px, 60 px tall, 30 px quiet zone */
static struct vis_image *ean_image(int *bx0, int *bx1)
{
    static const char *const L[] = {"0001101", "0011001", "0010011", "0111101", "0100011",
                                    "0110001", "0101111", "0111011", "0110111", "0001011"};
    static const char *const G[] = {"0100111", "0110011", "0011011", "0100001", "0011101",
                                    "0111001", "0000101", "0010001", "0001001", "0010111"};
    static const char *const R[] = {"1110010", "1100110", "1101100", "1000010", "1011100",
                                    "1001110", "1010000", "1000100", "1001000", "1110100"};
    static const char *const PARITY[] = {"LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
                                         "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"};
    const char *digits = "5901234123457";
    char bits[96] = "";
    strcat(bits, "101");
    for (int k = 1; k <= 6; k++) {
        int d = digits[k] - '0';
        strcat(bits, PARITY[digits[0] - '0'][k - 1] == 'L' ? L[d] : G[d]);
    }
    strcat(bits, "01010");
    for (int k = 7; k <= 12; k++)
        strcat(bits, R[digits[k] - '0']);
    strcat(bits, "101");
    int m = 3, q = 30, w = 95 * m + 2 * q, h = 100;
    struct vis_image *im = vis_image_new(w, h, VIS_BGR);
    memset(im->px, 255, (size_t)im->stride * (size_t)h);
    for (int i = 0; i < 95; i++)
        if (bits[i] == '1')
            for (int y = 20; y < 80; y++)
                memset(im->px + (size_t)y * (size_t)im->stride + (size_t)(q + i * m) * 3, 0, (size_t)m * 3);
    *bx0 = q;
    *bx1 = q + 95 * m;
    return im;
}

static json_t *run_block(const char *type, struct vis_image *im, char *err, size_t errlen)
{
    char def[1024];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"%s\",\"name\":\"c\",\"image\":\"$inputs.image\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.c.predictions\"}]}",
             type);
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {NULL, NULL, 90, NULL, NULL};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    wf_free(wf);
    return r;
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

TEST(qr_code_detector_reads_the_code)
{
    char err[512] = "";
    struct vis_image *im = qr_image();
    json_t *o = run_block("roboflow_core/qr_code_detector@v1", im, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    const json_t *preds = json_object_get(o, "predictions");
    ASSERT_EQ(json_array_size(preds), 1);
    const json_t *p = json_array_get(preds, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")), "qr_code");
    ASSERT_EQ(json_integer_value(json_object_get(p, "class_id")), 0);
    ASSERT_NEAR(num(p, "confidence"), 1.0, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "data")), "hello vbatch");
    /* OpenCV's box: x 48..215, y 48..215 (centre 131.5, size 167); ZBar's
     * corner estimate is within 2 px of it */
    double x1 = num(p, "x") - num(p, "width") / 2, x2 = num(p, "x") + num(p, "width") / 2;
    double y1 = num(p, "y") - num(p, "height") / 2, y2 = num(p, "y") + num(p, "height") / 2;
    if (x1 < 46 || x1 > 50 || y1 < 46 || y1 > 50 || x2 < 213 || x2 > 217 || y2 < 213 || y2 > 217)
        T_FAIL("box %.1f %.1f %.1f %.1f, OpenCV's 48 48 215 215", x1, y1, x2, y2);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(o, "image"), "width")), 264);
    json_decref(o);
    /* barcode_detector reads QR codes too (pyzbar's default symbologies) */
    o = run_block("roboflow_core/barcode_detector@v1", im, err, sizeof err);
    ASSERT(o);
    p = json_array_get(json_object_get(o, "predictions"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")), "barcode");
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "data")), "hello vbatch");
    json_decref(o);
    vis_image_free(im);
}

TEST(barcode_detector_reads_ean13)
{
    char err[512] = "";
    int bx0, bx1;
    struct vis_image *im = ean_image(&bx0, &bx1);
    json_t *o = run_block("roboflow_core/barcode_detector@v1", im, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    const json_t *preds = json_object_get(o, "predictions");
    ASSERT_EQ(json_array_size(preds), 1);
    const json_t *p = json_array_get(preds, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "class")), "barcode");
    ASSERT_STR_EQ(json_string_value(json_object_get(p, "data")), "5901234123457");
    double x1 = num(p, "x") - num(p, "width") / 2, x2 = num(p, "x") + num(p, "width") / 2;
    double y1 = num(p, "y") - num(p, "height") / 2, y2 = num(p, "y") + num(p, "height") / 2;
    /* ZBar's scan-line points lie on the bars */
    if (x1 < bx0 - 3 || x2 > bx1 + 3 || x2 - x1 < 0.9 * (bx1 - bx0) || y1 < 20 || y2 > 80)
        T_FAIL("box %.1f %.1f %.1f %.1f, bars %d..%d x 20..80", x1, y1, x2, y2, bx0, bx1);
    json_decref(o);
    /* qr_code_detector ignores 1D codes */
    o = run_block("roboflow_core/qr_code_detector@v1", im, err, sizeof err);
    ASSERT(o);
    ASSERT_EQ(json_array_size(json_object_get(o, "predictions")), 0);
    json_decref(o);
    vis_image_free(im);
    /* a blank image and a 1x1 image: no detections, no error */
    im = vis_image_new(1, 1, VIS_BGR);
    memset(im->px, 255, 3);
    o = run_block("roboflow_core/barcode_detector@v1", im, err, sizeof err);
    ASSERT(o);
    ASSERT_EQ(json_array_size(json_object_get(o, "predictions")), 0);
    json_decref(o);
    vis_image_free(im);
}

TEST_MAIN()
