/* A long lookup loop must not grow memory: one reused result, string values, entries, JSON now
 * and then. RSS is measured after a warm-up and at the end.
 *
 * Usage: rss_test DB [LOOKUPS] [MAX_GROWTH_KB] (MAX_GROWTH_KB 0: report only). */
#include "check.h"

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static const char *const queries[] = {"evil.com", "1.2.3.4", "sub.evil.com", "10.1.2.3",
                                      "2001:db8::1", "nothing.org", "x.y.z.com", "caf\xc3\xa9.fr"};
static const char *const CATEGORY_PATH[] = {"category", NULL};

static long run(matchy_t *db, matchy_result_t *r, long n, long offset) {
    long found = 0;
    for (long i = 0; i < n; i++) {
        const char *q = queries[(i + offset) % 8];
        int rc = matchy_lookup(db, q, r);
        if (rc == MATCHY_OK) {
            found++;
            matchy_value_t v;
            const char *entry;
            if (matchy_result_get_value(r, 0, CATEGORY_PATH, &v) != MATCHY_OK) CHECK(0);
            if (matchy_result_entry(r, 0, &entry) != MATCHY_OK) CHECK(0);
            if ((i & 1023) == 0) {
                char *json = NULL;
                CHECK_RC(matchy_result_data_json(r, 0, &json), MATCHY_OK);
                matchy_free_string(json);
            }
        } else if (rc != MATCHY_NOT_FOUND) {
            CHECK_RC(rc, MATCHY_OK);
        }
    }
    return found;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DB [LOOKUPS] [MAX_GROWTH_KB]\n", argv[0]);
        return 2;
    }
    long lookups = argc > 2 ? atol(argv[2]) : 1000000;
    long max_growth_kb = argc > 3 ? atol(argv[3]) : 1024;
    matchy_t *db = matchy_open(argv[1]);
    CHECK(db != NULL);
    if (!db) return finish("rss_test");
    matchy_result_t *r = matchy_result_new();
    long warmup = lookups / 10 < 1000 ? 1000 : lookups / 10;
    run(db, r, warmup, 0);
    long before = rss_kb();
    long found = run(db, r, lookups, 3);
    long after = rss_kb();
    matchy_result_free(r);
    matchy_close(db);
    printf("rss_test: %ld lookups (%ld found), RSS %ld kB -> %ld kB (%+ld kB)\n", lookups, found,
           before, after, after - before);
    CHECK(found > lookups / 2);
    CHECK(before > 0 && after > 0);
    if (max_growth_kb > 0) CHECK(after - before <= max_growth_kb);
    return finish("rss_test");
}
