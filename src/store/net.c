/*
 * net.c — the outbound network guard against SSRF.  User-supplied URLs
 * (reference files, images to fetch, webhook targets) may only reach
 * public unicast addresses, unless an operator allow-list names the
 * address (tests allow 127.0.0.1).  The check runs on every address curl
 * actually connects to (CURLOPT_OPENSOCKETFUNCTION), so DNS rebinding and
 * redirects to private hosts are caught too; environment proxies are
 * disabled for guarded handles, since the proxy's address would be checked
 * instead of the target's.
 */
#include "store/store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/store_int.h"

static bool prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rem = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rem));
    return (a[full] & mask) == (net[full] & mask);
}

static bool v4_public(const uint8_t *a)
{
    static const struct {
        uint8_t net[4];
        int prefix;
    } bad[] = {
        {{0, 0, 0, 0}, 8},       {{10, 0, 0, 0}, 8},     {{100, 64, 0, 0}, 10}, {{127, 0, 0, 0}, 8},
        {{169, 254, 0, 0}, 16},  {{172, 16, 0, 0}, 12},  {{192, 0, 0, 0}, 24},  {{192, 0, 2, 0}, 24},
        {{192, 168, 0, 0}, 16},  {{198, 18, 0, 0}, 15},  {{198, 51, 100, 0}, 24}, {{203, 0, 113, 0}, 24},
        {{224, 0, 0, 0}, 4},     {{240, 0, 0, 0}, 4},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (prefix_match(a, bad[i].net, bad[i].prefix))
            return false;
    return true;
}

static bool v6_public(const uint8_t *a)
{
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, zero, 15) && (a[15] == 0 || a[15] == 1)) /* :: and ::1 */
        return false;
    if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12))
        return v4_public(a + 12);
    if ((a[0] & 0xfe) == 0xfc)                  /* fc00::/7 unique local */
        return false;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)  /* fe80::/10 link local */
        return false;
    if (a[0] == 0xff)                           /* multicast */
        return false;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) /* documentation */
        return false;
    return true;
}

bool store__net_addr_allowed(struct store *st, const struct sockaddr *sa)
{
    const uint8_t *a;
    int fam = sa->sa_family;
    bool ok;
    if (fam == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        ok = v4_public(a);
    } else if (fam == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        ok = v6_public(a);
    } else {
        return false;
    }
    if (ok)
        return true;
    pthread_mutex_lock(&st->net_mu);
    for (int i = 0; i < st->net_nrules && !ok; i++) {
        const struct store_net_rule *r = &st->net_rules[i];
        if (r->family == fam)
            ok = prefix_match(a, r->addr, r->prefix);
        else if (r->family == AF_INET && fam == AF_INET6) {
            static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            ok = !memcmp(a, mapped, 12) && prefix_match(a + 12, r->addr, r->prefix);
        }
    }
    pthread_mutex_unlock(&st->net_mu);
    return ok;
}

void store__net_free(struct store *st)
{
    free(st->net_rules);
    st->net_rules = NULL;
    st->net_nrules = 0;
}

int store_net_allow_set(struct store *st, const char *list)
{
    struct store_net_rule *rules = NULL;
    int n = 0, rc = 0;
    char *copy = xstrdup(list ? list : ""), *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        struct store_net_rule r = {0};
        char *slash = strchr(tok, '/');
        int maxp;
        if (slash)
            *slash = 0;
        if (inet_pton(AF_INET, tok, r.addr) == 1) {
            r.family = AF_INET;
            maxp = 32;
        } else if (inet_pton(AF_INET6, tok, r.addr) == 1) {
            r.family = AF_INET6;
            maxp = 128;
        } else {
            rc = ERR_PARSE;
            break;
        }
        r.prefix = maxp;
        if (slash) {
            char *end;
            long p = strtol(slash + 1, &end, 10);
            if (!slash[1] || *end || p < 0 || p > maxp) {
                rc = ERR_PARSE;
                break;
            }
            r.prefix = (int)p;
        }
        rules = xrealloc(rules, (size_t)(n + 1) * sizeof *rules);
        rules[n++] = r;
    }
    free(copy);
    if (rc < 0) {
        free(rules);
        return rc;
    }
    pthread_mutex_lock(&st->net_mu);
    free(st->net_rules);
    st->net_rules = rules;
    st->net_nrules = n;
    pthread_mutex_unlock(&st->net_mu);
    return 0;
}

static curl_socket_t guard_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct store *st = clientp;
    (void)purpose;
    if (!store__net_addr_allowed(st, &addr->addr)) {
        log_warn("store", "outbound connection to a non-public address refused");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

void store_net_guard_curl(struct store *st, void *curl)
{
    CURL *c = curl;
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, guard_opensocket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, st);
}

int store_net_check_url(struct store *st, const char *url, const char **why)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    struct addrinfo hints = {0}, *res = NULL;
    int rc = ERR_INVALID;
    *why = "malformed url";
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        *why = "unsupported url scheme (http and https only)";
        goto out;
    }
    /* IPv6 literals come back bracketed. */
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
        *why = "host name cannot be resolved";
        goto out;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!store__net_addr_allowed(st, ai->ai_addr)) {
            *why = "url points to a private, loopback or reserved address";
            goto out;
        }
    }
    *why = NULL;
    rc = 0;
out:
    if (res)
        freeaddrinfo(res);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}
