/*
 * test_workflow_registry.c — what the engine says about each block type:
 * registered blocks run, cloud-only and model blocks are refused at
 * compile time with a message naming the service or the model, unknown
 * types are "unsupported block"; and the block table of
 * docs/WORKFLOWS-ENGINE.md (written by scripts/workflow-blocks-table.py)
 * says the same as the registry, row by row.
 *
 * `test_workflow_registry --list` prints every type the engine knows as
 * "type<TAB>status<TAB>what<TAB>canonical|alias" lines: the input of the
 * table script.
 */
#include "t.h"

#include "base/base.h"
#include "workflow/workflow.h"

#define DOC "docs/WORKFLOWS-ENGINE.md"
#define BEGIN_MARK "<!-- BEGIN block-status"
#define END_MARK "<!-- END block-status -->"

static const char *status_word(enum wf_block_status st)
{
    switch (st) {
    case WF_BLOCK_RUNS: return "runs";
    case WF_BLOCK_CLOUD_ONLY: return "cloud";
    case WF_BLOCK_NEEDS_MODEL: return "model";
    case WF_BLOCK_UNKNOWN: break;
    }
    return "unknown";
}

/* The status cell the table script writes for a type. */
static void status_cell(const char *type, char *buf, size_t len)
{
    const char *what = NULL;
    switch (wf_block_status(type, &what)) {
    case WF_BLOCK_RUNS: snprintf(buf, len, "runs"); break;
    case WF_BLOCK_CLOUD_ONLY: snprintf(buf, len, "refused: cloud-only (%s)", what); break;
    case WF_BLOCK_NEEDS_MODEL:
        snprintf(buf, len, "refused: needs a model not yet supported (%s)", what);
        break;
    case WF_BLOCK_UNKNOWN: snprintf(buf, len, "not yet implemented"); break;
    }
}

static int compile_one(const char *type, char *err, size_t errlen)
{
    char def[1024];
    struct wf_workflow *wf = NULL;
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
             "\"steps\":[{\"type\":\"%s\",\"name\":\"s\",\"images\":\"$inputs.image\","
             "\"image\":\"$inputs.image\",\"prompt\":\"x\"}],"
             "\"outputs\":[]}",
             type);
    int rc = wf_compile_text(def, strlen(def), &wf, err, errlen);
    wf_free(wf);
    return rc;
}

