/*
 * video.c — container probing and frame iteration with FFmpeg 5.1
 * (libavformat, libavcodec, libswscale).
 *
 * Input is a path or a borrowed memory buffer (read through a custom
 * AVIOContext with read and seek callbacks bounded by the buffer).  The
 * iterator's state machine:
 *
 *     READING --av_read_frame EOF--> DRAINING --receive EOF--> DONE
 *        |  packets of our stream go to the decoder; after each send we
 *        |  receive every frame it has ready
 *     DRAINING sends one NULL packet (avcodec_send_packet(ctx, NULL)) and
 *     keeps receiving until AVERROR_EOF: without it the frames still held
 *     by the decoder (B-frame reordering, threading) are lost.
 *
 * Frames are sampled to max_fps by presentation time: a frame is kept when
 * its time reaches the next due time, which then advances by 1/max_fps.
 * Colour conversion goes through a cached SwsContext (re-created only
 * when the frame size or pixel format changes).  FFmpeg's own logging is
 * lowered to fatal errors once per process, since corrupt uploads would
 * otherwise flood stderr.
 */
#include "vision/vision.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vision/vision_int.h"

#define AVIO_BUF 65536
/* Demuxers accepted (names as FFmpeg spells them). */
#define VIDEO_FORMATS                                                             \
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,gif,h264,hevc," \
    "m4v,ivf,mxf,nut"

struct mem_src {
    const uint8_t *p;
    size_t len, off;
};

enum vid_state { VID_READING, VID_DRAINING, VID_DONE };

struct vis_video {
    AVFormatContext *fmt;
    AVIOContext *avio;       /* custom I/O for memory input, else NULL */
    struct mem_src mem;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frm;
    int stream;              /* index of the video stream */
    AVRational tb;           /* its time base */
    enum vid_state state;
    long long index;         /* decoded frames so far */
    double period, next_due; /* sampling: 0 period = keep all */
    int64_t deadline_ms;     /* monotonic; opening gives up after it, 0 = none */
    struct vis_video_info info;
};

static pthread_once_t av_once = PTHREAD_ONCE_INIT;
static void av_quiet(void) { av_log_set_level(AV_LOG_FATAL); }

static int mem_read(void *opaque, uint8_t *buf, int n)
{
    struct mem_src *m = opaque;
    size_t left = m->len - m->off;

    if (left == 0)
        return AVERROR_EOF;
    if ((size_t)n > left)
        n = (int)left;
    memcpy(buf, m->p + m->off, (size_t)n);
    m->off += (size_t)n;
    return n;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence)
{
    struct mem_src *m = opaque;
    int64_t base;

    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return (int64_t)m->len;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)m->off; break;
    case SEEK_END: base = (int64_t)m->len; break;
    default: return AVERROR(EINVAL);
    }
    if (off > (int64_t)m->len || off < -(int64_t)m->len)
        return AVERROR(EINVAL);
    base += off;
    if (base < 0 || base > (int64_t)m->len)
        return AVERROR(EINVAL);
    m->off = (size_t)base;
    return base;
}

void vis_video_free(struct vis_video *v)
{
    if (!v)
        return;
    sws_freeContext(v->sws);
    av_frame_free(&v->frm);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    if (v->avio) {
        av_freep(&v->avio->buffer);
        avio_context_free(&v->avio);
    }
    free(v);
}

/* FFmpeg polls this during blocking work; non-zero aborts it. */
static int interrupt_cb(void *opaque)
{
    struct vis_video *v = opaque;
    return v->deadline_ms > 0 && time_mono_ms() > v->deadline_ms;
}

static double q2d_or(AVRational r, double dflt)
{
    return r.num > 0 && r.den > 0 ? av_q2d(r) : dflt;
}

