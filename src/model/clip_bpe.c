/*
 * clip_bpe.c — CLIP's byte-level BPE tokenizer (OpenAI CLIP
 * clip/simple_tokenizer.py, which Roboflow's CLIP path calls through
 * clip.tokenize), written from the published algorithm:
 *
 *   text -> html unescape (twice) -> runs of whitespace to one space,
 *   stripped -> lowercased -> pre-tokenised with CLIP's pattern
 *     <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d
 *     | letters+ | one number | [^ whitespace letters numbers]+
 *   -> each piece's UTF-8 bytes mapped to printable characters
 *   (bytes_to_unicode) -> BPE: the last symbol gets "</w>", the adjacent
 *   pair of lowest merge rank is merged everywhere, until no pair has a
 *   rank -> ids from the vocabulary.
 *   clip.tokenize: [<|startoftext|>] + ids + [<|endoftext|>], zero-padded
 *   to the context length 77; longer is an error (Roboflow calls
 *   clip.tokenize without truncate=True) or, with truncate, cut to 77 with
 *   <|endoftext|> last.
 *
 * The vocabulary is derived from the merges file as simple_tokenizer does
 * (the 256 byte characters, the same with "</w>", one token per merge,
 * the two specials), or read from a vocab.json {token: id} when the model
 * folder has one (Hugging Face's CLIPTokenizer files).
 *
 * Departures: ftfy.fix_text (mojibake repair) is not run; html.unescape
 * knows the numeric references and the named ones listed in `entities`
 * below, not all 2231 of HTML5; "letters" are Unicode letters as glibc's
 * C.UTF-8 alphabetic class has them (Python's regex \p{L}: the same for
 * letters of every script; glibc also counts a few combining vowel signs),
 * "numbers" ASCII digits and the Unicode number ranges of is_number().
 */
#include "model/model_int.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "base/base.h"

#define BPE_MAX_MERGES 200000
#define BPE_MAX_TEXT (16u << 10) /* bytes of one text */
/* Longest token (bytes of its vocabulary string): the tokenizer's work
 * bound is counted in tokens of at most this size, so a crafted merges
 * file or vocabulary with one huge token must not raise it (CLIP's own
 * longest is 128 bytes). */
#define BPE_MAX_TOKEN 256

/* ---- a string -> int hash map (open addressing) -------------------------------- */

struct smap {
    char **keys;
    int *vals;
    size_t cap, n;
};

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void smap_grow(struct smap *m);

