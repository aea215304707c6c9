/*
 * blocks/onvif.c — onvif_sink@v1: move an ONVIF PTZ camera to follow a
 * detection, or to a preset (roboflow/inference core_steps/sinks/
 * onvif_movement/v1.py, read, not copied).
 *
 * The camera is spoken to in SOAP 1.2 over HTTP through env->sinks->soap
 * (the jobs worker: libcurl behind the same SSRF guard as every outbound
 * URL, bounded timeouts).  Every request carries a WS-Security
 * UsernameToken with a password digest, base64(SHA-1(nonce + created +
 * password)), as python-onvif's zeep client sends.  The first call for a
 * camera configures it as Roboflow's CameraWrapper.configure_async does:
 * GetCapabilities (device service at http://ip:port/onvif/device_service)
 * for the Media and PTZ addresses, GetProfiles (the first profile),
 * GetConfigurationOptions of its PTZ configuration (the continuous pan/tilt
 * velocity space is required, the zoom one optional) and GetPresets.
 *
 * State per step, camera (ip:port) and run state (the jobs worker gives a
 * video one state, an image its own): the configuration, the PID
 * controllers (simple_pid's PID with setpoint 0, output limits [-1, 1],
 * derivative on measurement), the tracked tracker id, seeking, the last
 * speeds, the rate limiter, zoom mode and the pending return to the preset.
 * The decisions follow Roboflow's run() / move_camera() /
 * continuous_move_async() step by step, including its quirks (the y and
 * zoom limits chosen by the sign of x, stop commands let through the rate
 * limiter when an axis newly stops, 0.5x pan/tilt once zoomed).
 *
 * Departures (docs/WORKFLOWS-ENGINE.md):
 * - the SOAP calls are made synchronously in the step (Roboflow schedules
 *   them on an asyncio loop and returns at once), so `seeking` reflects this
 *   frame's command, and a camera that cannot be reached or configured, a
 *   SOAP fault or a missing preset is a step error naming the camera
 *   (Roboflow logs them in its loop thread); a configuration failure is
 *   remembered for the state (no new attempt each frame) as Roboflow's
 *   _has_config_error;
 * - the service addresses the camera returns are used with the configured
 *   ip:port (their path only), so the SSRF guard sees one host;
 * - the return to the default preset after move_to_position_after_idle_
 *   seconds is checked when the next frame runs (no timer thread), and any
 *   moving command cancels it (Roboflow cancels it only when all three
 *   speeds are non-zero).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define ONVIF_MAX_PRESETS 256
#define ONVIF_MAX_TEXT 256         /* ip, user, preset names, tokens */
#define ONVIF_MAX_PASSWORD 1024
#define ZOOM_MODE_MS 2000          /* ZOOM_MODE_SECONDS */
#define ZOOM_MODE_SPEED_REDUCER 0.5

static int64_t default_clock(void)
{
    return time_mono_ms();
}
int64_t (*wf__onvif_clock_ms)(void) = default_clock;

/* ---- WS-Security ------------------------------------------------------------------ */

void wf__onvif_digest(const unsigned char *nonce, size_t nlen, const char *created, const char *password,
                      char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    if (!x || !EVP_DigestInit_ex(x, EVP_sha1(), NULL) || !EVP_DigestUpdate(x, nonce, nlen) ||
        !EVP_DigestUpdate(x, created, strlen(created)) || !EVP_DigestUpdate(x, password, strlen(password)) ||
        !EVP_DigestFinal_ex(x, md, &mdlen) || mdlen != 20)
        mdlen = 0;
    EVP_MD_CTX_free(x);
    char *b = base64_encode(md, mdlen);
    snprintf(out, 29, "%s", b);
    free(b);
}

/* XML text / attribute escaping into a new string. */
static char *xml_esc(const char *s)
{
    struct buf b = BUF_INIT;
    for (; *s; s++) {
        switch (*s) {
        case '&': buf_puts(&b, "&amp;"); break;
        case '<': buf_puts(&b, "&lt;"); break;
        case '>': buf_puts(&b, "&gt;"); break;
        case '"': buf_puts(&b, "&quot;"); break;
        case '\'': buf_puts(&b, "&apos;"); break;
        default: buf_append(&b, s, 1);
        }
    }
    return buf_detach(&b, NULL);
}

#define NS_TPTZ "http://www.onvif.org/ver20/ptz/wsdl"
#define NS_TRT "http://www.onvif.org/ver10/media/wsdl"
#define NS_TDS "http://www.onvif.org/ver10/device/wsdl"
#define NS_TT "http://www.onvif.org/ver10/schema"

