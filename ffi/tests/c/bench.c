/* Lookup throughput through the C API, for the overhead comparison with the Rust API in
 * ffi/tests/c_api.rs (`overhead_c_vs_rust`): each lookup reuses one result; with `value`, a hit
 * also reads the first match's "category" string. Prints the best of `rounds` rounds in ns per
 * lookup, and the number of hits.
 *
 * Usage: bench DB QUERY_FILE LOOKUPS ROUNDS lookup|value */
#include "check.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s DB QUERY_FILE LOOKUPS ROUNDS lookup|value\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *text = (char *)read_file(argv[2], &len);
    if (!text) return 2;
    size_t nq = 0;
    for (size_t i = 0; i < len; i++) nq += text[i] == '\n';
    const char **queries = malloc(nq * sizeof *queries);
    size_t k = 0;
    char *p = text;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            text[i] = 0;
            queries[k++] = p;
            p = text + i + 1;
        }
    }
    long lookups = atol(argv[3]);
    int rounds = atoi(argv[4]);
    int read_value = strcmp(argv[5], "value") == 0;
    matchy_t *db = matchy_open(argv[1]);
    if (!db || nq == 0) return 2;
    matchy_result_t *r = matchy_result_new();
    static const char *const category[] = {"category", NULL};
    double best = 1e30;
    long hits = 0;
    for (int round = 0; round < rounds; round++) {
        hits = 0;
        double t0 = now_seconds();
        for (long i = 0; i < lookups; i++) {
            if (matchy_lookup(db, queries[(size_t)i % nq], r) == MATCHY_OK) {
                if (!read_value) {
                    hits++;
                    continue;
                }
                matchy_value_t v;
                if (matchy_result_get_value(r, 0, category, &v) == MATCHY_OK) hits += v.size > 0;
            }
        }
        double ns = (now_seconds() - t0) * 1e9 / (double)lookups;
        if (ns < best) best = ns;
    }
    printf("%.1f %ld\n", best, hits);
    matchy_result_free(r);
    matchy_close(db);
    free(queries);
    free(text);
    return 0;
}
