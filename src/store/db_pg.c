/*
 * db_pg.c — the PostgreSQL backend of the SQL layer (db.h).
 *
 * Not written yet: db_open() of a postgres:// target is refused with a
 * clear message until the libpq backend lands (issue 11).  No other entry
 * point can be reached, since no PostgreSQL connection can exist.
 */
#include "store/db_int.h"

#include <stdlib.h>
#include <string.h>

int db__pg_connect(struct db *d, struct db_conn *c, struct err *e)
{
    (void)c;
    return err_set(e, ERR_UNSUPPORTED, "cannot open '%s': this vbatch has no PostgreSQL backend yet", d->display);
}

char *db__pg_display(const char *target)
{
    /* scheme://user:password@host... -> scheme://user:***@host... */
    const char *p = strstr(target, "://");
    const char *at = p ? strchr(p + 3, '@') : NULL;
    const char *colon = p ? memchr(p + 3, ':', at ? (size_t)(at - (p + 3)) : 0) : NULL;
    if (!at || !colon)
        return xstrdup(target);
    return xasprintf("%.*s:***%s", (int)(colon - target), target, at);
}

#define UNREACHABLE()                                                                                               \
    do {                                                                                                            \
        log_error("db", "PostgreSQL backend called without a connection");                                        \
        abort();                                                                                                    \
    } while (0)

void db__pg_disconnect(struct db_conn *c) { (void)c; }
int db__pg_exec(struct db_conn *c, const char *sql, struct err *e) { (void)c; (void)sql; (void)e; UNREACHABLE(); }
int db__pg_begin(struct db_conn *c, struct err *e) { (void)c; (void)e; UNREACHABLE(); }
int db__pg_prepare(struct db_stmt *s, struct err *e) { (void)s; (void)e; UNREACHABLE(); }
int db__pg_step(struct db_stmt *s, struct err *e) { (void)s; (void)e; UNREACHABLE(); }
void db__pg_reset(struct db_stmt *s) { (void)s; UNREACHABLE(); }
void db__pg_finalize(struct db_stmt *s) { (void)s; UNREACHABLE(); }
bool db__pg_col_null(struct db_stmt *s, int col) { (void)s; (void)col; UNREACHABLE(); }
int64_t db__pg_col_int64(struct db_stmt *s, int col) { (void)s; (void)col; UNREACHABLE(); }
double db__pg_col_double(struct db_stmt *s, int col) { (void)s; (void)col; UNREACHABLE(); }
const char *db__pg_col_text(struct db_stmt *s, int col) { (void)s; (void)col; UNREACHABLE(); }
const void *db__pg_col_blob(struct db_stmt *s, int col, size_t *len) { (void)s; (void)col; (void)len; UNREACHABLE(); }
int db__pg_col_count(struct db_stmt *s) { (void)s; UNREACHABLE(); }