char *wf__onvif_envelope(const char *user, const char *password, const unsigned char nonce[16], const char *created,
                         const char *body)
{
    char digest[29];
    wf__onvif_digest(nonce, 16, created, password, digest);
    char *n64 = base64_encode(nonce, 16), *u = xml_esc(user);
    char *env = xasprintf(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">"
        "<s:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-wssecurity-secext-1.0.xsd\" xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-wssecurity-utility-1.0.xsd\"><wsse:UsernameToken><wsse:Username>%s</wsse:Username>"
        "<wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-"
        "1.0#PasswordDigest\">%s</wsse:Password><wsse:Nonce EncodingType=\"http://docs.oasis-open.org/wss/2004/"
        "01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">%s</wsse:Nonce><wsu:Created>%s"
        "</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header><s:Body>%s</s:Body></s:Envelope>",
        u, digest, n64, created, body);
    free(n64);
    free(u);
    return env;
}

/* ---- a small XML reader: elements by local name --------------------------------------- */

/* The next element named `local` (any prefix) in [p, end): *tag = its start
 * tag ("<x:Name ...>"), [*in, *in_end) its content (empty when
 * self-closing).  false when there is none or it is not closed. */
static bool xml_elem(const char *p, const char *end, const char *local, const char **tag, const char **in,
                     const char **in_end)
{
    size_t ll = strlen(local);
    while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        const char *q = p + 1;
        if (q >= end || *q == '/' || *q == '?' || *q == '!') {
            p = q;
            continue;
        }
        const char *ne = q;
        while (ne < end && *ne != '>' && *ne != '/' && *ne != ' ' && *ne != '\t' && *ne != '\r' && *ne != '\n')
            ne++;
        const char *colon = memchr(q, ':', (size_t)(ne - q));
        const char *name = colon ? colon + 1 : q;
        const char *gt = memchr(ne, '>', (size_t)(end - ne));
        if (!gt)
            return false;
        if ((size_t)(ne - name) != ll || memcmp(name, local, ll) != 0) {
            p = gt;
            continue;
        }
        *tag = p;
        if (gt[-1] == '/') {
            *in = *in_end = gt;
            return true;
        }
        /* the matching close tag, counting nested elements of the same name */
        int depth = 1;
        const char *r = gt + 1;
        while (r < end && (r = memchr(r, '<', (size_t)(end - r))) != NULL) {
            bool close = r + 1 < end && r[1] == '/';
            const char *s = r + 1 + close, *e2 = s;
            while (e2 < end && *e2 != '>' && *e2 != '/' && *e2 != ' ' && *e2 != '\t' && *e2 != '\r' && *e2 != '\n')
                e2++;
            const char *c2 = memchr(s, ':', (size_t)(e2 - s));
            const char *n2 = c2 ? c2 + 1 : s;
            const char *g2 = memchr(e2, '>', (size_t)(end - e2));
            if (!g2)
                return false;
            if ((size_t)(e2 - n2) == ll && !memcmp(n2, local, ll)) {
                if (close && --depth == 0) {
                    *in = gt + 1;
                    *in_end = r;
                    return true;
                }
                if (!close && g2[-1] != '/')
                    depth++;
            }
            r = g2 + 1;
        }
        return false;
    }
    return false;
}

static char *xml_unesc(const char *s, const char *e)
{
    struct buf b = BUF_INIT;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    while (s < e) {
        size_t k = 0;
        if (*s == '&')
            for (; k < ARRAY_LEN(ents); k++)
                if ((size_t)(e - s) >= strlen(ents[k].ent) && !strncmp(s, ents[k].ent, strlen(ents[k].ent)))
                    break;
        if (*s == '&' && k < ARRAY_LEN(ents)) {
            buf_append(&b, &ents[k].c, 1);
            s += strlen(ents[k].ent);
        } else {
            buf_append(&b, s++, 1);
        }
    }
    return buf_detach(&b, NULL);
}

/* Attribute `name` of a start tag (up to its '>'); new string or NULL. */
static char *xml_attr(const char *tag, const char *end, const char *name)
{
    const char *gt = memchr(tag, '>', (size_t)(end - tag));
    size_t nl = strlen(name);
    if (!gt)
        return NULL;
    for (const char *p = tag + 1; p + nl + 2 < gt; p++) {
        if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n' && p[-1] != '\r') || memcmp(p, name, nl) != 0 ||
            p[nl] != '=' || (p[nl + 1] != '"' && p[nl + 1] != '\''))
            continue;
        const char *v = p + nl + 2, *ve = memchr(v, p[nl + 1], (size_t)(gt - v));
        return ve ? xml_unesc(v, ve) : NULL;
    }
    return NULL;
}

/* Text of the first `local` element inside [p, end), new string or NULL. */
static char *xml_text(const char *p, const char *end, const char *local)
{
    const char *tag, *in, *ie;
    return xml_elem(p, end, local, &tag, &in, &ie) ? xml_unesc(in, ie) : NULL;
}

