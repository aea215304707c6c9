/*
 * blocks/codes.c — barcode_detector v1 and qr_code_detector v1
 * (roboflow/inference core_steps/models/foundation barcode_detection and
 * qr_code_detection, read, not copied), decoded with ZBar (Debian's
 * libzbar0, a maintained C decoder of EAN/UPC, Code 128/39/93, ITF,
 * Codabar, DataBar, PDF417 and QR).
 *
 * barcode_detector is Roboflow's pyzbar.decode(image) over the BGR array:
 * pyzbar takes the first channel (blue) of a 3-channel array and ZBar's
 * default configuration (every symbology, QR included).  qr_code_detector
 * reads QR codes only; Roboflow uses OpenCV's QRCodeDetector there, so a
 * box may differ from theirs by a pixel or two (ZBar's corner estimate) and
 * codes one decoder reads and the other misses are possible.
 *
 * Each code is a detection: the bounding box of the symbol's location
 * points (pyzbar's rect: x_min, y_min, x_min + width, y_min + height),
 * confidence 1.0, class_id 0, class "barcode" / "qr_code", and the decoded
 * text in the extra data key "data".
 *
 * qr_code_generator v1 (core_steps/transformations/qr_code_generator)
 * encodes `text` with libqrencode (Debian's libqrencode4; Roboflow uses the
 * Python qrcode package): automatic version, mixed-mode segments, the
 * error-correction level by Roboflow's names (the four long names,
 * ERROR_CORRECT_L/M/Q/H, L/M/Q/H, case-insensitive; anything else is M),
 * 10 pixels per module and `border` quiet modules, colours as
 * str_to_color (hex, rgb(...), names) — a colour neither parses is a step
 * error (Roboflow hands it to PIL, which knows the CSS names).  The image
 * is a root image whose parent_id is "qr_code.<uuid>".  The two encoders
 * may choose another mask or segment split for the same text, so the
 * modules (and rarely the version) can differ from Roboflow's; the decoded
 * text is the same.  Text at most QRGEN_MAX_TEXT bytes (a QR code holds at
 * most 2,953), border 0..QRGEN_MAX_BORDER.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <qrencode.h>
#include <zbar.h>

#include "base/base.h"
#include "workflow/wf_int.h"

#define CODES_MAX_PIXELS (40u * 1000u * 1000u)
#define CODES_MAX_SYMBOLS 1000
#define CODES_MAX_DATA (64u * 1024u)

static int scan(struct wf_call *c, size_t i, bool qr_only)
{
    const struct wf_image *im = wf_arg_image(c, i, "images");
    if (!im)
        return 0;
    const struct vis_image *px = im->img;
    if ((uint64_t)px->w * (uint64_t)px->h > CODES_MAX_PIXELS)
        return wf_call_fail(c, "image of %dx%d is over the limit of %u pixels", px->w, px->h, CODES_MAX_PIXELS);
    int ch = (int)px->fmt;
    size_t n = (size_t)px->w * (size_t)px->h;
    uint8_t *gray = malloc(n ? n : 1);
    if (!gray)
        return wf_call_fail(c, "out of memory");
    /* pyzbar: image[:, :, 0] of a 3-channel array */
    for (int y = 0; y < px->h; y++) {
        const uint8_t *row = px->px + (size_t)y * (size_t)px->stride;
        for (int x = 0; x < px->w; x++)
            gray[(size_t)y * (size_t)px->w + (size_t)x] = row[(size_t)x * (size_t)ch];
    }
    zbar_image_scanner_t *sc = zbar_image_scanner_create();
    zbar_image_t *zi = zbar_image_create();
    if (!sc || !zi) {
        if (sc)
            zbar_image_scanner_destroy(sc);
        if (zi)
            zbar_image_destroy(zi);
        free(gray);
        return wf_call_fail(c, "out of memory");
    }
    if (qr_only) {
        zbar_image_scanner_set_config(sc, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
        zbar_image_scanner_set_config(sc, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
    } else {
        zbar_image_scanner_set_config(sc, ZBAR_NONE, ZBAR_CFG_ENABLE, 1);
    }
    zbar_image_set_format(zi, zbar_fourcc('Y', '8', '0', '0'));
    zbar_image_set_size(zi, (unsigned)px->w, (unsigned)px->h);
    zbar_image_set_data(zi, gray, n, NULL);
    int found = zbar_scan_image(sc, zi);
    struct wf_dets *ds = wf_dets_new();
    int count = 0;
    for (const zbar_symbol_t *s = found > 0 ? zbar_image_first_symbol(zi) : NULL; s && count < CODES_MAX_SYMBOLS;
         s = zbar_symbol_next(s)) {
        unsigned nl = zbar_symbol_get_loc_size(s);
        if (nl == 0)
            continue;
        int x0 = INT32_MAX, y0 = INT32_MAX, x1 = INT32_MIN, y1 = INT32_MIN;
        for (unsigned k = 0; k < nl; k++) {
            int x = zbar_symbol_get_loc_x(s, k), y = zbar_symbol_get_loc_y(s, k);
            x0 = x < x0 ? x : x0;
            y0 = y < y0 ? y : y0;
            x1 = x > x1 ? x : x1;
            y1 = y > y1 ? y : y1;
        }
        unsigned dlen = zbar_symbol_get_data_length(s);
        const char *data = zbar_symbol_get_data(s);
        if (dlen > CODES_MAX_DATA)
            dlen = CODES_MAX_DATA;
        char *text = xstrndup(data ? data : "", dlen);
        struct wf_det *d = wf_dets_push_new(ds);
        d->x1 = (float)x0, d->y1 = (float)y0, d->x2 = (float)x1, d->y2 = (float)y1;
        d->confidence = 1.0f;
        d->class_id = 0;
        wf_det_set_str(&d->class_name, qr_only ? "qr_code" : "barcode");
        wf_det_set_str(&d->prediction_type, qr_only ? "qrcode-detection" : "barcode-detection");
        wf_det_attach_image(d, im);
        d->extra = json_object();
        json_t *js = json_stringn(text, strlen(text));
        if (!js) { /* not UTF-8: the bytes outside ASCII become '?' */
            for (char *p = text; *p; p++)
                if ((unsigned char)*p >= 0x80)
                    *p = '?';
            js = json_string(text);
        }
        json_object_set_new(d->extra, "data", js);
        free(text);
        count++;
    }
    zbar_image_destroy(zi);
    zbar_image_scanner_destroy(sc);
    free(gray);
    wf_out_dets(c, i, "predictions", ds);
    return 0;
}

static int barcode_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++)
        if (scan(c, i, false) < 0)
            return ERR_INVALID;
    return 0;
}

