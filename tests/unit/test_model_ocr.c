/*
 * test_model_ocr.c — PP-OCR through the model registry with the real
 * PP-OCRv4 weights that scripts/fetch-ocr.sh lays out in
 * $VBATCH_OCR_DIR (default ~/.cache/vbatch/ocr/ppocr-v4): registration of
 * the multi-file folder, reading of rendered text of known strings
 * (character accuracy printed and asserted), and refusals of broken
 * folders (dictionary that does not match the recogniser, detector and
 * recogniser swapped, a missing part, a detector giving NaN).  Without the
 * weights (fetch impossible) every case says so and passes as skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_TIMEOUT_S 300
#include "t.h"

#include "base/base.h"
#include "model/model.h"

static char *ocr_dir(void)
{
    const char *d = getenv("VBATCH_OCR_DIR");
    if (d)
        return xstrdup(d);
    return xasprintf("%s/.cache/vbatch/ocr/ppocr-v4", getenv("HOME") ? getenv("HOME") : "/root");
}

static bool have_weights(void)
{
    char *d = ocr_dir(), *p = xasprintf("%s/rec.onnx", d);
    struct stat st;
    bool ok = stat(p, &st) == 0;
    if (!ok)
        fprintf(stderr, "SKIP: no PP-OCR weights in %s (scripts/fetch-ocr.sh could not fetch "
                "them)\n", d);
    free(p);
    free(d);
    return ok;
}

static struct model_registry *reg_new(void)
{
    struct model_registry_opts o = {0};
    struct model_registry *r = NULL;
    char err[512];
    o.intra_op_threads = 2;
    if (model_registry_new(&o, &r, err, sizeof err) < 0)
        T_FAIL("registry: %s", err);
    return r;
}

/* Black text on white, one line per entry of lines (NULL-terminated). */
static struct vis_image *render(const char *const *lines, int px)
{
    struct vis_font *f = vis_font_default();
    int w = 40, h = 30, n = 0;
    for (; lines[n]; n++) {
        struct vis_text_metrics tm;
        ASSERT_OK(vis_text_measure(f, lines[n], px, &tm));
        w = MAX(w, tm.width + 80);
        h += tm.height + tm.baseline + px;
    }
    struct vis_image *img = vis_image_new(w, h, VIS_BGR);
    vis_image_fill(img, VIS_RGB(255, 255, 255));
    int y = 20;
    for (int i = 0; i < n; i++) {
        struct vis_text_metrics tm;
        ASSERT_OK(vis_text_measure(f, lines[i], px, &tm));
        y += tm.height;
        ASSERT_OK(vis_text_draw(img, f, lines[i], px, 40, y, VIS_RGB(0, 0, 0)));
        y += tm.baseline + px;
    }
    return img;
}

static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *prev = xcalloc(lb + 1, sizeof *prev), *cur = xcalloc(lb + 1, sizeof *cur);
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            c = MIN(c, prev[j] + 1);
            c = MIN(c, cur[j - 1] + 1);
            cur[j] = c;
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[lb];
    free(prev);
    free(cur);
    return d;
}

static void strip_spaces(char *s)
{
    char *o = s;
    for (; *s; s++)
        if (*s != ' ')
            *o++ = *s;
    *o = 0;
}