static void smap_put(struct smap *m, const char *k, size_t kn, int v)
{
    if ((m->n + 1) * 2 > m->cap)
        smap_grow(m);
    size_t i = fnv(k, kn) & (m->cap - 1);
    while (m->keys[i]) {
        if (strlen(m->keys[i]) == kn && !memcmp(m->keys[i], k, kn)) {
            m->vals[i] = v; /* later wins, as a Python dict built in order */
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = xstrndup(k, kn);
    m->vals[i] = v;
    m->n++;
}

static void smap_grow(struct smap *m)
{
    struct smap o = *m;
    m->cap = o.cap ? o.cap * 2 : 1024;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->vals = xcalloc(m->cap, sizeof *m->vals);
    m->n = 0;
    for (size_t i = 0; i < o.cap; i++)
        if (o.keys[i]) {
            smap_put(m, o.keys[i], strlen(o.keys[i]), o.vals[i]);
            free(o.keys[i]);
        }
    free(o.keys);
    free(o.vals);
}

static int smap_get(const struct smap *m, const char *k, size_t kn)
{
    if (!m->cap)
        return -1;
    size_t i = fnv(k, kn) & (m->cap - 1);
    while (m->keys[i]) {
        if (strlen(m->keys[i]) == kn && !memcmp(m->keys[i], k, kn))
            return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

static void smap_free(struct smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

/* ---- the tokenizer ------------------------------------------------------------------ */

struct model_clip_bpe {
    struct smap vocab;  /* token -> id */
    struct smap ranks;  /* "a b" -> merge rank */
    char enc[256][3];   /* byte -> UTF-8 of its printable stand-in (1 or 2 bytes) */
    int sot, eot;
    size_t n_vocab;
    size_t max_tok;     /* longest token, bytes of its vocabulary string */
    locale_t loc;       /* C.UTF-8 for towlower_l / iswalpha_l; 0: ASCII only */
};

static void put_utf8(uint32_t c, char *out, size_t *n)
{
    if (c < 0x80)
        out[(*n)++] = (char)c;
    else if (c < 0x800) {
        out[(*n)++] = (char)(0xC0 | (c >> 6));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (c >> 12));
        out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (c >> 18));
        out[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (c & 0x3F));
    }
}

/* bytes_to_unicode: printable bytes stand for themselves, the others for
 * 256 + n in byte order; *order receives the bytes in the vocabulary's
 * order (the printable ranges first, then the others). */
static void byte_table(struct model_clip_bpe *t, int order[256])
{
    bool printable[256] = {0};
    int k = 0, n = 0;
    for (int b = '!'; b <= '~'; b++)
        printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++)
        printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++)
        printable[b] = true;
    for (int b = 0; b < 256; b++)
        if (printable[b])
            order[k++] = b;
    for (int b = 0; b < 256; b++) {
        uint32_t c = printable[b] ? (uint32_t)b : (uint32_t)(256 + n++);
        size_t l = 0;
        put_utf8(c, t->enc[b], &l);
        t->enc[b][l] = 0;
        if (!printable[b])
            order[k++] = b;
    }
}

void model_clip_bpe_free(struct model_clip_bpe *t)
{
    if (!t)
        return;
    smap_free(&t->vocab);
    smap_free(&t->ranks);
    if (t->loc)
        freelocale(t->loc);
    free(t);
}

int model_clip_bpe_load(const char *merges, size_t len, const json_t *vocab,
                        struct model_clip_bpe **out, char *err, size_t errlen)
{
    struct model_clip_bpe *t = xcalloc(1, sizeof *t);
    int order[256], id = 0;
    size_t nm = 0, line = 0, start = 0;
    byte_table(t, order);

    /* merges: the first line is "#version: ..."; then "a b" per line */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && merges[i] != '\n')
            continue;
        size_t e = i;
        if (e > start && merges[e - 1] == '\r')
            e--;
        const char *l = merges + start;
        size_t ln = e - start;
        start = i + 1;
        if (line++ == 0 && ln && l[0] == '#')
            continue;
        if (!ln)
            continue;
        /* simple_tokenizer keeps 49152 - 256 - 2 merges of OpenAI's file */
        if (!vocab && nm >= 49152 - 256 - 2)
            break;
        const char *sp = memchr(l, ' ', ln);
        if (!sp || sp == l || sp == l + ln - 1 || memchr(sp + 1, ' ', (size_t)(l + ln - sp - 1)) ||
            memchr(l, 0, ln)) {
            snprintf(err, errlen, "merges line %zu is not two symbols separated by one space", line);
            model_clip_bpe_free(t);
            return ERR_INVALID;
        }
        if (ln - 1 > BPE_MAX_TOKEN) {
            snprintf(err, errlen, "merges line %zu: the merged token is longer than %d bytes", line,
                     BPE_MAX_TOKEN);
            model_clip_bpe_free(t);
            return ERR_LIMIT;
        }
        if (nm >= BPE_MAX_MERGES) {
            snprintf(err, errlen, "more than %d merges", BPE_MAX_MERGES);
            model_clip_bpe_free(t);
            return ERR_LIMIT;
        }
        smap_put(&t->ranks, l, ln, (int)nm++);
    }
    if (!nm) {
        snprintf(err, errlen, "the merges file has no merges");
        model_clip_bpe_free(t);
        return ERR_INVALID;
    }
    if (vocab) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vocab, k, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 10000000) {
                snprintf(err, errlen, "vocab.json: the id of '%.40s' is not an integer >= 0", k);
                model_clip_bpe_free(t);
                return ERR_INVALID;
            }
            if (strlen(k) > BPE_MAX_TOKEN) {
                snprintf(err, errlen, "vocab.json: the token '%.40s...' is longer than %d bytes", k,
                         BPE_MAX_TOKEN);
                model_clip_bpe_free(t);
                return ERR_LIMIT;
            }
            smap_put(&t->vocab, k, strlen(k), (int)json_integer_value(v));
        }
    } else {
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < 256; i++) {
                char s[8];
                snprintf(s, sizeof s, "%s%s", t->enc[order[i]], pass ? "</w>" : "");
                smap_put(&t->vocab, s, strlen(s), id++);
            }
        /* merges in rank order: invert the rank map */
        char **by_rank = xcalloc(nm, sizeof *by_rank);
        for (size_t i = 0; i < t->ranks.cap; i++)
            if (t->ranks.keys[i])
                by_rank[t->ranks.vals[i]] = t->ranks.keys[i];
        for (size_t r = 0; r < nm; r++) {
            if (!by_rank[r])
                continue; /* a duplicate merge line: kept at its later rank */
            char buf[512];
            size_t bl = 0;
            for (const char *p = by_rank[r]; *p && bl + 1 < sizeof buf; p++)
                if (*p != ' ')
                    buf[bl++] = *p;
            smap_put(&t->vocab, buf, bl, id++);
        }
        free(by_rank);
        smap_put(&t->vocab, "<|startoftext|>", 15, id++);
        smap_put(&t->vocab, "<|endoftext|>", 13, id++);
    }
    t->sot = smap_get(&t->vocab, "<|startoftext|>", 15);
    t->eot = smap_get(&t->vocab, "<|endoftext|>", 13);
    if (t->sot < 0 || t->eot < 0) {
        snprintf(err, errlen, "the vocabulary has no <|startoftext|> / <|endoftext|>");
        model_clip_bpe_free(t);
        return ERR_INVALID;
    }
    for (int b = 0; b < 256; b++)
        if (smap_get(&t->vocab, t->enc[b], strlen(t->enc[b])) < 0) {
            snprintf(err, errlen, "the vocabulary lacks the byte character of 0x%02x", b);
            model_clip_bpe_free(t);
            return ERR_INVALID;
        }
    for (size_t i = 0; i < t->vocab.cap; i++) { /* the largest id + 1, the longest token */
        if (!t->vocab.keys[i])
            continue;
        if ((size_t)t->vocab.vals[i] + 1 > t->n_vocab)
            t->n_vocab = (size_t)t->vocab.vals[i] + 1;
        if (strlen(t->vocab.keys[i]) > t->max_tok)
            t->max_tok = strlen(t->vocab.keys[i]);
    }
    t->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    *out = t;
    return 0;
}