static int qr_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++)
        if (scan(c, i, true) < 0)
            return ERR_INVALID;
    return 0;
}

/* ---- qr_code_generator ------------------------------------------------------------ */

#define QRGEN_MAX_TEXT 4096
#define QRGEN_MAX_BORDER 100
#define QRGEN_BOX 10

static QRecLevel qr_level(const char *s)
{
    static const struct {
        const char *name;
        QRecLevel l;
    } lv[] = {
        {"LOW (~7% WORD RECOVERY / HIGHEST DATA CAPACITY)", QR_ECLEVEL_L},
        {"MEDIUM (~15% WORD RECOVERY)", QR_ECLEVEL_M},
        {"QUARTILE (~25% WORD RECOVERY)", QR_ECLEVEL_Q},
        {"HIGH (~30% WORD RECOVERY / LOWEST DATA CAPACITY)", QR_ECLEVEL_H},
        {"ERROR_CORRECT_L", QR_ECLEVEL_L}, {"ERROR_CORRECT_M", QR_ECLEVEL_M},
        {"ERROR_CORRECT_Q", QR_ECLEVEL_Q}, {"ERROR_CORRECT_H", QR_ECLEVEL_H},
        {"L", QR_ECLEVEL_L}, {"M", QR_ECLEVEL_M}, {"Q", QR_ECLEVEL_Q}, {"H", QR_ECLEVEL_H},
    };
    for (size_t k = 0; s && k < ARRAY_LEN(lv); k++)
        if (!strcasecmp(lv[k].name, s))
            return lv[k].l;
    return QR_ECLEVEL_M;
}

static int qrgen_color(struct wf_call *c, size_t i, const char *field, uint8_t bgr[3])
{
    const json_t *v = wf_arg_json(c, i, field);
    if (!json_is_string(v) || wf_color_parse(v, bgr) < 0)
        return wf_call_fail(c, "field '%s': '%s' is not a colour (hex, rgb(r, g, b) or a name)", field,
                            json_is_string(v) ? json_string_value(v) : "?");
    return 0;
}

