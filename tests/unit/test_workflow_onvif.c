/*
 * test_workflow_onvif.c — onvif_sink@v1 (blocks/onvif.c) against a fake
 * camera given as the wf_sinks.soap transport and a fake clock.
 *
 * Sources of the expected values (test_workflow_onvif_ref.py): the password
 * digest from Python's hashlib / base64 as zeep's UsernameToken computes
 * it; the ContinuousMove velocities of each scripted frame from Roboflow's
 * onvif_movement/v1.py move_camera / continuous_move_async arithmetic with
 * simple_pid's PID written out (the rate limiter, the stop axes let through
 * it, the y limit chosen by x's sign, the minimum speed boost); the
 * sequences of calls (configuration once, stop only when seeking, the
 * preset after the idle time) follow v1.py's CameraWrapper.
 */
#include "t.h"

#include <math.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#include "test_workflow_fake.h"

/* ---- the fake camera ----------------------------------------------------------------- */

#define MAX_CALLS 64
struct cam_log {
    char *url[MAX_CALLS], *action[MAX_CALLS], *env[MAX_CALLS];
    int n;
    bool unreachable;    /* every call fails as curl would */
    bool fault_on_move;  /* ContinuousMove answers a SOAP fault */
    int broken;          /* 1: options without a pan/tilt space, 2: capabilities cut short */
};

static const char *CAPS =
    "<?xml version=\"1.0\"?><env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" "
    "xmlns:tt=\"http://www.onvif.org/ver10/schema\"><env:Body><tds:GetCapabilitiesResponse><tds:Capabilities>"
    "<tt:Device><tt:XAddr>http://192.168.0.7/onvif/device</tt:XAddr></tt:Device>"
    "<tt:Media><tt:XAddr>http://192.168.0.7:80/onvif/Media</tt:XAddr></tt:Media>"
    "<tt:PTZ><tt:XAddr>http://192.168.0.7/onvif/PTZ?x=1</tt:XAddr></tt:PTZ>"
    "</tds:Capabilities></tds:GetCapabilitiesResponse></env:Body></env:Envelope>";
static const char *PROFILES =
    "<env:Envelope><env:Body><trt:GetProfilesResponse><trt:Profiles fixed=\"true\" token=\"prof&amp;1\">"
    "<tt:Name>main</tt:Name><tt:PTZConfiguration token=\"ptzcfg\"><tt:Name>p</tt:Name></tt:PTZConfiguration>"
    "</trt:Profiles><trt:Profiles token=\"prof2\"/></trt:GetProfilesResponse></env:Body></env:Envelope>";
static const char *OPTIONS =
    "<env:Envelope><env:Body><tptz:GetConfigurationOptionsResponse><tptz:PTZConfigurationOptions><tt:Spaces>"
    "<tt:ContinuousPanTiltVelocitySpace><tt:URI>x</tt:URI><tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max>"
    "</tt:XRange><tt:YRange><tt:Min>-0.5</tt:Min><tt:Max>0.8</tt:Max></tt:YRange>"
    "</tt:ContinuousPanTiltVelocitySpace><tt:ContinuousZoomVelocitySpace><tt:XRange><tt:Min>-1</tt:Min>"
    "<tt:Max>1</tt:Max></tt:XRange></tt:ContinuousZoomVelocitySpace></tt:Spaces>"
    "</tptz:PTZConfigurationOptions></tptz:GetConfigurationOptionsResponse></env:Body></env:Envelope>";
static const char *PRESETS =
    "<env:Envelope><env:Body><tptz:GetPresetsResponse><tptz:Preset token=\"t1\"><tt:Name>home</tt:Name>"
    "</tptz:Preset><tptz:Preset token=\"t2\"><tt:Name>door</tt:Name></tptz:Preset>"
    "</tptz:GetPresetsResponse></env:Body></env:Envelope>";
static const char *FAULT =
    "<env:Envelope><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason>"
    "<env:Text xml:lang=\"en\">PTZ is locked</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>";