static bool xml_num(const char *p, const char *end, const char *local, double *out)
{
    char *t = xml_text(p, end, local), *e = NULL;
    bool ok = t && *t && (*out = strtod(t, &e), *e == '\0') && isfinite(*out);
    free(t);
    return ok;
}

/* ---- state ------------------------------------------------------------------------- */

struct pid {
    double integral, last_input, last_output, last_time; /* seconds */
    bool has_last;
};

struct preset {
    char *name, *token;
};

struct cam {
    char *host;                /* "ip" or "[v6]" */
    int port;
    bool configured;
    char *config_error;        /* sticky: Roboflow's _has_config_error */
    char *media_path, *ptz_path, *profile;
    double xmin, xmax, ymin, ymax, zmin, zmax;
    bool has_zoom;
    struct preset *presets;
    size_t npresets;
    int64_t tracked;           /* tracked_object; 0 = none (Python's falsy None / 0) */
    int seeking;               /* -1 None, 0, 1 */
    double prev_x, prev_y, prev_z;
    int64_t last_update;       /* -1: never */
    int64_t start_zoom;        /* 0: not in zoom mode */
    bool is_zoomed;
    int x_count, y_count, z_count;
    int64_t reset_at;          /* -1: no return to the preset pending */
    char *stop_preset;
    struct pid px, py, pz;
};

static void cam_free(void *p)
{
    struct cam *k = p;
    if (!k)
        return;
    free(k->host);
    free(k->config_error);
    free(k->media_path);
    free(k->ptz_path);
    free(k->profile);
    for (size_t i = 0; i < k->npresets; i++) {
        free(k->presets[i].name);
        free(k->presets[i].token);
    }
    free(k->presets);
    free(k->stop_preset);
    free(k);
}

static double now_s(void)
{
    return (double)wf__onvif_clock_ms() / 1000.0;
}

static void pid_init(struct pid *p)
{
    memset(p, 0, sizeof *p);
    p->last_time = now_s();
}

static double clamp1(double v)
{
    return v < -1 ? -1 : v > 1 ? 1 : v;
}

/* simple_pid's PID.__call__ with setpoint 0, output limits (-1, 1),
 * proportional on error and derivative on measurement. */
static double pid_call(struct pid *p, double kp, double ki, double kd, double input)
{
    double now = now_s(), dt = now - p->last_time;
    if (dt == 0)
        dt = 1e-16;
    double error = 0.0 - input;
    double d_input = input - (p->has_last ? p->last_input : input);
    double prop = kp * error;
    p->integral = clamp1(p->integral + ki * error * dt);
    double deriv = -kd * d_input / dt;
    double out = clamp1(prop + p->integral + deriv);
    p->last_output = out;
    p->last_input = input;
    p->has_last = true;
    p->last_time = now;
    return out;
}

static double sign(double v)
{
    return v > 0 ? 1 : v < 0 ? -1 : 0;
}

/* ---- SOAP calls ---------------------------------------------------------------------- */

struct ctx {
    struct wf_call *c;
    const struct wf_sinks *sinks;
    struct cam *k;
    const char *user, *password;
    char err[512];
};

/* POST body to path with action; *resp (new) on HTTP 2xx.  <0 with
 * x->err set otherwise (a SOAP fault's reason when there is one). */
