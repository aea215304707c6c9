/*
 * test_jobs_models.c — models stored in the blob store + the models table
 * (src/jobs/models.c, jobs_models_store_*), with the synthetic detector of
 * tests/data/models/synth-det (run from the repository root):
 * registration writes blobs of one generation and one row, a second
 * registry (another process) rebuilds the same model from them, a
 * replacement switches the row and deletes the old generation, a bad model
 * writes nothing, a deletion removes row, blobs and the registry's model
 * (a held reference stays usable), a row whose bytes are missing or do not
 * match is skipped, and the cpu provider re-reads the table for a model id
 * it does not know.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"

#include "base/base.h"
#include "jobs/jobs.h"
#include "model/model.h"
#include "store/store.h"
#include "workflow/workflow.h"

/* The message of the last call that was handed &te. */
static struct err te;

static const char *det_dir(void)
{
    const char *s = getenv("VBATCH_SRCDIR");
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/tests/data/models/synth-det", s ? s : ".");
    return buf;
}

struct ctx {
    char dir[64];
    struct store *st;
    struct model_registry *reg;
    char *onnx;
    size_t len;
    json_t *meta;
};

static void ctx_open(struct ctx *c)
{
    char err[512];
    strcpy(c->dir, "/tmp/vbatch-test-mstore-XXXXXX");
    ASSERT(mkdtemp(c->dir));
    ASSERT_OK(store_open(c->dir, &c->st));
    struct model_registry_opts o = {.intra_op_threads = 1};
    ASSERT_OK(model_registry_new(&o, &c->reg, err, sizeof err));
    if (model_artefacts_read_dir(det_dir(), 0, &c->onnx, &c->len, &c->meta, err, sizeof err) < 0)
        T_FAIL("%s", err);
}

static void ctx_close(struct ctx *c)
{
    model_registry_free(c->reg);
    store_close(c->st);
    free(c->onnx);
    json_decref(c->meta);
    char *cmd = xasprintf("rm -rf '%s'", c->dir);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
}

/* Number of regular files under DATA/blobs/models/<dn> (recursively). */
static int count_files(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0)
            n += S_ISDIR(sb.st_mode) ? count_files(p) : 1;
        free(p);
    }
    closedir(d);
    return n;
}

static int blob_files(struct ctx *c, const char *dn)
{
    char *p = xasprintf("%s/blobs/models/%s", c->dir, dn);
    int n = count_files(p);
    free(p);
    return n;
}

/* The row's weights key, malloc'd, or NULL. */
static char *row_key(struct ctx *c, const char *id)
{
    json_t *rows = NULL;
    char *k = NULL;
    size_t i;
    json_t *v;
    ASSERT_OK(jobs_models_store_list(c->st, &rows));
    json_array_foreach(rows, i, v) if (!strcmp(json_string_value(json_object_get(v, "modelId")), id))
        k = xstrdup(json_string_value(json_object_get(v, "weightsKey")));
    json_decref(rows);
    return k;
}

static char *class0(struct model_registry *reg, const char *id)
{
    struct model *m = NULL;
    char err[256];
    if (model_registry_get(reg, NULL, id, &m, err, sizeof err) < 0)
        return NULL;
    char *s = xstrdup(model_class_name(m, 0));
    model_unref(m);
    return s;
}