static int fake_soap(void *ud, const char *url, const char *action, const char *envelope, int *status, char **resp,
                     char *err, size_t errlen)
{
    struct cam_log *l = ud;
    *resp = NULL;
    if (l->n < MAX_CALLS) {
        l->url[l->n] = xstrdup(url);
        l->action[l->n] = xstrdup(strrchr(action, '/') + 1);
        l->env[l->n] = xstrdup(envelope);
        l->n++;
    }
    if (l->unreachable) {
        snprintf(err, errlen, "Couldn't connect to server");
        return ERR_UNAVAILABLE;
    }
    const char *a = strrchr(action, '/') + 1;
    const char *r = "<env:Envelope><env:Body/></env:Envelope>";
    *status = 200;
    if (!strcmp(a, "GetCapabilities"))
        r = l->broken == 2 ? "<env:Envelope><env:Body><tt:Media><tt:XAddr>http://x/onvif/Media</tt:XA" : CAPS;
    else if (!strcmp(a, "GetProfiles"))
        r = PROFILES;
    else if (!strcmp(a, "GetConfigurationOptions"))
        r = l->broken == 1 ? "<env:Envelope><env:Body><tt:Spaces><tt:ContinuousZoomVelocitySpace/></tt:Spaces>"
                             "</env:Body></env:Envelope>"
                           : OPTIONS;
    else if (!strcmp(a, "GetPresets"))
        r = PRESETS;
    else if (!strcmp(a, "ContinuousMove") && l->fault_on_move)
        r = FAULT, *status = 500;
    *resp = xstrdup(r);
    return 0;
}

static void log_free(struct cam_log *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->url[i]);
        free(l->action[i]);
        free(l->env[i]);
    }
    memset(l, 0, sizeof *l);
}

/* The attribute value name="..." of the envelope element el, as a number. */
static double attr_num(const char *env, const char *el, const char *name)
{
    const char *p = strstr(env, el);
    if (!p)
        return NAN;
    char pat[32];
    snprintf(pat, sizeof pat, " %s=\"", name);
    const char *q = strstr(p, pat);
    return q ? strtod(q + strlen(pat), NULL) : NAN;
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}
static int64_t (*real_clock)(void);

/* ---- running the workflow -------------------------------------------------------------- */

static const char *DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
    "{\"type\":\"WorkflowParameter\",\"name\":\"text\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/vlm_as_detector@v2\",\"name\":\"d\",\"image\":\"$inputs.image\","
    "\"vlm_output\":\"$inputs.text\",\"classes\":[\"a\"],\"model_type\":\"google-gemini\","
    "\"task_type\":\"object-detection\"},"
    "{\"type\":\"roboflow_core/onvif_sink@v1\",\"name\":\"s\",\"predictions\":\"$steps.d.predictions\","
    "\"camera_ip\":\"10.1.2.3\",\"camera_port\":8080,\"camera_username\":\"ad<min\","
    "\"camera_password\":\"p@ss<&>\",\"pid_kp\":0.25,\"pid_ki\":0.1,\"pid_kd\":0.01%s}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}";

/* One frame at time t_ms with gemini boxes text; the "o" output or NULL + err. */
static json_t *frame(const char *extra, const struct wf_sinks *sk, struct wf_state *st, int64_t t_ms,
                     const char *text, char *err, size_t errlen)
{
    char def[4096];
    snprintf(def, sizeof def, DEF, extra);
    fake_now = t_ms;
    if (!real_clock)
        real_clock = wf__onvif_clock_ms;
    wf__onvif_clock_ms = fake_clock;
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, errlen) < 0)
        return NULL;
    struct vis_image *im = img_new(640, 480, 90);
    const struct vis_image *imgs[1] = {im};
    struct wf_image_input ii = {"image", imgs, 1, false, NULL};
    json_t *params = json_pack("{s:s}", "text", text);
    struct wf_run_inputs in = {&ii, 1, params};
    struct wf_env env = {NULL, NULL, 90, st, sk};
    json_t *res = NULL, *r = NULL;
    if (wf_run(wf, &env, &in, &res, err, errlen) == 0)
        r = json_incref(json_object_get(json_array_get(res, 0), "o"));
    json_decref(res);
    json_decref(params);
    vis_image_free(im);
    wf_free(wf);
    return r;
}

