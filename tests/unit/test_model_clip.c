/*
 * test_model_clip.c — CLIP: the BPE tokenizer against
 * tests/unit/clip_bpe_ref.py (OpenAI simple_tokenizer's algorithm in
 * Python) on the real merges (scripts/fetch-clip.sh; skipped when they
 * could not be fetched) and on the replica's; the image pre-processing
 * against tests/unit/clip_pre_ref.py (PIL bicubic, as Roboflow) on
 * several sizes; the embeddings of the replica tests/data/models/clip-tiny
 * (scripts/models/make-clip-models.py) against PyTorch's (test/torch.json)
 * within 1e-4; registration, the provider's responses and refusals of
 * malformed models.
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

static const char *src_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    return s ? s : ".";
}

static char *tiny_dir(void) { return xasprintf("%s/tests/data/models/clip-tiny", src_dir()); }

static char *real_merges(void)
{
    const char *d = getenv("VBATCH_CLIP_DIR");
    if (d)
        return xasprintf("%s/merges.txt", d);
    return xasprintf("%s/.cache/vbatch/clip/merges.txt", getenv("HOME") ? getenv("HOME") : "/root");
}

static struct model_clip_bpe *bpe_load(const char *path)
{
    char *buf = NULL, err[512];
    size_t len = 0;
    struct model_clip_bpe *t = NULL;
    if (file_read_all(path, 64u << 20, &buf, &len) < 0)
        return NULL;
    if (model_clip_bpe_load(buf, len, NULL, &t, err, sizeof err) < 0)
        T_FAIL("load %s: %s", path, err);
    free(buf);
    return t;
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

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        T_FAIL("%s: %s", path, je.text);
    return j;
}

/* ---- tokenizer ---------------------------------------------------------------------- */

static const char *const texts[] = {
    "a photo of a cat",
    "A PHOTO OF A DOG",
    "Hello, World!",
    "it's the dog's toy; they're here, we've been, I'm in, you'll see, he'd go",
    "  lots   of\twhitespace\n\nand\r\nnewlines  ",
    "numbers 12345 and 3.14159 and 1,000,000 and 2nd 3rd 42nd",
    "punctuation!!! ??? ... --- ((())) [brackets] {braces} <angle> @#$%^&*",
    "e-mail: someone@example.com, url: https://example.org/path?q=1&x=y",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xc3\xbc" "ber stra\xc3\x9f" "e",
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
    "\xce\x93\xce\xb5\xce\xb9\xce\xb1 \xcf\x83\xce\xbf\xcf\x85 \xce\x9a\xcf\x8c\xcf\x83\xce\xbc\xce\xb5",
    "\xe4\xb8\x80\xe5\x8f\xaa\xe7\x8c\xab\xe5\x9c\xa8\xe6\xa1\x8c\xe5\xad\x90\xe4\xb8\x8a",
    "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\xe4\xb8\x96\xe7\x95\x8c",
    "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94",
    "emoji \xf0\x9f\x90\xb1\xf0\x9f\x90\xb6 party \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89!",
    "mixed\xf0\x9f\x98\x80words and\xe2\x80\x94" "dashes \xe2\x80\x9cquoted\xe2\x80\x9d text\xe2\x80\xa6",
    "html &amp; entities &lt;b&gt; &quot;x&quot; &#39;y&#39; &#x41;&#66; &amp;amp;",
    "tabs\tand\xc2\xa0non-breaking\xe3\x80\x80ideographic spaces",
    "superscripts x\xc2\xb2 y\xc2\xb3 \xc2\xbd \xe2\x91\xa0",
    "Arabic digits \xd9\xa1\xd9\xa2\xd9\xa3 and fullwidth \xef\xbc\x91\xef\xbc\x92",
    "<|startoftext|>special<|endoftext|> tokens inside",
    "trailing apostrophe' and 'quoted' and ''double''",
    "CamelCaseWords and snake_case_words and kebab-case-words",
    "a", "", "   ", ".", "'s", "x'll", "!'s",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "the quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "a red car parked next to a yellow taxi on a busy street in new york city",
    "person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light",
    "fire hydrant; stop sign; parking meter; bench; bird; cat; dog; horse; sheep; cow",
    "\xc3\x85ngstr\xc3\xb6m \xc3\x98re \xc3\x86sir \xc4\xb0stanbul",
    "Vi\xe1\xbb\x87t Nam ti\xe1\xba\xbfng vi\xe1\xbb\x87t",
    "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
    "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
    "control\x01" "chars \x1c sep\x7f here",
};

