/*
 * models.c — the model provider the workers hand to the workflow engine:
 * a model registry (model/model.h) loaded from the data folder's models/
 * and an optional extra folder, and the few lines that adapt
 * model_registry_infer to wf_model_infer_fn.
 */
#include "jobs/jobs_int.h"

#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int jobs_models_open(const char *data_dir, const char *extra_dir, int intra_threads,
                     struct model_registry **out, char *err, size_t errlen)
{
    struct model_registry_opts o = {0};
    struct model_registry *reg = NULL;
    struct stat sb;
    char *dir = xasprintf("%s/models", data_dir);
    int rc, bad = 0;

    o.models_dir = dir;
    o.intra_op_threads = intra_threads;
    rc = model_registry_new(&o, &reg, err, errlen);
    if (rc < 0)
        goto out;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        rc = model_registry_load_dir(reg, dir, &bad, err, errlen);
        if (rc < 0)
            goto out;
        log_info("jobs", "models loaded dir=%s count=%d bad=%d", dir, rc, bad);
    }
    if (extra_dir) {
        rc = model_registry_load_dir(reg, extra_dir, &bad, err, errlen);
        if (rc < 0)
            goto out;
        log_info("jobs", "models loaded dir=%s count=%d bad=%d", extra_dir, rc, bad);
    }
    rc = 0;
    *out = reg;
    reg = NULL;
out:
    model_registry_free(reg);
    free(dir);
    return rc;
}

int jobs_model_infer(void *ud, const struct wf_model_request *req, const struct vis_image *const *images,
                     size_t n, json_t **out, char *err, size_t errlen)
{
    return model_registry_infer(ud, req->model_id, req->task, req->params, images, n, out, err, errlen);
}
