/* Fuzz target: the tar shard scanner (names, types, sizes, the
 * notification config, corrupt archives) on bytes in memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "staging/staging_int.h"

static int on_image(void *ud, int index, const char *name, const void *data, size_t len, int64_t offset,
                    const char *mime)
{
    (void)index;
    (void)mime;
    /* the entry is in place: touch its first and last byte */
    if (len)
        *(size_t *)ud += ((const uint8_t *)data)[0] + ((const uint8_t *)data)[len - 1];
    *(size_t *)ud += len + strlen(name) + (size_t)offset;
    return 0;
}

static void on_reject(void *ud, const char *name, const char *type, const char *reason)
{
    *(size_t *)ud += strlen(name) + strlen(type) + strlen(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t sink = 0;
    struct staging__tar_limits lim = {1 << 20, 500};
    struct staging__tar_cb cb = {on_image, on_reject, &sink};
    char *iid = NULL, *url = NULL;
    const char *why = NULL;
    int n = 0;
    log_set_level(LOG_ERROR);
    (void)staging__tar_scan(data, size, &lim, &cb, &n, &iid, &url, &why);
    free(iid);
    free(url);
    return 0;
}