static json_t *ref_encode(const char *merges, const char *const *tv, size_t n)
{
    char tmpl[] = "/tmp/clipbpeXXXXXX";
    if (!mkdtemp(tmpl))
        T_FAIL("mkdtemp");
    char *in = xasprintf("%s/in.json", tmpl), *out = xasprintf("%s/out.json", tmpl);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(tv[i]));
    ASSERT_OK(json_dump_file(a, in, 0));
    json_decref(a);
    char *cmd = xasprintf("/usr/bin/python3 %s/tests/unit/clip_bpe_ref.py %s %s %s", src_dir(),
                          merges, in, out);
    if (system(cmd) != 0)
        T_FAIL("%s failed", cmd);
    json_t *r = load_json(out);
    unlink(in);
    unlink(out);
    rmdir(tmpl);
    free(cmd);
    free(in);
    free(out);
    return r;
}

static void compare_with_ref(const char *merges, const char *const *tv, size_t n)
{
    struct model_clip_bpe *t = bpe_load(merges);
    ASSERT(t != NULL);
    json_t *ref = ref_encode(merges, tv, n);
    ASSERT_EQ(json_array_size(ref), n);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        int *ids = NULL;
        size_t k = 0;
        char err[256];
        ASSERT_OK(model_clip_bpe_encode(t, tv[i], &ids, &k, err, sizeof err));
        json_t *r = json_array_get(ref, i);
        bool eq = k == json_array_size(r);
        for (size_t j = 0; eq && j < k; j++)
            eq = ids[j] == json_integer_value(json_array_get(r, j));
        if (!eq) {
            char *js = json_dumps(r, JSON_COMPACT);
            fprintf(stderr, "text %zu '%s': vbatch %zu ids, reference %s\n", i, tv[i], k, js);
            for (size_t j = 0; j < k; j++)
                fprintf(stderr, " %d", ids[j]);
            fprintf(stderr, "\n");
            free(js);
        }
        same += eq;
        free(ids);
    }
    fprintf(stderr, "tokenizer: %zu of %zu texts give the reference's ids\n", same, n);
    ASSERT_EQ(same, n);
    json_decref(ref);
    model_clip_bpe_free(t);
}

