/*
 * names.c — what staging accepts as a file name, UTF-8 checks, and image
 * sidecars ("<image file name>.json": a JSON object staged in the
 * metadata part).
 */
#include "staging/staging.h"

#include <string.h>

#include "staging/staging_int.h"

bool staging__utf8_valid(const char *str)
{
    return utf8_valid(str);
}

bool staging__name_valid(const char *name)
{
    size_t n;
    if (!name || !name[0])
        return false;
    n = strlen(name);
    if (n > 255 || strchr(name, '/') || strchr(name, '\\') || strstr(name, "..") || !strcmp(name, "."))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    /* Names go out in JSON (lists, exports): jansson refuses non-UTF-8. */
    return staging__utf8_valid(name);
}


bool staging__sidecar_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".json") && strcmp(name, "notification_config.json") != 0;
}

int staging__sidecar_check(const void *data, size_t len, const char **why)
{
    if (len > STAGING_SIDECAR_MAX) {
        *why = "a metadata file (.json) must be at most 65536 bytes";
        return ERR_LIMIT;
    }
    json_t *j = NULL;
    if (json_parse_outside(data, len, JSON_REJECT_DUPLICATES, &j, NULL, 0) == ERR_LIMIT) {
        *why = "a metadata file (.json) may nest arrays and objects at most 64 levels deep";
        return ERR_INVALID;
    }
    bool ok = json_is_object(j);
    json_decref(j);
    if (!ok) {
        *why = "a metadata file (.json) must hold one JSON object";
        return ERR_INVALID;
    }
    *why = NULL;
    return 0;
}

