/* Tiny test helpers shared by the C tests: CHECK() counts and reports, finish() prints the
 * tally and gives the exit status. Thread-safe (atomic counters). */
#ifndef MATCHY_TEST_CHECK_H
#define MATCHY_TEST_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <matchy.h>

static atomic_int checks_passed;
static atomic_int checks_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) {                                                                     \
            atomic_fetch_add(&checks_passed, 1);                                        \
        } else {                                                                        \
            atomic_fetch_add(&checks_failed, 1);                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, matchy_last_error());                              \
        }                                                                               \
    } while (0)

/* An int-returning call that must give `want`. */
#define CHECK_RC(call, want)                                                            \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ == (want)) {                                                            \
            atomic_fetch_add(&checks_passed, 1);                                        \
        } else {                                                                        \
            atomic_fetch_add(&checks_failed, 1);                                        \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); last error: %s\n", \
                    __FILE__, __LINE__, #call, rc_, matchy_strerror(rc_), (want),       \
                    matchy_strerror(want), matchy_last_error());                        \
        }                                                                               \
    } while (0)

#define CHECK_STR(got, want)                                                            \
    do {                                                                                \
        const char *g_ = (got);                                                         \
        const char *w_ = (want);                                                        \
        if (g_ && w_ && strcmp(g_, w_) == 0) {                                          \
            atomic_fetch_add(&checks_passed, 1);                                        \
        } else {                                                                        \
            atomic_fetch_add(&checks_failed, 1);                                        \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");                      \
        }                                                                               \
    } while (0)

static inline int finish(const char *name) {
    int failed = atomic_load(&checks_failed);
    printf("%s: %d passed, %d failed\n", name, atomic_load(&checks_passed), failed);
    return failed ? 1 : 0;
}

/* Build a path "dir/name" into a static-size buffer. */
static inline void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Copy src to dst (truncating dst). 0 on success. */
static inline int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            rc = -1;
            break;
        }
    }
    if (fclose(out) != 0) rc = -1;
    fclose(in);
    return rc;
}

/* Replace `target` atomically with a copy of `src` (copy to a temporary name, then rename). */
static inline int swap_in(const char *src, const char *target) {
    char tmp[4200]; /* room for any 4096-byte target plus ".tmp" */
    snprintf(tmp, sizeof tmp, "%s.tmp", target);
    if (copy_file(src, tmp) != 0) return -1;
    return rename(tmp, target);
}

/* Read a whole file into a malloc'd buffer. */
static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf && size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)size;
    return buf;
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Threads of this process (from /proc/self/status), or -1. */
static inline int thread_count(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

/* Wait until only `n` threads are left (library threads of closed databases have exited). */
static inline int wait_threads(int n, double seconds) {
    double deadline = now_seconds() + seconds;
    while (thread_count() > n && now_seconds() < deadline) sleep_ms(10);
    return thread_count() == n;
}

/* The string value at `path` of match `index`, copied into buf ("" if missing or not a string). */
static inline const char *string_at(const matchy_result_t *r, size_t index, const char *const *path,
                             char *buf, size_t cap) {
    matchy_value_t v;
    buf[0] = 0;
    if (matchy_result_get_value(r, index, path, &v) == MATCHY_OK && v.type == MATCHY_TYPE_STRING)
        snprintf(buf, cap, "%s", v.data.string);
    return buf;
}

#endif