/* Open the container and the decoder; fill v->info. */
static int video_open(struct vis_video *v, const char *path)
{
    const AVCodec *codec = NULL;
    AVStream *st;
    int rc;

    pthread_once(&av_once, av_quiet);
    v->fmt = avformat_alloc_context();
    if (!v->fmt)
        return ERR_NOMEM;
    /* A crafted file can make probing slow: opening is bounded in time. */
    v->deadline_ms = time_mono_ms() + VIS_VIDEO_OPEN_TIMEOUT_MS;
    v->fmt->interrupt_callback.callback = interrupt_cb;
    v->fmt->interrupt_callback.opaque = v;
    if (!path) {
        uint8_t *buf = av_malloc(AVIO_BUF);
        if (!buf)
            return ERR_NOMEM;
        v->avio = avio_alloc_context(buf, AVIO_BUF, 0, &v->mem, mem_read, NULL, mem_seek);
        if (!v->avio) {
            av_free(buf);
            return ERR_NOMEM;
        }
        v->fmt->pb = v->avio;
        v->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    /* Only plain video containers, and no protocol but local files (none
     * at all for memory input): playlist and concat demuxers (hls, concat,
     * image2 patterns) or URL paths would make an upload read other local
     * files or reach the network. */
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "format_whitelist", VIDEO_FORMATS, 0);
    av_dict_set(&opts, "protocol_whitelist", path ? "file" : "none", 0);
    /* "file:" makes FFmpeg take the path literally, whatever it contains
     * (a name like "concat:a|b" or "x:y" would otherwise pick a protocol) */
    char *url = path ? xasprintf("file:%s", path) : NULL;
    rc = avformat_open_input(&v->fmt, url ? url : "", NULL, &opts);
    free(url);
    av_dict_free(&opts);
    if (rc < 0) {
        /* avformat_open_input frees the context on failure */
        v->fmt = NULL;
        return ERR_PARSE;
    }
    /* A still image opens as a one-frame "video" (image2 / *_pipe
     * demuxers); it is not a video upload. */
    if (strcmp(v->fmt->iformat->name, "image2") == 0 || strstr(v->fmt->iformat->name, "_pipe"))
        return ERR_UNSUPPORTED;
    if (avformat_find_stream_info(v->fmt, NULL) < 0)
        return ERR_PARSE;
    rc = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (rc < 0 || !codec)
        return ERR_UNSUPPORTED;
    v->stream = rc;
    st = v->fmt->streams[rc];
    v->tb = st->time_base;
    if (!vis__size_ok(st->codecpar->width, st->codecpar->height))
        return st->codecpar->width <= 0 || st->codecpar->height <= 0 ? ERR_PARSE : ERR_LIMIT;
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec)
        return ERR_NOMEM;
    if (avcodec_parameters_to_context(v->dec, st->codecpar) < 0)
        return ERR_PARSE;
    v->dec->thread_count = 1; /* workers parallelise across jobs */
    /* a stream may change size mid-way: FFmpeg refuses frames over this */
    v->dec->max_pixels = VIS_MAX_PIXELS;
    if (avcodec_open2(v->dec, codec, NULL) < 0)
        return ERR_UNSUPPORTED;
    v->pkt = av_packet_alloc();
    v->frm = av_frame_alloc();
    if (!v->pkt || !v->frm)
        return ERR_NOMEM;

    struct vis_video_info *in = &v->info;
    in->width = st->codecpar->width;
    in->height = st->codecpar->height;
    in->fps = q2d_or(st->avg_frame_rate, q2d_or(st->r_frame_rate, 0));
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration_s = (double)st->duration * q2d_or(st->time_base, 0);
    else if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration > 0)
        in->duration_s = (double)v->fmt->duration / AV_TIME_BASE;
    else
        in->duration_s = -1;
    if (st->nb_frames > 0)
        in->frame_count = st->nb_frames;
    else if (in->duration_s > 0 && in->fps > 0)
        in->frame_count = (long long)(in->duration_s * in->fps + 0.5);
    else
        in->frame_count = -1;
    snprintf(in->codec, sizeof in->codec, "%s", codec->name);
    snprintf(in->container, sizeof in->container, "%s", v->fmt->iformat->name);
    v->deadline_ms = 0; /* iteration is paced by the caller */
    return 0;
}

static int open_common(const char *path, const void *data, size_t len, double max_fps,
                       struct vis_video **out)
{
    struct vis_video *v = try_calloc(1, sizeof *v);
    int rc;

    if (!v)
        return ERR_NOMEM;
    v->mem.p = data;
    v->mem.len = len;
    rc = video_open(v, path);
    if (rc < 0) {
        vis_video_free(v);
        return rc;
    }
    v->period = max_fps > 0 ? 1.0 / max_fps : 0;
    *out = v;
    return 0;
}

int vis_video_open_file(const char *path, double max_fps, struct vis_video **out)
{
    if (!path)
        return ERR_INVALID;
    return open_common(path, NULL, 0, max_fps, out);
}

