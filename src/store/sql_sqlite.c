/*
 * sql_sqlite.c — the SQL text of the core schema (SQLite dialect), kept in
 * one place so that a PostgreSQL dialect can sit next to it later.  Each
 * array element is one migration; never edit an applied one, append.
 */
#include "store/store_int.h"

const char *const store__core_migrations[] = {
    /* 1: workspaces, API keys, workflow registry, webhook outbox */
    "CREATE TABLE workspaces ("
    "  name TEXT PRIMARY KEY,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE api_keys ("
    "  key_id TEXT PRIMARY KEY,"           /* first 8 chars after the prefix */
    "  workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,"
    "  key_hash BLOB NOT NULL,"            /* SHA-256 of the whole key */
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE workflows ("
    "  workspace TEXT NOT NULL,"
    "  workflow_id TEXT NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (workspace, workflow_id));"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  url TEXT NOT NULL,"
    "  workspace TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  sign INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'pending'," /* pending | delivered | failed */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_ms INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  done_ms INTEGER);"
    "CREATE INDEX outbox_due ON outbox(state, next_ms);",
    /* 2: models registered through the API or the CLI (src/jobs/models.c):
     * the bytes are blobs (models/<id, '/' as "--">/<generation>/…), the
     * row says which generation is the live one */
    "CREATE TABLE models ("
    "  model_id TEXT PRIMARY KEY,"
    "  weights_key TEXT NOT NULL,"         /* blob: the ONNX file */
    "  meta_key TEXT NOT NULL,"            /* blob: metadata JSON (class names, ...) */
    "  size INTEGER NOT NULL,"             /* bytes of the ONNX file */
    "  sha256 TEXT NOT NULL,"              /* lowercase hex of the ONNX file */
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL);",
    /* 3: models get a scope (issue 9): the workspace that registered the
     * model over HTTP, or '' for the operator's (the CLI without
     * --workspace).  Rows stored before had no owner recorded: they become
     * the operator's (readable and usable by every workspace as before,
     * writable only with the CLI).  Workspace models' blobs live under
     * wsmodels/<ws>/<id, '/' as "--">/<generation>/. */
    "CREATE TABLE models_v3 ("
    "  workspace TEXT NOT NULL DEFAULT '',"
    "  model_id TEXT NOT NULL,"
    "  weights_key TEXT NOT NULL,"
    "  meta_key TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (workspace, model_id));"
    "INSERT INTO models_v3(workspace, model_id, weights_key, meta_key, size, sha256, created_ms, updated_ms)"
    "  SELECT '', model_id, weights_key, meta_key, size, sha256, created_ms, updated_ms FROM models;"
    "DROP TABLE models;"
    "ALTER TABLE models_v3 RENAME TO models;",
    /* 4: webhook delivery with bounded concurrency (src/store/outbox.c):
     * the destination host:port of each row (per-destination limit; '' in
     * rows queued before, worked out from url when sent) and the order key
     * (rows of one workspace and key go out one at a time, in id order) */
    "ALTER TABLE outbox ADD COLUMN dest TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE outbox ADD COLUMN order_key TEXT;"
    "CREATE INDEX outbox_order ON outbox(workspace, order_key, id) WHERE state='pending';",
    /* 5: singleton leases across the processes on one database
     * (src/store/leases.c: the expiry sweeper's "staging-sweep") */
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"                     /* store_owner() of the holder */
    "  until_ms INTEGER NOT NULL);",
    /* 6: the installation secret (store.c): one row named 'installation',
     * 32 bytes, shared by every process on the database */
    "CREATE TABLE secrets ("
    "  name TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL);",
};
const int store__core_migrations_n = (int)ARRAY_LEN(store__core_migrations);