static int qrgen_run(struct wf_call *c)
{
    for (size_t i = 0; i < wf_call_n(c); i++) {
        const char *text = wf_arg_str(c, i, "text");
        int64_t border = wf_arg_int(c, i, "border", 4);
        uint8_t fill[3], back[3];
        if (!text)
            return wf_call_fail(c, "field 'text': expected a string");
        if (strlen(text) > QRGEN_MAX_TEXT)
            return wf_call_fail(c, "field 'text': %zu bytes, a QR code holds at most 2953", strlen(text));
        if (border < 0 || border > QRGEN_MAX_BORDER)
            return wf_call_fail(c, "field 'border': must be between 0 and %d, got %lld", QRGEN_MAX_BORDER,
                                (long long)border);
        if (qrgen_color(c, i, "fill_color", fill) < 0 || qrgen_color(c, i, "back_color", back) < 0)
            return ERR_INVALID;
        QRecLevel level = qr_level(wf_arg_str(c, i, "error_correct"));
        QRcode *qr = *text ? QRcode_encodeString(text, 0, level, QR_MODE_8, 1)
                           : QRcode_encodeData(0, (const unsigned char *)"", 0, level);
        if (!qr)
            return wf_call_fail(c, "field 'text': cannot be encoded as a QR code (%zu bytes; too long for "
                                "the error-correction level?)", strlen(text));
        int side = (qr->width + 2 * (int)border) * QRGEN_BOX;
        struct vis_image *px = vis_image_new(side, side, VIS_BGR);
        if (!px) {
            QRcode_free(qr);
            return wf_call_fail(c, "out of memory");
        }
        for (int y = 0; y < side; y++) {
            uint8_t *row = px->px + (size_t)y * (size_t)px->stride;
            int my = y / QRGEN_BOX - (int)border;
            for (int x = 0; x < side; x++) {
                int mx = x / QRGEN_BOX - (int)border;
                bool dark = my >= 0 && my < qr->width && mx >= 0 && mx < qr->width &&
                            (qr->data[(size_t)my * (size_t)qr->width + (size_t)mx] & 1);
                memcpy(row + (size_t)x * 3, dark ? fill : back, 3);
            }
        }
        QRcode_free(qr);
        char id[64], u[37];
        uuid4(u);
        snprintf(id, sizeof id, "qr_code.%s", u);
        wf_out_set(c, i, "qr_code", wf_value_image(wf_image_new_root(px, id)));
    }
    return 0;
}

static const char *const qr_levels[] = {
    "Low (~7% word recovery / highest data capacity)", "Medium (~15% word recovery)",
    "Quartile (~25% word recovery)", "High (~30% word recovery / lowest data capacity)", NULL};
static const struct wf_field qrgen_fields[] = {
    {"text", NULL, WF_FT_STRING, NULL, WF_K_STRING, 0, NULL},
    {"error_correct", NULL, WF_FT_ENUM, "\"Medium (~15% word recovery)\"", 0, WF_F_NO_SELECTOR, qr_levels},
    {"border", NULL, WF_FT_INT, "4", WF_K_INT, 0, NULL},
    {"fill_color", NULL, WF_FT_STRING, "\"BLACK\"", WF_K_STRING, 0, NULL},
    {"back_color", NULL, WF_FT_STRING, "\"WHITE\"", WF_K_STRING, 0, NULL},
};
static const struct wf_output qrgen_outs[] = {{"qr_code", WF_K_IMAGE}};
static const struct wf_block qr_code_generator = {
    (const char *const[]){"roboflow_core/qr_code_generator@v1", "QRCodeGenerator", NULL},
    qrgen_fields, ARRAY_LEN(qrgen_fields), qrgen_outs, ARRAY_LEN(qrgen_outs), 0, 0, NULL, qrgen_run, NULL};

static const struct wf_field code_fields[] = {
    {"images", "image", WF_FT_IMAGE, NULL, WF_K_IMAGE, WF_F_SELECTOR_ONLY, NULL},
};
static const struct wf_output code_outs[] = {{"predictions", WF_K_OD}};
static const struct wf_block barcode_detector = {
    (const char *const[]){"roboflow_core/barcode_detector@v1", "BarcodeDetector", "BarcodeDetection", NULL},
    code_fields, ARRAY_LEN(code_fields), code_outs, ARRAY_LEN(code_outs), 0, 0, NULL, barcode_run, NULL};
static const struct wf_block qr_code_detector = {
    (const char *const[]){"roboflow_core/qr_code_detector@v1", "QRCodeDetector", "QRCodeDetection", NULL},
    code_fields, ARRAY_LEN(code_fields), code_outs, ARRAY_LEN(code_outs), 0, 0, NULL, qr_run, NULL};

const struct wf_block *const wf_blocks_codes[] = {&barcode_detector, &qr_code_detector, &qr_code_generator,
                                                   NULL};
