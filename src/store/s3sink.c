/*
 * s3sink.c — the object store that workflow s3_sink steps write to
 * (--sink-s3): a struct s3 of its own, configured by the operator, apart
 * from the blob store.
 */
#include "store/store.h"

#include <string.h>

#include "store/s3.h"

struct store_s3sink {
    struct s3 *s3;
    char *bucket;
};

int store_s3sink_open(const char *url, const char *cred_file, struct store_s3sink **out, struct err *e)
{
    struct s3_cfg c;
    memset(&c, 0, sizeof c);
    *out = NULL;
    int rc = s3_cfg_parse(url, &c, e);
    if (rc == 0)
        rc = s3_cfg_credentials(&c, cred_file, e);
    struct s3 *s = NULL;
    if (rc == 0)
        rc = s3_new(&c, &s);
    if (rc == 0) {
        struct store_s3sink *k = xcalloc(1, sizeof *k);
        k->s3 = s;
        k->bucket = xstrdup(c.bucket);
        *out = k;
    } else if (e->code == 0) {
        err_set(e, rc, "cannot use '%s'", url);
    }
    s3_cfg_free(&c);
    return rc;
}

void store_s3sink_free(struct store_s3sink *k)
{
    if (!k)
        return;
    s3_free(k->s3);
    free(k->bucket);
    free(k);
}

const char *store_s3sink_bucket(const struct store_s3sink *k)
{
    return k->bucket;
}

int store_s3sink_put(struct store_s3sink *k, const char *key, const void *data, size_t len, int64_t deadline_ms,
                     struct err *e)
{
    return s3_put_by(k->s3, key, data, len, deadline_ms, e);
}
