/*
 * definition.c — a job definition (WorkflowProcessingJobV1, the body of
 * POST /jobs/{id}) parsed and checked field by field, the workflow snapshot
 * checked against it (image input, outputs), and the machine type checked
 * against the model providers of this server.  Nothing here reads or
 * writes the store; jobs.c calls it before planning.
 */
#include "jobs/jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool jobs__opt_null(const json_t *v)
{
    return !v || json_is_null(v);
}

/* Parse a compute configuration into workers/machine type. */
int jobs__parse_compute(const json_t *cc, int *workers, const char **machine, struct err *err)
{
    const char *type = json_string_value(json_object_get(cc, "type"));
    const json_t *mt = json_object_get(cc, "machineType");
    if (!json_is_object(cc)) {
        err_printf(err, "computeConfiguration must be an object");
        return ERR_INVALID;
    }
    if (!jobs__opt_null(mt)) {
        const char *m = json_string_value(mt);
        if (!m || (strcmp(m, "cpu") && strcmp(m, "gpu"))) {
            err_printf(err, "computeConfiguration.machineType must be \"cpu\" or \"gpu\"");
            return ERR_INVALID;
        }
        *machine = m;
    }
    if (type && !strcmp(type, "compute-configuration-v2")) {
        const json_t *w = json_object_get(cc, "workersPerMachine");
        if (!jobs__opt_null(w)) {
            if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 64) {
                err_printf(err, "computeConfiguration.workersPerMachine must be an integer from 1 to 64");
                return ERR_INVALID;
            }
            *workers = (int)json_integer_value(w);
        }
        return 0;
    }
    if (type && !strcmp(type, "compute-configuration-v1")) {
        /* Legacy machineSize, mapped to workers as the CLI does. */
        static const struct { const char *size; int workers; } map[] = {
            {"xs", 8}, {"s", 4}, {"m", 2}, {"l", 1}, {"xl", 1}};
        const char *sz = json_string_value(json_object_get(cc, "machineSize"));
        if (!sz) {
            *workers = JOBS_WORKERS_DEFAULT;
            return 0;
        }
        for (size_t i = 0; i < ARRAY_LEN(map); i++)
            if (!strcmp(sz, map[i].size)) {
                *workers = map[i].workers;
                return 0;
            }
        err_printf(err, "computeConfiguration.machineSize must be one of xs, s, m, l, xl");
        return ERR_INVALID;
    }
    err_printf(err, "computeConfiguration.type must be \"compute-configuration-v2\" (or the legacy"
              " \"compute-configuration-v1\")");
    return ERR_INVALID;
}

int jobs__parse_pos_int(const json_t *v, const char *what, json_int_t max, json_int_t *out, struct err *err)
{
    if (jobs__opt_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
        err_printf(err, "%s must be an integer from 1 to %lld", what, (long long)max);
        return ERR_INVALID;
    }
    *out = json_integer_value(v);
    return 0;
}

int jobs__parse_rate(const json_t *v, double *out, struct err *err)
{
    if (jobs__opt_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 1.0) {
        err_printf(err, "maxImageFailureRate must be a number from 0 to 1");
        return ERR_INVALID;
    }
    *out = json_number_value(v);
    return 0;
}