TEST(tokenizer_real_merges_match_reference)
{
    char *mp = real_merges();
    struct stat st;
    if (stat(mp, &st) != 0) {
        fprintf(stderr, "SKIP: no CLIP merges in %s (scripts/fetch-clip.sh could not fetch "
                "them)\n", mp);
        free(mp);
        return;
    }
    compare_with_ref(mp, texts, ARRAY_LEN(texts));
    /* long texts built from the word list */
    char *longs[6];
    for (int i = 0; i < 6; i++) {
        char *s = xstrdup("");
        for (int k = 0; k < 20 + i * 15; k++) {
            char *n = xasprintf("%s%s ", s, texts[(size_t)(k * 7 + i) % ARRAY_LEN(texts)]);
            free(s);
            s = n;
        }
        longs[i] = s;
    }
    compare_with_ref(mp, (const char *const *)longs, 6);
    for (int i = 0; i < 6; i++)
        free(longs[i]);

    struct model_clip_bpe *t = bpe_load(mp);
    ASSERT_EQ(model_clip_bpe_vocab_size(t), 49408);
    int32_t ids[MODEL_CLIP_CONTEXT];
    char err[256];
    /* clip.tokenize("a photo of a cat"): OpenAI's documented ids */
    ASSERT_OK(model_clip_bpe_tokenize(t, "a photo of a cat", false, ids, err, sizeof err));
    const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 49407};
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        ASSERT_EQ(ids[i], want[i]);
    for (size_t i = ARRAY_LEN(want); i < MODEL_CLIP_CONTEXT; i++)
        ASSERT_EQ(ids[i], 0);
    /* context length: 75 tokens fit, 76 do not (or are truncated) */
    char *s75 = xstrdup(""), *s76;
    for (int i = 0; i < 75; i++) {
        char *n = xasprintf("%scat ", s75);
        free(s75);
        s75 = n;
    }
    s76 = xasprintf("%scat", s75);
    ASSERT_OK(model_clip_bpe_tokenize(t, s75, false, ids, err, sizeof err));
    ASSERT_EQ(ids[76], 49407);
    ASSERT_EQ(model_clip_bpe_tokenize(t, s76, false, ids, err, sizeof err), ERR_INVALID);
    ASSERT(strstr(err, "too long") != NULL);
    ASSERT_OK(model_clip_bpe_tokenize(t, s76, true, ids, err, sizeof err));
    ASSERT_EQ(ids[0], 49406);
    ASSERT_EQ(ids[75], 2368);
    ASSERT_EQ(ids[76], 49407);
    free(s75);
    free(s76);
    /* a 16000-letter word: refused before BPE (too long), truncated in
     * bounded time; 17 KiB: over the size limit */
    char *big = xmalloc(17001);
    for (int i = 0; i < 17000; i++)
        big[i] = "abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 26) % 26];
    big[16000] = 0;
    int64_t t0 = time_mono_ns();
    ASSERT_EQ(model_clip_bpe_tokenize(t, big, false, ids, err, sizeof err), ERR_INVALID);
    ASSERT(strstr(err, "too long") != NULL);
    ASSERT_OK(model_clip_bpe_tokenize(t, big, true, ids, err, sizeof err));
    ASSERT_EQ(ids[76], 49407);
    int64_t dt = time_mono_ns() - t0;
    fprintf(stderr, "16000-letter word: refused and truncated in %.3f s\n", (double)dt / 1e9);
    ASSERT(dt < 10 * 1000000000LL);
    big[16000] = 'x';
    big[17000] = 0;
    ASSERT_EQ(model_clip_bpe_tokenize(t, big, true, ids, err, sizeof err), ERR_LIMIT);
    free(big);
    model_clip_bpe_free(t);
    free(mp);
}

TEST(tokenizer_replica_merges_match_reference)
{
    char *d = tiny_dir(), *mp = xasprintf("%s/merges.txt", d);
    compare_with_ref(mp, texts, ARRAY_LEN(texts));
    free(mp);
    free(d);
}

TEST(tokenizer_refuses_bad_merges)
{
    struct model_clip_bpe *t = NULL;
    char err[256];
    const char *bad[] = {"#version: 0.2\n", "#version: 0.2\nab\n", "#version: 0.2\na  b\n",
                         "#version: 0.2\na b c\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        ASSERT(model_clip_bpe_load(bad[i], strlen(bad[i]), NULL, &t, err, sizeof err) < 0);
        fprintf(stderr, "refused: %s\n", err);
    }
    /* a vocabulary without the byte characters */
    json_t *v = json_pack("{s:i,s:i}", "<|startoftext|>", 0, "<|endoftext|>", 1);
    const char *ok = "#version: 0.2\na b\n";
    ASSERT(model_clip_bpe_load(ok, strlen(ok), v, &t, err, sizeof err) < 0);
    ASSERT(strstr(err, "byte") != NULL);
    json_decref(v);
}

/* The work bound of tokenize counts tokens of the longest vocabulary
 * string: one huge token in a crafted merges file or vocabulary would lift
 * it, so both are refused at load (CLIP's longest token is 128 bytes). */
