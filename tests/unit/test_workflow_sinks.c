/*
 * test_workflow_sinks.c — webhook_sink, local_file_sink and
 * environment_secrets_store (blocks/sinks.c).  Expected values follow
 * Roboflow's blocks (roboflow/inference core_steps/sinks/..., secrets_providers):
 * messages, the CSV header kept only in a new append-log file, JSON lines
 * as json.dumps() writes them, outputs named by the lowercased variables;
 * and vbatch's confinement: nothing outside the operator's folder is
 * written, only allow-listed variables are read.
 */
#include "t.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "workflow/wf_int.h"

/* Run def once over a 4x4 image; returns the "o" output (new ref) or NULL
 * with err. */
static json_t *run_def(const char *def, const struct wf_sinks *sinks, struct wf_state *state, const json_t *params,
                       char *err, size_t errlen)
{
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    struct vis_image *im = vis_image_new(4, 4, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 4);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, (json_t *)params};
    struct wf_env env = {NULL, NULL, 90, state, sinks};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    wf_free(wf);
    vis_image_free(im);
    return r;
}

#define HEAD                                                                                                   \
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"                      \
    "{\"type\":\"WorkflowParameter\",\"name\":\"p\"}],\"steps\":["
#define TAIL "],\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}"

/* ---- environment_secrets_store ---------------------------------------------------------------- */
TEST(secrets_only_allow_listed_lowercased)
{
    static const char *const allow[] = {"VB_TEST_SECRET_A", "VB_TEST_UNSET", NULL};
    struct wf_sinks sk = {.env_allow = allow};
    char err[512] = "";
    setenv("VB_TEST_SECRET_A", "s3cr3t", 1);
    setenv("VB_TEST_SECRET_B", "other", 1);
    unsetenv("VB_TEST_UNSET");
    const char *def = HEAD "{\"type\":\"roboflow_core/environment_secrets_store@v1\",\"name\":\"s\","
                           "\"variables_storing_secrets\":[\"VB_TEST_SECRET_A\",\"VB_TEST_UNSET\"]}" TAIL;
    json_t *o = run_def(def, &sk, NULL, NULL, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    /* outputs are the names lowercased (Roboflow's get_actual_outputs);
     * an unset variable is None (os.getenv) */
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "vb_test_secret_a")), "s3cr3t");
    ASSERT(json_is_null(json_object_get(o, "vb_test_unset")));
    ASSERT(!json_object_get(o, "VB_TEST_SECRET_A"));
    json_decref(o);
    /* a variable the operator did not allow-list: a step error */
    const char *bad = HEAD "{\"type\":\"roboflow_core/environment_secrets_store@v1\",\"name\":\"s\","
                           "\"variables_storing_secrets\":[\"VB_TEST_SECRET_B\"]}" TAIL;
    ASSERT(run_def(bad, &sk, NULL, NULL, err, sizeof err) == NULL);
    ASSERT(strstr(err, "cannot read 'VB_TEST_SECRET_B'"));
    ASSERT(strstr(err, "allow-lists"));
    /* no sinks settings at all: refused */
    ASSERT(run_def(def, NULL, NULL, NULL, err, sizeof err) == NULL);
    ASSERT(strstr(err, "forbidden"));
    /* min_items=1 */
    const char *empty = HEAD "{\"type\":\"roboflow_core/environment_secrets_store@v1\",\"name\":\"s\","
                             "\"variables_storing_secrets\":[]}" TAIL;
    ASSERT(run_def(empty, &sk, NULL, NULL, err, sizeof err) == NULL);
    ASSERT(strstr(err, "at least one"));
}

/* ---- local_file_sink ------------------------------------------------------------------------- */
static char *mkroot(void)
{
    char tmpl[] = "/tmp/vb_sink_XXXXXX";
    ASSERT(mkdtemp(tmpl) != NULL);
    return xstrdup(tmpl);
}

/* names of the regular files in dir, sorted, joined by '\n'; count in *n */
static int list_files(const char *dir, char names[][256], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) && n < max)
        if (e->d_name[0] != '.')
            snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (strcmp(names[a], names[b]) > 0) {
                char t[256];
                memcpy(t, names[a], 256);
                memcpy(names[a], names[b], 256);
                memcpy(names[b], t, 256);
            }
    return n;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, 1 << 20, &data, &len) < 0)
        return NULL;
    return data;
}

static char *file_def(const char *mode, const char *type, const char *target, const char *prefix, int max)
{
    return xasprintf(HEAD "{\"type\":\"roboflow_core/local_file_sink@v1\",\"name\":\"s\",\"content\":\"$inputs.p\","
                          "\"output_mode\":\"%s\",\"file_type\":\"%s\",\"target_directory\":\"%s\","
                          "\"file_name_prefix\":\"%s\",\"max_entries_per_file\":%d}" TAIL,
                     mode, type, target, prefix, max);
}

static json_t *file_run(const char *def, const char *root, struct wf_state *st, const char *content, char *err,
                        size_t errlen)
{
    struct wf_sinks sk = {.file_root = root};
    json_t *p = json_pack("{s:s}", "p", content);
    json_t *o = run_def(def, &sk, st, p, err, errlen);
    json_decref(p);
    return o;
}

