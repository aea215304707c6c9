/*
 * notify.c — the payloads of ingest webhooks (COMPAT.md: Roboflow's data
 * staging notifications): ingest-files-status for a shard's files and
 * ingest-status for a whole ingest.  store/ queues them in the outbox
 * inside the transaction of the state change they report.
 */
#include "staging/staging.h"

#include <string.h>

#include "staging/staging_int.h"

#define LIST_CAP 1000 /* entries per webhook list before content_truncated */

static char *payload_text(json_t *payload)
{
    char *body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    return body;
}

static json_t *envelope(const char *ingest_id, const char *batch, const char *shard_id, json_t *notification)
{
    char ev[37];
    uuid4(ev);
    return json_pack("{s:s,s:s,s:s?,s:s,s:s?,s:o}", "type", "roboflow-data-staging-notification-v1", "event_id", ev,
                     "ingest_id", ingest_id, "batch_id", batch, "shard_id", shard_id, "notification", notification);
}

char *staging__notify_files(const char *ingest_id, const char *batch, const char *shard_id, json_t *ingested,
                            json_t *failed, bool truncated)
{
    bool trunc = truncated || json_array_size(ingested) > LIST_CAP || json_array_size(failed) > LIST_CAP;
    json_t *ing = json_array(), *fail = json_array();
    for (size_t i = 0; i < json_array_size(ingested) && i < LIST_CAP; i++)
        json_array_append(ing, json_array_get(ingested, i));
    for (size_t i = 0; i < json_array_size(failed) && i < LIST_CAP; i++)
        json_array_append(fail, json_array_get(failed, i));
    /* success: the shard delivered something, or had nothing to fail (the
     * COMPAT example is success with one failed file beside an ingested one);
     * a shard whose every file failed reports false. */
    int success = json_array_size(ingested) > 0 || json_array_size(failed) == 0;
    json_t *n = json_pack("{s:s,s:b,s:o,s:o,s:b}", "type", "ingest-files-status-notification-v1", "success", success,
                          "ingested_files", ing, "failed_files", fail, "content_truncated", trunc);
    return payload_text(envelope(ingest_id, batch, shard_id, n));
}

char *staging__notify_ingest(const char *ingest_id, const char *batch, bool success, const char *err_type,
                             const char *err_reason)
{
    json_t *n = json_pack("{s:s,s:b}", "type", "ingest-status-notification-v1", "success", success);
    if (!success)
        json_object_set_new(n, "error_details",
                            json_pack("{s:s,s:s}", "type", err_type ? err_type : "ingest-failed", "reason",
                                      err_reason ? err_reason : ""));
    json_t *env = envelope(ingest_id, batch, NULL, n);
    /* shard_id is null, not absent, in ingest-status notifications. */
    json_t *ordered = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        json_object_set(ordered, k, v);
        if (!strcmp(k, "batch_id"))
            json_object_set_new(ordered, "shard_id", json_null());
    }
    json_decref(env);
    return payload_text(ordered);
}

char *staging__notify_key(const char *ingest_id, const char *batch)
{
    return ingest_id ? xasprintf("ingest/%s", ingest_id) : xasprintf("batch/%s", batch ? batch : "");
}