static int soap(struct ctx *x, const char *path, const char *action, const char *body, char **resp)
{
    unsigned char nonce[16];
    char created[32];
    time_t t = (time_t)(time_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    rand_bytes(nonce, sizeof nonce);
    char *env = wf__onvif_envelope(x->user, x->password, nonce, created, body);
    char *url = xasprintf("http://%s:%d%s", x->k->host, x->k->port, path);
    char why[256] = "";
    int status = 0;
    *resp = NULL;
    int rc = x->sinks->soap(x->sinks->webhook_ud, url, action, env, &status, resp, why, sizeof why);
    const char *op = strrchr(action, '/') ? strrchr(action, '/') + 1 : action;
    if (rc < 0) {
        snprintf(x->err, sizeof x->err, "%s: %s", op, why);
    } else if (status < 200 || status > 299) {
        const char *r = *resp ? *resp : "";
        char *reason = xml_text(r, r + strlen(r), "Text");
        if (!reason)
            reason = xml_text(r, r + strlen(r), "faultstring");
        snprintf(x->err, sizeof x->err, "%s: HTTP %d%s%s", op, status, reason ? ": " : "", reason ? reason : "");
        free(reason);
        free(*resp);
        *resp = NULL;
        rc = ERR_UNAVAILABLE;
    }
    free(env);
    free(url);
    return rc;
}

/* The path (and query) of an XAddr URL; NULL when it is not http(s). */
static char *xaddr_path(const char *u)
{
    const char *p = NULL;
    if (!strncmp(u, "http://", 7))
        p = u + 7;
    else if (!strncmp(u, "https://", 8))
        p = u + 8;
    if (!p)
        return NULL;
    const char *slash = strchr(p, '/');
    return xstrdup(slash ? slash : "/");
}

/* configure_async: capabilities, first profile, velocity spaces, presets. */
static int configure(struct ctx *x)
{
    struct cam *k = x->k;
    char *r = NULL;
    int rc;
    if ((rc = soap(x, "/onvif/device_service", NS_TDS "/GetCapabilities",
                   "<tds:GetCapabilities xmlns:tds=\"" NS_TDS "\"><tds:Category>All</tds:Category>"
                   "</tds:GetCapabilities>",
                   &r)) < 0)
        return rc;
    const char *e = r + strlen(r), *tag, *in, *ie;
    char *media = NULL, *ptz = NULL;
    if (xml_elem(r, e, "Media", &tag, &in, &ie))
        media = xml_text(in, ie, "XAddr");
    if (xml_elem(r, e, "PTZ", &tag, &in, &ie))
        ptz = xml_text(in, ie, "XAddr");
    free(r);
    k->media_path = media ? xaddr_path(media) : NULL;
    k->ptz_path = ptz ? xaddr_path(ptz) : NULL;
    free(media);
    free(ptz);
    if (!k->media_path || !k->ptz_path) {
        snprintf(x->err, sizeof x->err, "GetCapabilities: the camera names no %s service",
                 !k->media_path ? "Media" : "PTZ");
        return ERR_UNAVAILABLE;
    }
    if ((rc = soap(x, k->media_path, NS_TRT "/GetProfiles", "<trt:GetProfiles xmlns:trt=\"" NS_TRT "\"/>", &r)) < 0)
        return rc;
    e = r + strlen(r);
    char *ptz_cfg = NULL;
    if (xml_elem(r, e, "Profiles", &tag, &in, &ie)) {
        k->profile = xml_attr(tag, e, "token");
        const char *t2, *i2, *ie2;
        if (xml_elem(in, ie, "PTZConfiguration", &t2, &i2, &ie2))
            ptz_cfg = xml_attr(t2, ie, "token");
    }
    free(r);
    if (!k->profile || !ptz_cfg) {
        free(ptz_cfg);
        snprintf(x->err, sizeof x->err, "GetProfiles: no media profile with a PTZ configuration");
        return ERR_UNAVAILABLE;
    }
    char *tok = xml_esc(ptz_cfg), *body = xasprintf("<tptz:GetConfigurationOptions xmlns:tptz=\"" NS_TPTZ "\">"
                                                    "<tptz:ConfigurationToken>%s</tptz:ConfigurationToken>"
                                                    "</tptz:GetConfigurationOptions>", tok);
    free(tok);
    free(ptz_cfg);
    rc = soap(x, k->ptz_path, NS_TPTZ "/GetConfigurationOptions", body, &r);
    free(body);
    if (rc < 0)
        return rc;
    e = r + strlen(r);
    bool pt = false;
    if (xml_elem(r, e, "ContinuousPanTiltVelocitySpace", &tag, &in, &ie)) {
        const char *t2, *xi, *xe, *yi, *ye;
        pt = xml_elem(in, ie, "XRange", &t2, &xi, &xe) && xml_elem(in, ie, "YRange", &t2, &yi, &ye) &&
             xml_num(xi, xe, "Min", &k->xmin) && xml_num(xi, xe, "Max", &k->xmax) &&
             xml_num(yi, ye, "Min", &k->ymin) && xml_num(yi, ye, "Max", &k->ymax);
    }
    if (xml_elem(r, e, "ContinuousZoomVelocitySpace", &tag, &in, &ie)) {
        const char *t2, *zi, *ze;
        k->has_zoom = xml_elem(in, ie, "XRange", &t2, &zi, &ze) && xml_num(zi, ze, "Min", &k->zmin) &&
                      xml_num(zi, ze, "Max", &k->zmax);
    }
    free(r);
    if (!pt) {
        snprintf(x->err, sizeof x->err, "Could not get pan tilt space for camera");
        return ERR_UNAVAILABLE;
    }
    tok = xml_esc(k->profile);
    body = xasprintf("<tptz:GetPresets xmlns:tptz=\"" NS_TPTZ "\"><tptz:ProfileToken>%s</tptz:ProfileToken>"
                     "</tptz:GetPresets>", tok);
    free(tok);
    rc = soap(x, k->ptz_path, NS_TPTZ "/GetPresets", body, &r);
    free(body);
    if (rc < 0)
        return rc;
    e = r + strlen(r);
    const char *p = r;
    while (k->npresets < ONVIF_MAX_PRESETS && xml_elem(p, e, "Preset", &tag, &in, &ie)) {
        char *token = xml_attr(tag, e, "token"), *name = xml_text(in, ie, "Name");
        if (token && name) {
            k->presets = xrealloc(k->presets, (k->npresets + 1) * sizeof *k->presets);
            k->presets[k->npresets++] = (struct preset){name, token};
        } else {
            free(token);
            free(name);
        }
        p = ie > in ? ie : in + 1;
    }
    free(r);
    k->configured = true;
    return 0;
}

static int ensure_configured(struct ctx *x)
{
    struct cam *k = x->k;
    if (k->configured)
        return 0;
    if (!k->config_error && configure(x) < 0)
        k->config_error = xstrdup(x->err);
    if (k->config_error) {
        snprintf(x->err, sizeof x->err, "Error connecting to camera at %s:%d: %s", k->host, k->port,
                 k->config_error);
        return ERR_UNAVAILABLE;
    }
    return 0;
}

static bool can_update(const struct cam *k, int64_t rate_ms)
{
    return k->last_update < 0 || wf__onvif_clock_ms() - k->last_update > rate_ms;
}

/* CameraWrapper.simulate_variable_speed */
static double sim_speed(const struct cam *k, int64_t rate_ms, double speed, int *count)
{
    *count += 1;
    /* int(1 / speed) as Python computes it, without the undefined
     * conversion of a quotient beyond int's range */
    double every = speed != 0 ? 1.0 / speed : 0;
    if (speed != 0 && (every < INT_MIN || (every <= INT_MAX && *count >= (int)every))) {
        speed = sign(speed);
        if (can_update(k, rate_ms))
            *count = 0;
    } else {
        speed = 0;
    }
    return speed;
}

static char *fmt_num(double v)
{
    return xasprintf("%.17g", v == 0 ? 0.0 : v); /* no "-0" */
}

/* continuous_move_async */
static int continuous_move(struct ctx *x, int64_t rate_ms, double vx, double vy, double vz, bool simulate)
{
    struct cam *k = x->k;
    int rc = ensure_configured(x);
    if (rc < 0)
        return rc;
    if (vx != 0 || vy != 0 || vz != 0)
        k->reset_at = -1; /* a moving command cancels the pending return to the preset */
    if (simulate) {
        vx = sim_speed(k, rate_ms, vx, &k->x_count);
        vy = sim_speed(k, rate_ms, vy, &k->y_count);
        vz = sim_speed(k, rate_ms, vz, &k->z_count);
    }
    bool xc = vx != k->prev_x, yc = vy != k->prev_y, zc = vz != k->prev_z;
    k->prev_x = vx, k->prev_y = vy, k->prev_z = vz;
    /* stop commands are not rate limited */
    if (!((vx == 0 && xc) || (vy == 0 && yc) || (vz == 0 && zc)) && !can_update(k, rate_ms))
        return 0;
    double xl = vx < 0 ? k->xmin : k->xmax, yl = vx < 0 ? k->ymin : k->ymax; /* Roboflow: both on x's sign */
    double zl = k->has_zoom ? (vx < 0 ? k->zmin : k->zmax) : 0;
    vx = fabs(xl) * vx, vy = fabs(yl) * vy, vz = fabs(zl) * vz;
    if (k->is_zoomed)
        vx *= ZOOM_MODE_SPEED_REDUCER, vy *= ZOOM_MODE_SPEED_REDUCER;
    char *tok = xml_esc(k->profile), *sx = fmt_num(vx), *sy = fmt_num(vy), *sz = fmt_num(vz);
    char *body = xasprintf("<tptz:ContinuousMove xmlns:tptz=\"" NS_TPTZ "\" xmlns:tt=\"" NS_TT "\">"
                           "<tptz:ProfileToken>%s</tptz:ProfileToken><tptz:Velocity><tt:PanTilt x=\"%s\" y=\"%s\"/>"
                           "<tt:Zoom x=\"%s\"/></tptz:Velocity></tptz:ContinuousMove>", tok, sx, sy, sz);
    free(tok);
    free(sx);
    free(sy);
    free(sz);
    char *r = NULL;
    rc = soap(x, k->ptz_path, NS_TPTZ "/ContinuousMove", body, &r);
    free(body);
    free(r);
    if (rc < 0)
        return rc;
    k->last_update = wf__onvif_clock_ms();
    if (vz > 0)
        k->is_zoomed = true;
    if (vx != 0 || vy != 0 || vz != 0)
        k->seeking = 1;
    return 0;
}

/* stop_camera: a stop unless already stopped; then the return to the preset
 * is (re)scheduled. */
static int stop_camera(struct ctx *x, int64_t rate_ms, int64_t idle_s)
{
    struct cam *k = x->k;
    if (k->seeking != 0) {
        int rc = continuous_move(x, rate_ms, 0, 0, 0, false);
        if (rc < 0)
            return rc;
        if (k->stop_preset)
            k->reset_at = wf__onvif_clock_ms() + idle_s * 1000;
    }
    k->seeking = 0;
    return 0;
}

/* go_to_preset_async (the caller does Go To Preset's rate limiting) */
static int go_to_preset(struct ctx *x, const char *name)
{
    struct cam *k = x->k;
    int rc = ensure_configured(x);
    if (rc < 0)
        return rc;
    const struct preset *p = NULL;
    for (size_t i = 0; i < k->npresets && !p; i++)
        if (!strcmp(k->presets[i].name, name))
            p = &k->presets[i];
    if (!p) {
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < k->npresets; i++)
            buf_printf(&b, "%s'%s'", i ? ", " : "", k->presets[i].name);
        char *names = buf_detach(&b, NULL);
        snprintf(x->err, sizeof x->err, "Camera does not have preset \"%s\" - valid presets are [%s]", name,
                 names ? names : "");
        free(names);
        return ERR_NOTFOUND;
    }
    char *t1 = xml_esc(k->profile), *t2 = xml_esc(p->token);
    char *body = xasprintf("<tptz:GotoPreset xmlns:tptz=\"" NS_TPTZ "\" xmlns:tt=\"" NS_TT "\">"
                           "<tptz:ProfileToken>%s</tptz:ProfileToken><tptz:PresetToken>%s</tptz:PresetToken>"
                           "<tptz:Speed><tt:PanTilt x=\"1.0\" y=\"1.0\"/><tt:Zoom x=\"1.0\"/></tptz:Speed>"
                           "</tptz:GotoPreset>", t1, t2);
    free(t1);
    free(t2);
    k->seeking = 0;
    k->is_zoomed = false;
    k->tracked = 0;
    char *r = NULL;
    rc = soap(x, k->ptz_path, NS_TPTZ "/GotoPreset", body, &r);
    free(body);
    free(r);
    return rc;
}