TEST(tokenizer_refuses_huge_tokens)
{
    struct model_clip_bpe *t = NULL;
    char err[256];
    struct buf b = BUF_INIT;
    buf_printf(&b, "#version: 0.2\na b\n");
    for (int i = 0; i < 300; i++)
        buf_printf(&b, "a");
    buf_printf(&b, " b\n");
    ASSERT_EQ(model_clip_bpe_load(b.data, b.len, NULL, &t, err, sizeof err), ERR_LIMIT);
    ASSERT(strstr(err, "longer than 256 bytes") != NULL);
    /* 256 bytes are still fine */
    buf_reset(&b);
    buf_printf(&b, "#version: 0.2\n");
    for (int i = 0; i < 255; i++)
        buf_printf(&b, "a");
    buf_printf(&b, " b\n");
    ASSERT_OK(model_clip_bpe_load(b.data, b.len, NULL, &t, err, sizeof err));
    model_clip_bpe_free(t);
    t = NULL;
    /* a vocabulary key */
    char *huge = xcalloc(1, 4097);
    memset(huge, 'z', 4096);
    json_t *v = json_pack("{s:i,s:i,s:i}", "<|startoftext|>", 0, "<|endoftext|>", 1, huge, 2);
    ASSERT_EQ(model_clip_bpe_load("#version: 0.2\na b\n", 18, v, &t, err, sizeof err), ERR_LIMIT);
    ASSERT(strstr(err, "vocab.json") != NULL);
    json_decref(v);
    free(huge);
    buf_release(&b);
}

/* ---- pre-processing ---------------------------------------------------------------- */

static void write_ppm(const char *path, const struct vis_image *im)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    fprintf(f, "P6\n%d %d\n255\n", im->w, im->h);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            const uint8_t *p = vis_px(im, x, y);
            uint8_t rgb[3] = {p[2], p[1], p[0]};
            fwrite(rgb, 1, 3, f);
        }
    fclose(f);
}

TEST(preprocess_matches_pil)
{
    struct model_registry *reg = reg_new();
    char err[1024], *d = tiny_dir();
    struct model *m = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "clip/ViT-B-16", d, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "clip/ViT-B-16", &m, err, sizeof err));
    int R, R2;
    model_input_size(m, &R, &R2);
    ASSERT_EQ(R, 224);
    const int sizes[][2] = {{300, 200}, {200, 300}, {224, 224}, {225, 501}, {640, 480},
                            {97, 61},   {1000, 227}, {224, 300}, {7, 900}, {1200, 5}};
    for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
        int w = sizes[s][0], h = sizes[s][1];
        struct vis_image *im = vis_image_new(w, h, VIS_BGR);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t *p = vis_px(im, x, y);
                p[0] = (uint8_t)((x * 7 + y * 3) & 255);
                p[1] = (uint8_t)(((x / 9) % 2 ? 230 : 20) + (y & 15));
                p[2] = (uint8_t)((x * x + y * 5) % 251);
            }
        char path[] = "/tmp/clipppmXXXXXX";
        int fd = mkstemp(path);
        ASSERT(fd >= 0);
        close(fd);
        write_ppm(path, im);
        char *out = xasprintf("%s.f32", path);
        char *cmd = xasprintf("/usr/bin/python3 %s/tests/unit/clip_pre_ref.py %s %d %s",
                              src_dir(), path, R, out);
        if (system(cmd) != 0)
            T_FAIL("%s failed", cmd);
        char *buf = NULL;
        size_t len = 0;
        ASSERT_OK(file_read_all(out, 64u << 20, &buf, &len));
        size_t n = (size_t)3 * (size_t)R * (size_t)R;
        ASSERT_EQ(len, n * sizeof(float));
        float *mine = xmalloc(n * sizeof(float));
        ASSERT_OK(model_clip_preprocess(m, im, mine));
        const float *ref = (const float *)buf;
        double maxd = 0;
        for (size_t i = 0; i < n; i++)
            maxd = fmax(maxd, fabs((double)mine[i] - (double)ref[i]));
        fprintf(stderr, "pre-processing %dx%d: max |vbatch - PIL| = %.3g\n", w, h, maxd);
        ASSERT(maxd <= 1e-6);
        free(mine);
        free(buf);
        unlink(out);
        unlink(path);
        free(out);
        free(cmd);
        vis_image_free(im);
    }
    model_unref(m);
    model_registry_free(reg);
    free(d);
}