static json_t *frame_ok(const char *extra, const struct wf_sinks *sk, struct wf_state *st, int64_t t_ms,
                        const char *text)
{
    char err[512] = "";
    json_t *o = frame(extra, sk, st, t_ms, text, err, sizeof err);
    if (!o)
        T_FAIL("frame at %lld: %s", (long long)t_ms, err);
    return o;
}

/* ---- tests -------------------------------------------------------------------------- */

TEST(onvif_password_digest_as_hashlib)
{
    /* ref.py: base64(sha1(bytes(range(16)) + created + "p@ss<&>")) */
    unsigned char nonce[16];
    for (int i = 0; i < 16; i++)
        nonce[i] = (unsigned char)i;
    char d[29];
    wf__onvif_digest(nonce, 16, "2026-12-06T12:00:00+00:00", "p@ss<&>", d);
    ASSERT_STR_EQ(d, "w5AHyPmYBDy6NJoRUWTzzsoqXRc=");
    char *env = wf__onvif_envelope("ad<min", "p@ss<&>", nonce, "2026-12-06T12:00:00+00:00", "<x/>");
    ASSERT(strstr(env, "<wsse:Username>ad&lt;min</wsse:Username>") != NULL);
    ASSERT(strstr(env, "#PasswordDigest\">w5AHyPmYBDy6NJoRUWTzzsoqXRc=</wsse:Password>") != NULL);
    ASSERT(strstr(env, "#Base64Binary\">AAECAwQFBgcICQoLDA0ODw==</wsse:Nonce>") != NULL);
    ASSERT(strstr(env, "<wsu:Created>2026-12-06T12:00:00+00:00</wsu:Created>") != NULL);
    ASSERT(strstr(env, "<s:Body><x/></s:Body>") != NULL);
    ASSERT(strstr(env, "p@ss") == NULL); /* the password itself never travels */
    free(env);
}

#define BOX(b) "[{\"box_2d\": " b ", \"label\": \"a\", \"confidence\": 0.9}]"