TEST(put_sync_replace_delete)
{
    struct ctx c;
    char err[1024];
    struct model_registry *other = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    int loaded = -1, bad = -1;

    ctx_open(&c);
    json_object_set_new(c.meta, "aliases", json_pack("[s]", "st-alias"));
    if (jobs_models_store_put(c.st, c.reg, NULL, "proj/3", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    char *k1 = row_key(&c, "proj/3");
    ASSERT(k1 && str_has_prefix(k1, "models/proj--3/"));
    ASSERT_EQ(blob_files(&c, "proj--3"), 2);
    json_t *tags = model_registry_tags(c.reg);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(tags, k1), "modelId")), "proj/3");
    ASSERT(json_is_null(json_object_get(json_object_get(tags, k1), "workspace")));
    json_decref(tags);
    /* nothing was written into a models folder */
    char *legacy = xasprintf("%s/models", c.dir);
    ASSERT(access(legacy, F_OK) != 0);
    free(legacy);

    /* another process: the same model from the blobs */
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    ASSERT_EQ(bad, 0);
    struct model *a = NULL, *b = NULL;
    ASSERT_OK(model_registry_get(c.reg, NULL, "proj/3", &a, err, sizeof err));
    ASSERT_OK(model_registry_get(other, NULL, "st-alias", &b, err, sizeof err));
    json_t *da = model_describe(a), *db = model_describe(b);
    ASSERT(json_equal(da, db));
    json_decref(da);
    json_decref(db);
    model_unref(a);
    model_unref(b);
    /* nothing changed: a second sync loads nothing */
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 0);

    /* replace: new generation, old blobs gone, the other registry follows */
    json_object_set_new(c.meta, "class_names", json_pack("[s,s,s]", "x", "y", "z"));
    if (jobs_models_store_put(c.st, c.reg, NULL, "proj/3", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    char *k2 = row_key(&c, "proj/3");
    ASSERT(k2 && strcmp(k1, k2) != 0);
    ASSERT_EQ(blob_files(&c, "proj--3"), 2);
    char *p1 = store_blob_path(c.st, k1);
    ASSERT(access(p1, F_OK) != 0);
    free(p1);
    char *n0 = class0(c.reg, "proj/3");
    ASSERT_STR_EQ(n0, "x");
    free(n0);
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    n0 = class0(other, "proj/3");
    ASSERT_STR_EQ(n0, "x");
    free(n0);

    /* a bad model writes nothing and keeps the live one */
    const char junk[] = "not an onnx file";
    ASSERT(jobs_models_store_put(c.st, c.reg, NULL, "proj/3", junk, sizeof junk, c.meta, &te) < 0);
    char *k3 = row_key(&c, "proj/3");
    ASSERT_STR_EQ(k3, k2);
    free(k3);
    ASSERT_EQ(blob_files(&c, "proj--3"), 2);

    /* delete: a held reference stays usable; the alias then says "not registered" */
    ASSERT_OK(model_registry_get(c.reg, NULL, "proj/3", &a, err, sizeof err));
    ASSERT_OK(jobs_models_store_delete(c.st, c.reg, NULL, "proj/3", &te));
    ASSERT_STR_EQ(model_id(a), "proj/3");
    ASSERT_STR_EQ(model_class_name(a, 0), "x");
    model_unref(a);
    ASSERT_EQ(model_registry_get(c.reg, NULL, "proj/3", &a, err, sizeof err), ERR_NOTFOUND);
    ASSERT_EQ(model_registry_get(c.reg, NULL, "st-alias", &a, err, sizeof err), ERR_NOTFOUND);
    ASSERT(strstr(err, "alias of 'proj/3'"));
    ASSERT(row_key(&c, "proj/3") == NULL);
    ASSERT_EQ(blob_files(&c, "proj--3"), 0);
    ASSERT_EQ(jobs_models_store_delete(c.st, c.reg, NULL, "proj/3", &te), ERR_NOTFOUND);
    /* the other process drops it at its next re-read */
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(model_registry_get(other, NULL, "proj/3", &a, err, sizeof err), ERR_NOTFOUND);

    free(k1);
    free(k2);
    model_registry_free(other);
    ctx_close(&c);
}

TEST(rows_without_good_bytes_are_skipped)
{
    struct ctx c;
    char err[1024];
    int loaded = -1, bad = -1;
    struct model_registry *other = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};

    ctx_open(&c);
    if (jobs_models_store_put(c.st, c.reg, NULL, "gone", c.onnx, c.len, c.meta, &te) < 0 ||
        jobs_models_store_put(c.st, c.reg, NULL, "torn", c.onnx, c.len, c.meta, &te) < 0 ||
        jobs_models_store_put(c.st, c.reg, NULL, "fine", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    char *kg = row_key(&c, "gone"), *kt = row_key(&c, "torn");
    ASSERT_OK(store_blob_delete(c.st, kg));
    /* same size, one byte changed: only the sha256 tells */
    char *copy = xmalloc(c.len);
    memcpy(copy, c.onnx, c.len);
    copy[c.len / 2] ^= 1;
    ASSERT_OK(store_blob_put(c.st, kt, copy, c.len));
    free(copy);
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    ASSERT_EQ(bad, 2);
    struct model *m = NULL;
    ASSERT_OK(model_registry_get(other, NULL, "fine", &m, err, sizeof err));
    model_unref(m);
    ASSERT_EQ(model_registry_get(other, NULL, "torn", &m, err, sizeof err), ERR_NOTFOUND);
    /* still bad at the next re-read (not hashed again: same keys) */
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 0);
    ASSERT_EQ(bad, 2);
    /* a new registration of the id has a new key and loads */
    if (jobs_models_store_put(c.st, c.reg, NULL, "torn", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    ASSERT_EQ(bad, 1);
    ASSERT_OK(model_registry_get(other, NULL, "torn", &m, err, sizeof err));
    model_unref(m);
    free(kg);
    free(kt);
    model_registry_free(other);
    ctx_close(&c);
}

TEST(sweep_deletes_only_old_orphan_generations)
{
    struct ctx c;
    char err[1024];

    ctx_open(&c);
    if (jobs_models_store_put(c.st, c.reg, NULL, "kept/1", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    /* a crash between the blob writes and the commit */
    ASSERT_OK(store_blob_put(c.st, "models/kept--1/orphan-gen/weights.onnx", "x", 1));
    ASSERT_OK(store_blob_put(c.st, "models/other/orphan-gen/weights.onnx", "x", 1));
    ASSERT_EQ(blob_files(&c, "kept--1"), 3);
    /* too young: it may be a registration about to commit */
    ASSERT_EQ(jobs_models_store_sweep(c.st, 3600 * 1000), 0);
    ASSERT_EQ(blob_files(&c, "kept--1"), 3);
    ASSERT_EQ(jobs_models_store_sweep(c.st, 0), 2);
    ASSERT_EQ(blob_files(&c, "kept--1"), 2);
    char *p = xasprintf("%s/blobs/models/other", c.dir);
    ASSERT(access(p, F_OK) != 0);
    free(p);
    /* the live generation still loads */
    struct model_registry *other = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    int loaded = -1, bad = -1;
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    ASSERT_EQ(bad, 0);
    model_registry_free(other);
    ctx_close(&c);
}

static int count_one(void *ud, const char *key, int64_t size, int64_t mtime_ms)
{
    (void)key;
    (void)size;
    (void)mtime_ms;
    (*(int *)ud)++;
    return 0;
}

/* Blobs under prefix, on whichever backend (store_blob_list). */
static int listed(struct ctx *c, const char *prefix)
{
    int n = 0;
    ASSERT_OK(store_blob_list(c->st, prefix, count_one, &n));
    return n;
}

/* The same sweep with the blobs on S3 (VBATCH_TEST_S3): it lists the
 * bucket, not the local folder. */
TEST(sweep_on_s3)
{
    struct ctx c;
    struct err e = ERR_INIT;
    const char *u = getenv("VBATCH_TEST_S3");
    if (!u || !*u) {
        fprintf(stderr, "  skipped: VBATCH_TEST_S3 is not set\n");
        return;
    }
    ctx_open(&c);
    char rnd[13];
    rand_alnum(rnd, 12);
    const char *q = strchr(u, '?');
    size_t bl = q ? (size_t)(q - u) : strlen(u);
    char *url = xasprintf("%.*s/models-%s%s", (int)bl, u, rnd, q ? q : "");
    ASSERT_OK(store_blobs_configure(c.st, url, NULL, NULL, &e));
    free(url);
    if (jobs_models_store_put(c.st, c.reg, NULL, "kept/1", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    ASSERT_OK(store_blob_put(c.st, "models/kept--1/orphan-gen/weights.onnx", "x", 1));
    ASSERT_OK(store_blob_put(c.st, "wsmodels/wa/x/orphan-gen/weights.onnx", "x", 1));
    ASSERT_EQ(listed(&c, "models/kept--1"), 3);
    ASSERT_EQ(blob_files(&c, "kept--1"), 0); /* nothing in the local folder */
    ASSERT_EQ(jobs_models_store_sweep(c.st, 3600 * 1000), 0);
    ASSERT_EQ(jobs_models_store_sweep(c.st, 0), 2);
    ASSERT_EQ(listed(&c, "models/kept--1"), 2);
    ASSERT_EQ(listed(&c, "wsmodels"), 0);
    /* the live generation still loads from the bucket */
    struct model_registry *other = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    char err[512];
    int loaded = -1, bad = -1;
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 1);
    ASSERT_EQ(bad, 0);
    model_registry_free(other);
    if (jobs_models_store_delete(c.st, c.reg, NULL, "kept/1", &te) < 0)
        T_FAIL("%s", te.msg);
    ASSERT_EQ(listed(&c, "models"), 0);
    ctx_close(&c);
}

TEST(cpu_provider_rereads_the_table_for_an_unknown_model)
{
    struct ctx c;
    char err[1024];
    struct model_registry *worker_reg = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    struct jobs_models *jm = NULL;
    wf_model_infer_fn fn = NULL;
    wf_model_prepare_fn prep = NULL;
    void *ud = NULL;

    ctx_open(&c);
    /* the worker's registry is filled before the model exists */
    ASSERT_OK(model_registry_new(&o, &worker_reg, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, worker_reg, NULL, NULL));
    ASSERT_OK(jobs_models_new(worker_reg, c.dir, NULL, 1, &jm));
    jobs_models_set_store(jm, c.st);
    ASSERT_OK(jobs_models_select(jm, "cpu", NULL, true, &fn, &prep, &ud, err, sizeof err));

    struct vis_image *img = vis_image_new(64, 48, VIS_BGR);
    const struct vis_image *arr[1] = {img};
    struct wf_model_request req = {0};
    req.model_id = "later/1";
    req.task = "object-detection";
    json_t *out[1] = {NULL};
    ASSERT(fn(ud, &req, arr, 1, out, err, sizeof err) < 0);
    ASSERT(strstr(err, "later/1"));
    /* registered by "the server" (another registry, same store) */
    if (jobs_models_store_put(c.st, c.reg, NULL, "later/1", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    if (fn(ud, &req, arr, 1, out, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT(json_is_array(json_object_get(out[0], "predictions")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(out[0], "image"), "width")), 64);
    json_decref(out[0]);
    /* the provider's prepare companion pre-processes over the same registry */
    ASSERT(prep != NULL);
    struct vis_image *img2 = vis_image_new(64, 48, VIS_BGR);
    if (prep(ud, &req, img2, err, sizeof err) < 0)
        T_FAIL("%s", err);
    ASSERT(img2->aux != NULL);
    vis_image_free(img2);

    /* replaced elsewhere while tasks run: the periodic re-read follows it */
    setenv("VBATCH_MODELS_SYNC_MS", "0", 1);
    json_object_set_new(c.meta, "class_names", json_pack("[s,s,s]", "p", "q", "r"));
    if (jobs_models_store_put(c.st, c.reg, NULL, "later/1", c.onnx, c.len, c.meta, &te) < 0)
        T_FAIL("%s", te.msg);
    char *n0 = class0(worker_reg, "later/1");
    ASSERT_STR_EQ(n0, "circle");
    free(n0);
    if (fn(ud, &req, arr, 1, out, err, sizeof err) < 0)
        T_FAIL("%s", err);
    json_decref(out[0]);
    n0 = class0(worker_reg, "later/1");
    ASSERT_STR_EQ(n0, "p");
    free(n0);
    /* deleted elsewhere: dropped at the next re-read, then unknown */
    ASSERT_OK(jobs_models_store_delete(c.st, c.reg, NULL, "later/1", &te));
    ASSERT(fn(ud, &req, arr, 1, out, err, sizeof err) < 0);
    ASSERT(strstr(err, "later/1"));
    vis_image_free(img);
    jobs_models_free(jm);
    model_registry_free(worker_reg);
    ctx_close(&c);
}

/* class 0 of id as workspace ws sees it, malloc'd, or NULL. */
static char *class0_in(struct model_registry *reg, const char *ws, const char *id)
{
    struct model *m = NULL;
    char err[256];
    if (model_registry_get(reg, ws, id, &m, err, sizeof err) < 0)
        return NULL;
    char *s = xstrdup(model_class_name(m, 0));
    model_unref(m);
    return s;
}

static void put_named(struct ctx *c, const char *ws, const char *id, const char *cls, const char *alias)
{
    json_t *meta = json_deep_copy(c->meta);
    json_object_set_new(meta, "class_names", json_pack("[s,s,s]", cls, "y", "z"));
    if (alias)
        json_object_set_new(meta, "aliases", json_pack("[s]", alias));
    if (jobs_models_store_put(c->st, c->reg, ws, id, c->onnx, c->len, meta, &te) < 0)
        T_FAIL("%s", te.msg);
    json_decref(meta);
}

static void expect_class(struct model_registry *reg, const char *ws, const char *id, const char *want)
{
    char *got = class0_in(reg, ws, id);
    if (want ? !got || strcmp(got, want) != 0 : got != NULL)
        T_FAIL("%s as workspace %s sees it: class %s, expected %s", id, ws ? ws : "(none)", got ? got : "(none)",
               want ? want : "(none)");
    free(got);
}

TEST(workspace_scopes)
{
    struct ctx c;
    char err[1024];
    struct model_registry *other = NULL;
    struct model_registry_opts o = {.intra_op_threads = 1};
    int loaded = -1, bad = -1;

    ctx_open(&c);
    put_named(&c, "wa", "shared/1", "a-own", "a-alias");
    put_named(&c, "wb", "shared/1", "b-own", NULL);
    put_named(&c, NULL, "op/1", "op", "op-alias");
    put_named(&c, NULL, "over/1", "op-over", NULL);
    put_named(&c, "wa", "over/1", "a-over", NULL);
    /* blobs per scope */
    json_t *rows = NULL;
    ASSERT_OK(jobs_models_store_list(c.st, &rows));
    ASSERT_EQ((int)json_array_size(rows), 5);
    size_t i;
    json_t *v;
    json_array_foreach(rows, i, v)
    {
        const char *ws = json_string_value(json_object_get(v, "workspace"));
        const char *k = json_string_value(json_object_get(v, "weightsKey"));
        char *want = ws ? xasprintf("wsmodels/%s/", ws) : xstrdup("models/");
        ASSERT(str_has_prefix(k, want));
        free(want);
    }
    json_decref(rows);
    /* in this process and in another one that reads the table */
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 5);
    struct model_registry *regs[2] = {c.reg, other};
    for (int r = 0; r < 2; r++) {
        struct model_registry *reg = regs[r];
        expect_class(reg, "wa", "shared/1", "a-own");
        expect_class(reg, "wb", "shared/1", "b-own");
        expect_class(reg, "wc", "shared/1", NULL); /* a third workspace sees neither */
        expect_class(reg, NULL, "shared/1", NULL);
        /* the operator's: everyone; a workspace's own of that id first */
        expect_class(reg, "wa", "op/1", "op");
        expect_class(reg, "wc", "op/1", "op");
        expect_class(reg, NULL, "op/1", "op");
        expect_class(reg, "wa", "over/1", "a-over");
        expect_class(reg, "wb", "over/1", "op-over");
        /* aliases belong to their model's scope */
        expect_class(reg, "wa", "a-alias", "a-own");
        expect_class(reg, "wb", "a-alias", NULL);
        expect_class(reg, "wb", "op-alias", "op");
    }
    /* the wrong scope's delete finds nothing; the right one leaves the others */
    ASSERT_EQ(jobs_models_store_delete(c.st, c.reg, "wc", "shared/1", &te), ERR_NOTFOUND);
    ASSERT_EQ(jobs_models_store_delete(c.st, c.reg, NULL, "shared/1", &te), ERR_NOTFOUND);
    ASSERT_EQ(jobs_models_store_delete(c.st, c.reg, "wb", "op/1", &te), ERR_NOTFOUND);
    ASSERT_OK(jobs_models_store_delete(c.st, c.reg, "wb", "shared/1", &te));
    ASSERT_OK(jobs_models_store_delete(c.st, c.reg, "wa", "over/1", &te));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    for (int r = 0; r < 2; r++) {
        expect_class(regs[r], "wb", "shared/1", NULL);
        expect_class(regs[r], "wa", "shared/1", "a-own");
        expect_class(regs[r], "wa", "over/1", "op-over");
    }

    /* the providers look ids up in the job's workspace */
    struct jobs_models *jm = NULL;
    wf_model_infer_fn fn = NULL;
    wf_model_prepare_fn prep = NULL;
    void *ua = NULL, *ub = NULL, *ua2 = NULL;
    ASSERT_OK(jobs_models_new(other, c.dir, NULL, 1, &jm));
    jobs_models_set_store(jm, c.st);
    ASSERT_OK(jobs_models_select(jm, "cpu", "wa", true, &fn, &prep, &ua, err, sizeof err));
    ASSERT_OK(jobs_models_select(jm, "cpu", "wb", true, &fn, &prep, &ub, err, sizeof err));
    ASSERT_OK(jobs_models_select(jm, "cpu", "wa", true, &fn, &prep, &ua2, err, sizeof err));
    ASSERT(ua == ua2 && ua != ub);
    struct vis_image *img = vis_image_new(64, 48, VIS_BGR);
    const struct vis_image *arr[1] = {img};
    struct wf_model_request req = {.model_id = "shared/1", .task = "object-detection"};
    json_t *out[1] = {NULL};
    if (fn(ua, &req, arr, 1, out, err, sizeof err) < 0)
        T_FAIL("%s", err);
    json_decref(out[0]);
    ASSERT(fn(ub, &req, arr, 1, out, err, sizeof err) < 0);
    ASSERT(strstr(err, "unknown model 'shared/1'"));
    req.model_id = "op/1";
    if (fn(ub, &req, arr, 1, out, err, sizeof err) < 0)
        T_FAIL("%s", err);
    json_decref(out[0]);
    vis_image_free(img);
    jobs_models_free(jm);

    /* orphans of a workspace's generations are swept too */
    ASSERT_OK(store_blob_put(c.st, "wsmodels/wa/x/orphan-gen/weights.onnx", "x", 1));
    ASSERT_EQ(jobs_models_store_sweep(c.st, 0), 1);
    char *p = store_blob_path(c.st, "wsmodels/wa/x");
    ASSERT(access(p, F_OK) != 0);
    free(p);
    expect_class(c.reg, "wa", "shared/1", "a-own");
    model_registry_free(other);
    ASSERT_OK(model_registry_new(&o, &other, err, sizeof err));
    ASSERT_OK(jobs_models_store_sync(c.st, other, &loaded, &bad));
    ASSERT_EQ(loaded, 3);
    ASSERT_EQ(bad, 0);
    model_registry_free(other);
    ctx_close(&c);
}

TEST_MAIN()
