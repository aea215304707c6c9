/*
 * api/ui_int.h — the dashboard's files, embedded in the binary (internal to
 * the api module).  The table is generated at build time from src/ui/ by
 * scripts/embed-ui.sh into $(BUILD)/gen/ui_assets.c (Makefile); ui.c
 * serves it under /ui/.
 */
#ifndef VBATCH_API_UI_INT_H
#define VBATCH_API_UI_INT_H

#include <stddef.h>

struct ui_asset {
    const char *name;          /* file name under src/ui/, e.g. "app.js" */
    const unsigned char *data; /* its bytes (static) */
    size_t len;
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_count;

#endif
