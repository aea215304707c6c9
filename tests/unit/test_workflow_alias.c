/*
 * test_workflow_alias.c — legacy field aliases in step definitions.
 *
 * Roboflow's block manifests accept some fields under older names through
 * pydantic aliases (AliasChoices).  spec/blocks.json records field names,
 * kinds and types but (as of this writing) no alias at all, so the aliases
 * checked here are (a) any "alias" the blocks.json field entries may carry
 * (read generically, so a regenerated spec with aliases is covered) and
 * (b) the table below of aliases Roboflow's manifests are known to accept.
 * Every implemented block is walked and each alias must be in its manifest;
 * then a definition using the aliases must compile.
 */
#include "t.h"

#include "workflow/wf_int.h"
#include "workflow/workflow.h"

#include <jansson.h>

struct alias_rec {
    const char *type; /* any type id of the block */
    const char *field;
    const char *alias;
};

/* From Roboflow's manifests (AliasChoices in the core_steps block folders), the
 * blocks that have one; checked only for blocks implemented here.  The
 * visualization blocks (common/base.py: image/images) and model blocks
 * (ImageInputField: images/image) are checked by family below. */
static const struct alias_rec known[] = {
    {"roboflow_core/auto_rotate_on_edges@v1", "image", "images"},
    {"roboflow_core/background_subtraction@v1", "image", "images"},
    {"roboflow_core/camera_focus@v1", "image", "images"},
    {"roboflow_core/camera_focus@v2", "image", "images"},
    {"roboflow_core/contours_detection@v1", "image", "images"},
    {"roboflow_core/contrast_enhancement@v1", "image", "images"},
    {"roboflow_core/contrast_equalization@v1", "image", "images"},
    {"roboflow_core/convert_grayscale@v1", "image", "images"},
    {"roboflow_core/dominant_color@v1", "image", "images"},
    {"roboflow_core/image_blur@v1", "image", "images"},
    {"roboflow_core/image_preprocessing@v1", "image", "images"},
    {"roboflow_core/mask_edge_snap@v1", "image", "images"},
    {"roboflow_core/morphological_transformation@v1", "image", "images"},
    {"roboflow_core/morphological_transformation@v2", "image", "images"},
    {"roboflow_core/motion_detection@v1", "image", "images"},
    {"roboflow_core/pixel_color_count@v1", "image", "images"},
    {"roboflow_core/sift@v1", "image", "images"},
    {"roboflow_core/template_matching@v1", "image", "images"},
    {"roboflow_core/template_matching@v1", "template", "templates"},
    {"roboflow_core/threshold@v1", "image", "images"},
    {"roboflow_core/detections_consensus@v1", "predictions_batches", "predictions"},
    {"roboflow_core/clip_comparison@v1", "texts", "text"},
    {"roboflow_core/roboflow_dataset_upload@v1", "images", "image"},
    {"roboflow_core/roboflow_dataset_upload@v2", "images", "image"},
    {"roboflow_core/camera-calibration@v1", "image", "images"},
    {"roboflow_core/detection_offset@v1", "offset_width", "offset_x"},
    {"roboflow_core/detection_offset@v1", "offset_height", "offset_y"},
    {"roboflow_core/dynamic_crop@v1", "images", "image"},
    {"roboflow_core/dynamic_crop@v1", "predictions", "detections"},
    {"roboflow_core/image_slicer@v1", "image", "images"},
    {"roboflow_core/image_slicer@v2", "image", "images"},
    {"roboflow_core/perspective_correction@v1", "images", "image"},
};

static const struct wf_block *const *const families[] = {
    wf_blocks_core,   wf_blocks_transform,     wf_blocks_fusion,
    wf_blocks_models, wf_blocks_visualization, wf_blocks_classical_cv,
};

static const struct wf_field *field_of(const struct wf_block *b, const char *name)
{
    for (size_t i = 0; i < b->nfields; i++)
        if (!strcmp(b->fields[i].name, name))
            return &b->fields[i];
    return NULL;
}

/* Whether the block accepts 'alias' as a key for field 'name'. */
static bool accepts(const struct wf_block *b, const char *name, const char *alias)
{
    const struct wf_field *f = field_of(b, name);
    return f && f->alias && !strcmp(f->alias, alias);
}

/* Aliases recorded in a blocks.json field entry: an object field with an
 * "alias" string or "aliases" list, or text "alias='x'" in the type string. */
static int spec_aliases(const json_t *fe, const char **out, int max)
{
    int n = 0;
    const json_t *a;
    if (json_is_object(fe)) {
        if ((a = json_object_get(fe, "alias")) && json_is_string(a) && n < max)
            out[n++] = json_string_value(a);
        size_t i;
        const json_t *x;
        json_array_foreach(json_object_get(fe, "aliases"), i, x) if (json_is_string(x) && n < max)
            out[n++] = json_string_value(x);
    }
    return n;
}

