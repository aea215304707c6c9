/*
 * registry.c — the table of every block the engine knows, looked up by type
 * identifier (canonical "roboflow_core/x@vN" or a legacy alias), plus the
 * validation of field values against a block's manifest.
 *
 * Each block family file exports a NULL-terminated table (wf_block.h); the
 * registry concatenates them.  Field defaults are JSON text in the manifest,
 * parsed once (pthread_once) into a process-lifetime cache so that compiling
 * from several threads is safe.
 */
#include "workflow/wf_int.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static const struct wf_block *const *const families[] = {
    wf_blocks_core,          wf_blocks_transform,    wf_blocks_fusion,
    wf_blocks_models,        wf_blocks_visualization, wf_blocks_classical_cv,
    wf_blocks_analytics,     wf_blocks_video_analytics, wf_blocks_video_viz,
};

struct defaults {
    const struct wf_block *blk;
    json_t **defs; /* nfields, NULL = required */
};
static struct defaults *g_defs;
static size_t g_ndefs;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void defaults_init(void)
{
    size_t n = 0;
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++)
            n++;
    g_defs = xcalloc(n ? n : 1, sizeof *g_defs);
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++) {
            const struct wf_block *b = families[f][i];
            struct defaults *d = &g_defs[g_ndefs++];
            d->blk = b;
            d->defs = xcalloc(b->nfields ? b->nfields : 1, sizeof *d->defs);
            for (size_t k = 0; k < b->nfields; k++) {
                json_error_t je;
                if (!b->fields[k].def)
                    continue;
                d->defs[k] = json_loads(b->fields[k].def, JSON_DECODE_ANY, &je);
                if (!d->defs[k]) {
                    log_error("workflow", "block '%s' field '%s': bad default '%s'",
                              b->types[0], b->fields[k].name, b->fields[k].def);
                    abort();
                }
            }
        }
}

const struct wf_block *wf__block_find(const char *type)
{
    pthread_once(&g_once, defaults_init);
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (size_t i = 0; families[f][i]; i++)
            for (size_t t = 0; families[f][i]->types[t]; t++)
                if (!strcmp(families[f][i]->types[t], type))
                    return families[f][i];
    return NULL;
}

int wf__field_index(const struct wf_block *blk, const char *name)
{
    for (size_t i = 0; i < blk->nfields; i++)
        if (!strcmp(blk->fields[i].name, name))
            return (int)i;
    return -1;
}

const json_t *wf__field_default(const struct wf_block *blk, size_t f)
{
    pthread_once(&g_once, defaults_init);
    for (size_t i = 0; i < g_ndefs; i++)
        if (g_defs[i].blk == blk)
            return f < blk->nfields ? g_defs[i].defs[f] : NULL;
    return NULL;
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "dict";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool is_integral(const json_t *j)
{
    if (json_is_integer(j))
        return true;
    if (json_is_real(j)) {
        double d = json_real_value(j);
        return isfinite(d) && d == floor(d) && fabs(d) < 9e15;
    }
    return false;
}

int wf__json_check(const struct wf_field *f, const json_t *j, char *err, size_t errlen)
{
    double d;
    if (json_is_null(j)) {
        if ((f->flags & WF_F_NULLABLE) || (f->def && !strcmp(f->def, "null")))
            return 0;
        wf__errf(err, errlen, "a value is required, got null");
        return ERR_INVALID;
    }
    switch (f->type) {
    case WF_FT_ANY:
    case WF_FT_COLOR:
        return 0;
    case WF_FT_STRING:
        if (json_is_string(j))
            return 0;
        break;
    case WF_FT_INT:
    case WF_FT_INT_POS:
    case WF_FT_INT_NONNEG:
        if (!is_integral(j))
            break;
        d = json_number_value(j);
        if (f->type == WF_FT_INT_POS && d <= 0) {
            wf__errf(err, errlen, "must be a positive integer, got %g", d);
            return ERR_INVALID;
        }
        if (f->type == WF_FT_INT_NONNEG && d < 0) {
            wf__errf(err, errlen, "must be >= 0, got %g", d);
            return ERR_INVALID;
        }
        return 0;
    case WF_FT_FLOAT:
        if (json_is_number(j))
            return 0;
        break;
    case WF_FT_FLOAT01:
        if (!json_is_number(j))
            break;
        d = json_number_value(j);
        if (!(d >= 0.0 && d <= 1.0)) {
            wf__errf(err, errlen, "must be in range [0.0, 1.0], got %g", d);
            return ERR_INVALID;
        }
        return 0;
    case WF_FT_BOOL:
        if (json_is_boolean(j))
            return 0;
        break;
    case WF_FT_LIST:
        if (json_is_array(j))
            return 0;
        break;
    case WF_FT_DICT:
        if (json_is_object(j))
            return 0;
        break;
    case WF_FT_ENUM:
        if (!json_is_string(j))
            break;
        for (size_t i = 0; f->choices && f->choices[i]; i++)
            if (!strcmp(f->choices[i], json_string_value(j)))
                return 0;
        wf__errf(err, errlen, "'%s' is not one of the allowed values", json_string_value(j));
        return ERR_INVALID;
    case WF_FT_IMAGE:
    case WF_FT_DETS:
        wf__errf(err, errlen, "expected a selector, got a literal %s", jtype(j));
        return ERR_INVALID;
    }
    {
        static const char *const names[] = {
            [WF_FT_STRING] = "a string", [WF_FT_INT] = "an integer",
            [WF_FT_INT_POS] = "a positive integer", [WF_FT_INT_NONNEG] = "an integer >= 0",
            [WF_FT_FLOAT] = "a number", [WF_FT_FLOAT01] = "a number in [0.0, 1.0]",
            [WF_FT_BOOL] = "a boolean", [WF_FT_LIST] = "a list", [WF_FT_DICT] = "a dict",
            [WF_FT_ENUM] = "a string",
        };
        wf__errf(err, errlen, "expected %s, got %s", names[f->type] ? names[f->type] : "?",
                 jtype(j));
    }
    return ERR_INVALID;
}

int wf__field_check(const struct wf_field *f, const struct wf_value *v, char *err, size_t errlen)
{
    if (f->flags & (WF_F_SELECTOR_LIST | WF_F_SELECTOR_DICT | WF_F_DIM_UP | WF_F_RAW))
        return 0;
    if (wf_value_is_null(v)) {
        json_t *n = json_null();
        return wf__json_check(f, n, err, errlen);
    }
    switch (v->type) {
    case WF_V_JSON:
        if (f->type == WF_FT_IMAGE || f->type == WF_FT_DETS) {
            wf__errf(err, errlen, "expected %s, got %s",
                     f->type == WF_FT_IMAGE ? "an image" : "detections", jtype(v->json));
            return ERR_INVALID;
        }
        return wf__json_check(f, v->json, err, errlen);
    case WF_V_IMAGE:
        if (f->type == WF_FT_IMAGE || f->type == WF_FT_ANY)
            return 0;
        wf__errf(err, errlen, "got an image where a different kind is expected");
        return ERR_INVALID;
    case WF_V_DETS:
        if (f->type == WF_FT_DETS || f->type == WF_FT_ANY)
            return 0;
        wf__errf(err, errlen, "got detections where a different kind is expected");
        return ERR_INVALID;
    default:
        if (f->type == WF_FT_ANY || f->type == WF_FT_LIST || f->type == WF_FT_DICT)
            return 0;
        wf__errf(err, errlen, "got a list/dict value where a different kind is expected");
        return ERR_INVALID;
    }
}