/* The largest single allocation, through ASan's hooks (sanitizer builds;
 * elsewhere the test checks the values only). */
extern int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void *, size_t),
                                                     void (*)(const volatile void *))
    __attribute__((weak));
static size_t largest_alloc;
static void alloc_hook(const volatile void *p, size_t n)
{
    (void)p;
    if (n > largest_alloc)
        largest_alloc = n;
}
static void free_hook(const volatile void *p) { (void)p; }

/* A picture of an extreme aspect ratio (a sliver) resizes, shorter side to
 * R, to a huge size (2 x 3000: 224 x 336000; 1 x 65535: 224 x 14.7 M, 10 GB
 * of RGB): only the centre crop may be computed. */
TEST(preprocess_sliver_is_bounded)
{
    struct model_registry *reg = reg_new();
    char err[1024], *d = tiny_dir();
    struct model *m = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "clip/ViT-B-16", d, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "clip/ViT-B-16", &m, err, sizeof err));
    const int sizes[][2] = {{2, 3000}, {3000, 2}, {1, 65535}};
    for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
        struct vis_image *im = vis_image_new(sizes[s][0], sizes[s][1], VIS_BGR);
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w; x++) {
                uint8_t *p = vis_px(im, x, y);
                p[0] = (uint8_t)(x * 7 + y), p[1] = (uint8_t)(y / 3), p[2] = (uint8_t)(x + y * 5);
            }
        size_t n = (size_t)3 * 224 * 224;
        float *out = xmalloc(n * sizeof(float));
        largest_alloc = 0;
        bool hooked = __sanitizer_install_malloc_and_free_hooks &&
                      __sanitizer_install_malloc_and_free_hooks(alloc_hook, free_hook);
        ASSERT_OK(model_clip_preprocess(m, im, out));
        for (size_t i = 0; i < n; i++)
            ASSERT(isfinite(out[i]) && out[i] > -3.0f && out[i] < 3.0f);
        if (hooked) {
            fprintf(stderr, "sliver %dx%d: largest allocation %zu bytes\n", im->w, im->h,
                    largest_alloc);
            ASSERT(largest_alloc < (8u << 20));
        }
        free(out);
        vis_image_free(im);
    }
    model_unref(m);
    model_registry_free(reg);
    free(d);
}

/* ---- embeddings ------------------------------------------------------------------------ */

static double maxdiff(const float *a, const json_t *b, size_t n)
{
    double d = 0;
    ASSERT_EQ(json_array_size(b), n);
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - json_number_value(json_array_get(b, i))));
    return d;
}