TEST(onvif_follow_moves_as_roboflow)
{
    struct cam_log l = {0};
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    /* f1 at 10.0 s: configuration (4 calls, once), then a move.
     * ref.py: (-0.0625, 0.009375) */
    json_t *o = frame_ok("", &sk, st, 10000, BOX("[500, 700, 750, 800]"));
    ASSERT_EQ(l.n, 5);
    ASSERT_STR_EQ(l.action[0], "GetCapabilities");
    ASSERT_STR_EQ(l.url[0], "http://10.1.2.3:8080/onvif/device_service");
    ASSERT_STR_EQ(l.action[1], "GetProfiles");
    ASSERT_STR_EQ(l.url[1], "http://10.1.2.3:8080/onvif/Media"); /* the XAddr's path on the configured host */
    ASSERT_STR_EQ(l.action[2], "GetConfigurationOptions");
    ASSERT(strstr(l.env[2], "<tptz:ConfigurationToken>ptzcfg</tptz:ConfigurationToken>") != NULL);
    ASSERT_STR_EQ(l.url[2], "http://10.1.2.3:8080/onvif/PTZ?x=1");
    ASSERT_STR_EQ(l.action[3], "GetPresets");
    ASSERT(strstr(l.env[3], "<tptz:ProfileToken>prof&amp;1</tptz:ProfileToken>") != NULL);
    ASSERT_STR_EQ(l.action[4], "ContinuousMove");
    ASSERT_NEAR(attr_num(l.env[4], "PanTilt", "x"), -0.0625, 1e-12);
    ASSERT_NEAR(attr_num(l.env[4], "PanTilt", "y"), 0.009375, 1e-12);
    ASSERT_NEAR(attr_num(l.env[4], "Zoom", "x"), 0.0, 1e-12);
    ASSERT(json_is_true(json_object_get(o, "seeking")));
    /* the followed detection is the output */
    const json_t *p = json_array_get(json_object_get(json_object_get(o, "predictions"), "predictions"), 0);
    ASSERT_NEAR(json_number_value(json_object_get(p, "x")), 480, 1e-9);
    json_decref(o);
    /* f2 at 10.1 s: inside the 250 ms rate limit, but y newly stops, so the
     * command goes through: ref.py (-0.05, 0) */
    o = frame_ok("", &sk, st, 10100, BOX("[450, 550, 650, 700]"));
    ASSERT_EQ(l.n, 6);
    ASSERT_STR_EQ(l.action[5], "ContinuousMove");
    ASSERT_NEAR(attr_num(l.env[5], "PanTilt", "x"), -0.05, 1e-12);
    ASSERT_NEAR(attr_num(l.env[5], "PanTilt", "y"), 0.0, 1e-12);
    json_decref(o);
    /* f2b at 10.2 s: the same box again: nothing changed to zero and the
     * rate limit holds: no command */
    o = frame_ok("", &sk, st, 10200, BOX("[450, 550, 650, 700]"));
    ASSERT_EQ(l.n, 6);
    json_decref(o);
    /* f3 at 10.4 s: inside the dead zone: a stop */
    o = frame_ok("", &sk, st, 10400, BOX("[450, 500, 600, 650]"));
    ASSERT_EQ(l.n, 7);
    ASSERT_NEAR(attr_num(l.env[6], "PanTilt", "x"), 0.0, 1e-12);
    ASSERT(json_is_false(json_object_get(o, "seeking")));
    json_decref(o);
    /* f4 at 10.5 s: nothing detected, already stopped: no command */
    o = frame_ok("", &sk, st, 10500, "[]");
    ASSERT_EQ(l.n, 7);
    ASSERT(json_is_false(json_object_get(o, "seeking")));
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(o, "predictions"), "predictions")), 0);
    json_decref(o);
    /* f5 at 11.0 s: far off: the PID with its derivative term; x > 0 picks
     * the y maximum 0.8: ref.py (0.11893750000000002, -0.05265000000000001) */
    o = frame_ok("", &sk, st, 11000, BOX("[100, 50, 300, 250]"));
    ASSERT_EQ(l.n, 8);
    ASSERT_NEAR(attr_num(l.env[7], "PanTilt", "x"), 0.11893750000000002, 1e-12);
    ASSERT_NEAR(attr_num(l.env[7], "PanTilt", "y"), -0.05265000000000001, 1e-12);
    ASSERT(json_is_true(json_object_get(o, "seeking")));
    json_decref(o);
    for (int i = 0; i < l.n; i++) /* every request carries the digest, never the password */
        if (!strstr(l.env[i], "#PasswordDigest\">") || strstr(l.env[i], "p@ss"))
            T_FAIL("call %d without a password digest", i);
    log_free(&l);
    wf_state_free(st);
    wf__onvif_clock_ms = real_clock;
}