int vis_video_open_mem(const void *data, size_t len, double max_fps, struct vis_video **out)
{
    if (!data || len == 0)
        return ERR_PARSE;
    return open_common(NULL, data, len, max_fps, out);
}

const struct vis_video_info *vis_video_info(const struct vis_video *v) { return &v->info; }

static int probe_common(const char *path, const void *data, size_t len, struct vis_video_info *info)
{
    struct vis_video *v = NULL;
    int rc = path ? vis_video_open_file(path, 0, &v) : vis_video_open_mem(data, len, 0, &v);

    if (rc < 0)
        return rc;
    *info = v->info;
    vis_video_free(v);
    return 0;
}

int vis_video_probe_file(const char *path, struct vis_video_info *info)
{
    return path ? probe_common(path, NULL, 0, info) : ERR_INVALID;
}

int vis_video_probe_mem(const void *data, size_t len, struct vis_video_info *info)
{
    return probe_common(NULL, data, len, info);
}

/* Convert v->frm to a new BGR image. */
static int frame_to_image(struct vis_video *v, struct vis_image **out)
{
    AVFrame *f = v->frm;
    struct vis_image *img;
    uint8_t *dst[4] = {NULL};
    int dst_stride[4] = {0};

    if (!vis__size_ok(f->width, f->height))
        return f->width <= 0 || f->height <= 0 ? ERR_PARSE : ERR_LIMIT;
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, (enum AVPixelFormat)f->format,
                                  f->width, f->height, AV_PIX_FMT_BGR24, SWS_BILINEAR, NULL, NULL,
                                  NULL);
    if (!v->sws)
        return ERR_UNSUPPORTED;
    img = vis__image_alloc(f->width, f->height, VIS_BGR, 0);
    if (!img)
        return ERR_NOMEM;
    dst[0] = img->px;
    dst_stride[0] = img->stride;
    if (sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
                  dst_stride) != f->height) {
        vis_image_free(img);
        return ERR_INTERNAL;
    }
    *out = img;
    return 0;
}

/* Decide whether the frame just received is kept. */
static int keep_frame(struct vis_video *v, double t)
{
    if (v->period <= 0)
        return 1;
    if (v->index == 0 || t + 1e-6 >= v->next_due) {
        v->next_due = (v->index == 0 ? t : v->next_due) + v->period;
        if (v->next_due <= t)
            v->next_due = t + v->period;
        return 1;
    }
    return 0;
}

int vis_video_next(struct vis_video *v, struct vis_image **frame, struct vis_frame_meta *meta)
{
    for (;;) {
        int rc;
        if (v->state == VID_DONE)
            return 0;
        rc = avcodec_receive_frame(v->dec, v->frm);
        if (rc == 0) {
            int64_t ts = v->frm->best_effort_timestamp;
            double t = ts != AV_NOPTS_VALUE ? (double)ts * q2d_or(v->tb, 0)
                       : v->info.fps > 0    ? (double)v->index / v->info.fps
                                            : 0;
            int keep = keep_frame(v, t);
            long long idx = v->index++;
            struct vis_image *img = NULL;
            if (keep)
                rc = frame_to_image(v, &img);
            av_frame_unref(v->frm);
            if (!keep)
                continue;
            if (rc < 0)
                return rc;
            *frame = img;
            if (meta) {
                meta->index = idx;
                meta->pts_s = t;
            }
            return 1;
        }
        if (rc == AVERROR_EOF) {
            v->state = VID_DONE;
            return 0;
        }
        if (rc != AVERROR(EAGAIN))
            return ERR_PARSE;
        if (v->state == VID_DRAINING) {
            v->state = VID_DONE; /* EAGAIN while draining should not happen */
            return 0;
        }
        /* the decoder wants input */
        for (;;) {
            rc = av_read_frame(v->fmt, v->pkt);
            if (rc < 0) {
                /* end of input (or a read error at the tail): drain */
                v->state = VID_DRAINING;
                if (avcodec_send_packet(v->dec, NULL) < 0)
                    v->state = VID_DONE;
                break;
            }
            if (v->pkt->stream_index != v->stream) {
                av_packet_unref(v->pkt);
                continue;
            }
            rc = avcodec_send_packet(v->dec, v->pkt);
            av_packet_unref(v->pkt);
            if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
                return ERR_PARSE;
            break; /* corrupt packets are skipped like ffmpeg does */
        }
    }
}