/* zooming(): zoom-only mode lasts ZOOM_MODE_MS. */
static bool zooming(struct cam *k)
{
    if (k->start_zoom && wf__onvif_clock_ms() > k->start_zoom + ZOOM_MODE_MS)
        k->start_zoom = 0;
    return k->start_zoom != 0;
}

struct params {
    bool zoom_if_able, flip_x, flip_y, simulate;
    double dead_zone, min_speed, kp, ki, kd;
    int64_t rate_ms, idle_s;
};

/* ONVIFSinkBlockV1.move_camera */
static int move_camera(struct ctx *x, const struct wf_det *d, const struct params *pr)
{
    struct cam *k = x->k;
    /* Roboflow: the box as given, in the root image's dimensions */
    double x1 = d->x1, y1 = d->y1, x2 = d->x2, y2 = d->y2;
    double W = d->root.width > 0 ? d->root.width : d->img_w, H = d->root.height > 0 ? d->root.height : d->img_h;
    double cx = x1 + (x2 - x1) / 2, cy = y1 + (y2 - y1) / 2;
    double zoom_delta = fmin(fmin(x1, W - x2), fmin(y1, H - y2));
    bool at_edge = zoom_delta <= 1;
    double dx = W / 2 - cx, dy = H / 2 - cy;
    if (zooming(k) && zoom_delta < pr->dead_zone && !at_edge)
        k->start_zoom = 0;
    double ax = fabs(dx), ay = fabs(dy);
    if ((ax < pr->dead_zone && ay < pr->dead_zone) || zooming(k)) {
        if (!pr->zoom_if_able || (zoom_delta < pr->dead_zone && !at_edge))
            return stop_camera(x, pr->rate_ms, pr->idle_s);
        double nz = fabs(zoom_delta - pr->dead_zone / 2) / fmax(W, H);
        double oz = pid_call(&k->pz, pr->kp, pr->ki, pr->kd, nz);
        if (fabs(oz) < pr->min_speed)
            oz = pr->min_speed * sign(oz);
        double z = at_edge ? -pr->min_speed : -oz;
        /* zoom(): entering zoom mode sends an explicit stop first; the zoom
         * command's rate check does not see that stop (in Roboflow's event
         * loop both pass their checks before either is sent) */
        if (!k->start_zoom) {
            k->start_zoom = wf__onvif_clock_ms();
            int64_t before = k->last_update;
            int rc = stop_camera(x, pr->rate_ms, pr->idle_s);
            if (rc < 0)
                return rc;
            k->last_update = before;
        }
        return continuous_move(x, pr->rate_ms, 0, 0, z, false);
    }
    double ox = pid_call(&k->px, pr->kp, pr->ki, pr->kd, dx / W);
    double oy = pid_call(&k->py, pr->kp, pr->ki, pr->kd, dy / H);
    if (fabs(ox) < pr->min_speed)
        ox = pr->min_speed * sign(ox);
    if (fabs(oy) < pr->min_speed)
        oy = pr->min_speed * sign(oy);
    double m = fmax(ax, ay);
    /* m == 0 only with a negative dead_zone and the box exactly centred:
     * no offset, no speed (Python would divide by zero) */
    double vx = ax > pr->dead_zone && m > 0 ? fabs(dx / m) * ox : 0;
    double vy = ay > pr->dead_zone && m > 0 ? fabs(dy / m) * oy : 0;
    vx *= pr->flip_x ? 1 : -1;
    vy *= pr->flip_y ? 1 : -1;
    return continuous_move(x, pr->rate_ms, vx, vy, 0, pr->simulate);
}