TEST(embeddings_match_torch)
{
    struct model_registry *reg = reg_new();
    char err[1024], *d = tiny_dir();
    char *tj = xasprintf("%s/test/torch.json", d), *pic = xasprintf("%s/test/picture.png", d);
    json_t *ref = load_json(tj);
    struct model *m = NULL;
    ASSERT_OK(model_registry_register_dir(reg, "clip/ViT-B-16", d, err, sizeof err));
    ASSERT_OK(model_registry_get(reg, NULL, "clip/ViT-B-16", &m, err, sizeof err));
    ASSERT_EQ(model_task(m), MODEL_TASK_EMBEDDING);
    size_t D = model_clip_dim(m);
    ASSERT_EQ(D, 32);

    char *buf = NULL;
    size_t len = 0;
    struct vis_image *img = NULL;
    ASSERT_OK(file_read_all(pic, 16u << 20, &buf, &len));
    ASSERT_OK(vis_decode(buf, len, &img));
    free(buf);
    float *e = NULL;
    ASSERT_OK(model_clip_embed_image(m, img, &e, err, sizeof err));
    double di = maxdiff(e, json_object_get(ref, "image_embedding"), D);
    fprintf(stderr, "image embedding: max |vbatch - torch| = %.3g\n", di);
    ASSERT(di <= 1e-4);
    free(e);

    const json_t *tx = json_object_get(ref, "texts");
    size_t nt = json_array_size(tx);
    const char **tv = xcalloc(nt, sizeof *tv);
    for (size_t i = 0; i < nt; i++)
        tv[i] = json_string_value(json_array_get(tx, i));
    ASSERT_OK(model_clip_embed_texts(m, tv, nt, &e, err, sizeof err));
    double dt = 0;
    for (size_t i = 0; i < nt; i++)
        dt = fmax(dt, maxdiff(e + i * D, json_array_get(json_object_get(ref, "text_embeddings"), i), D));
    fprintf(stderr, "text embeddings (%zu texts): max |vbatch - torch| = %.3g\n", nt, dt);
    ASSERT(dt <= 1e-4);
    free(e);

    /* the provider: images, then texts (n = 0) */
    json_t *out[2] = {0};
    const struct vis_image *imgs[1] = {img};
    ASSERT_OK(model_registry_infer(reg, NULL, "clip/ViT-B-16", "embedding", NULL, imgs, 1, out,
                                   err, sizeof err));
    ASSERT_EQ(json_array_size(json_array_get(json_object_get(out[0], "embeddings"), 0)), D);
    json_decref(out[0]);
    json_t *p = json_pack("{s:[ss]}", "texts", "a photo of a cat", "zebra");
    ASSERT_OK(model_registry_infer(reg, NULL, "clip/ViT-B-16", "embedding", p, NULL, 0, out, err,
                                   sizeof err));
    ASSERT_EQ(json_array_size(json_object_get(out[0], "embeddings")), 2);
    json_decref(out[0]);
    json_decref(p);
    /* a non-string text, a wrong task, model_run: refused */
    p = json_pack("{s:[i]}", "texts", 3);
    ASSERT_EQ(model_registry_infer(reg, NULL, "clip/ViT-B-16", "embedding", p, NULL, 0, out, err,
                                   sizeof err), ERR_INVALID);
    json_decref(p);
    ASSERT(model_registry_infer(reg, NULL, "clip/ViT-B-16", "object-detection", NULL, imgs, 1,
                                out, err, sizeof err) < 0);
    struct model_result r;
    struct model_params pp;
    model_params_init(&pp);
    ASSERT(model_run(m, imgs, 1, &pp, &r, err, sizeof err) < 0);
    ASSERT(strstr(err, "CLIP") != NULL);
    json_t *desc = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(desc, "task")), "embedding");
    json_decref(desc);

    vis_image_free(img);
    free(tv);
    model_unref(m);
    json_decref(ref);
    model_registry_free(reg);
    free(tj);
    free(pic);
    free(d);
}

/* the bundle path (HTTP and CLI registration of multi-file models): the
 * folder read as a bundle registers from bytes, with its aliases */