size_t model_clip_bpe_vocab_size(const struct model_clip_bpe *t) { return t->n_vocab; }

/* ---- text normalisation ------------------------------------------------------------ */

/* UTF-8 -> code points (an invalid byte becomes U+FFFD, as a lenient
 * decoder); *n set. */
static uint32_t *decode_utf8(const char *s, size_t len, size_t *n)
{
    uint32_t *o = xcalloc(len + 1, sizeof *o);
    size_t k = 0;
    const uint8_t *p = (const uint8_t *)s, *end = p + len;
    while (p < end) {
        uint32_t c = *p;
        int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                    : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (extra < 0) {
            o[k++] = 0xFFFD;
            p++;
            continue;
        }
        c = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
        bool ok = true;
        for (int i = 1; i <= extra; i++) {
            if (p + i >= end || (p[i] & 0xC0) != 0x80) {
                ok = false;
                break;
            }
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (!ok) {
            o[k++] = 0xFFFD;
            p++;
            continue;
        }
        o[k++] = c;
        p += 1 + extra;
    }
    *n = k;
    return o;
}

static const struct {
    const char *name;
    uint32_t cp;
} entities[] = {
    {"amp", '&'},     {"lt", '<'},      {"gt", '>'},      {"quot", '"'},   {"apos", '\''},
    {"nbsp", 0xA0},   {"copy", 0xA9},   {"reg", 0xAE},    {"deg", 0xB0},   {"middot", 0xB7},
    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018},
    {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"euro", 0x20AC},
    {"times", 0xD7},  {"eacute", 0xE9}, {"egrave", 0xE8}, {"agrave", 0xE0}, {"uuml", 0xFC},
    {"ouml", 0xF6},   {"auml", 0xE4},   {"szlig", 0xDF},  {"ccedil", 0xE7}, {"ntilde", 0xF1},
};

/* Python's html.unescape for numeric references and the entities above
 * (a named one needs its ';', as for most of HTML5's names). */