TEST(onvif_preset_and_idle_return)
{
    struct cam_log l = {0};
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    /* Go To Preset: a stop (seeking is None at first), then GotoPreset with
     * the preset's token at full speed */
    json_t *o = frame_ok(",\"movement_type\":\"Go To Preset\",\"default_position_preset\":\"door\"", &sk, st, 5000,
                         "[]");
    ASSERT_EQ(l.n, 6);
    ASSERT_STR_EQ(l.action[4], "ContinuousMove");
    ASSERT_STR_EQ(l.action[5], "GotoPreset");
    ASSERT(strstr(l.env[5], "<tptz:PresetToken>t2</tptz:PresetToken>") != NULL);
    ASSERT_NEAR(attr_num(l.env[5], "PanTilt", "x"), 1.0, 1e-12);
    ASSERT(json_is_false(json_object_get(o, "seeking")));
    json_decref(o);
    /* an unknown preset: a step error naming the camera's presets */
    char err[512] = "";
    o = frame(",\"movement_type\":\"Go To Preset\",\"default_position_preset\":\"roof\"", &sk, st, 6000, "[]", err,
              sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "Camera does not have preset \"roof\" - valid presets are ['home', 'door']") != NULL);
    log_free(&l);
    wf_state_free(st);

    /* Follow with a return to "home" after 2 s idle */
    st = wf_state_new();
    const char *idle = ",\"move_to_position_after_idle_seconds\":2,\"default_position_preset\":\"home\"";
    o = frame_ok(idle, &sk, st, 20000, BOX("[500, 700, 750, 800]"));
    json_decref(o);
    ASSERT_EQ(l.n, 5);
    o = frame_ok(idle, &sk, st, 20500, "[]"); /* a stop; the return is due at 22.5 s */
    json_decref(o);
    ASSERT_EQ(l.n, 6);
    o = frame_ok(idle, &sk, st, 22000, "[]"); /* not yet */
    json_decref(o);
    ASSERT_EQ(l.n, 6);
    o = frame_ok(idle, &sk, st, 22600, "[]");
    ASSERT_EQ(l.n, 7);
    ASSERT_STR_EQ(l.action[6], "GotoPreset");
    ASSERT(strstr(l.env[6], "<tptz:PresetToken>t1</tptz:PresetToken>") != NULL);
    json_decref(o);
    o = frame_ok(idle, &sk, st, 30000, "[]"); /* once */
    json_decref(o);
    ASSERT_EQ(l.n, 7);
    /* idle without a preset: Roboflow's ValueError */
    o = frame(",\"move_to_position_after_idle_seconds\":2", &sk, st, 31000, "[]", err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "Move to position after idle is set, but no default position is set") != NULL);
    log_free(&l);
    wf_state_free(st);
    wf__onvif_clock_ms = real_clock;
}

TEST(onvif_unreachable_camera_is_a_step_error)
{
    struct cam_log l = {0};
    l.unreachable = true;
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    char err[512] = "";
    json_t *o = frame("", &sk, st, 1000, BOX("[500, 700, 750, 800]"), err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "step 's'") != NULL);
    ASSERT(strstr(err, "Error connecting to camera at 10.1.2.3:8080: GetCapabilities: Couldn't connect to server") !=
           NULL);
    ASSERT_EQ(l.n, 1);
    /* remembered: the next frame fails the same way without a new attempt */
    err[0] = '\0';
    o = frame("", &sk, st, 2000, BOX("[500, 700, 750, 800]"), err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "Couldn't connect to server") != NULL);
    ASSERT_EQ(l.n, 1);
    log_free(&l);
    wf_state_free(st);
    /* a SOAP fault on a move: its reason */
    st = wf_state_new();
    l.fault_on_move = true;
    o = frame("", &sk, st, 1000, BOX("[500, 700, 750, 800]"), err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "ContinuousMove: HTTP 500: PTZ is locked") != NULL);
    log_free(&l);
    wf_state_free(st);
    /* malformed answers: the configuration error names what is missing */
    l.fault_on_move = false;
    static const char *const why[] = {"", "Could not get pan tilt space for camera",
                                      "GetCapabilities: the camera names no Media service"};
    for (int b = 1; b <= 2; b++) {
        st = wf_state_new();
        l.broken = b;
        o = frame("", &sk, st, 1000, BOX("[500, 700, 750, 800]"), err, sizeof err);
        ASSERT(o == NULL);
        if (!strstr(err, why[b]))
            T_FAIL("broken %d: %s", b, err);
        log_free(&l);
        wf_state_free(st);
    }
    /* no transport: refused with a message, never silently */
    struct wf_sinks none = {0};
    o = frame("", &none, NULL, 1000, "[]", err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "no SOAP transport") != NULL);
    /* bad camera fields */
    o = frame(",\"camera_ip\":\"a/b\"", &sk, NULL, 1000, "[]", err, sizeof err);
    ASSERT(o == NULL);
    ASSERT(strstr(err, "camera_ip") != NULL);
    wf__onvif_clock_ms = real_clock;
}

