/* The C side of the C-boundary overhead comparison (`overhead_instructions` in
 * ffi/tests/c_api.rs, which counts instructions with callgrind; ffi/examples/rust_lookup_loop.rs
 * is the Rust side): LOOKUPS lookups cycling through the queries, one reused result. Prints the
 * number of hits (for checking that both sides agree).
 *
 * MODE: lookup  matchy_lookup
 *       ip      matchy_lookup_ip_bytes (queries are IPv4 addresses, parsed first)
 *       string  matchy_lookup + matchy_result_get_string(country, iso_code) on a hit
 *       value   matchy_lookup + matchy_result_get_value(country, iso_code) on a hit
 *       ip+string  matchy_lookup_ip_bytes + matchy_result_get_string(country, iso_code)
 *       path    matchy_lookup + matchy_result_get_string_at (a prepared country/iso_code path)
 *       ip+path matchy_lookup_ip_bytes + matchy_result_get_string_at
 *
 * The second half of the lookups is timed (the first warms the caches, the branch predictors
 * and the IPv4 index); the time per lookup goes to stderr as "<ns> ns/lookup".
 *
 * Usage: bench DB QUERY_FILE LOOKUPS MODE */
#include <arpa/inet.h>
#include <time.h>

#include "check.h"

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DB QUERY_FILE LOOKUPS MODE\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *text = (char *)read_file(argv[2], &len);
    if (!text) return 2;
    size_t nq = 0;
    for (size_t i = 0; i < len; i++) nq += text[i] == '\n';
    const char **queries = malloc(nq * sizeof *queries);
    unsigned char(*addrs)[4] = malloc(nq * sizeof *addrs);
    size_t k = 0;
    char *p = text;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            text[i] = 0;
            queries[k++] = p;
            p = text + i + 1;
        }
    }
    const char *mode = argv[4];
    int by_ip = strncmp(mode, "ip", 2) == 0;
    for (size_t i = 0; by_ip && i < nq; i++) {
        if (inet_pton(AF_INET, queries[i], addrs[i]) != 1) return 2;
    }
    int read_string = strcmp(mode, "string") == 0 || strcmp(mode, "ip+string") == 0;
    int read_at = strcmp(mode, "path") == 0 || strcmp(mode, "ip+path") == 0;
    int read_value = strcmp(mode, "value") == 0;
    /* lookup_n: the lengths known beforehand, as a log parser knows its fields'. */
    int counted = strcmp(mode, "lookup_n") == 0;
    size_t *lens = malloc(nq * sizeof *lens);
    for (size_t i = 0; i < nq; i++) lens[i] = strlen(queries[i]);
    long lookups = atol(argv[3]);
    matchy_t *db = matchy_open(argv[1]);
    if (!db || nq == 0) return 2;
    matchy_result_t *r = matchy_result_new();
    static const char *const path[] = {"country", "iso_code", NULL};
    matchy_path_t *prepared = matchy_path_new(path, 2);
    if (!prepared) return 2;
    long hits = 0;
    long half = lookups / 2;
    double start = 0;
    size_t q = nq - 1;
    for (long i = 0; i < lookups; i++) {
        if (i == half) start = now_ns();
        /* The next query without a division: tens of cycles the two sides would share. */
        q = q + 1 == nq ? 0 : q + 1;
        int rc = by_ip     ? matchy_lookup_ip_bytes(db, addrs[q], 4, r)
                 : counted ? matchy_lookup_n(db, queries[q], lens[q], r)
                           : matchy_lookup(db, queries[q], r);
        if (rc != MATCHY_OK) continue;
        if (read_string) {
            const char *s;
            size_t n;
            if (matchy_result_get_string(r, 0, path, &s, &n) == MATCHY_OK) hits += n > 0;
        } else if (read_at) {
            const char *s;
            size_t n;
            if (matchy_result_get_string_at(r, 0, prepared, &s, &n) == MATCHY_OK) hits += n > 0;
        } else if (read_value) {
            matchy_value_t v;
            if (matchy_result_get_value(r, 0, path, &v) == MATCHY_OK) hits += v.size > 0;
        } else {
            hits++;
        }
    }
    fprintf(stderr, "%.2f ns/lookup\n", (now_ns() - start) / (double)(lookups - half));
    printf("%ld\n", hits);
    matchy_path_free(prepared);
    matchy_result_free(r);
    matchy_close(db);
    free(addrs);
    free(lens);
    free(queries);
    free(text);
    return 0;
}
