/*
 * json.c — parsing JSON that comes from outside, with a nesting cap
 * (base.h, "JSON from outside").
 *
 * The depth is measured by one pass over the text before jansson sees it:
 * '[' and '{' outside strings open a level, ']' and '}' close one; a
 * backslash inside a string skips the next byte; a NUL ends the pass (JSON
 * text never holds one, jansson refuses it).  The pass does not
 * validate anything else (jansson does, right after), so malformed text
 * that stays shallow gets jansson's message, and text nested too deep is
 * refused without building any of it.
 */
#include "base/base.h"

#include <jansson.h>
#include <stdio.h>

/* Deepest nesting of arrays and objects in text, stopping early once it
 * passes max. */
static int json_depth(const char *text, size_t len, int max)
{
    int depth = 0, deepest = 0;
    bool in_str = false;

    for (size_t i = 0; i < len && deepest <= max; i++) {
        char c = text[i];
        if (c == '\0')
            break; /* never valid in JSON text: jansson refuses it right after */
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

int json_parse_outside(const char *text, size_t len, size_t flags, struct json_t **out, char *err,
                       size_t errlen)
{
    json_error_t je;
    json_t *j;

    if (!text)
        text = "";
    if (json_depth(text, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
        if (err && errlen)
            snprintf(err, errlen, "JSON nested deeper than the limit of %d levels of arrays and objects",
                     JSON_MAX_DEPTH);
        return ERR_LIMIT;
    }
    j = json_loadb(text, len, flags, &je);
    if (!j) {
        if (err && errlen)
            snprintf(err, errlen, "%s (line %d, column %d)", je.text, je.line, je.column);
        return ERR_PARSE;
    }
    *out = j;
    return 0;
}