static size_t unescape(uint32_t *c, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (c[i] == '&' && i + 2 < n) {
            size_t j = i + 1;
            if (c[j] == '#') {
                bool hex = j + 1 < n && (c[j + 1] == 'x' || c[j + 1] == 'X');
                size_t d = j + 1 + (hex ? 1 : 0), e = d;
                uint64_t v = 0;
                while (e < n && e - d < 8 &&
                       ((c[e] >= '0' && c[e] <= '9') ||
                        (hex && ((c[e] >= 'a' && c[e] <= 'f') || (c[e] >= 'A' && c[e] <= 'F'))))) {
                    uint32_t x = c[e] <= '9' ? c[e] - '0' : (c[e] | 0x20) - 'a' + 10;
                    v = v * (hex ? 16 : 10) + x;
                    e++;
                }
                if (e > d && e - d < 8) {
                    if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                        v = 0xFFFD;
                    c[k++] = (uint32_t)v;
                    i = e + (e < n && c[e] == ';' ? 1 : 0);
                    continue;
                }
            } else {
                size_t e = j;
                while (e < n && e - j < 10 && ((c[e] >= 'a' && c[e] <= 'z') ||
                                               (c[e] >= 'A' && c[e] <= 'Z')))
                    e++;
                if (e < n && c[e] == ';') {
                    bool hit = false;
                    for (size_t q = 0; q < ARRAY_LEN(entities); q++) {
                        const char *nm = entities[q].name;
                        size_t l = strlen(nm);
                        if (l != e - j)
                            continue;
                        size_t z = 0;
                        while (z < l && c[j + z] == (uint32_t)nm[z])
                            z++;
                        if (z == l) {
                            c[k++] = entities[q].cp;
                            i = e + 1;
                            hit = true;
                            break;
                        }
                    }
                    if (hit)
                        continue;
                }
            }
        }
        c[k++] = c[i++];
    }
    return k;
}

/* Python's str.isspace() (what re's \s matches on str). */
static bool is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* \p{N}: ASCII digits and the common Unicode number ranges. */
static bool is_number(uint32_t c)
{
    if (c < 0x80)
        return c >= '0' && c <= '9';
    static const uint32_t r[][2] = {
        {0xB2, 0xB3},     {0xB9, 0xB9},     {0xBC, 0xBE},     {0x660, 0x669},
        {0x6F0, 0x6F9},   {0x7C0, 0x7C9},   {0x966, 0x96F},   {0x9E6, 0x9EF},
        {0xE50, 0xE59},   {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089},
        {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B}, {0x24EA, 0x24FF},
        {0x2776, 0x2793}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0xFF10, 0xFF19},
    };
    for (size_t i = 0; i < ARRAY_LEN(r); i++)
        if (c >= r[i][0] && c <= r[i][1])
            return true;
    return false;
}

/* Combining marks (Mn, Mc, Me) that glibc counts as alphabetic and
 * Unicode not as letters: the combining blocks, the vowel signs and
 * viramas of the Indic blocks U+0900..U+0DFF (each 128-code-point block
 * has them at the same offsets, as ISCII), Thai's. */