int jobs__parse_def(struct jobs *j, const json_t *b, struct jobdef *d, struct err *err)
{
    const char *type = json_string_value(json_object_get(b, "type"));
    const json_t *in, *ps, *v;
    int rc;

    memset(d, 0, sizeof *d);
    d->workers = JOBS_WORKERS_DEFAULT;
    d->machine_type = "cpu";
    d->max_fail_rate = -1;
    d->agg = "jsonl";
    d->backend = "inference-models";
    if (!json_is_object(b)) {
        err_printf(err, "the body must be a JSON object");
        return ERR_INVALID;
    }
    if (!type) {
        err_printf(err, "missing job type: expected \"simple-image-processing-v1\" or \"simple-video-processing-v1\"");
        return ERR_INVALID;
    }
    if (!strcmp(type, "trt-compilation-v1") || !strcmp(type, "TRT_COMPILATION_V1")) {
        err_printf(err, "TensorRT compilation jobs are not supported by this server");
        return ERR_INVALID;
    }
    d->video = !strcmp(type, "simple-video-processing-v1");
    if (!d->video && strcmp(type, "simple-image-processing-v1") != 0) {
        err_printf(err, "unknown job type '%.64s': expected \"simple-image-processing-v1\" or "
                  "\"simple-video-processing-v1\"", type);
        return ERR_INVALID;
    }
    in = json_object_get(b, "jobInput");
    if (!json_is_object(in) || !json_string_value(json_object_get(in, "type")) ||
        strcmp(json_string_value(json_object_get(in, "type")), "staging-batch-input-v1") != 0) {
        err_printf(err, "jobInput must be {\"type\": \"staging-batch-input-v1\", \"batchId\": …}");
        return ERR_INVALID;
    }
    d->batch = json_string_value(json_object_get(in, "batchId"));
    if (!d->batch || !id_valid(d->batch, 64)) {
        err_printf(err, "jobInput.batchId must be 1 to 64 characters of a-z, 0-9, '-' and '_'");
        return ERR_INVALID;
    }
    v = json_object_get(in, "partName");
    if (!jobs__opt_null(v)) {
        d->part = json_string_value(v);
        if (!d->part || !id_valid(d->part, 64)) {
            err_printf(err, "jobInput.partName is not a valid part name");
            return ERR_INVALID;
        }
    }
    v = json_object_get(in, "imagesMetadataPart");
    if (!jobs__opt_null(v) && (!json_string_value(v) || !id_valid(json_string_value(v), 64))) {
        err_printf(err, "jobInput.imagesMetadataPart is not a valid part name");
        return ERR_INVALID;
    }
    if (!jobs__opt_null(v) && d->video) {
        err_printf(err, "jobInput.imagesMetadataPart is for image jobs only");
        return ERR_INVALID;
    }
    rc = jobs__parse_compute(json_object_get(b, "computeConfiguration"), &d->workers, &d->machine_type, err);
    if (rc < 0)
        return rc;
    if ((rc = jobs__parse_pos_int(json_object_get(b, "processingTimeoutSeconds"), "processingTimeoutSeconds",
                            31ll * 24 * 3600, &d->timeout_s, err)) < 0 ||
        (rc = jobs__parse_pos_int(json_object_get(b, "maxParallelTasks"), "maxParallelTasks", 10000,
                            &d->max_parallel, err)) < 0 ||
        (rc = jobs__parse_rate(json_object_get(b, "maxImageFailureRate"), &d->max_fail_rate, err)) < 0)
        return rc;
    if (d->video && d->max_fail_rate >= 0) {
        err_printf(err, "maxImageFailureRate is for image jobs only (a video job fails its videos one by one)");
        return ERR_INVALID;
    }
    v = json_object_get(b, "inferenceBackend");
    if (!jobs__opt_null(v) && (!json_is_string(v) || (strcmp(json_string_value(v), "inference-models") &&
                                                strcmp(json_string_value(v), "old-inference")))) {
        err_printf(err, "inferenceBackend must be \"inference-models\" or \"old-inference\"");
        return ERR_INVALID;
    }
    if (!jobs__opt_null(v))
        d->backend = json_string_value(v);
    ps = json_object_get(b, "processingSpecification");
    if (!json_is_object(ps) || !json_string_value(json_object_get(ps, "type")) ||
        strcmp(json_string_value(json_object_get(ps, "type")), "workflows-processing-specification-v1")) {
        err_printf(err, "processingSpecification must have \"type\": \"workflows-processing-specification-v1\"");
        return ERR_INVALID;
    }
    d->wf_ws = json_string_value(json_object_get(ps, "workspace"));
    d->wf_id = json_string_value(json_object_get(ps, "workflowId"));
    if (!d->wf_ws || !d->wf_id || !*d->wf_ws || !*d->wf_id) {
        err_printf(err, "processingSpecification needs \"workspace\" and \"workflowId\" strings");
        return ERR_INVALID;
    }
    v = json_object_get(ps, "workflowParameters");
    if (!jobs__opt_null(v)) {
        if (!json_is_object(v)) {
            err_printf(err, "processingSpecification.workflowParameters must be an object");
            return ERR_INVALID;
        }
        d->params = (json_t *)v;
    }
    v = json_object_get(ps, "imageInputName");
    if (!jobs__opt_null(v) && !(d->image_input = json_string_value(v))) {
        err_printf(err, "processingSpecification.imageInputName must be a string");
        return ERR_INVALID;
    }
    v = json_object_get(ps, "persistImagesOutputs");
    if (!jobs__opt_null(v)) {
        if (!json_is_boolean(v)) {
            err_printf(err, "processingSpecification.persistImagesOutputs must be a boolean");
            return ERR_INVALID;
        }
        d->persist = json_is_true(v);
    }
    v = json_object_get(ps, "imagesOutputsToBePersisted");
    if (!jobs__opt_null(v)) {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) {
            err_printf(err, "processingSpecification.imagesOutputsToBePersisted must be a list of output names");
            return ERR_INVALID;
        }
        json_array_foreach(v, i, e) if (!json_is_string(e))
        {
            err_printf(err, "processingSpecification.imagesOutputsToBePersisted must be a list of output names");
            return ERR_INVALID;
        }
        d->persist_list = (json_t *)v;
    }
    v = json_object_get(ps, "aggregationFormat");
    if (!jobs__opt_null(v)) {
        d->agg = json_string_value(v);
        if (!d->agg || (strcmp(d->agg, "csv") && strcmp(d->agg, "jsonl"))) {
            err_printf(err, "processingSpecification.aggregationFormat must be \"csv\" or \"jsonl\"");
            return ERR_INVALID;
        }
    }
    v = json_object_get(ps, "maxVideoFPS");
    if (!jobs__opt_null(v)) {
        if (!d->video) {
            err_printf(err, "processingSpecification.maxVideoFPS is for video jobs only");
            return ERR_INVALID;
        }
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1000)) {
            err_printf(err, "processingSpecification.maxVideoFPS must be a number of frames per second in (0, 1000]");
            return ERR_INVALID;
        }
        d->max_fps = json_number_value(v);
    }
    v = json_object_get(ps, "imagesMetadataInputsMapping");
    if (!jobs__opt_null(v) && d->video) {
        err_printf(err, "processingSpecification.imagesMetadataInputsMapping is for image jobs only");
        return ERR_INVALID;
    }
    if (!jobs__opt_null(v)) {
        const char *k;
        json_t *e;
        if (!json_is_object(v)) {
            err_printf(err, "processingSpecification.imagesMetadataInputsMapping must be an object");
            return ERR_INVALID;
        }
        json_object_foreach((json_t *)v, k, e) if (!json_is_string(e))
        {
            err_printf(err, "imagesMetadataInputsMapping['%.64s'] must be a metadata key (string)", k);
            return ERR_INVALID;
        }
    }
    v = json_object_get(b, "notificationsURL");
    if (!jobs__opt_null(v)) {
        const char *why = NULL;
        d->notif = json_string_value(v);
        if (!d->notif || strlen(d->notif) > 2048) {
            err_printf(err, "notificationsURL must be a URL string");
            return ERR_INVALID;
        }
        if (j && store_net_check_url(j->st, d->notif, &why) < 0) {
            err_printf(err, "notificationsURL '%.200s' is not allowed: %s", d->notif, why ? why : "invalid");
            return ERR_INVALID;
        }
    }
    return 0;
}