TEST(ocr_reads_rendered_text)
{
    static const char *const texts[][3] = {
        {"HELLO WORLD", NULL},       {"Invoice 2024-117", NULL},
        {"vbatch reads text", NULL}, {"Total: 42.50 EUR", NULL},
        {"ROBOFLOW", NULL},          {"The quick brown fox", "jumps over the lazy dog"},
        {"PP-OCR v4", NULL},         {"Batch processing 123", NULL},
        {"STOP", NULL},              {"Model registry", "OCR family"},
    };
    if (!have_weights())
        return;
    struct model_registry *reg = reg_new();
    char err[1024], *dir = ocr_dir();
    struct model *m = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "pp_ocr", dir, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "pp_ocr", &m, err, sizeof err));
    ASSERT_EQ(model_task(m), MODEL_TASK_OCR);
    ASSERT_STR_EQ(model_task_name(model_task(m)), "ocr");
    size_t chars = 0, errs = 0, chars_ns = 0, errs_ns = 0, exact = 0;
    int64_t t0 = time_mono_ns();
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        struct vis_image *img = render(texts[i], 32);
        struct model_ocr_result r;
        ASSERT_OK(model_ocr_run(m, img, &r, err, sizeof err));
        ASSERT_GT(r.n_words, 0);
        /* the truth: lines joined by spaces, as "result" joins the texts */
        char truth[256] = "", got[1024] = "";
        for (int k = 0; k < 3 && texts[i][k]; k++)
            snprintf(truth + strlen(truth), sizeof truth - strlen(truth), "%s%s", k ? " " : "",
                     texts[i][k]);
        json_t *j = model_ocr_result_to_json(&r);
        snprintf(got, sizeof got, "%s", json_string_value(json_object_get(j, "result")));
        ASSERT_EQ(json_array_size(json_object_get(j, "predictions")), r.n_words);
        for (size_t w = 0; w < r.n_words; w++) {
            ASSERT(r.words[w].x1 >= 0 && r.words[w].x2 <= img->w && r.words[w].x1 < r.words[w].x2);
            ASSERT(r.words[w].y1 >= 0 && r.words[w].y2 <= img->h && r.words[w].y1 < r.words[w].y2);
            ASSERT(r.words[w].confidence >= 0.5f && r.words[w].confidence <= 1.0f);
        }
        json_decref(j);
        size_t d = levenshtein(got, truth);
        chars += strlen(truth);
        errs += d;
        exact += d == 0;
        strip_spaces(got);
        strip_spaces(truth);
        d = levenshtein(got, truth);
        chars_ns += strlen(truth);
        errs_ns += d;
        fprintf(stderr, "ocr: '%s' -> '%s' (%zu edits without spaces)\n", truth, got, d);
        model_ocr_result_release(&r);
        vis_image_free(img);
    }
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    double acc = 1.0 - (double)errs / (double)chars, acc_ns = 1.0 - (double)errs_ns / (double)chars_ns;
    fprintf(stderr, "ocr: character accuracy %.4f (%.4f ignoring spaces), %zu/%zu strings exact, "
            "%.2f images/s (sanitizer build)\n",
            acc, acc_ns, exact, ARRAY_LEN(texts), (double)ARRAY_LEN(texts) / secs);
    ASSERT(acc_ns >= 0.95);
    model_unref(m);
    free(dir);
    model_registry_free(reg);
}

/* Copy the real folder into a temporary one, optionally breaking it. */
static char *copy_folder(const char *tmpl)
{
    char *src = ocr_dir(), *dst = xstrdup(tmpl);
    if (!mkdtemp(dst))
        T_FAIL("mkdtemp");
    const char *files[] = {"det.onnx", "rec.onnx", "dict.txt"};
    for (size_t i = 0; i < 3; i++) {
        char *a = xasprintf("%s/%s", src, files[i]), *b = xasprintf("%s/%s", dst, files[i]);
        char *buf = NULL;
        size_t len = 0;
        ASSERT_OK(file_read_all(a, 64u << 20, &buf, &len));
        ASSERT_OK(file_write_atomic(b, buf, len));
        free(buf);
        free(a);
        free(b);
    }
    free(src);
    return dst;
}

static void expect_refused(const char *dir, const char *needle)
{
    struct model_registry *reg = reg_new();
    char err[1024] = "";
    int rc = model_registry_register_dir(reg, "bad_ocr", dir, err, sizeof err);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(rc < 0);
    if (!strstr(err, needle))
        T_FAIL("message '%s' lacks '%s'", err, needle);
    struct model *m = NULL;
    ASSERT(model_registry_get(reg, NULL, "bad_ocr", &m, err, sizeof err) < 0);
    model_registry_free(reg);
}

