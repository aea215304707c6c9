/* Fuzz target: the reference-ingest body parser (image and video forms). */
#include <stdint.h>
#include <stdlib.h>

#include "staging/staging_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct staging__refs_req r;
    bool video = size > 0 && (data[0] & 1);
    if (staging__refs_parse((const char *)data, size, video, 100, &r, NULL) == 0) {
        size_t i;
        json_t *e;
        json_array_foreach(r.refs, i, e) {
            const char *n, *u;
            if (staging__ref_entry(e, &n, &u) < 0)
                abort(); /* parse accepted an entry the fetcher would refuse */
        }
        json_decref(r.root);
    }
    return 0;
}
