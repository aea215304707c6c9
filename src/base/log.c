/*
 * log.c — one line per event on stderr.  Lines are formatted into a local
 * buffer and written with a single write(2), so lines from different
 * threads never interleave.
 */
#include "base/base.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level = -1;
static atomic_int log_json = -1;

static void log_init_env(void)
{
    if (atomic_load(&log_level) >= 0)
        return;
    const char *e = getenv("VBATCH_LOG");
    int lvl = LOG_INFO;
    if (e) {
        if (!strcmp(e, "debug"))
            lvl = LOG_DEBUG;
        else if (!strcmp(e, "warn"))
            lvl = LOG_WARN;
        else if (!strcmp(e, "error"))
            lvl = LOG_ERROR;
    }
    atomic_store(&log_level, lvl);
    const char *j = getenv("VBATCH_LOG_JSON");
    atomic_store(&log_json, j && *j == '1');
}

void log_set_level(enum log_level lvl)
{
    log_init_env();
    atomic_store(&log_level, (int)lvl);
}

bool log_enabled(enum log_level lvl)
{
    log_init_env();
    return (int)lvl >= atomic_load(&log_level);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    char ts[TIME_ISO_LEN];
    time_iso8601(time_now_ms(), ts);
    struct buf msg = BUF_INIT, line = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    if (atomic_load(&log_json)) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", ts,
                   level_names[lvl], module);
        for (size_t i = 0; i < msg.len; i++) {
            unsigned char c = (unsigned char)msg.data[i];
            if (c == '"' || c == '\\')
                buf_printf(&line, "\\%c", c);
            else if (c < 0x20)
                buf_printf(&line, "\\u%04x", c);
            else
                buf_append(&line, &msg.data[i], 1);
        }
        buf_puts(&line, "\"}\n");
    } else {
        buf_printf(&line, "%s %-5s %s: %s\n", ts, level_names[lvl], module, msg.data ? msg.data : "");
    }
    ssize_t w = write(2, line.data, line.len);
    (void)w;
    buf_release(&msg);
    buf_release(&line);
}
