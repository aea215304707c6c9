/*
 * t.h — a tiny unit-test harness (in the spirit of libuv's runner).
 *
 *   TEST(name) { ASSERT_EQ(1 + 1, 2); }
 *   ...
 *   TEST_MAIN()
 *
 * Each test runs in its own child process with a timeout (T_TIMEOUT_S,
 * scaled by TEST_TIMEOUT_MULT), so a crash or hang fails one test, not the
 * binary.  `./test_x name...` runs only the named tests; `-l` lists them.
 * The binary prints one line per test and finishes with
 * "<binary>: N passed, N failed"; it exits non-zero if any test failed.
 */
#ifndef VBATCH_T_H
#define VBATCH_T_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef void (*t_fn)(void);
struct t_case { const char *name; t_fn fn; };
static struct t_case t_cases[512];
static int t_ncases;

#define TEST(name)                                                            \
    static void test_##name(void);                                            \
    __attribute__((constructor)) static void t_reg_##name(void)               \
    {                                                                         \
        if (t_ncases < 512)                                                   \
            t_cases[t_ncases++] = (struct t_case){#name, test_##name};        \
    }                                                                         \
    static void test_##name(void)

#define T_FAIL(...)                                                           \
    do {                                                                      \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                     \
        fprintf(stderr, __VA_ARGS__);                                         \
        fprintf(stderr, "\n");                                                \
        exit(1);                                                              \
    } while (0)
#define ASSERT(c)                                                             \
    do { if (!(c)) T_FAIL("assertion failed: %s", #c); } while (0)
#define ASSERT_OP_(a, op, b, fmt, type)                                       \
    do {                                                                      \
        type a_ = (a), b_ = (b);                                              \
        if (!(a_ op b_))                                                      \
            T_FAIL("%s %s %s: " fmt " vs " fmt, #a, #op, #b, a_, b_);         \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_OP_(a, ==, b, "%" PRId64, int64_t)
#define ASSERT_NE(a, b) ASSERT_OP_(a, !=, b, "%" PRId64, int64_t)
#define ASSERT_LT(a, b) ASSERT_OP_(a, <, b, "%" PRId64, int64_t)
#define ASSERT_LE(a, b) ASSERT_OP_(a, <=, b, "%" PRId64, int64_t)
#define ASSERT_GT(a, b) ASSERT_OP_(a, >, b, "%" PRId64, int64_t)
#define ASSERT_GE(a, b) ASSERT_OP_(a, >=, b, "%" PRId64, int64_t)
#define ASSERT_NEAR(a, b, eps)                                                \
    do {                                                                      \
        double a_ = (a), b_ = (b);                                            \
        if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                          \
            T_FAIL("%s ~= %s: %.9g vs %.9g (eps %g)", #a, #b, a_, b_, (double)(eps)); \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                   \
    do {                                                                      \
        const char *a_ = (a), *b_ = (b);                                      \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                \
            T_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)",  \
                   b_ ? b_ : "(null)");                                       \
    } while (0)
#define ASSERT_OK(expr)                                                       \
    do {                                                                      \
        int rc_ = (expr);                                                     \
        if (rc_ < 0)                                                          \
            T_FAIL("%s failed: %d", #expr, rc_);                              \
    } while (0)

#ifndef T_TIMEOUT_S
#define T_TIMEOUT_S 60
#endif

static int t_run_one(const struct t_case *c)
{
    const char *m = getenv("TEST_TIMEOUT_MULT");
    int timeout = T_TIMEOUT_S * (m && atoi(m) > 0 ? atoi(m) : 1);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm((unsigned)timeout);
        c->fn();
        /* exit(), not _exit(): LeakSanitizer checks at exit, so every
         * passing test is also a leak check in the sanitizer build. */
        exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st))
        fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(st),
                WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
    return 1;
}

static int t_main(int argc, char **argv)
{
    int pass = 0, fail = 0;
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc > 1 && !strcmp(argv[1], "-l")) {
        for (int i = 0; i < t_ncases; i++)
            printf("%s\n", t_cases[i].name);
        return 0;
    }
    for (int i = 0; i < t_ncases; i++) {
        if (argc > 1) {
            int want = 0;
            for (int k = 1; k < argc; k++)
                want |= !strcmp(argv[k], t_cases[i].name);
            if (!want)
                continue;
        }
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int bad = t_run_one(&t_cases[i]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
        printf("%s %s.%s (%.0f ms)\n", bad ? "FAIL" : "ok  ", prog, t_cases[i].name, ms);
        fflush(stdout);
        bad ? fail++ : pass++;
    }
    printf("%s: %d passed, %d failed\n", prog, pass, fail);
    return fail ? 1 : 0;
}

#define TEST_MAIN()                                                           \
    int main(int argc, char **argv) { return t_main(argc, argv); }

#endif