TEST(bundle_registers)
{
    char tmpl[] = "/tmp/clipbundleXXXXXX";
    if (!mkdtemp(tmpl))
        T_FAIL("mkdtemp");
    char err[1024], *d = tiny_dir(), *bytes = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    ASSERT_OK(model_artefacts_read_dir(d, 0, &bytes, &len, &meta, err, sizeof err));
    ASSERT_STR_EQ(json_string_value(json_object_get(meta, "family")), "clip");
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    o.intra_op_threads = 2;
    ASSERT_OK(model_registry_new(&o, &reg, err, sizeof err));
    ASSERT_OK(model_registry_register_bytes(reg, "clip/bundled", bytes, len, meta, err, sizeof err));
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(reg, NULL, "clip/bundled", &m, err, sizeof err));
    ASSERT_EQ(model_task(m), MODEL_TASK_EMBEDDING);
    ASSERT_EQ(model_clip_dim(m), 32);
    json_t *desc = model_describe(m);
    ASSERT_STR_EQ(json_string_value(json_object_get(desc, "task")), "embedding");
    json_decref(desc);
    model_unref(m);
    ASSERT_OK(model_registry_get(reg, NULL, "clip/ViT-B-32", &m, err, sizeof err)); /* alias */
    ASSERT_STR_EQ(model_id(m), "clip/bundled");
    model_unref(m);
    model_registry_free(reg);
    free(bytes);
    json_decref(meta);
    char *cmd = xasprintf("rm -rf %s", tmpl);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
    free(d);
}

/* ---- malformed models ---------------------------------------------------------------- */

static void put(const char *dir, const char *name, const char *src)
{
    char *buf = NULL, *p = xasprintf("%s/%s", dir, name);
    size_t len = 0;
    ASSERT_OK(file_read_all(src, 64u << 20, &buf, &len));
    ASSERT_OK(file_write_atomic(p, buf, len));
    free(buf);
    free(p);
}

/* A temporary copy of clip-tiny with part `name` replaced by bad/`with`
 * (NULL: removed), then its registration refused with needle. */
static void expect_refused(const char *name, const char *with, const char *needle)
{
    char tmpl[] = "/tmp/clipbadXXXXXX";
    if (!mkdtemp(tmpl))
        T_FAIL("mkdtemp");
    char *d = tiny_dir();
    const char *parts[] = {"visual.onnx", "textual.onnx", "merges.txt"};
    for (size_t i = 0; i < 3; i++) {
        if (!strcmp(parts[i], name)) {
            if (with && strstr(with, ".onnx") && !strchr(with, ' ')) {
                char *b = xasprintf("%s/tests/data/models/clip-bad/%s", src_dir(), with);
                put(tmpl, name, b);
                free(b);
            } else if (with) {
                char *p = xasprintf("%s/%s", tmpl, name);
                ASSERT_OK(file_write_atomic(p, with, strlen(with)));
                free(p);
            }
            continue;
        }
        char *s = xasprintf("%s/%s", d, parts[i]);
        put(tmpl, parts[i], s);
        free(s);
    }
    struct model_registry *reg = reg_new();
    char err[1024] = "";
    int rc = model_registry_register_dir(reg, "clip/bad", tmpl, err, sizeof err);
    fprintf(stderr, "refused: %s\n", err);
    ASSERT(rc < 0);
    if (!strstr(err, needle))
        T_FAIL("message '%s' lacks '%s'", err, needle);
    struct model *m = NULL;
    ASSERT(model_registry_get(reg, NULL, "clip/bad", &m, err, sizeof err) < 0);
    model_registry_free(reg);
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", tmpl, parts[i]);
        unlink(p);
        free(p);
    }
    rmdir(tmpl);
    free(d);
}

TEST(malformed_models_refused)
{
    expect_refused("visual.onnx", "visual-2out.onnx", "2 outputs");
    expect_refused("visual.onnx", "visual-rank3.onnx", "shape 1x4x32");
    expect_refused("textual.onnx", "textual-nan.onnx", "non-finite");
    expect_refused("textual.onnx", "textual-dim16.onnx", "other encoder's embedding size");
    expect_refused("textual.onnx", "visual-2out.onnx", "text encoder (textual.onnx)");
    expect_refused("merges.txt", NULL, "merges.txt");
    expect_refused("merges.txt", "#version: 0.2\nnot a merge line\n", "tokenizer");
    expect_refused("visual.onnx", "garbage, not onnx", "image encoder (visual.onnx)");
}

TEST_MAIN()