static void rm_folder(char *d)
{
    const char *files[] = {"det.onnx", "rec.onnx", "dict.txt", "model.json"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", d, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(d);
    free(d);
}

TEST(ocr_malformed_folders_refused)
{
    if (!have_weights())
        return;
    char *d = copy_folder("/tmp/vbatch-ocr-XXXXXX");
    /* dictionary with two lines too many (one too many reads as "no space class") */
    char *p = xasprintf("%s/dict.txt", d), *buf = NULL;
    size_t len = 0;
    ASSERT_OK(file_read_all(p, 1u << 20, &buf, &len));
    char *more = xasprintf("%.*s\nextra\nextra2\n", (int)len, buf);
    ASSERT_OK(file_write_atomic(p, more, strlen(more)));
    expect_refused(d, "dict.txt has 6625 lines");
    /* empty dictionary */
    ASSERT_OK(file_write_atomic(p, "", 0));
    expect_refused(d, "dict.txt is empty");
    ASSERT_OK(file_write_atomic(p, buf, len));
    free(more);
    free(buf);
    free(p);
    /* detector and recogniser swapped */
    char *det = xasprintf("%s/det.onnx", d), *rec = xasprintf("%s/rec.onnx", d),
         *tmp = xasprintf("%s/tmp.onnx", d);
    ASSERT_OK(rename(det, tmp) == 0 ? 0 : -1);
    ASSERT_OK(rename(rec, det) == 0 ? 0 : -1);
    ASSERT_OK(rename(tmp, rec) == 0 ? 0 : -1);
    expect_refused(d, "text detector (det.onnx)");
    /* a missing recogniser */
    unlink(rec);
    expect_refused(d, "rec.onnx");
    /* not an ONNX file */
    ASSERT_OK(file_write_atomic(rec, "not onnx", 8));
    expect_refused(d, "text recogniser (rec.onnx): cannot load");
    free(det);
    free(rec);
    free(tmp);
    rm_folder(d);
}

TEST(ocr_nan_detector_refused)
{
    if (!have_weights())
        return;
    const char *s = getenv("VBATCH_SRCDIR");
    char *nan = xasprintf("%s/tests/data/models/ocr-bad/det_nan.onnx", s ? s : ".");
    char *wrong = xasprintf("%s/tests/data/models/ocr-bad/det_two_outputs.onnx", s ? s : ".");
    char *d = copy_folder("/tmp/vbatch-ocr-XXXXXX");
    char *det = xasprintf("%s/det.onnx", d), *buf = NULL;
    size_t len = 0;
    ASSERT_OK(file_read_all(nan, 1u << 20, &buf, &len));
    ASSERT_OK(file_write_atomic(det, buf, len));
    free(buf);
    expect_refused(d, "not finite");
    ASSERT_OK(file_read_all(wrong, 1u << 20, &buf, &len));
    ASSERT_OK(file_write_atomic(det, buf, len));
    free(buf);
    expect_refused(d, "1 inputs and 2 outputs");
    free(det);
    free(nan);
    free(wrong);
    rm_folder(d);
}

TEST(ocr_model_run_refuses_ocr_and_blank_image_reads_nothing)
{
    if (!have_weights())
        return;
    struct model_registry *reg = reg_new();
    char err[1024], *dir = ocr_dir();
    struct model *m = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "pp_ocr", dir, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "pp_ocr", &m, err, sizeof err));
    struct vis_image *img = vis_image_new(200, 100, VIS_BGR);
    vis_image_fill(img, VIS_RGB(255, 255, 255));
    struct model_ocr_result r;
    ASSERT_OK(model_ocr_run(m, img, &r, err, sizeof err));
    ASSERT_EQ(r.n_words, 0);
    model_ocr_result_release(&r);
    struct model_params p;
    struct model_result res;
    model_params_init(&p);
    const struct vis_image *ims[1] = {img};
    ASSERT(model_run(m, ims, 1, &p, &res, err, sizeof err) < 0);
    ASSERT(strstr(err, "OCR model"));
    /* a grey 1x1 image and a huge-aspect one run without trouble */
    struct vis_image *tiny = vis_image_new(1, 1, VIS_GRAY);
    tiny->px[0] = 0;
    ASSERT_OK(model_ocr_run(m, tiny, &r, err, sizeof err));
    model_ocr_result_release(&r);
    vis_image_free(tiny);
    vis_image_free(img);
    model_unref(m);
    free(dir);
    model_registry_free(reg);
}

/* ---- multi-file models as bundles (docs/MODELS.md "Multi-file models") ---- */

static void expect_bundle_refused_meta(struct model_registry *reg, const void *b, size_t len,
                                       const json_t *meta, const char *needle)
{
    struct model *m = NULL;
    char err[1024] = "";
    int rc = model_registry_prepare_bytes(reg, "bundled", b, len, meta, &m, err, sizeof err);
    fprintf(stderr, "bundle refused: %s\n", err);
    ASSERT(rc < 0 && m == NULL);
    if (!strstr(err, needle))
        T_FAIL("message '%s' lacks '%s'", err, needle);
}

static void expect_bundle_refused(struct model_registry *reg, const void *b, size_t len, const char *needle)
{
    expect_bundle_refused_meta(reg, b, len, NULL, needle);
}

/* A bundle of the entries (name, text) by model_bundle_header. */
static char *make_bundle(const char *const (*ents)[2], size_t n, size_t *len)
{
    size_t cap = (n + 2) * 1024 + 4096, at = 0;
    char *b = xcalloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(ents[i][1]);
        model_bundle_header(b + at, ents[i][0], k);
        memcpy(b + at + 512, ents[i][1], k);
        at += 512 + (k + 511) / 512 * 512;
    }
    *len = at + 1024;
    return b;
}