static bool is_mark(uint32_t c)
{
    if ((c >= 0x300 && c <= 0x36F) || (c >= 0x483 && c <= 0x489) || (c >= 0x591 && c <= 0x5C7) ||
        (c >= 0x610 && c <= 0x61A) || (c >= 0x64B && c <= 0x65F) || c == 0x670 ||
        (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
        (c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE20 && c <= 0xFE2F) || c == 0xE31 ||
        (c >= 0xE34 && c <= 0xE3A) || (c >= 0xE47 && c <= 0xE4E))
        return true;
    if (c >= 0x900 && c <= 0xDFF) {
        uint32_t o = c & 0x7F;
        return o <= 0x03 || (o >= 0x3A && o <= 0x3C) || (o >= 0x3E && o <= 0x4F) ||
               (o >= 0x51 && o <= 0x57) || (o >= 0x62 && o <= 0x63);
    }
    return false;
}

static bool is_letter(const struct model_clip_bpe *t, uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (is_number(c) || is_mark(c))
        return false;
    return t->loc && iswalpha_l((wint_t)c, t->loc);
}

static uint32_t lower(const struct model_clip_bpe *t, uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    return t->loc ? (uint32_t)towlower_l((wint_t)c, t->loc) : c;
}

/* ---- BPE ----------------------------------------------------------------------------- */

/* Append the ids of one pre-token (code points c[0..n)) to ids. */
static int bpe_piece(const struct model_clip_bpe *t, const uint32_t *c, size_t n, int **ids,
                     size_t *n_ids, size_t *cap, char *err, size_t errlen)
{
    /* bytes -> printable characters, one symbol per byte */
    char u[8];
    size_t ul = 0, nsym = 0;
    char **sym = NULL;
    for (size_t i = 0; i < n; i++) {
        ul = 0;
        put_utf8(c[i], u, &ul);
        for (size_t b = 0; b < ul; b++) {
            sym = xrealloc(sym, (nsym + 1) * sizeof *sym);
            sym[nsym++] = xstrdup(t->enc[(uint8_t)u[b]]);
        }
    }
    if (!nsym) {
        free(sym);
        return 0;
    }
    {
        char *last = xasprintf("%s</w>", sym[nsym - 1]);
        free(sym[nsym - 1]);
        sym[nsym - 1] = last;
    }
    char *key = NULL;
    size_t kcap = 0;
    while (nsym > 1) {
        int best = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < nsym; i++) {
            size_t a = strlen(sym[i]), b = strlen(sym[i + 1]);
            if (a + b + 2 > kcap) {
                kcap = (a + b + 2) * 2;
                key = xrealloc(key, kcap);
            }
            memcpy(key, sym[i], a);
            key[a] = ' ';
            memcpy(key + a + 1, sym[i + 1], b);
            int r = smap_get(&t->ranks, key, a + b + 1);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                bi = i;
            }
        }
        if (best < 0)
            break;
        /* merge every occurrence of the pair, left to right */
        char *first = xstrdup(sym[bi]), *second = xstrdup(sym[bi + 1]);
        size_t k = 0;
        for (size_t i = 0; i < nsym;) {
            if (i + 1 < nsym && !strcmp(sym[i], first) && !strcmp(sym[i + 1], second)) {
                char *m = xasprintf("%s%s", first, second);
                free(sym[i]);
                free(sym[i + 1]);
                sym[k++] = m;
                i += 2;
            } else
                sym[k++] = sym[i++];
        }
        nsym = k;
        free(first);
        free(second);
    }
    free(key);
    int rc = 0;
    for (size_t i = 0; i < nsym; i++) {
        int id = rc < 0 ? -1 : smap_get(&t->vocab, sym[i], strlen(sym[i]));
        if (rc == 0 && id < 0) {
            snprintf(err, errlen, "the token '%.60s' is not in the vocabulary", sym[i]);
            rc = ERR_INVALID;
        }
        if (rc == 0) {
            if (*n_ids == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *ids = xrealloc(*ids, *cap * sizeof **ids);
            }
            (*ids)[(*n_ids)++] = id;
        }
        free(sym[i]);
    }
    free(sym);
    return rc;
}

static bool match_ascii(const uint32_t *c, size_t n, size_t i, const char *s)
{
    size_t l = strlen(s);
    if (i + l > n)
        return false;
    for (size_t k = 0; k < l; k++)
        if (c[i + k] != (uint8_t)s[k])
            return false;
    return true;
}

/* Encode text; with max_ids > 0 stop once that many ids are out and cut
 * single pieces longer than max_ids * the longest token (they would give
 * more ids anyway), so that a long text costs at most that much work. */
/* With fit > 0: ERR_LIMIT at once when the normalised text is longer than
 * fit tokens can cover (each token stands for at most max_tok bytes). */