TEST(file_sink_separate_files)
{
    char *root = mkroot(), err[512] = "", names[8][256];
    char *def = file_def("separate_files", "txt", "out/day1", "rep", 1024);
    json_t *o = file_run(def, root, NULL, "hello", err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Data saved successfully");
    json_decref(o);
    char *dir = xasprintf("%s/out/day1", root);
    ASSERT_EQ(list_files(dir, names, 8), 1);
    /* <prefix>_YYYY_MM_DD_HH_MM_SS_ffffff.txt, content + "\n" */
    ASSERT(!strncmp(names[0], "rep_", 4) && str_has_suffix(names[0], ".txt"));
    ASSERT_EQ(strlen(names[0]), strlen("rep_2026_01_01_00_00_00_000000.txt"));
    char *path = xasprintf("%s/%s", dir, names[0]);
    char *data = slurp(path);
    ASSERT_STR_EQ(data, "hello\n");
    free(data);
    free(path);
    /* a second run: a second file */
    o = file_run(def, root, NULL, "again\n", err, sizeof err);
    ASSERT(o && json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_EQ(list_files(dir, names, 8), 2);
    free(dir);
    free(def);
    /* in a job (a run identity): one name per run and step, a repeated run
     * (a retried task) replaces the file whole, no temporary left */
    def = file_def("separate_files", "txt", "job", "rep", 1024);
    struct wf_sinks jsk = {.file_root = root, .run_key = "j1_7_0"};
    for (int k = 0; k < 2; k++) {
        json_t *jp = json_pack("{s:s}", "p", k ? "second" : "first");
        o = run_def(def, &jsk, NULL, jp, err, sizeof err);
        json_decref(jp);
        ASSERT(o && json_is_false(json_object_get(o, "error_status")));
        json_decref(o);
    }
    dir = xasprintf("%s/job", root);
    ASSERT_EQ(list_files(dir, names, 8), 1);
    ASSERT_STR_EQ(names[0], "rep_j1_7_0_s.txt");
    path = xasprintf("%s/%s", dir, names[0]);
    data = slurp(path);
    ASSERT_STR_EQ(data, "second\n");
    free(data);
    free(path);
    free(dir);
    free(def);
    /* no folder configured: refused as Roboflow refuses without file system access */
    def = file_def("separate_files", "txt", "x", "rep", 1024);
    json_t *p = json_pack("{s:s}", "p", "x");
    ASSERT(run_def(def, NULL, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "local file system usage is forbidden"));
    json_decref(p);
    free(def);
    free(root);
}

/* Several elements in one run (an image's slices, crops): in a job each
 * element keeps a file of its own, none replaces another's. */
TEST(file_sink_separate_files_per_element_in_a_job)
{
    char *root = mkroot(), err[512] = "", names[8][256];
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["
        "{\"type\":\"roboflow_core/image_slicer@v1\",\"name\":\"sl\",\"image\":\"$inputs.image\","
        "\"slice_width\":2,\"slice_height\":2,\"overlap_ratio_width\":0,\"overlap_ratio_height\":0},"
        "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"w\",\"data\":\"$steps.sl.slices\","
        "\"operations\":[{\"type\":\"ConvertImageToBase64\"}]},"
        "{\"type\":\"roboflow_core/local_file_sink@v1\",\"name\":\"s\",\"content\":\"$steps.w.output\","
        "\"output_mode\":\"separate_files\",\"file_type\":\"txt\",\"target_directory\":\"e\","
        "\"file_name_prefix\":\"rep\",\"max_entries_per_file\":1024}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}";
    /* outside a job: one timestamped file per slice */
    struct wf_sinks sk = {.file_root = root};
    json_t *o = run_def(def, &sk, NULL, NULL, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT_EQ(json_array_size(o), 4);
    json_decref(o);
    char *dir = xasprintf("%s/e", root);
    ASSERT_EQ(list_files(dir, names, 8), 4);
    for (int k = 0; k < 4; k++) {
        char *path = xasprintf("%s/%s", dir, names[k]);
        unlink(path);
        free(path);
    }
    /* in a job: still one file per slice */
    struct wf_sinks jsk = {.file_root = root, .run_key = "j1_7_0"};
    o = run_def(def, &jsk, NULL, NULL, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT_EQ(json_array_size(o), 4);
    json_decref(o);
    ASSERT_EQ(list_files(dir, names, 8), 4);
    for (int k = 0; k < 4; k++) {
        char want[64];
        snprintf(want, sizeof want, "rep_j1_7_0_s.%d.txt", k);
        ASSERT_STR_EQ(names[k], want);
    }
    free(dir);
    free(root);
}

TEST(file_sink_refuses_escapes)
{
    char *root = mkroot(), *outside = mkroot(), err[512] = "", names[8][256];
    /* a symbolic link inside the folder that points outside it */
    char *link = xasprintf("%s/link", root);
    ASSERT_EQ(symlink(outside, link), 0);
    static const char *const bad[] = {"../escape", "a/../../escape", "/tmp/abs", "link", "link/sub"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char *def = file_def("separate_files", "txt", bad[k], "rep", 1024);
        json_t *o = file_run(def, root, NULL, "x", err, sizeof err);
        if (!o)
            T_FAIL("%s: %s", bad[k], err);
        if (!json_is_true(json_object_get(o, "error_status")))
            T_FAIL("%s: written", bad[k]);
        json_decref(o);
        free(def);
    }
    ASSERT_EQ(list_files(outside, names, 8), 0);
    char *parent = xasprintf("%s/../escape", root);
    struct stat sb;
    ASSERT(stat(parent, &sb) < 0);
    free(parent);
    /* a prefix with a '/' */
    char *def = file_def("separate_files", "txt", "ok", "../../x", 1024);
    json_t *o = file_run(def, root, NULL, "x", err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
    free(def);
    /* a file name that is a symbolic link is not followed (O_NOFOLLOW|O_EXCL):
     * the only way in is the directory walk, checked above */
    unlink(link);
    free(link);
    rmdir(outside);
    free(outside);
    free(root);
}

TEST(file_sink_append_log_csv_and_rotation)
{
    char *root = mkroot(), err[512] = "", names[8][256];
    struct wf_state *st = wf_state_new();
    char *def = file_def("append_log", "csv", "log", "rows", 2);
    static const char *const rows[] = {"a,b\n1,2\n", "a,b\n3,4\n", "a,b\n5,6"};
    for (int k = 0; k < 3; k++) {
        json_t *o = file_run(def, root, st, rows[k], err, sizeof err);
        if (!o)
            T_FAIL("run %d: %s", k, err);
        ASSERT(json_is_false(json_object_get(o, "error_status")));
        json_decref(o);
    }
    char *dir = xasprintf("%s/log", root);
    /* 2 entries per file: the third opened a new file, with its header */
    ASSERT_EQ(list_files(dir, names, 8), 2);
    char *p0 = xasprintf("%s/%s", dir, names[0]), *p1 = xasprintf("%s/%s", dir, names[1]);
    char *d0 = slurp(p0), *d1 = slurp(p1);
    ASSERT_STR_EQ(d0, "a,b\n1,2\n3,4\n");
    ASSERT_STR_EQ(d1, "a,b\n5,6\n");
    free(d0);
    free(d1);
    free(p0);
    free(p1);
    free(dir);
    free(def);
    wf_state_free(st);
    /* JSON lines: json.dumps of the parsed content, one per line, .jsonl */
    st = wf_state_new();
    def = file_def("append_log", "json", "j", "rows", 1024);
    json_t *o = file_run(def, root, st, "{\"a\":1,\"b\":[1,2],\"c\":\"\xc3\xa9\"}", err, sizeof err);
    ASSERT(o && json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    o = file_run(def, root, st, "not json", err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Invalid JSON content");
    json_decref(o);
    dir = xasprintf("%s/j", root);
    ASSERT_EQ(list_files(dir, names, 8), 1);
    ASSERT(str_has_suffix(names[0], ".jsonl"));
    p0 = xasprintf("%s/%s", dir, names[0]);
    d0 = slurp(p0);
    ASSERT_STR_EQ(d0, "{\"a\": 1, \"b\": [1, 2], \"c\": \"\\u00e9\"}\n");
    free(d0);
    free(p0);
    free(dir);
    free(def);
    wf_state_free(st);
    free(root);
}

/* ---- webhook_sink ------------------------------------------------------------------------------ */
struct hook_log {
    int n;
    char url[8][512];
    char payload[8][1024];
    int fail;
};

static int fake_hook(void *ud, const char *step, const char *url, const char *payload, char *err, size_t errlen)
{
    struct hook_log *h = ud;
    ASSERT_STR_EQ(step, "s");
    if (h->fail) {
        snprintf(err, errlen, "url refused: private address");
        return ERR_INVALID;
    }
    if (h->n < 8) {
        snprintf(h->url[h->n], 512, "%s", url);
        snprintf(h->payload[h->n], 1024, "%s", payload);
    }
    h->n++;
    return 0;
}

static char *hook_def(const char *extra)
{
    return xasprintf(HEAD "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"n\",\"data\":\"$inputs.p\","
                          "\"operations\":[{\"type\":\"SequenceLength\"}]},"
                          "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h.example/x\","
                          "\"method\":\"POST\",\"json_payload\":{\"count\":\"$steps.n.output\",\"tag\":\"t\","
                          "\"p\":\"$inputs.p\"},\"json_payload_operations\":{\"p\":[{\"type\":"
                          "\"StringToUpperCase\"}]}%s}" TAIL,
                     extra);
}

TEST(webhook_sink_payload_query_and_messages)
{
    struct hook_log h = {0};
    struct wf_sinks sk = {.webhook = fake_hook, .webhook_ud = &h};
    char err[512] = "";
    char *def = hook_def(",\"query_parameters\":{\"a b\":\"c&d\",\"n\":[1,2]},\"cooldown_seconds\":0");
    json_t *p = json_pack("{s:s}", "p", "abc");
    json_t *o = run_def(def, &sk, NULL, p, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT(json_is_false(json_object_get(o, "throttling_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Notification sent in the background task");
    json_decref(o);
    ASSERT_EQ(h.n, 1);
    /* requests' encoding of params: quote_plus would give "a+b"; we send %20 */
    ASSERT_STR_EQ(h.url[0], "http://h.example/x?a%20b=c%26d&n=1&n=2");
    json_t *pl = json_loads(h.payload[0], 0, NULL);
    ASSERT(pl);
    ASSERT_EQ(json_integer_value(json_object_get(pl, "count")), 3);
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "tag")), "t");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "p")), "ABC");
    json_decref(pl);
    free(def);

    /* disable_sink */
    def = hook_def(",\"disable_sink\":true");
    o = run_def(def, &sk, NULL, p, err, sizeof err);
    ASSERT(o);
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Sink was disabled by parameter `disable_sink`");
    ASSERT_EQ(h.n, 1);
    json_decref(o);
    free(def);

    /* cooldown: frames of one video share the step's state */
    struct wf_state *st = wf_state_new();
    def = hook_def(",\"cooldown_seconds\":60,\"fire_and_forget\":false");
    o = run_def(def, &sk, st, p, err, sizeof err);
    ASSERT(o && json_is_false(json_object_get(o, "throttling_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Notification queued in the durable outbox");
    json_decref(o);
    o = run_def(def, &sk, st, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "throttling_status")));
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Sink cooldown applies");
    json_decref(o);
    ASSERT_EQ(h.n, 2);
    wf_state_free(st);
    free(def);

    /* the outbox refuses the URL: error_status, not a step error */
    h.fail = 1;
    def = hook_def(",\"cooldown_seconds\":0");
    o = run_def(def, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "private address"));
    json_decref(o);
    h.fail = 0;
    free(def);

    /* GET and headers need the request form of the outbox (webhook_req) */
    def = xasprintf(HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\","
                         "\"method\":\"GET\"}" TAIL);
    o = run_def(def, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "not served here"));
    json_decref(o);
    free(def);
    def = xasprintf(HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\","
                         "\"method\":\"POST\",\"headers\":{\"X-A\":\"1\"}}" TAIL);
    o = run_def(def, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_EQ(h.n, 2);
    free(def);
    def = hook_def("");
    ASSERT(run_def(def, NULL, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "no webhook outbox"));
    free(def);
    /* malformed operations: compile error */
    def = xasprintf(HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\","
                         "\"method\":\"POST\",\"json_payload_operations\":{\"a\":[{\"type\":\"Nope\"}]}}" TAIL);
    ASSERT(run_def(def, &sk, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "json_payload_operations"));
    free(def);
    json_decref(p);
}

/* The request form: method, headers, form data and files, as the outbox
 * gets them (store_outbox_enqueue_once's req). */
static char last_req[8192];

static int fake_hook_req(void *ud, const char *step, const char *url, const char *payload, const char *req,
                         char *err, size_t errlen)
{
    snprintf(last_req, sizeof last_req, "%s", req);
    return fake_hook(ud, step, url, payload, err, errlen);
}

TEST(webhook_sink_methods_headers_form_files)
{
    struct hook_log h = {0};
    struct wf_sinks sk = {.webhook = fake_hook, .webhook_ud = &h, .webhook_req = fake_hook_req};
    char err[512] = "";
    json_t *p = json_pack("{s:s}", "p", "abc");
    char *def = xasprintf(
        HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\",\"method\":\"PUT\","
             "\"headers\":{\"Authorization\":\"Bearer u\",\"X-N\":\"$inputs.p\"},"
             "\"form_data\":{\"f\":\"$inputs.p\",\"g\":7},\"form_data_operations\":{\"f\":[{\"type\":"
             "\"StringToUpperCase\"}]},"
             "\"multi_part_encoded_files\":{\"img\":\"$inputs.image\",\"txt\":\"$inputs.p\"},"
             "\"json_payload\":{\"a\":1},\"cooldown_seconds\":0}" TAIL);
    json_t *o = run_def(def, &sk, NULL, p, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_EQ(h.n, 1);
    json_t *r = json_loads(last_req, 0, NULL);
    ASSERT(r);
    ASSERT_STR_EQ(json_string_value(json_object_get(r, "method")), "PUT");
    json_t *hd = json_object_get(r, "headers"), *fm = json_object_get(r, "form"), *fl = json_object_get(r, "files");
    ASSERT_STR_EQ(json_string_value(json_object_get(hd, "Authorization")), "Bearer u");
    ASSERT_STR_EQ(json_string_value(json_object_get(hd, "X-N")), "abc");
    /* form values as str(): the operation applied, a number as text */
    ASSERT_STR_EQ(json_string_value(json_object_get(fm, "f")), "ABC");
    ASSERT_STR_EQ(json_string_value(json_object_get(fm, "g")), "7");
    /* files: a string's bytes, an image as its JPEG */
    ASSERT_STR_EQ(json_string_value(json_object_get(fl, "txt")), "YWJj");
    size_t n = 0;
    const char *b64 = json_string_value(json_object_get(fl, "img"));
    ASSERT(b64);
    uint8_t *jpg = base64_decode(b64, strlen(b64), &n);
    ASSERT(jpg && n > 4 && jpg[0] == 0xFF && jpg[1] == 0xD8);
    free(jpg);
    json_decref(r);
    free(def);
    /* GET with only a header: no form, no files in the request */
    def = xasprintf(HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\","
                         "\"method\":\"GET\",\"headers\":{\"X-A\":\"1\"}}" TAIL);
    o = run_def(def, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_STR_EQ(last_req, "{\"method\":\"GET\",\"headers\":{\"X-A\":\"1\"}}");
    free(def);
    /* header injection: refused, nothing queued */
    json_t *bad = json_pack("{s:s}", "p", "a\r\nX-Evil: 1");
    def = xasprintf(HEAD "{\"type\":\"roboflow_core/webhook_sink@v1\",\"name\":\"s\",\"url\":\"http://h/x\","
                         "\"method\":\"POST\",\"headers\":{\"X-A\":\"$inputs.p\"}}" TAIL);
    int before = h.n;
    o = run_def(def, &sk, NULL, bad, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "header 'X-A' is not valid"));
    ASSERT_EQ(h.n, before);
    json_decref(o);
    json_decref(bad);
    free(def);
    json_decref(p);
}

/* A step name with '/' (compile bans only '.' and control characters) or
 * a long one in a job's file name: mapped to '_' with a hash, bounded, in
 * the target folder itself (it was ENOENT, a folder "a" that does not
 * exist; a 250-byte name was ENAMETOOLONG). */
TEST(file_sink_step_names_made_file_names)
{
    char *root = mkroot(), err[512] = "", names[8][256];
    char long_name[251];
    memset(long_name, 'x', 250);
    long_name[250] = 0;
    const char *steps[] = {"a/b", "sp ace", long_name + 122}; /* 128: the longest step name */
    struct wf_sinks jsk = {.file_root = root, .run_key = "j1_7_0"};
    for (size_t k = 0; k < ARRAY_LEN(steps); k++) {
        char *def = xasprintf("{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowParameter\",\"name\":\"p\"}],"
                              "\"steps\":[{\"type\":\"roboflow_core/local_file_sink@v1\",\"name\":\"%s\","
                              "\"content\":\"$inputs.p\",\"output_mode\":\"separate_files\",\"file_type\":\"txt\","
                              "\"target_directory\":\"n\",\"file_name_prefix\":\"%s\"}],"
                              "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$inputs.p\"}]}",
                              steps[k], k == 2 ? long_name + 50 : "rep");
        json_t *jp = json_pack("{s:s}", "p", "v");
        json_t *o = run_def(def, &jsk, NULL, jp, err, sizeof err);
        json_decref(jp);
        if (!o)
            T_FAIL("run %zu: %s", k, err);
        json_decref(o); /* (a selector cannot name such a step: the files tell) */
        free(def);
    }
    char *dir = xasprintf("%s/n", root);
    ASSERT_EQ(list_files(dir, names, 8), 3);
    int slash = 0, up = 0, lng = 0;
    for (int k = 0; k < 3; k++) {
        ASSERT(strlen(names[k]) <= 200);
        ASSERT(str_has_suffix(names[k], ".txt"));
        slash += !strncmp(names[k], "rep_j1_7_0_a_b-", 15) && strlen(names[k]) == 15 + 16 + 4;
        up += !strncmp(names[k], "rep_j1_7_0_sp_ace-", 18);
        lng += names[k][0] == 'x';
    }
    ASSERT_EQ(slash, 1);
    ASSERT_EQ(up, 1);
    ASSERT_EQ(lng, 1);
    /* nothing outside the target folder */
    char *parent = xasprintf("%s", root);
    ASSERT_EQ(list_files(parent, names, 8), 1); /* only "n" */
    free(parent);
    free(dir);
    free(root);
}

/* ---- email_notification ----------------------------------------------------------------------- */
struct mail_log {
    int n;
    char server[128], user[128], pass[128], from[128], msg[16384], rcpt[512];
    int port;
};

static int fake_mail(void *ud, const char *step, const struct wf_email *m, char *err, size_t errlen)
{
    struct mail_log *l = ud;
    (void)err;
    (void)errlen;
    ASSERT_STR_EQ(step, "s");
    l->n++;
    snprintf(l->server, sizeof l->server, "%s", m->server);
    snprintf(l->user, sizeof l->user, "%s", m->user);
    snprintf(l->pass, sizeof l->pass, "%s", m->password ? m->password : "(none)");
    snprintf(l->from, sizeof l->from, "%s", m->from);
    snprintf(l->msg, sizeof l->msg, "%s", m->message);
    l->rcpt[0] = 0;
    for (size_t k = 0; k < m->nrcpt; k++) {
        strcat(l->rcpt, m->rcpt[k]);
        strcat(l->rcpt, ";");
    }
    l->port = m->port;
    return 0;
}

TEST(email_notification_message_and_recipients)
{
    struct mail_log l = {0};
    struct wf_sinks sk = {.webhook_ud = &l, .email = fake_mail};
    char err[512] = "";
    /* Roboflow's format_email_message: {{ $parameters.x }} with the value
     * after its operations, str() of non-strings; unknown placeholders kept */
    const char *def = HEAD
        "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"n\",\"data\":\"$inputs.p\","
        "\"operations\":[{\"type\":\"SequenceLength\"}]},"
        "{\"type\":\"roboflow_core/email_notification@v1\",\"name\":\"s\",\"subject\":\"Alert \xc3\xa9\","
        "\"sender_email\":\"cam@example.org\",\"receiver_email\":[\"a@example.org\",\"b@example.org\"],"
        "\"cc_receiver_email\":\"c@example.org\",\"bcc_receiver_email\":[\"d@example.org\"],"
        "\"message\":\"Seen {{ $parameters.count }} / {{$parameters.name}} {{ $parameters.other }}\\nbye\","
        "\"message_parameters\":{\"count\":\"$steps.n.output\",\"name\":\"$inputs.p\",\"f\":1.5},"
        "\"message_parameters_operations\":{\"name\":[{\"type\":\"StringToUpperCase\"}]},"
        "\"smtp_server\":\"smtp.example.org\",\"sender_email_password\":\"pw\",\"smtp_port\":2525}" TAIL;
    json_t *p = json_pack("{s:s}", "p", "abc");
    json_t *o = run_def(def, &sk, NULL, p, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Notification sent in the background task");
    json_decref(o);
    ASSERT_EQ(l.n, 1);
    ASSERT_STR_EQ(l.server, "smtp.example.org");
    ASSERT_EQ(l.port, 2525);
    ASSERT_STR_EQ(l.user, "cam@example.org");
    ASSERT_STR_EQ(l.pass, "pw");
    ASSERT_STR_EQ(l.rcpt, "a@example.org;b@example.org;c@example.org;d@example.org;");
    ASSERT_STR_EQ(l.msg, "From: cam@example.org\r\nTo: a@example.org, b@example.org\r\nCc: c@example.org\r\n"
                         "Subject: =?utf-8?b?QWxlcnQgw6k=?=\r\nMIME-Version: 1.0\r\n"
                         "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                         "Seen 3 / ABC {{ $parameters.other }}\r\nbye\r\n");
    /* header injection through an address */
    json_t *p2 = json_pack("{s:s}", "p", "x@example.org\r\nBcc: evil@example.org");
    const char *def2 = HEAD "{\"type\":\"roboflow_core/email_notification@v1\",\"name\":\"s\",\"subject\":\"s\","
                            "\"sender_email\":\"cam@example.org\",\"receiver_email\":\"$inputs.p\",\"message\":\"m\","
                            "\"smtp_server\":\"h\",\"sender_email_password\":\"pw\"}" TAIL;
    o = run_def(def2, &sk, NULL, p2, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
    json_decref(p2);
    ASSERT_EQ(l.n, 1);
    /* v2 with Roboflow's managed sender: a cloud service, refused at compile time */
    const char *def3 = HEAD "{\"type\":\"roboflow_core/email_notification@v2\",\"name\":\"s\",\"subject\":\"s\","
                            "\"receiver_email\":\"a@example.org\",\"message\":\"m\"}" TAIL;
    ASSERT(run_def(def3, &sk, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "needs a cloud service"));
    /* v2 Custom SMTP, disabled */
    const char *def4 = HEAD "{\"type\":\"roboflow_core/email_notification@v2\",\"name\":\"s\",\"subject\":\"s\","
                            "\"email_provider\":\"Custom SMTP\",\"sender_email\":\"cam@example.org\","
                            "\"smtp_server\":\"h\",\"receiver_email\":\"a@example.org\",\"message\":\"m\","
                            "\"disable_sink\":true}" TAIL;
    o = run_def(def4, &sk, NULL, p, err, sizeof err);
    ASSERT(o);
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Sink was disabled by parameter `disable_sink`");
    json_decref(o);
    ASSERT_EQ(l.n, 1);
    /* no SMTP sender (not a job): step error */
    ASSERT(run_def(def, NULL, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "no SMTP sender"));
    json_decref(p);
}


/* Roboflow's _send_email_using_smtp_server with attachments: multipart/mixed,
 * the text part, then per key application/octet-stream base64 with the key
 * as file name; v2's process_attachments: an image as its JPEG, a string as
 * its UTF-8 bytes, anything else str(). */
TEST(email_notification_attachments_mime)
{
    struct mail_log l = {0};
    struct wf_sinks sk = {.webhook_ud = &l, .email = fake_mail};
    char err[512] = "";
    json_t *p = json_pack("{s:s}", "p", "abc");
    const char *def = HEAD
        "{\"type\":\"roboflow_core/email_notification@v2\",\"name\":\"s\",\"subject\":\"s\","
        "\"email_provider\":\"Custom SMTP\",\"sender_email\":\"cam@example.org\",\"smtp_server\":\"h\","
        "\"receiver_email\":\"a@example.org\",\"message\":\"see =_vbatch_0\\nbye\",\"cooldown_seconds\":0,"
        "\"attachments\":{\"report.csv\":\"a,b\\n1,2\\n\",\"long \\\"q\\\".txt\":\"%s\",\"n\xc3\xa9.txt\":\"$inputs.p\","
        "\"num\":2.0,\"frame\":\"$inputs.image\"}}" TAIL;
    char x100[101];
    memset(x100, 'x', 100);
    x100[100] = 0;
    char *d = xasprintf(def, x100);
    json_t *o = run_def(d, &sk, NULL, p, err, sizeof err);
    free(d);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_EQ(l.n, 1);
    /* the body holds "=_vbatch_0": the boundary is the next one */
#define PART "\r\n--=_vbatch_1\r\nContent-Type: application/octet-stream\r\nMIME-Version: 1.0\r\n" \
             "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
    const char *want =
        "From: cam@example.org\r\nTo: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"=_vbatch_1\"\r\n\r\n--=_vbatch_1\r\n"
        "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nsee =_vbatch_0\r\nbye"
        PART "filename=\"report.csv\"\r\n\r\nYSxiCjEsMgo="
        PART "filename=\"long \\\"q\\\".txt\"\r\n\r\n"
        "B76\r\nB60"
        PART "filename*=utf-8''n%C3%A9.txt\r\n\r\nYWJj"
        PART "filename=\"num\"\r\n\r\nMi4w"
        PART "filename=\"frame\"\r\n\r\n";
#undef PART
    char wbuf[4096];
    snprintf(wbuf, sizeof wbuf, "%s", want);
    /* the 136 base64 characters of 100 'x' in lines of 76 */
    char *pos = strstr(wbuf, "B76\r\nB60");
    ASSERT(pos);
    const char *b = "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==";
    char tail[2048];
    snprintf(tail, sizeof tail, "%s", pos + 8);
    snprintf(pos, sizeof wbuf - (size_t)(pos - wbuf), "%.76s\r\n%s%s", b, b + 76, tail);
    ASSERT(strlen(l.msg) > strlen(wbuf));
    char *got = xstrndup(l.msg, strlen(wbuf));
    ASSERT_STR_EQ(got, wbuf);
    free(got);
    /* the image part: the JPEG of the 4x4 image, ending the message */
    const char *img = l.msg + strlen(wbuf);
    const char *end = strstr(img, "\r\n--=_vbatch_1--\r\n");
    ASSERT(end && end[18] == 0);
    char *flat = xmalloc((size_t)(end - img) + 1);
    size_t fn = 0;
    for (const char *q = img; q < end; q++)
        if (*q != '\r' && *q != '\n')
            flat[fn++] = *q;
    size_t jn = 0;
    uint8_t *jpeg = base64_decode(flat, fn, &jn);
    ASSERT(jpeg && jn > 100);
    ASSERT(jpeg[0] == 0xff && jpeg[1] == 0xd8 && jpeg[jn - 2] == 0xff && jpeg[jn - 1] == 0xd9);
    free(jpeg);
    free(flat);

    /* limits: a name with a line break, 33 attachments: error_status, nothing sent */
    const char *bad1 = HEAD
        "{\"type\":\"roboflow_core/email_notification@v1\",\"name\":\"s\",\"subject\":\"s\","
        "\"sender_email\":\"cam@example.org\",\"smtp_server\":\"h\",\"sender_email_password\":\"pw\","
        "\"receiver_email\":\"a@example.org\",\"message\":\"m\",\"cooldown_seconds\":0,"
        "\"attachments\":{\"a\\r\\nX-Evil: 1\":\"t\"}}" TAIL;
    o = run_def(bad1, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "control characters"));
    json_decref(o);
    char many[4096];
    size_t ml = (size_t)snprintf(many, sizeof many, "%s",
                                 HEAD "{\"type\":\"roboflow_core/email_notification@v1\",\"name\":\"s\",\"subject\":\"s\","
                                      "\"sender_email\":\"cam@example.org\",\"smtp_server\":\"h\","
                                      "\"sender_email_password\":\"pw\",\"receiver_email\":\"a@example.org\","
                                      "\"message\":\"m\",\"cooldown_seconds\":0,\"attachments\":{");
    for (int k = 0; k < 33; k++)
        ml += (size_t)snprintf(many + ml, sizeof many - ml, "%s\"f%d\":\"t\"", k ? "," : "", k);
    snprintf(many + ml, sizeof many - ml, "}}" TAIL);
    o = run_def(many, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "more than 32 attachments"));
    json_decref(o);
    ASSERT_EQ(l.n, 1);
    json_decref(p);
}

/* Several elements in one run (an image's slices): each email has its
 * own step key "<step>.<i>" (its Message-ID), as the other sinks' keys. */
static int steps_mail(void *ud, const char *step, const struct wf_email *m, char *err, size_t errlen)
{
    struct buf *b = ud;
    (void)m;
    (void)err;
    (void)errlen;
    buf_printf(b, "%s;", step);
    return 0;
}

TEST(email_notification_one_key_per_element)
{
    struct buf got = BUF_INIT;
    struct wf_sinks sk = {.webhook_ud = &got, .email = steps_mail};
    char err[512] = "";
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["
        "{\"type\":\"roboflow_core/image_slicer@v1\",\"name\":\"sl\",\"image\":\"$inputs.image\","
        "\"slice_width\":2,\"slice_height\":2,\"overlap_ratio_width\":0,\"overlap_ratio_height\":0},"
        "{\"type\":\"roboflow_core/email_notification@v1\",\"name\":\"m\",\"subject\":\"s\","
        "\"sender_email\":\"cam@example.org\",\"smtp_server\":\"h\",\"sender_email_password\":\"pw\","
        "\"receiver_email\":\"a@example.org\",\"message\":\"m\",\"cooldown_seconds\":0,"
        "\"attachments\":{\"a.jpg\":\"$steps.sl.slices\"}}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.m.*\"}]}";
    json_t *o = run_def(def, &sk, NULL, NULL, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT_EQ(json_array_size(o), 4);
    json_decref(o);
    ASSERT(got.data != NULL);
    ASSERT_STR_EQ(got.data, "m.0;m.1;m.2;m.3;");
    buf_release(&got);
}

/* ---- slack_notification ----------------------------------------------------------------------- */
/* Roboflow's chat.postMessage (channel, text after format_message) with the
 * token as a Bearer header, POSTed to the operator's Slack API base URL
 * through webhook_req (the outbox); without the URL a step error naming the
 * flag. */
TEST(slack_notification_post_message)
{
    struct hook_log h = {0};
    struct wf_sinks sk = {.webhook = fake_hook, .webhook_ud = &h, .webhook_req = fake_hook_req,
                          .slack_api_url = "http://slack.local/api/"};
    char err[512] = "";
    json_t *p = json_pack("{s:s}", "p", "abc");
    const char *def = HEAD
        "{\"type\":\"roboflow_core/slack_notification@v1\",\"name\":\"s\",\"slack_token\":\"xoxb-1\","
        "\"channel\":\"#alerts\",\"message\":\"Seen {{ $parameters.x }} \\u00e9\","
        "\"message_parameters\":{\"x\":\"$inputs.p\"},"
        "\"message_parameters_operations\":{\"x\":[{\"type\":\"StringToUpperCase\"}]},"
        "\"cooldown_seconds\":0,\"cooldown_session_key\":\"k\"}" TAIL;
    json_t *o = run_def(def, &sk, NULL, p, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")), "Notification sent in the background task");
    json_decref(o);
    ASSERT_EQ(h.n, 1);
    ASSERT_STR_EQ(h.url[0], "http://slack.local/api/chat.postMessage");
    json_t *pl = json_loads(h.payload[0], 0, NULL);
    ASSERT(pl);
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "channel")), "#alerts");
    ASSERT_STR_EQ(json_string_value(json_object_get(pl, "text")), "Seen ABC \xc3\xa9");
    json_decref(pl);
    ASSERT_STR_EQ(last_req, "{\"method\":\"POST\",\"headers\":{\"Authorization\":\"Bearer xoxb-1\"},\"slack_ok\":true}");
    /* attachments: one slack_upload request (files_upload_v2) with each
     * file's bytes, the message as the initial comment */
    const char *def2 = HEAD
        "{\"type\":\"roboflow_core/slack_notification@v1\",\"name\":\"s\",\"slack_token\":\"xoxb-1\","
        "\"channel\":\"C1\",\"message\":\"m\",\"attachments\":{\"a.csv\":\"$inputs.p\"},"
        "\"cooldown_seconds\":0,\"cooldown_session_key\":\"k\"}" TAIL;
    o = run_def(def2, &sk, NULL, p, err, sizeof err);
    ASSERT(o && json_is_false(json_object_get(o, "error_status")));
    json_decref(o);
    ASSERT_EQ(h.n, 2);
    ASSERT_STR_EQ(h.url[1], "http://slack.local/api/files.completeUploadExternal");
    ASSERT_STR_EQ(last_req, "{\"kind\":\"slack_upload\",\"api\":\"http://slack.local/api\",\"token\":\"xoxb-1\","
                            "\"channel\":\"C1\",\"comment\":\"m\",\"files\":[{\"name\":\"a.csv\",\"data\":\"YWJj\"}]}");
    /* a token with a line break (header injection): error_status */
    json_t *bad = json_pack("{s:s}", "p", "t\r\nX-Evil: 1");
    const char *def3 = HEAD
        "{\"type\":\"roboflow_core/slack_notification@v1\",\"name\":\"s\",\"slack_token\":\"$inputs.p\","
        "\"channel\":\"C1\",\"message\":\"m\",\"cooldown_seconds\":0,\"cooldown_session_key\":\"k\"}" TAIL;
    o = run_def(def3, &sk, NULL, bad, err, sizeof err);
    ASSERT(o && json_is_true(json_object_get(o, "error_status")));
    json_decref(o);
    json_decref(bad);
    ASSERT_EQ(h.n, 2);
    /* no API URL configured: a step error naming the flag */
    struct wf_sinks nourl = {.webhook = fake_hook, .webhook_ud = &h, .webhook_req = fake_hook_req};
    ASSERT(run_def(def, &nourl, NULL, p, err, sizeof err) == NULL);
    ASSERT(strstr(err, "--slack-api-url"));
    ASSERT_EQ(h.n, 2);
    json_decref(p);
}

/* ---- s3_sink ------------------------------------------------------------------------------------ */
struct fake_s3 {
    int calls;
    char bucket[64], dir[128], name[64], ext[16], data[256];
};

static int fake_s3(void *ud, const char *step, const char *bucket, const char *dir, const char *name,
                   const char *ext, const char *data, size_t len, char *key, size_t keylen, char *err,
                   size_t errlen)
{
    struct fake_s3 *f = ud;
    f->calls++;
    snprintf(f->bucket, sizeof f->bucket, "%s", bucket);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->ext, sizeof f->ext, "%s", ext);
    snprintf(f->data, sizeof f->data, "%.*s", (int)len, data);
    if (strcmp(bucket, "ok-bucket") != 0) {
        snprintf(err, errlen, "bucket '%s' refused", bucket);
        return ERR_INVALID;
    }
    snprintf(key, keylen, "%s%s%s_ID_%s.%s", dir, *dir ? "/" : "", name, step, ext);
    return 0;
}

static char *s3_def(const char *mode, const char *type, const char *bucket, const char *prefix)
{
    return xasprintf(HEAD "{\"type\":\"roboflow_core/s3_sink@v1\",\"name\":\"s\",\"content\":\"$inputs.p\","
                          "\"output_mode\":\"%s\",\"file_type\":\"%s\",\"bucket_name\":\"%s\","
                          "\"s3_prefix\":\"%s\",\"file_name_prefix\":\"run\"}" TAIL,
                     mode, type, bucket, prefix);
}

TEST(s3_sink_keys_modes_and_refusals)
{
    struct fake_s3 f = {0};
    struct wf_sinks sk = {.webhook_ud = &f, .s3 = fake_s3};
    char err[512] = "";
    json_t *params = json_pack("{s:s}", "p", "a,b\n1,2");
    /* separate_files: the content as is; s3_prefix's trailing '/' dropped
     * (Roboflow's rstrip("/")); message names the object */
    char *def = s3_def("separate_files", "csv", "ok-bucket", "logs/det/");
    json_t *o = run_def(def, &sk, NULL, params, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT_EQ(f.calls, 1);
    ASSERT_STR_EQ(f.dir, "logs/det");
    ASSERT_STR_EQ(f.name, "run");
    ASSERT_STR_EQ(f.ext, "csv");
    ASSERT_STR_EQ(f.data, "a,b\n1,2");
    ASSERT(json_is_false(json_object_get(o, "error_status")));
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")),
                  "Data queued for upload to s3://ok-bucket/logs/det/run_ID_s.csv");
    json_decref(o);
    free(def);
    /* append_log json: one json.dumps() line, .jsonl */
    json_decref(params);
    params = json_pack("{s:s}", "p", "{\"a\":  [1, 2], \"b\": \"\\u00e9\"}");
    def = s3_def("append_log", "json", "ok-bucket", "");
    o = run_def(def, &sk, NULL, params, err, sizeof err);
    ASSERT(o != NULL);
    ASSERT_STR_EQ(f.dir, "");
    ASSERT_STR_EQ(f.ext, "jsonl");
    ASSERT_STR_EQ(f.data, "{\"a\": [1, 2], \"b\": \"\\u00e9\"}\n");
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "message")),
                  "Data queued for upload to s3://ok-bucket/run_ID_s.jsonl");
    json_decref(o);
    free(def);
    /* a bucket the operator did not give: error_status, the reason */
    def = s3_def("separate_files", "txt", "other", "");
    o = run_def(def, &sk, NULL, params, err, sizeof err);
    ASSERT(o != NULL);
    ASSERT(json_is_true(json_object_get(o, "error_status")));
    ASSERT(strstr(json_string_value(json_object_get(o, "message")), "refused"));
    json_decref(o);
    free(def);
    /* prefixes that climb or start at the root: nothing written */
    int before = f.calls;
    const char *bad[] = {"../x", "/abs", "a//b", "a/../b"};
    for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
        def = s3_def("separate_files", "txt", "ok-bucket", bad[k]);
        o = run_def(def, &sk, NULL, params, err, sizeof err);
        ASSERT(o != NULL);
        ASSERT(json_is_true(json_object_get(o, "error_status")));
        json_decref(o);
        free(def);
    }
    ASSERT_EQ(f.calls, before);
    /* no bucket configured by the operator: a step error */
    struct wf_sinks none = {0};
    def = s3_def("separate_files", "txt", "ok-bucket", "");
    ASSERT(run_def(def, &none, NULL, params, err, sizeof err) == NULL);
    ASSERT(strstr(err, "--sink-s3"));
    free(def);
    json_decref(params);
}

/* Several elements in one run: one object (key) per element. */
TEST(s3_sink_one_object_per_element)
{
    struct fake_s3 f = {0};
    struct wf_sinks sk = {.webhook_ud = &f, .s3 = fake_s3};
    char err[512] = "";
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],\"steps\":["
        "{\"type\":\"roboflow_core/image_slicer@v1\",\"name\":\"sl\",\"image\":\"$inputs.image\","
        "\"slice_width\":2,\"slice_height\":2,\"overlap_ratio_width\":0,\"overlap_ratio_height\":0},"
        "{\"type\":\"roboflow_core/property_definition@v1\",\"name\":\"w\",\"data\":\"$steps.sl.slices\","
        "\"operations\":[{\"type\":\"ConvertImageToBase64\"}]},"
        "{\"type\":\"roboflow_core/s3_sink@v1\",\"name\":\"s\",\"content\":\"$steps.w.output\","
        "\"output_mode\":\"separate_files\",\"file_type\":\"txt\",\"bucket_name\":\"ok-bucket\","
        "\"s3_prefix\":\"\",\"file_name_prefix\":\"run\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}";
    json_t *o = run_def(def, &sk, NULL, NULL, err, sizeof err);
    if (!o)
        T_FAIL("run: %s", err);
    ASSERT_EQ(f.calls, 4);
    ASSERT_EQ(json_array_size(o), 4);
    for (size_t k = 0; k < 4; k++) {
        char want[128];
        snprintf(want, sizeof want, "Data queued for upload to s3://ok-bucket/run_ID_s.%zu.txt", k);
        ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(o, k), "message")), want);
    }
    json_decref(o);
}

TEST_MAIN()