int jobs_definition_check(const json_t *body, struct err *err)
{
    struct jobdef d;
    return jobs__parse_def(NULL, body, &d, err);
}


/* Can jobs of this machine type run here (the model runtime, and for
 * "gpu" a GPU execution provider)?  Loads no model.  ERR_INVALID (400)
 * with a message when not. */
int jobs__machine_check(struct jobs *j, const char *machine_type, bool needs_models, struct err *err)
{
    char why[400];
    if (!j->o.model_select) {
        if (machine_type && !strcmp(machine_type, "gpu")) {
            err_printf(err, "computeConfiguration.machineType \"gpu\" is not available on this server (no GPU"
                      " model runtime configured)");
            return ERR_INVALID;
        }
        return 0;
    }
    if (j->o.model_select(j->o.model_select_ud, machine_type, NULL, needs_models, NULL, NULL, NULL, why,
                          sizeof why) < 0) {
        err_printf(err, "%s", why);
        return ERR_INVALID;
    }
    return 0;
}

/* Compile the snapshot and resolve the image input and the outputs. */
int jobs__check_workflow(const char *wf_text, const struct jobdef *d, char **image_input,
                          json_t **outputs, bool *uses_models, struct err *err)
{
    struct wf_workflow *wf = NULL;
    char why[400];
    int rc = wf_compile_text(wf_text, strlen(wf_text), &wf, why, sizeof why);
    if (rc < 0) {
        err_printf(err, "workflow '%s' does not compile: %s", d->wf_id, why);
        return ERR_INVALID;
    }
    *uses_models = wf_uses_models(wf);
    size_t ni = wf_image_input_count(wf);
    if (d->image_input) {
        bool found = false;
        for (size_t i = 0; i < ni; i++)
            found |= !strcmp(wf_image_input_name(wf, i), d->image_input);
        if (!found) {
            err_printf(err, "imageInputName '%.64s' is not an image input of workflow '%s'", d->image_input,
                      d->wf_id);
            rc = ERR_INVALID;
            goto out;
        }
        *image_input = xstrdup(d->image_input);
    } else if (ni == 1) {
        *image_input = xstrdup(wf_image_input_name(wf, 0));
    } else {
        err_printf(err, "workflow '%s' has %zu image inputs: batch processing needs exactly one, or"
                  " imageInputName", d->wf_id, ni);
        rc = ERR_INVALID;
        goto out;
    }
    *outputs = json_array();
    for (size_t i = 0; i < wf_output_count(wf); i++)
        json_array_append_new(*outputs, json_string(wf_output_name(wf, i)));
    if (d->persist_list) {
        size_t i;
        json_t *e;
        json_array_foreach(d->persist_list, i, e)
        {
            bool found = false;
            for (size_t k = 0; k < wf_output_count(wf); k++)
                found |= !strcmp(wf_output_name(wf, k), json_string_value(e));
            if (!found) {
                err_printf(err, "imagesOutputsToBePersisted: '%.64s' is not an output of workflow '%s'",
                          json_string_value(e), d->wf_id);
                rc = ERR_INVALID;
                free(*image_input);
                *image_input = NULL;
                json_decref(*outputs);
                *outputs = NULL;
                goto out;
            }
        }
    }
out:
    wf_free(wf);
    return rc;
}