static int encode(const struct model_clip_bpe *t, const char *text, size_t max_ids, size_t fit,
                  int **ids_out, size_t *n_out, char *err, size_t errlen)
{
    size_t len = strlen(text), n = 0;
    if (len > BPE_MAX_TEXT) {
        snprintf(err, errlen, "text longer than %u bytes", BPE_MAX_TEXT);
        return ERR_LIMIT;
    }
    uint32_t *u = decode_utf8(text, len, &n);
    n = unescape(u, n);
    n = unescape(u, n);
    /* whitespace runs -> one space, stripped; then lowercased (U+0130
     * lowercases to two code points, as Python's str.lower) */
    uint32_t *c = xcalloc(2 * n + 1, sizeof *c);
    size_t k = 0;
    bool sp = false;
    for (size_t i = 0; i < n; i++) {
        if (is_space(u[i])) {
            sp = k > 0;
            continue;
        }
        if (sp)
            c[k++] = ' ';
        sp = false;
        if (u[i] == 0x130) {
            c[k++] = 'i';
            c[k++] = 0x307;
        } else
            c[k++] = lower(t, u[i]);
    }
    free(u);
    n = k;
    if (fit) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += c[i] == ' ' ? 0 : c[i] < 0x80 ? 1 : c[i] < 0x800 ? 2 : c[i] < 0x10000 ? 3 : 4;
        if (bytes > fit * t->max_tok) {
            free(c);
            return ERR_LIMIT;
        }
    }

    int *ids = NULL, rc = 0;
    size_t n_ids = 0, cap = 0;
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = 0; i < n && rc == 0 && (!max_ids || n_ids < max_ids);) {
        if (c[i] == ' ') {
            i++;
            continue;
        }
        if (match_ascii(c, n, i, "<|startoftext|>") || match_ascii(c, n, i, "<|endoftext|>")) {
            bool s = c[i + 2] == 's';
            if (n_ids == cap) {
                cap = cap ? cap * 2 : 64;
                ids = xrealloc(ids, cap * sizeof *ids);
            }
            ids[n_ids++] = s ? t->sot : t->eot;
            i += s ? 15 : 13;
            continue;
        }
        size_t e = i;
        for (size_t q = 0; q < ARRAY_LEN(contractions); q++)
            if (match_ascii(c, n, i, contractions[q])) {
                e = i + strlen(contractions[q]);
                break;
            }
        if (e == i) {
            if (is_letter(t, c[i])) {
                while (e < n && is_letter(t, c[e]))
                    e++;
            } else if (is_number(c[i]))
                e = i + 1;
            else
                while (e < n && c[e] != ' ' && !is_letter(t, c[e]) && !is_number(c[e]))
                    e++;
        }
        size_t pl = e - i;
        if (max_ids && pl > max_ids * t->max_tok)
            pl = max_ids * t->max_tok;
        rc = bpe_piece(t, c + i, pl, &ids, &n_ids, &cap, err, errlen);
        i = e;
    }
    free(c);
    if (rc < 0) {
        free(ids);
        return rc;
    }
    *ids_out = ids;
    *n_out = n_ids;
    return 0;
}

int model_clip_bpe_encode(const struct model_clip_bpe *t, const char *text, int **ids, size_t *n,
                          char *err, size_t errlen)
{
    return encode(t, text, 0, 0, ids, n, err, errlen);
}

int model_clip_bpe_tokenize(const struct model_clip_bpe *t, const char *text, bool truncate,
                            int32_t out[MODEL_CLIP_CONTEXT], char *err, size_t errlen)
{
    int *ids = NULL;
    size_t n = 0;
    int rc = encode(t, text, truncate ? MODEL_CLIP_CONTEXT : 0,
                    truncate ? 0 : MODEL_CLIP_CONTEXT - 2, &ids, &n, err, errlen);
    if (rc == ERR_LIMIT && !truncate) {
        snprintf(err, errlen, "text of %zu bytes is too long for CLIP's context length %d "
                 "(at most %d tokens): '%.60s'", strlen(text), MODEL_CLIP_CONTEXT,
                 MODEL_CLIP_CONTEXT - 2, text);
        return ERR_INVALID;
    }
    if (rc < 0)
        return rc;
    if (n + 2 > MODEL_CLIP_CONTEXT && !truncate) {
        snprintf(err, errlen, "text of %zu tokens is too long for CLIP's context length %d "
                 "(at most %d tokens): '%.60s'", n, MODEL_CLIP_CONTEXT, MODEL_CLIP_CONTEXT - 2,
                 text);
        free(ids);
        return ERR_INVALID;
    }
    memset(out, 0, MODEL_CLIP_CONTEXT * sizeof *out);
    out[0] = t->sot;
    size_t k = 1;
    for (size_t i = 0; i < n && k < MODEL_CLIP_CONTEXT; i++)
        out[k++] = ids[i];
    if (k < MODEL_CLIP_CONTEXT)
        out[k] = t->eot;
    else
        out[MODEL_CLIP_CONTEXT - 1] = t->eot;
    free(ids);
    return 0;
}
