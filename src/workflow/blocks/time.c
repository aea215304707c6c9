/*
 * blocks/time.c — current_time v1 (roboflow/inference formatters/
 * current_time, read, not copied): the wall clock in one of Roboflow's
 * curated IANA time zones, as a timestamp, an ISO 8601 string with the
 * zone's offset (Python's datetime.isoformat()), a date and a time.
 *
 * The zone's UTC offset comes from the system's compiled tz database
 * (TZif files under /usr/share/zoneinfo, Debian's tzdata): the local time
 * type of the last transition at or before the instant.  The files are
 * read on each call (a few KiB), so no process-wide TZ state is touched
 * and runs on several threads do not interfere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define TZ_DIR "/usr/share/zoneinfo/"
#define TZ_MAX_FILE (1u << 20)

/* Roboflow's TIMEZONE_OPTIONS (the names only). */
static const char *const ZONES[] = {
    "Etc/GMT+12",          "Pacific/Pago_Pago",    "Pacific/Honolulu",    "Pacific/Marquesas",
    "America/Anchorage",   "Pacific/Gambier",      "America/Los_Angeles", "America/Denver",
    "America/Phoenix",     "America/Chicago",      "America/Mexico_City", "America/New_York",
    "America/Bogota",      "America/Halifax",      "America/Puerto_Rico", "America/St_Johns",
    "America/Sao_Paulo",   "Atlantic/South_Georgia", "Atlantic/Azores",   "Atlantic/Cape_Verde",
    "UTC",                 "Europe/London",        "Europe/Berlin",       "Africa/Lagos",
    "Europe/Kyiv",         "Africa/Cairo",         "Africa/Johannesburg", "Europe/Moscow",
    "Europe/Istanbul",     "Africa/Nairobi",       "Asia/Tehran",         "Asia/Dubai",
    "Asia/Kabul",          "Asia/Karachi",         "Asia/Kolkata",        "Asia/Kathmandu",
    "Asia/Dhaka",          "Asia/Yangon",          "Asia/Bangkok",        "Asia/Shanghai",
    "Australia/Eucla",     "Asia/Tokyo",           "Australia/Darwin",    "Australia/Adelaide",
    "Australia/Sydney",    "Pacific/Port_Moresby", "Australia/Lord_Howe", "Pacific/Guadalcanal",
    "Pacific/Norfolk",     "Pacific/Fiji",         "Pacific/Auckland",    "Pacific/Chatham",
    "Pacific/Tongatapu",   "Pacific/Apia",         "Pacific/Kiritimati",  NULL,
};

static int64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

/* UTC offset (seconds) of zone `name` at Unix time t, from its TZif file. */
int wf__tz_offset(const char *name, int64_t t, int *offset)
{
    char path[256];
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc = ERR_NOTFOUND;
    snprintf(path, sizeof path, TZ_DIR "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ERR_NOTFOUND;
    buf = malloc(TZ_MAX_FILE);
    if (buf)
        n = fread(buf, 1, TZ_MAX_FILE, f);
    fclose(f);
    if (!buf)
        return ERR_NOMEM;
    const unsigned char *p = buf, *end = buf + n;
    for (int pass = 0; pass < 2; pass++) {
        if (end - p < 44 || memcmp(p, "TZif", 4) != 0)
            break;
        int version = p[4];
        int64_t isutc = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4);
        int64_t timecnt = be(p + 32, 4), typecnt = be(p + 36, 4), charcnt = be(p + 40, 4);
        int tsz = pass == 0 ? 4 : 8;
        if (timecnt < 0 || typecnt < 1 || charcnt < 0 || leap < 0 || isutc < 0 || isstd < 0 ||
            timecnt > 100000 || typecnt > 256)
            break;
        size_t body = (size_t)timecnt * (size_t)tsz + (size_t)timecnt + (size_t)typecnt * 6 +
                      (size_t)charcnt + (size_t)leap * (size_t)(tsz + 4) + (size_t)isstd +
                      (size_t)isutc;
        if ((size_t)(end - p) < 44 + body)
            break;
        if (pass == 0 && version >= '2') { /* use the 64-bit block that follows */
            p += 44 + body;
            continue;
        }
        const unsigned char *times = p + 44, *idx = times + timecnt * tsz, *types = idx + timecnt;
        int ti = 0;
        /* before the first transition: the first standard-time type (or 0) */
        for (int k = 0; k < typecnt; k++)
            if (!types[k * 6 + 4]) {
                ti = k;
                break;
            }
        for (int64_t k = 0; k < timecnt; k++) {
            if (be(times + k * tsz, tsz) > t)
                break;
            ti = idx[k] < typecnt ? idx[k] : ti;
        }
        *offset = (int)be(types + ti * 6, 4);
        rc = 0;
        break;
    }
    free(buf);
    return rc;
}

static int current_time_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *tz = wf_arg_str(c, i, "timezone");
        bool ok = false;
        for (size_t k = 0; ZONES[k] && !ok; k++)
            ok = tz && !strcmp(ZONES[k], tz);
        if (!ok)
            return wf_call_fail(c, "`roboflow_core/current_time@v1` received unsupported timezone "
                                   "'%.80s'. Provide one of the curated timezone options shown in "
                                   "the block dropdown.",
                                tz ? tz : "");
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int off = 0;
        if (wf__tz_offset(tz, (int64_t)ts.tv_sec, &off) < 0)
            return wf_call_fail(c, "`roboflow_core/current_time@v1` received unknown timezone "
                                   "'%s'. Provide one of the curated timezone options shown in the "
                                   "block dropdown.",
                                tz);
        time_t local = (time_t)ts.tv_sec + off;
        struct tm tm;
        gmtime_r(&local, &tm);
        char date[32], clock[32], iso[96], zone[16];
        int us = (int)(ts.tv_nsec / 1000), a = off < 0 ? -off : off;
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
        if (a % 60)
            snprintf(zone, sizeof zone, "%c%02d:%02d:%02d", off < 0 ? '-' : '+', a / 3600,
                     a / 60 % 60, a % 60);
        else
            snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
        /* datetime.isoformat(): microseconds only when non-zero */
        if (us)
            snprintf(iso, sizeof iso, "%sT%s.%06d%s", date, clock, us, zone);
        else
            snprintf(iso, sizeof iso, "%sT%s%s", date, clock, zone);
        wf_out_json(c, i, "timestamp", json_string(iso));
        wf_out_json(c, i, "iso_string", json_string(iso));
        wf_out_json(c, i, "date", json_string(date));
        wf_out_json(c, i, "time", json_string(clock));
    }
    return 0;
}

static const struct wf_field current_time_fields[] = {
    {"timezone", NULL, WF_FT_STRING, "\"UTC\"", WF_K_STRING, 0, NULL},
};
static const struct wf_output current_time_outs[] = {
    {"timestamp", 0}, {"iso_string", WF_K_STRING}, {"date", WF_K_STRING}, {"time", WF_K_STRING}};
static const struct wf_block current_time = {
    (const char *const[]){"roboflow_core/current_time@v1", NULL},
    current_time_fields, ARRAY_LEN(current_time_fields), current_time_outs,
    ARRAY_LEN(current_time_outs), 0, 0, NULL, current_time_run, NULL};

const struct wf_block *const wf_blocks_time[] = {&current_time, NULL};