TEST(every_alias_of_implemented_blocks_accepted)
{
    json_error_t je;
    json_t *spec = json_load_file("../shared/spec/blocks.json", 0, &je);
    if (!spec)
        spec = json_load_file("/work/shared/spec/blocks.json", 0, &je);
    ASSERT(spec && json_is_array(spec));
    int nbad = 0;
#define BAD(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), nbad++)
    size_t i, nimpl = 0, nchecked = 0;
    const json_t *blk;
    json_array_foreach(spec, i, blk) {
        const json_t *types = json_object_get(blk, "type"), *t0 = json_array_get(types, 0);
        const struct wf_block *b = t0 ? wf__block_find(json_string_value(t0)) : NULL;
        if (!b)
            continue;
        nimpl++;
        size_t k;
        const json_t *fe;
        json_array_foreach(json_object_get(blk, "fields"), k, fe) {
            const char *als[8];
            const char *name = json_is_array(fe) ? json_string_value(json_array_get(fe, 0))
                                                 : json_string_value(json_object_get(fe, "name"));
            int na = spec_aliases(fe, als, 8);
            for (int a = 0; a < na; a++) {
                if (!accepts(b, name, als[a]))
                    BAD("%s: field '%s' alias '%s' (blocks.json) not accepted", b->types[0], name,
                           als[a]);
                nchecked++;
            }
        }
    }
    ASSERT_GT(nimpl, 50);
    size_t nknown_impl = 0;
    for (size_t a = 0; a < sizeof known / sizeof *known; a++) {
        const struct wf_block *b = wf__block_find(known[a].type);
        if (!b)
            continue; /* block not implemented */
        nknown_impl++;
        if (!accepts(b, known[a].field, known[a].alias))
            BAD("%s: field '%s' alias '%s' not accepted", known[a].type, known[a].field, known[a].alias);
        nchecked++;
    }
    ASSERT_GE(nknown_impl, 3); /* dynamic_crop x2, detection_offset x2 at least */
    /* visualization blocks (common/base.py): "image" also as "images" */
    for (size_t k = 0; wf_blocks_visualization[k]; k++) {
        const struct wf_block *b = wf_blocks_visualization[k];
        if (field_of(b, "image") && !accepts(b, "image", "images"))
            BAD("%s: field 'image' does not accept 'images'", b->types[0]);
    }
    /* ImageInputField: every implemented block whose image field is
     * "images" also takes "image". */
    for (size_t f = 0; f < sizeof families / sizeof *families; f++)
        for (size_t k = 0; families[f][k]; k++) {
            const struct wf_block *b = families[f][k];
            const struct wf_field *fd = field_of(b, "images");
            if (fd && fd->type == WF_FT_IMAGE) {
                if (!accepts(b, "images", "image"))
                    BAD("%s: field 'images' does not accept 'image'", b->types[0]);
                nchecked++;
            }
        }
    ASSERT_GT(nchecked, 10);
    ASSERT_EQ(nbad, 0);
#undef BAD
    json_decref(spec);
}

static int compile_str(const char *text, char *err, size_t errlen)
{
    struct wf_workflow *wf = NULL;
    int rc = wf_compile_text(text, strlen(text), &wf, err, errlen);
    wf_free(wf);
    return rc;
}

TEST(crop_detections_alias_compiles)
{
    char err[512] = "";
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
        "\"model_id\":\"a/1\"},{\"type\":\"Crop\",\"name\":\"c\",\"image\":\"$inputs.image\","
        "\"detections\":\"$steps.m.predictions\"}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.c.crops\"}]}";
    int rc = compile_str(def, err, sizeof err);
    if (rc < 0)
        T_FAIL("compile: %s", err);
}

TEST(detection_offset_xy_aliases_compile)
{
    char err[512] = "";
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
        "\"model_id\":\"a/1\"},{\"type\":\"DetectionOffset\",\"name\":\"o\","
        "\"predictions\":\"$steps.m.predictions\",\"offset_x\":10,\"offset_y\":20}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$steps.o.predictions\"}]}";
    int rc = compile_str(def, err, sizeof err);
    if (rc < 0)
        T_FAIL("compile: %s", err);
    /* a bad value under the alias is reported against the field */
    const char *bad =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"m\",\"image\":\"$inputs.image\","
        "\"model_id\":\"a/1\"},{\"type\":\"DetectionOffset\",\"name\":\"o\","
        "\"predictions\":\"$steps.m.predictions\",\"offset_x\":\"wide\",\"offset_y\":20}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"p\",\"selector\":\"$steps.o.predictions\"}]}";
    ASSERT(compile_str(bad, err, sizeof err) < 0);
    ASSERT(strstr(err, "offset_width") != NULL);
}

TEST(consensus_predictions_alias_compiles)
{
    char err[512] = "";
    const char *def =
        "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"}],"
        "\"steps\":[{\"type\":\"ObjectDetectionModel\",\"name\":\"a\",\"image\":\"$inputs.image\","
        "\"model_id\":\"a/1\"},{\"type\":\"ObjectDetectionModel\",\"name\":\"b\",\"image\":\"$inputs.image\","
        "\"model_id\":\"b/1\"},{\"type\":\"DetectionsConsensus\",\"name\":\"c\","
        "\"predictions\":[\"$steps.a.predictions\",\"$steps.b.predictions\"],\"required_votes\":1}],"
        "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.c.predictions\"}]}";
    int rc = compile_str(def, err, sizeof err);
    if (rc < 0)
        T_FAIL("compile: %s", err);
}

TEST_MAIN()