/* Recompute the checksum of the header at h after an edit. */
static void reseal(char *h)
{
    unsigned sum = 0;
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

TEST(bundle_malformed_refused)
{
    struct model_registry *reg = reg_new();
    static const char *const two[][2] = {{"det.onnx", "x"}, {"dict.txt", "a\nb\n"}};
    size_t len = 0;
    char *b = make_bundle(two, 2, &len);
    ASSERT(model_bundle_is(b, len));
    ASSERT(!model_bundle_is("\x08\x07onnx", 6));
    /* no end blocks */
    expect_bundle_refused(reg, b, len - 1024, "ends without its end blocks");
    /* truncated inside the second entry's data */
    expect_bundle_refused(reg, b, 512 + 512 + 512 + 2, "is truncated");
    /* bad checksum */
    b[512 + 512 + 3] ^= 1;
    expect_bundle_refused(reg, b, len, "bad header checksum");
    b[512 + 512 + 3] ^= 1;
    /* a folder entry (type '5') */
    char save = b[156];
    b[156] = '5';
    reseal(b);
    expect_bundle_refused(reg, b, len, "not a plain file");
    b[156] = save;
    free(b);
    /* duplicates, names with '/', too many files, nothing known */
    static const char *const dup[][2] = {{"det.onnx", "x"}, {"det.onnx", "y"}};
    b = make_bundle(dup, 2, &len);
    expect_bundle_refused(reg, b, len, "file 'det.onnx' appears twice");
    free(b);
    static const char *const slash[][2] = {{"a/det.onnx", "x"}};
    b = make_bundle(slash, 1, &len);
    expect_bundle_refused(reg, b, len, "file name 'a/det.onnx' is not accepted");
    free(b);
    const char *many[17][2];
    char names[17][16];
    for (int i = 0; i < 17; i++) {
        snprintf(names[i], sizeof names[i], "f%d.txt", i);
        many[i][0] = names[i];
        many[i][1] = "x";
    }
    b = make_bundle((const char *const (*)[2])many, 17, &len);
    expect_bundle_refused(reg, b, len, "more than 16 files");
    free(b);
    static const char *const other[][2] = {{"a.onnx", "x"}, {"b.txt", "y"}};
    b = make_bundle(other, 2, &len);
    expect_bundle_refused(reg, b, len, "the files a.onnx, b.txt make no multi-file model");
    free(b);
    /* an empty archive: only its end blocks */
    char zeros[1024] = {0};
    memcpy(zeros + 257, "ustar", 5); /* looks like a bundle, but the first block is not all zero */
    expect_bundle_refused(reg, zeros, sizeof zeros, "bad header checksum");
    model_registry_free(reg);
}

TEST(bundle_from_folder_reads_like_the_folder)
{
    if (!have_weights())
        return;
    struct model_registry *reg = reg_new();
    char err[1024], *dir = ocr_dir(), *bytes = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    struct model *a = NULL, *b = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "pp_ocr", dir, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "pp_ocr", &a, err, sizeof err));
    ASSERT_OK(model_artefacts_read_dir(dir, 0, &bytes, &len, &meta, err, sizeof err));
    ASSERT(model_bundle_is(bytes, len));
    ASSERT_STR_EQ(json_string_value(json_object_get(meta, "family")), "ocr");
    if (model_registry_prepare_bytes(reg, "pp_ocr_b", bytes, len, meta, &b, err, sizeof err) < 0)
        T_FAIL("prepare bundle: %s", err);
    ASSERT_EQ(model_task(b), MODEL_TASK_OCR);
    static const char *const lines[] = {"Bundle 2041 OK", NULL};
    struct vis_image *img = render(lines, 32);
    struct model_ocr_result ra, rb;
    ASSERT_OK(model_ocr_run(a, img, &ra, err, sizeof err));
    ASSERT_OK(model_ocr_run(b, img, &rb, err, sizeof err));
    json_t *ja = model_ocr_result_to_json(&ra), *jb = model_ocr_result_to_json(&rb);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ja, "predictions"), i, v) json_object_del(v, "detection_id");
    json_array_foreach(json_object_get(jb, "predictions"), i, v) json_object_del(v, "detection_id");
    char *sa = json_dumps(ja, JSON_SORT_KEYS), *sb = json_dumps(jb, JSON_SORT_KEYS);
    fprintf(stderr, "bundle: %s\n", sb);
    ASSERT_STR_EQ(sa, sb);
    ASSERT_GT(rb.n_words, 0);
    free(sa);
    free(sb);
    json_decref(ja);
    json_decref(jb);
    model_ocr_result_release(&ra);
    model_ocr_result_release(&rb);
    vis_image_free(img);
    /* a bundle without its dictionary names the file */
    struct model *c = NULL;
    ASSERT_OK(model_registry_prepare_bytes(reg, "pp_ocr_c", bytes, len, meta, &c, err, sizeof err));
    model_unref(c);
    json_object_set_new(meta, "dictionary", json_string("keys.txt"));
    expect_bundle_refused_meta(reg, bytes, len, meta, "the model has no file 'keys.txt'");
    json_decref(meta);
    free(bytes);
    model_unref(a);
    model_unref(b);
    free(dir);
    model_registry_free(reg);
}

TEST_MAIN()
