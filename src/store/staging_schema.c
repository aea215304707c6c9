/*
 * staging_schema.c — the schema of the Data Staging tables (component
 * "staging"), one statement text per migration and one list per backend,
 * applied by store_staging_migrate().  Never edit an applied migration:
 * append one.  The SQLite list is the one vbatch has always applied (an
 * existing data folder keeps its versions); the PostgreSQL list is left
 * empty here and is written with the PostgreSQL backend.
 */
#include "store/staging_int.h"

const char *const store__staging_migrations_sqlite[] = {
    /* 1 */
    "CREATE TABLE batches ("
    "  bid INTEGER PRIMARY KEY AUTOINCREMENT,"   /* never reused: blob prefix b/<bid> */
    "  workspace TEXT NOT NULL,"
    "  batch_id TEXT NOT NULL,"
    "  display_name TEXT NOT NULL,"
    "  batch_type TEXT NOT NULL,"                /* simple-batch | sharded-batch | multipart-batch */
    "  content_type TEXT NOT NULL,"              /* images | videos | mixed */
    "  ingest_mode TEXT NOT NULL,"               /* single | bulk | output */
    "  item_count INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  UNIQUE (workspace, batch_id));"
    "CREATE INDEX batches_ws ON batches(workspace, bid);"
    "CREATE INDEX batches_exp ON batches(expires_ms);"
    "CREATE TABLE parts ("
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part_name TEXT NOT NULL,"
    "  part_type TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  description TEXT,"
    "  nested_content_type TEXT,"
    "  PRIMARY KEY (bid, part_name));"
    "CREATE TABLE items ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part TEXT,"
    "  name TEXT NOT NULL,"
    "  shard_id TEXT,"
    "  content_type TEXT NOT NULL,"             /* image | video | ... */
    "  mime TEXT,"
    "  blob_key TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX items_bid ON items(bid, id);"
    "CREATE INDEX items_part ON items(bid, part, id);"
    "CREATE INDEX items_blob ON items(blob_key);"
    "CREATE TABLE shards ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  shard_id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"                      /* tar | image-refs | video-refs */
    "  state TEXT NOT NULL,"                     /* awaiting-upload | uploaded | queued | done | failed */
    "  status_name TEXT NOT NULL,"
    "  status_type TEXT NOT NULL,"
    "  status_meta TEXT,"
    "  objects INTEGER NOT NULL DEFAULT 0,"
    "  blob_key TEXT,"                           /* tar upload */
    "  ingest_id TEXT,"
    "  notify_url TEXT,"
    "  cat_ingest INTEGER NOT NULL DEFAULT 1,"
    "  cat_files INTEGER NOT NULL DEFAULT 1,"
    "  refs TEXT,"                               /* JSON array of {name,url} */
    "  refs_url TEXT,"
    "  event_ms INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX shards_bid ON shards(bid, id);"
    "CREATE INDEX shards_state ON shards(state, id);"
    "CREATE TABLE shard_events ("
    "  shard TEXT NOT NULL,"
    "  status_name TEXT NOT NULL,"
    "  status_type TEXT NOT NULL,"
    "  meta TEXT,"
    "  event_ms INTEGER NOT NULL);"
    "CREATE INDEX shard_events_shard ON shard_events(shard);"
    "CREATE TABLE uploads ("                     /* pending signed PUT targets */
    "  blob_key TEXT PRIMARY KEY,"
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"                      /* tar | video */
    "  shard_id TEXT,"
    "  file_name TEXT,"
    "  size_limit INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"                     /* pending | done | failed */
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE ingests ("
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  ingest_id TEXT NOT NULL,"
    "  response TEXT NOT NULL,"
    "  shards_total INTEGER NOT NULL DEFAULT 0,"
    "  shards_done INTEGER NOT NULL DEFAULT 0,"
    "  shards_failed INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (bid, ingest_id));",
    /* 2: per-part item counts, so count?partName is O(1) like the total */
    "CREATE TABLE part_counts ("
    "  bid INTEGER NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part TEXT NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  PRIMARY KEY (bid, part));"
    "INSERT INTO part_counts(bid, part, n)"
    "  SELECT bid, part, count(*) FROM items WHERE part IS NOT NULL GROUP BY bid, part;",
    /* 3: item lookup by name within a part (image sidecars) */
    "CREATE INDEX items_name ON items(bid, part, name, id);",
    /* 4: shard claims (store/shards.c): the process working on an
     * uploaded/queued shard and until when (ms) its claim holds unless
     * renewed; NULL/0 = not claimed */
    "ALTER TABLE shards ADD COLUMN claim_owner TEXT;"
    "ALTER TABLE shards ADD COLUMN claim_until INTEGER NOT NULL DEFAULT 0;",
    /* 5: tar shards kept whole: an item of a shard is size bytes at
     * blob_offset of the shard's blob; NULL = the whole blob (single
     * uploads, videos, outputs, items written before this migration) */
    "ALTER TABLE items ADD COLUMN blob_offset INTEGER;"
    "DROP INDEX items_blob;"
    "CREATE INDEX items_blob ON items(blob_key, blob_offset);",
    /* 6: per-workspace usage and quotas.  ws_usage (store/batches.c): the
     * bytes of the workspace's items, kept in the transaction of every
     * item insert and delete; its row is also the workspace's lock for the
     * quota checks.  ws_quotas (store/quotas.c): per-workspace limits,
     * NULL = the process's default (flags), 0 = unlimited. */
    "CREATE TABLE ws_usage ("
    "  workspace TEXT PRIMARY KEY,"
    "  staged_bytes INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO ws_usage(workspace, staged_bytes)"
    "  SELECT b.workspace, sum(i.size) FROM batches b JOIN items i ON i.bid = b.bid GROUP BY b.workspace;"
    "CREATE TABLE ws_quotas ("
    "  workspace TEXT PRIMARY KEY,"
    "  max_staged_bytes INTEGER,"
    "  max_jobs INTEGER,"
    "  max_pending_uploads INTEGER);"
    /* blob folders to delete whose rows are gone (a deleted job's
     * jobs/<ws>/<job>/): written in the transaction that deletes the rows,
     * removed once the folder is; the expiry sweep retries (batches.c) */
    "CREATE TABLE blob_trash ("
    "  prefix TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL);",
    /* 7: per-workspace request rate limits (store/quotas.c): the limits in
     * ws_quotas (NULL = the process's default), and ws_rate, the GCRA's
     * theoretical arrival time (µs since the epoch) of each workspace */
    "ALTER TABLE ws_quotas ADD COLUMN rate_limit INTEGER;"
    "ALTER TABLE ws_quotas ADD COLUMN rate_burst INTEGER;"
    "CREATE TABLE ws_rate ("
    "  workspace TEXT PRIMARY KEY,"
    "  tat_us INTEGER NOT NULL);",
    /* 8: the pending uploads (the S3 arrival poller's rounds, the local
     * folder's recovery of shards answered before their commit, the
     * pending-uploads quota) without a scan of every upload ever made */
    "CREATE INDEX IF NOT EXISTS uploads_pending ON uploads(state, created_ms);",
    /* 9: items_blob holds whole-blob items only.  A tar shard's items
     * (blob_offset set) are found by their batch, shard or name, never by
     * their blob's key: a download of one reads its type from its bytes
     * (staging_get_open), the orphan sweep asks the shards table about a
     * shard's archive.  Each of them cost an entry of the 45-byte shard
     * key here: a quarter of a 500-row shard transaction. */
    "DROP INDEX items_blob;"
    "CREATE INDEX items_blob ON items(blob_key) WHERE blob_offset IS NULL;",
};
const int store__staging_migrations_sqlite_n = (int)ARRAY_LEN(store__staging_migrations_sqlite);

/* PostgreSQL: the same tables and numbers as the SQLite list, with
 * PostgreSQL types (BIGINT for every integer: times in ms, sizes, counts,
 * ids; identity columns for the AUTOINCREMENT keys, never reused). */
const char *const store__staging_migrations_pg[] = {
    /* 1 */
    "CREATE TABLE batches ("
    "  bid BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"   /* never reused: blob prefix b/<bid> */
    "  workspace TEXT NOT NULL,"
    "  batch_id TEXT NOT NULL,"
    "  display_name TEXT NOT NULL,"
    "  batch_type TEXT NOT NULL,"                /* simple-batch | sharded-batch | multipart-batch */
    "  content_type TEXT NOT NULL,"              /* images | videos | mixed */
    "  ingest_mode TEXT NOT NULL,"               /* single | bulk | output */
    "  item_count BIGINT NOT NULL DEFAULT 0,"
    "  created_ms BIGINT NOT NULL,"
    "  expires_ms BIGINT NOT NULL,"
    "  UNIQUE (workspace, batch_id));"
    "CREATE INDEX batches_ws ON batches(workspace, bid);"
    "CREATE INDEX batches_exp ON batches(expires_ms);"
    "CREATE TABLE parts ("
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part_name TEXT NOT NULL,"
    "  part_type TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  description TEXT,"
    "  nested_content_type TEXT,"
    "  PRIMARY KEY (bid, part_name));"
    "CREATE TABLE items ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part TEXT,"
    "  name TEXT NOT NULL,"
    "  shard_id TEXT,"
    "  content_type TEXT NOT NULL,"             /* image | video | ... */
    "  mime TEXT,"
    "  blob_key TEXT NOT NULL,"
    "  size BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE INDEX items_bid ON items(bid, id);"
    "CREATE INDEX items_part ON items(bid, part, id);"
    "CREATE INDEX items_blob ON items(blob_key);"
    "CREATE TABLE shards ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  shard_id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"                      /* tar | image-refs | video-refs */
    "  state TEXT NOT NULL,"                     /* awaiting-upload | uploaded | queued | done | failed */
    "  status_name TEXT NOT NULL,"
    "  status_type TEXT NOT NULL,"
    "  status_meta TEXT,"
    "  objects BIGINT NOT NULL DEFAULT 0,"
    "  blob_key TEXT,"                           /* tar upload */
    "  ingest_id TEXT,"
    "  notify_url TEXT,"
    "  cat_ingest BIGINT NOT NULL DEFAULT 1,"
    "  cat_files BIGINT NOT NULL DEFAULT 1,"
    "  refs TEXT,"                               /* JSON array of {name,url} */
    "  refs_url TEXT,"
    "  event_ms BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE INDEX shards_bid ON shards(bid, id);"
    "CREATE INDEX shards_state ON shards(state, id);"
    "CREATE TABLE shard_events ("
    "  shard TEXT NOT NULL,"
    "  status_name TEXT NOT NULL,"
    "  status_type TEXT NOT NULL,"
    "  meta TEXT,"
    "  event_ms BIGINT NOT NULL);"
    "CREATE INDEX shard_events_shard ON shard_events(shard);"
    "CREATE TABLE uploads ("                     /* pending signed PUT targets */
    "  blob_key TEXT PRIMARY KEY,"
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"                      /* tar | video */
    "  shard_id TEXT,"
    "  file_name TEXT,"
    "  size_limit BIGINT NOT NULL,"
    "  state TEXT NOT NULL,"                     /* pending | done | failed */
    "  created_ms BIGINT NOT NULL);"
    "CREATE TABLE ingests ("
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  ingest_id TEXT NOT NULL,"
    "  response TEXT NOT NULL,"
    "  shards_total BIGINT NOT NULL DEFAULT 0,"
    "  shards_done BIGINT NOT NULL DEFAULT 0,"
    "  shards_failed BIGINT NOT NULL DEFAULT 0,"
    "  created_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (bid, ingest_id));",
    /* 2: per-part item counts, so count?partName is O(1) like the total */
    "CREATE TABLE part_counts ("
    "  bid BIGINT NOT NULL REFERENCES batches(bid) ON DELETE CASCADE,"
    "  part TEXT NOT NULL,"
    "  n BIGINT NOT NULL,"
    "  PRIMARY KEY (bid, part));"
    "INSERT INTO part_counts(bid, part, n)"
    "  SELECT bid, part, count(*) FROM items WHERE part IS NOT NULL GROUP BY bid, part;",
    /* 3: item lookup by name within a part (image sidecars) */
    "CREATE INDEX items_name ON items(bid, part, name, id);",
    /* 4: shard claims (store/shards.c): the process working on an
     * uploaded/queued shard and until when (ms) its claim holds unless
     * renewed; NULL/0 = not claimed */
    "ALTER TABLE shards ADD COLUMN claim_owner TEXT;"
    "ALTER TABLE shards ADD COLUMN claim_until BIGINT NOT NULL DEFAULT 0;",
    /* 5: tar shards kept whole (see the SQLite list) */
    "ALTER TABLE items ADD COLUMN blob_offset BIGINT;"
    "DROP INDEX items_blob;"
    "CREATE INDEX items_blob ON items(blob_key, blob_offset);",
    /* 6: per-workspace usage and quotas (see the SQLite list) */
    "CREATE TABLE ws_usage ("
    "  workspace TEXT PRIMARY KEY,"
    "  staged_bytes BIGINT NOT NULL DEFAULT 0);"
    "INSERT INTO ws_usage(workspace, staged_bytes)"
    "  SELECT b.workspace, sum(i.size) FROM batches b JOIN items i ON i.bid = b.bid GROUP BY b.workspace;"
    "CREATE TABLE ws_quotas ("
    "  workspace TEXT PRIMARY KEY,"
    "  max_staged_bytes BIGINT,"
    "  max_jobs BIGINT,"
    "  max_pending_uploads BIGINT);"
    "CREATE TABLE blob_trash ("
    "  prefix TEXT PRIMARY KEY,"
    "  created_ms BIGINT NOT NULL);",
    /* 7: per-workspace request rate limits (see the SQLite list) */
    "ALTER TABLE ws_quotas ADD COLUMN rate_limit BIGINT;"
    "ALTER TABLE ws_quotas ADD COLUMN rate_burst BIGINT;"
    "CREATE TABLE ws_rate ("
    "  workspace TEXT PRIMARY KEY,"
    "  tat_us BIGINT NOT NULL);",
    /* 8: the pending uploads (see the SQLite list) */
    "CREATE INDEX IF NOT EXISTS uploads_pending ON uploads(state, created_ms);",
    /* 9: items_blob of whole-blob items only (see the SQLite list) */
    "DROP INDEX items_blob;"
    "CREATE INDEX items_blob ON items(blob_key) WHERE blob_offset IS NULL;",
};
const int store__staging_migrations_pg_n = (int)ARRAY_LEN(store__staging_migrations_pg);

int store_staging_migrate(struct store *st, struct err *e)
{
    struct db *d = store__db(st);
    if (db_kind(d) == DB_POSTGRES) {
        if (store__staging_migrations_pg_n == 0)
            return err_set(e, ERR_UNSUPPORTED, "the staging tables have no PostgreSQL schema yet");
        return db_migrate(d, "staging", store__staging_migrations_pg, store__staging_migrations_pg_n, e);
    }
    return db_migrate(d, "staging", store__staging_migrations_sqlite, store__staging_migrations_sqlite_n, e);
}