TEST(onvif_zoom_mode)
{
    struct cam_log l = {0};
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    /* a centred 100 x 80 box on 640 x 480 (x 270..370, y 200..280): inside
     * the dead zone, zoom_delta = 200; zoom mode starts with a stop, then
     * the zoom PID on |200 - 25| / 640 = 0.2734375: kp * 0.2734375 =
     * 0.068359375, negated twice (z = -output) */
    const char *zoom = ",\"zoom_if_able\":true";
    const char *box = "[{\"box_2d\": [416.6666667, 421.875, 583.3333333, 578.125], \"label\": \"a\"}]";
    json_t *o = frame_ok(zoom, &sk, st, 50000, box);
    json_decref(o);
    ASSERT_EQ(l.n, 6);
    ASSERT_NEAR(attr_num(l.env[4], "Zoom", "x"), 0.0, 1e-12); /* the stop */
    ASSERT_NEAR(attr_num(l.env[5], "Zoom", "x"), 0.068359375, 1e-12);
    ASSERT_NEAR(attr_num(l.env[5], "PanTilt", "x"), 0.0, 1e-12);
    /* 0.1 s later: still in zoom mode, the new speed 0.07109375 (integral
     * 0.1 * 0.2734375 * 0.1 added) is held back by the rate limiter */
    o = frame_ok(zoom, &sk, st, 50100, box);
    json_decref(o);
    ASSERT_EQ(l.n, 6);
    /* 2.2 s: zoom mode expired and entered again: a stop (seeking), then
     * 0.068359375 + 0.1 * 0.2734375 * (0.1 + 2.1) = 0.128515625 */
    o = frame_ok(zoom, &sk, st, 52200, box);
    ASSERT(json_is_true(json_object_get(o, "seeking")));
    json_decref(o);
    ASSERT_EQ(l.n, 8);
    ASSERT_NEAR(attr_num(l.env[6], "Zoom", "x"), 0.0, 1e-12);
    ASSERT_NEAR(attr_num(l.env[7], "Zoom", "x"), 0.128515625, 1e-12);
    log_free(&l);
    wf_state_free(st);
    wf__onvif_clock_ms = real_clock;
}

static const char *TRACK_DEF =
    "{\"version\":\"1.0\",\"inputs\":[{\"type\":\"WorkflowImage\",\"name\":\"image\"},"
    "{\"type\":\"WorkflowParameter\",\"name\":\"text\"}],"
    "\"steps\":[{\"type\":\"roboflow_core/vlm_as_detector@v2\",\"name\":\"d\",\"image\":\"$inputs.image\","
    "\"vlm_output\":\"$inputs.text\",\"classes\":[\"a\"],\"model_type\":\"google-gemini\","
    "\"task_type\":\"object-detection\"},"
    "{\"type\":\"roboflow_core/byte_tracker@v3\",\"name\":\"t\",\"image\":\"$inputs.image\","
    "\"detections\":\"$steps.d.predictions\"},"
    "{\"type\":\"roboflow_core/onvif_sink@v1\",\"name\":\"s\",\"predictions\":\"$steps.t.tracked_detections\","
    "\"camera_ip\":\"10.1.2.3\",\"camera_port\":8080,\"camera_username\":\"u\",\"camera_password\":\"p\","
    "\"follow_tracker\":%s}],"
    "\"outputs\":[{\"type\":\"JsonField\",\"name\":\"o\",\"selector\":\"$steps.s.*\"}]}";