static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == ':' || *p == '_'))
            return false;
    return true;
}

static void set_out(struct wf_call *c, size_t i, struct wf_dets *ds, int seeking)
{
    wf_out_dets(c, i, "predictions", ds ? ds : wf_dets_new());
    wf_out_set(c, i, "seeking", seeking < 0 ? wf_value_null() : wf_value_json(json_boolean(seeking)));
}

static int onvif_run(struct wf_call *c)
{
    const struct wf_env *env = wf_call_env(c);
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *ip = wf_arg_str(c, i, "camera_ip"), *user = wf_arg_str(c, i, "camera_username");
        const char *password = wf_arg_str(c, i, "camera_password");
        const char *movement = wf_arg_str(c, i, "movement_type");
        const char *preset = wf_arg_str(c, i, "default_position_preset");
        int64_t port = wf_arg_int(c, i, "camera_port", -1);
        struct params pr = {
            wf_arg_bool(c, i, "zoom_if_able", false), wf_arg_bool(c, i, "flip_x_movement", false),
            wf_arg_bool(c, i, "flip_y_movement", true), wf_arg_bool(c, i, "simulate_variable_speed", false),
            (double)wf_arg_int(c, i, "dead_zone", 50), wf_arg_double(c, i, "minimum_camera_speed", 0.05),
            wf_arg_double(c, i, "pid_kp", 0.25), wf_arg_double(c, i, "pid_ki", 0.0),
            wf_arg_double(c, i, "pid_kd", 1.0), wf_arg_int(c, i, "camera_update_rate_limit", 250),
            wf_arg_int(c, i, "move_to_position_after_idle_seconds", 0)};
        bool follow_tracker = wf_arg_bool(c, i, "follow_tracker", true);
        const struct wf_dets *ds = wf_arg_dets(c, i, "predictions");
        if (!env->sinks || !env->sinks->soap)
            return wf_call_fail(c, "this server sends no ONVIF commands (no SOAP transport)");
        if (!ip || !host_ok(ip))
            return wf_call_fail(c, "camera_ip: expected a host name or IP address of at most 253 characters");
        if (port < 1 || port > 65535)
            return wf_call_fail(c, "camera_port: expected 1..65535");
        if (!user || !password || strlen(user) > ONVIF_MAX_TEXT || strlen(password) > ONVIF_MAX_PASSWORD)
            return wf_call_fail(c, "camera_username / camera_password: expected strings of at most %d / %d bytes",
                                ONVIF_MAX_TEXT, ONVIF_MAX_PASSWORD);
        if (!preset)
            preset = "";
        if (strlen(preset) > ONVIF_MAX_TEXT)
            return wf_call_fail(c, "default_position_preset: at most %d bytes", ONVIF_MAX_TEXT);
        if (pr.simulate)
            pr.min_speed = fmax(pr.min_speed, 0.1);
        if (pr.idle_s < 0 || pr.idle_s > 86400 * 365 || pr.rate_ms < 0 || pr.rate_ms > 86400000 ||
            !isfinite(pr.kp) || !isfinite(pr.ki) || !isfinite(pr.kd) || !isfinite(pr.min_speed))
            return wf_call_fail(c, "move_to_position_after_idle_seconds, camera_update_rate_limit or the PID "
                                   "constants are out of range");
        if (pr.idle_s && !*preset)
            return wf_call_fail(c, "Move to position after idle is set, but no default position is set");
        char key[300];
        snprintf(key, sizeof key, "%s:%lld", ip, (long long)port);
        void **slot = wf_call_state(c, key, cam_free);
        if (!slot)
            return wf_call_fail(c, "too many cameras at once (at most %d)", WF_STATE_MAX);
        struct cam *k = *slot;
        if (!k) {
            k = xcalloc(1, sizeof *k);
            k->host = strchr(ip, ':') ? xasprintf("[%s]", ip) : xstrdup(ip);
            k->port = (int)port;
            k->seeking = -1;
            k->prev_x = k->prev_y = k->prev_z = 100;
            k->last_update = k->reset_at = -1;
            pid_init(&k->px);
            pid_init(&k->py);
            pid_init(&k->pz);
            *slot = k;
        }
        free(k->stop_preset);
        k->stop_preset = pr.idle_s && *preset ? xstrdup(preset) : NULL;
        if (!k->stop_preset)
            k->reset_at = -1;
        struct ctx x = {c, env->sinks, k, user, password, ""};
        int rc = 0;
        /* a due return to the preset (Roboflow's reset_task timer) */
        if (k->reset_at >= 0 && wf__onvif_clock_ms() >= k->reset_at) {
            k->reset_at = -1;
            k->tracked = 0;
            rc = go_to_preset(&x, k->stop_preset);
        }
        struct wf_dets *out = NULL;
        if (rc >= 0 && !strcmp(movement, "Follow")) {
            if (!ds || ds->n == 0) {
                rc = stop_camera(&x, pr.rate_ms, pr.idle_s); /* stop_tracking */
                k->tracked = 0;
            } else {
                const struct wf_det *target = NULL;
                if (k->tracked)
                    for (size_t j = 0; j < ds->n && !target; j++)
                        if (ds->d[j].tracker_id == k->tracked)
                            target = &ds->d[j];
                if (!target) {
                    for (size_t j = 0; j < ds->n; j++)
                        if (!target || ds->d[j].confidence > target->confidence)
                            target = &ds->d[j];
                    if (follow_tracker && target->tracker_id != WF_NO_TRACKER && target->tracker_id != 0)
                        k->tracked = target->tracker_id;
                }
                out = wf_dets_new();
                wf_dets_push_copy(out, target);
                rc = move_camera(&x, target, &pr);
            }
        } else if (rc >= 0) { /* Go To Preset */
            /* the preset's rate check comes before the stop's update time:
             * in Roboflow's event loop both coroutines pass their checks
             * before either command is sent */
            bool due = can_update(k, pr.rate_ms);
            rc = stop_camera(&x, pr.rate_ms, pr.idle_s);
            if (rc >= 0 && due) {
                k->last_update = wf__onvif_clock_ms();
                rc = go_to_preset(&x, preset);
            }
        }
        if (rc < 0) {
            wf_dets_free(out);
            return wf_call_fail(c, "ONVIF camera %s:%d: %s", k->host, k->port, x.err);
        }
        set_out(c, i, out, k->seeking);
    }
    return 0;
}

