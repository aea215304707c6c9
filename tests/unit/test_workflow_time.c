/*
 * test_workflow_time.c — current_time v1: the zone offsets read from the
 * tz database against Python's zoneinfo (tests/unit/test_workflow_time_ref.py),
 * and the block's outputs (Python datetime.isoformat / strftime shapes).
 */
#include "t.h"

#include <time.h>

#include "base/base.h"
#include "workflow/wf_int.h"

static const struct {
    const char *zone;
    int off[4];
} REF[] = {
    {"UTC", {0, 0, 0, 0}},
    {"Europe/Berlin", {3600, 7200, 3600, 3600}},
    {"America/New_York", {-18000, -14400, -18000, -18000}},
    {"Australia/Lord_Howe", {39600, 37800, 39600, 39600}},
    {"Asia/Kathmandu", {20700, 20700, 20700, 20700}},
    {"Pacific/Chatham", {49500, 45900, 49500, 49500}},
    {"America/St_Johns", {-12600, -9000, -12600, -12600}},
    {"Etc/GMT+12", {-43200, -43200, -43200, -43200}},
    {"Pacific/Kiritimati", {50400, 50400, 50400, 50400}},
};
/* 2026-01-01, 2026-07-01, 2000-01-01, 2038-01-01 00:00 UTC */
static const int64_t INSTANTS[4] = {1767225600, 1782864000, 946684800, 2145916800};

TEST(zone_offsets_match_zoneinfo)
{
    for (size_t z = 0; z < sizeof REF / sizeof *REF; z++)
        for (size_t k = 0; k < 4; k++) {
            int off = 12345;
            if (wf__tz_offset(REF[z].zone, INSTANTS[k], &off) < 0)
                T_FAIL("%s: no tz data", REF[z].zone);
            if (off != REF[z].off[k])
                T_FAIL("%s at %lld: %d, zoneinfo says %d", REF[z].zone, (long long)INSTANTS[k], off,
                       REF[z].off[k]);
        }
    int off;
    ASSERT_EQ(wf__tz_offset("No/Such_Zone", 0, &off), ERR_NOTFOUND);
}

static json_t *run_tz(const char *tz, char *err, size_t errlen)
{
    char def[1024];
    snprintf(def, sizeof def,
             "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
             "{\"type\":\"WorkflowParameter\",\"name\":\"tz\",\"default_value\":\"%s\"}],"
             "\"steps\":[{\"type\":\"roboflow_core/current_time@v1\",\"name\":\"t\",\"timezone\":\"$inputs.tz\"}],"
             "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.t.*\"}]}",
             tz);
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    struct vis_image *im = vis_image_new(4, 4, VIS_BGR);
    memset(im->px, 0, (size_t)im->stride * 4);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    struct wf_run_inputs in = {&ii, 1, NULL};
    struct wf_env env = {NULL, NULL, 90, NULL, NULL};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    wf_free(wf);
    vis_image_free(im);
    return r;
}

TEST(current_time_outputs)
{
    char err[512] = "";
    /* CLOCK_REALTIME as the block reads it (time() may use the coarse clock,
     * a few ms behind) */
    struct timespec b, a;
    clock_gettime(CLOCK_REALTIME, &b);
    json_t *o = run_tz("UTC", err, sizeof err);
    clock_gettime(CLOCK_REALTIME, &a);
    time_t before = b.tv_sec, after = a.tv_sec;
    if (!o)
        T_FAIL("run: %s", err);
    const char *iso = json_string_value(json_object_get(o, "iso_string"));
    const char *date = json_string_value(json_object_get(o, "date"));
    const char *clk = json_string_value(json_object_get(o, "time"));
    ASSERT(iso && date && clk);
    /* YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, date and time the same instant */
    ASSERT_EQ(strlen(date), 10);
    ASSERT_EQ(strlen(clk), 8);
    ASSERT(!strncmp(iso, date, 10) && iso[10] == 'T' && !strncmp(iso + 11, clk, 8));
    ASSERT(str_has_suffix(iso, "+00:00"));
    ASSERT(strlen(iso) == 25 || strlen(iso) == 32);
    ASSERT_STR_EQ(json_string_value(json_object_get(o, "timestamp")), iso);
    struct tm tm = {0};
    ASSERT(strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm) != NULL);
    time_t t = timegm(&tm);
    ASSERT(t >= before && t <= after);
    json_decref(o);
    /* a zone with a 45-minute offset */
    o = run_tz("Asia/Kathmandu", err, sizeof err);
    ASSERT(o);
    ASSERT(str_has_suffix(json_string_value(json_object_get(o, "iso_string")), "+05:45"));
    json_decref(o);
    o = run_tz("America/St_Johns", err, sizeof err);
    ASSERT(o);
    const char *s = json_string_value(json_object_get(o, "iso_string"));
    ASSERT(str_has_suffix(s, "-03:30") || str_has_suffix(s, "-02:30"));
    json_decref(o);
    /* only the curated zones */
    ASSERT(run_tz("Europe/Paris", err, sizeof err) == NULL);
    ASSERT(strstr(err, "received unsupported timezone 'Europe/Paris'"));
    ASSERT(run_tz("../../etc/passwd", err, sizeof err) == NULL);
    ASSERT(strstr(err, "unsupported timezone"));
}

TEST_MAIN()