/* The x centre of the detection the camera followed on each of three frames. */
static void followed_x(const char *follow, double xs[3])
{
    struct cam_log l = {0};
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    char def[4096], err[512] = "";
    snprintf(def, sizeof def, TRACK_DEF, follow);
    struct wf_workflow *wf = NULL;
    if (wf_compile_text(def, strlen(def), &wf, err, sizeof err) < 0)
        T_FAIL("%s", err);
    /* A on the right, B on the left; B becomes the more confident from frame 2 */
    static const char *const texts[3] = {
        "[{\"box_2d\": [400, 700, 600, 800], \"label\": \"a\", \"confidence\": 0.9},"
        " {\"box_2d\": [400, 100, 600, 200], \"label\": \"a\", \"confidence\": 0.7}]",
        "[{\"box_2d\": [400, 705, 600, 805], \"label\": \"a\", \"confidence\": 0.7},"
        " {\"box_2d\": [400, 100, 600, 200], \"label\": \"a\", \"confidence\": 0.95}]",
        "[{\"box_2d\": [400, 710, 600, 810], \"label\": \"a\", \"confidence\": 0.7},"
        " {\"box_2d\": [400, 100, 600, 200], \"label\": \"a\", \"confidence\": 0.95}]"};
    struct vis_image *im = img_new(640, 480, 90);
    const struct vis_image *imgs[1] = {im};
    json_t *vm = json_pack("{s:s,s:i,s:f}", "video_identifier", "cam", "frame_number", 1, "fps", 30.0);
    for (int f = 0; f < 3; f++) {
        fake_now = 1000 + 1000 * f;
        if (!real_clock)
            real_clock = wf__onvif_clock_ms;
        wf__onvif_clock_ms = fake_clock;
        json_object_set_new(vm, "frame_number", json_integer(f + 1));
        struct wf_image_input ii = {"image", imgs, 1, false, vm};
        json_t *params = json_pack("{s:s}", "text", texts[f]);
        struct wf_run_inputs in = {&ii, 1, params};
        struct wf_env env = {NULL, NULL, 90, st, &sk};
        json_t *res = NULL;
        if (wf_run(wf, &env, &in, &res, err, sizeof err) < 0)
            T_FAIL("frame %d: %s", f, err);
        const json_t *p = json_array_get(
            json_object_get(json_object_get(json_object_get(json_array_get(res, 0), "o"), "predictions"),
                            "predictions"),
            0);
        xs[f] = json_number_value(json_object_get(p, "x"));
        json_decref(res);
        json_decref(params);
    }
    json_decref(vm);
    vis_image_free(im);
    wf_free(wf);
    log_free(&l);
    wf_state_free(st);
    wf__onvif_clock_ms = real_clock;
}

TEST(onvif_follows_the_tracked_object)
{
    /* follow_tracker: the tracker id of frame 1's most confident detection
     * (A, x 448..512) is kept while it is present, though B becomes more
     * confident; without it the most confident detection of each frame */
    double xs[3];
    followed_x("true", xs);
    ASSERT(xs[0] > 400 && xs[1] > 400 && xs[2] > 400);
    followed_x("false", xs);
    ASSERT(xs[0] > 400 && xs[1] < 200 && xs[2] < 200);
}

TEST(onvif_simulated_variable_speed)
{
    /* simulate_variable_speed: the minimum speed becomes 0.1; a box left of
     * the centre (x 160..240: offset 120 / 640, kp * 0.1875 = 0.047 boosted
     * to 0.1) is a speed of 0.1, sent as one full-speed pulse every
     * int(1 / 0.1) = 10 frames and zeros in between (v1.py
     * simulate_variable_speed) */
    struct cam_log l = {0};
    struct wf_sinks sk = {0};
    sk.webhook_ud = &l;
    sk.soap = fake_soap;
    struct wf_state *st = wf_state_new();
    const char *sim = ",\"simulate_variable_speed\":true,\"pid_ki\":0";
    const char *box = "[{\"box_2d\": [400, 250, 600, 375], \"label\": \"a\"}]";
    for (int f = 1; f <= 10; f++) {
        json_t *o = frame_ok(sim, &sk, st, 100000 + 1000 * f, box);
        json_decref(o);
        ASSERT_EQ(l.n, 4 + f); /* one command per frame, 1 s apart */
        double x = attr_num(l.env[l.n - 1], "PanTilt", "x");
        if (f < 10)
            ASSERT_NEAR(x, 0.0, 1e-12);
        else
            ASSERT_NEAR(x, 1.0, 1e-12);
    }
    log_free(&l);
    wf_state_free(st);
    wf__onvif_clock_ms = real_clock;
}

TEST_MAIN()