TEST(cloud_only_blocks_are_refused_naming_the_service)
{
    char err[512];
    ASSERT_EQ(compile_one("roboflow_core/open_ai@v4", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT_STR_EQ(err, "step 's': field 'type': block 'roboflow_core/open_ai@v4' needs a cloud "
                       "service (the OpenAI API) and is refused: this engine runs workflows "
                       "offline");
    ASSERT(!strstr(err, "unknown"));
    /* legacy aliases too */
    ASSERT_EQ(compile_one("OpenAI", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT(strstr(err, "needs a cloud service (the OpenAI API)"));
    static const char *const cloud[] = {
        "roboflow_core/anthropic_claude@v3", "roboflow_core/google_gemini@v4",
        "roboflow_core/openrouter@v1", "roboflow_core/roboflow_dataset_upload@v2",
        "RoboflowDatasetUpload", "roboflow_core/google_vision_ocr@v1",
        "roboflow_core/stability_ai_inpainting@v1", "roboflow_core/lmm@v1", "LMM",
        "roboflow_core/visual_search@v1", "roboflow_core/twilio_sms_notification@v2",
    };
    for (size_t i = 0; i < sizeof cloud / sizeof *cloud; i++) {
        ASSERT_EQ(compile_one(cloud[i], err, sizeof err), ERR_UNSUPPORTED);
        ASSERT(strstr(err, "needs a cloud service ("));
        ASSERT_EQ(wf_block_status(cloud[i], NULL), WF_BLOCK_CLOUD_ONLY);
    }
}

TEST(model_blocks_are_refused_naming_the_model)
{
    char err[512];
    const char *what = NULL;
    ASSERT_EQ(compile_one("roboflow_core/depth_estimation@v1", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT_STR_EQ(err, "step 's': field 'type': block 'roboflow_core/depth_estimation@v1' needs a "
                       "model not yet supported by this engine (a depth-estimation model) and is "
                       "refused");
    /* the CLIP blocks run (blocks/clip.c) */
    ASSERT_EQ(wf_block_status("roboflow_core/clip@v1", NULL), WF_BLOCK_RUNS);
    ASSERT_EQ(wf_block_status("roboflow_core/clip_comparison@v2", NULL), WF_BLOCK_RUNS);
    ASSERT_EQ(wf_block_status("ClipComparison", NULL), WF_BLOCK_RUNS);
    ASSERT_EQ(wf_block_status("YoloWorld", &what), WF_BLOCK_NEEDS_MODEL);
    ASSERT_STR_EQ(what, "YOLO-World");
    ASSERT_EQ(compile_one("roboflow_core/cog_vlm@v1", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT(strstr(err, "needs a model not yet supported"));
    /* instance segmentation v4 (RLE masks) and semantic segmentation run */
    ASSERT_EQ(wf_block_status("roboflow_core/roboflow_instance_segmentation_model@v4", NULL),
              WF_BLOCK_RUNS);
    ASSERT_EQ(wf_block_status("roboflow_core/roboflow_semantic_segmentation_model@v2", NULL),
              WF_BLOCK_RUNS);
    ASSERT_EQ(compile_one("roboflow_core/sam3@v3", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT(strstr(err, "(SAM 3)"));
}

TEST(unknown_and_registered_types)
{
    char err[512];
    const char *what = "x";
    ASSERT_EQ(wf_block_status("nope@v1", &what), WF_BLOCK_UNKNOWN);
    ASSERT(what == NULL);
    ASSERT_EQ(wf_block_status(NULL, NULL), WF_BLOCK_UNKNOWN);
    ASSERT_EQ(compile_one("nope@v1", err, sizeof err), ERR_UNSUPPORTED);
    ASSERT(strstr(err, "unsupported block 'nope@v1' (unknown to this engine)"));
    ASSERT_EQ(wf_block_status("roboflow_core/roboflow_object_detection_model@v2", NULL),
              WF_BLOCK_RUNS);
    ASSERT_EQ(wf_block_status("ObjectDetectionModel", NULL), WF_BLOCK_RUNS);
}

/* Every type listed is known with the status listed, and no type is both
 * registered and refused (a block that lands must leave the refusal list). */
TEST(type_listing_is_consistent)
{
    enum wf_block_status st;
    const char *t;
    size_t n = 0, nrun = 0, nref = 0;
    for (size_t i = 0; (t = wf_block_type_at(i, &st, NULL)); i++) {
        n++;
        enum wf_block_status now = wf_block_status(t, NULL);
        if (now != st)
            T_FAIL("type '%s' listed as %s but is %s (registered and refused?)", t,
                   status_word(st), status_word(now));
        st == WF_BLOCK_RUNS ? nrun++ : nref++;
        ASSERT(st != WF_BLOCK_UNKNOWN);
    }
    ASSERT_GT(nrun, 100);
    ASSERT_GT(nref, 70);
    ASSERT(wf_block_type_at(n, NULL, NULL) == NULL);
    ASSERT(wf_block_type_at((size_t)-1, NULL, NULL) == NULL);
    /* canonical names: the registered blocks' first type, refused names
     * with the roboflow_core/ prefix */
    bool canon = false;
    for (size_t i = 0; (t = wf_block_type_at(i, &st, &canon)); i++) {
        if (!strcmp(t, "roboflow_core/frame_delay@v1") || !strcmp(t, "roboflow_core/open_ai@v1"))
            ASSERT(canon);
        if (!strcmp(t, "roboflow_core/time_travel@v1") || !strcmp(t, "OpenAI") ||
            !strcmp(t, "ObjectDetectionModel"))
            ASSERT(!canon);
    }
}

static char *read_doc(void)
{
    FILE *f = fopen(DOC, "rb");
    if (!f)
        T_FAIL("cannot open %s (run from the repository root)", DOC);
    char *buf = malloc(1 << 20);
    ASSERT(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* The generated table matches the registry: each row's status is what
 * the engine says about the type, every roboflow_core type the engine
 * knows has a row, and the summary line counts the rows. */
TEST(docs_table_matches_registry)
{
    char *doc = read_doc();
    char *b = strstr(doc, BEGIN_MARK), *e = b ? strstr(b, END_MARK) : NULL;
    if (!b || !e)
        T_FAIL("%s: no block-status table between markers", DOC);
    *e = 0;
    char *table = xstrdup(b);
    size_t rows = 0, counts[4] = {0};
    char *save = NULL;
    /* rows: "| `type` | status |" */
    static char seen[512][128];
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char type[128], cell[256], want[256];
        if (strncmp(line, "| `", 3) != 0)
            continue;
        if (sscanf(line, "| `%127[^`]` | %255[^|]|", type, cell) != 2)
            T_FAIL("bad row: %s", line);
        for (size_t k = strlen(cell); k > 0 && cell[k - 1] == ' '; k--)
            cell[k - 1] = 0;
        status_cell(type, want, sizeof want);
        if (strcmp(cell, want) != 0)
            T_FAIL("%s: row '%s' says '%s' but the engine says '%s' "
                   "(rerun scripts/workflow-blocks-table.py)",
                   DOC, type, cell, want);
        counts[wf_block_status(type, NULL)]++;
        ASSERT_LT(rows, 512);
        snprintf(seen[rows++], sizeof seen[0], "%s", type);
    }
    ASSERT_GT(rows, 200);
    enum wf_block_status st;
    const char *t;
    bool canon;
    for (size_t i = 0; (t = wf_block_type_at(i, &st, &canon)); i++) {
        if (!canon)
            continue; /* aliases are not rows */
        bool found = false;
        for (size_t k = 0; k < rows && !found; k++)
            found = !strcmp(seen[k], t);
        if (!found)
            T_FAIL("%s: no row for '%s' (%s); rerun scripts/workflow-blocks-table.py", DOC, t,
                   status_word(st));
    }
    char summary[256];
    snprintf(summary, sizeof summary,
             "%zu block types: %zu run, %zu refused as cloud-only, %zu refused as needing a "
             "model not yet supported, %zu not yet implemented.",
             rows, counts[WF_BLOCK_RUNS], counts[WF_BLOCK_CLOUD_ONLY],
             counts[WF_BLOCK_NEEDS_MODEL], counts[WF_BLOCK_UNKNOWN]);
    if (!strstr(b, summary))
        T_FAIL("%s: summary line should read \"%s\"", DOC, summary);
    free(table);
    free(doc);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--list")) {
        enum wf_block_status st;
        const char *t, *what;
        bool canon;
        for (size_t i = 0; (t = wf_block_type_at(i, &st, &canon)); i++) {
            wf_block_status(t, &what);
            printf("%s\t%s\t%s\t%s\n", t, status_word(st), what ? what : "",
                   canon ? "canonical" : "alias");
        }
        return 0;
    }
    return t_main(argc, argv);
}