static const char *const movements[] = {"Follow", "Go To Preset", NULL};

static const struct wf_field onvif_fields[] = {
    {"predictions", NULL, WF_FT_DETS, NULL, WF_K_OD | WF_K_IS, WF_F_SELECTOR_ONLY, NULL},
    {"camera_ip", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"camera_port", NULL, WF_FT_INT_POS, NULL, WF_K_INT, 0, NULL},
    {"camera_username", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"camera_password", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"movement_type", NULL, WF_FT_ENUM, "\"Follow\"", 0, WF_F_NO_SELECTOR, movements},
    {"simulate_variable_speed", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"zoom_if_able", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"follow_tracker", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"dead_zone", NULL, WF_FT_INT, "50", WF_K_INT, 0, NULL},
    {"default_position_preset", NULL, WF_FT_STRING, "\"\"", WF_K_STRING, 0, NULL},
    {"move_to_position_after_idle_seconds", NULL, WF_FT_INT, "0", WF_K_INT, 0, NULL},
    {"camera_update_rate_limit", NULL, WF_FT_INT, "250", WF_K_INT, 0, NULL},
    {"flip_x_movement", NULL, WF_FT_BOOL, "false", WF_K_BOOL, 0, NULL},
    {"flip_y_movement", NULL, WF_FT_BOOL, "true", WF_K_BOOL, 0, NULL},
    {"minimum_camera_speed", NULL, WF_FT_FLOAT, "0.05", WF_K_FLOAT, 0, NULL},
    {"pid_kp", NULL, WF_FT_FLOAT, "0.25", WF_K_FLOAT, 0, NULL},
    {"pid_ki", NULL, WF_FT_FLOAT, "0.0", WF_K_FLOAT, 0, NULL},
    {"pid_kd", NULL, WF_FT_FLOAT, "1", WF_K_FLOAT, 0, NULL},
};
static const struct wf_output onvif_outs[] = {{"predictions", WF_K_OD}, {"seeking", WF_K_BOOL}};

static const struct wf_block onvif_sink = {
    (const char *const[]){"roboflow_core/onvif_sink@v1", NULL},
    onvif_fields, ARRAY_LEN(onvif_fields), onvif_outs, ARRAY_LEN(onvif_outs), 0, 0, NULL, onvif_run, NULL};

const struct wf_block *const wf_blocks_onvif[] = {&onvif_sink, NULL};
