/*
 * row.c — the per-image results row of batch output (WORKFLOWS.md 3.4), as
 * inference_cli writes results.json: every serialized image (an object with
 * "type": "base64" and a "value") becomes the string "<deducted_image>",
 * and each image is listed with its key path ("visualisation", "crops/0",
 * "result/0/crops") and its JPEG bytes so that the caller can persist it.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define ROW_MAX_DEPTH 256
#define ROW_MAX_IMAGES 100000

struct row_ctx {
    struct wf_image_output *imgs;
    size_t n, cap;
    int rc;
};

static bool is_image(const json_t *j)
{
    const json_t *t = json_object_get(j, "type");
    return json_is_object(j) && json_is_string(t) && !strcmp(json_string_value(t), "base64") &&
           json_is_string(json_object_get(j, "value"));
}

static json_t *walk(struct row_ctx *cx, const json_t *j, const char *path, int depth)
{
    if (depth > ROW_MAX_DEPTH) {
        cx->rc = ERR_LIMIT;
        return json_null();
    }
    if (is_image(j)) {
        const char *b64 = json_string_value(json_object_get(j, "value"));
        size_t len = 0;
        uint8_t *bytes = base64_decode(b64, strlen(b64), &len);
        if (!bytes) {
            /* not decodable: deducted like any image, but nothing to persist */
        } else if (cx->n >= ROW_MAX_IMAGES) {
            free(bytes);
            cx->rc = ERR_LIMIT;
        } else {
            if (cx->n == cx->cap) {
                cx->cap = cx->cap ? cx->cap * 2 : 4;
                cx->imgs = xrealloc(cx->imgs, cx->cap * sizeof *cx->imgs);
            }
            cx->imgs[cx->n++] = (struct wf_image_output){xstrdup(path), bytes, len};
        }
        return json_string("<deducted_image>");
    }
    if (json_is_object(j)) {
        json_t *o = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            char *p = path[0] ? xasprintf("%s/%s", path, k) : xstrdup(k);
            json_object_set_new(o, k, walk(cx, v, p, depth + 1));
            free(p);
        }
        return o;
    }
    if (json_is_array(j)) {
        json_t *a = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            char *p = path[0] ? xasprintf("%s/%zu", path, i) : xasprintf("%zu", i);
            json_array_append_new(a, walk(cx, v, p, depth + 1));
            free(p);
        }
        return a;
    }
    return json_deep_copy(j);
}

int wf_result_row(const json_t *result, json_t **row, struct wf_image_output **imgs, size_t *nimgs)
{
    struct row_ctx cx = {0};
    json_t *r;
    if (!json_is_object(result))
        return ERR_INVALID;
    r = walk(&cx, result, "", 0);
    if (cx.rc < 0) {
        json_decref(r);
        wf_image_outputs_free(cx.imgs, cx.n);
        return cx.rc;
    }
    *row = r;
    *imgs = cx.imgs;
    *nimgs = cx.n;
    return 0;
}

void wf_image_outputs_free(struct wf_image_output *imgs, size_t n)
{
    for (size_t i = 0; imgs && i < n; i++) {
        free(imgs[i].path);
        free(imgs[i].jpeg);
    }
    free(imgs);
}
