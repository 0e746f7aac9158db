/* Many threads look up continuously while the main thread swaps database versions in (auto
 * reload through the watcher, and manual reloads racing with it). Every answer must be a
 * complete answer of one version: never an error, never a mix.
 *
 * Usage: threads_test DIR [THREADS] [SWAPS] (DIR holds threats.mxy (v1) and v2.mxy). */
#include <pthread.h>

#include "check.h"

static const char *const VERSION_PATH[] = {"version", NULL};
static const char *const CATEGORY_PATH[] = {"category", NULL};

static matchy_t *db;
static atomic_int stop;
static atomic_long total_lookups;
static atomic_int reloads_seen;

static void on_reload(const matchy_reload_event_t *ev, void *user_data) {
    (void)user_data;
    if (ev->kind == MATCHY_RELOAD_RELOADED) atomic_fetch_add(&reloads_seen, 1);
}

static void *reader(void *arg) {
    long id = (long)arg;
    matchy_result_t *r = matchy_result_new();
    char version[16], category[32];
    long n = 0;
    static const char *const queries[] = {"evil.com", "1.2.3.4", "sub.evil.com", "2001:db8::5",
                                          "nothing.org"};
    while (!atomic_load(&stop)) {
        const char *q = queries[(n + id) % 5];
        int rc = matchy_lookup(db, q, r);
        n++;
        if (q[0] == 'n') {
            CHECK_RC(rc, MATCHY_NOT_FOUND);
            continue;
        }
        if (rc != MATCHY_OK) {
            CHECK_RC(rc, MATCHY_OK);
            continue;
        }
        size_t count = matchy_result_count(r);
        string_at(r, 0, VERSION_PATH, version, sizeof version);
        if (strcmp(version, "v1") != 0 && strcmp(version, "v2") != 0) CHECK_STR(version, "v1 or v2");
        /* All matches of one lookup come from the same version. */
        for (size_t i = 1; i < count; i++) {
            char other[16];
            string_at(r, i, VERSION_PATH, other, sizeof other);
            if (strcmp(other, version) != 0) CHECK_STR(other, version);
        }
        if (q[0] == 'e') {
            string_at(r, 0, CATEGORY_PATH, category, sizeof category);
            const char *want = strcmp(version, "v1") == 0 ? "phishing" : "phishing-v2";
            if (strcmp(category, want) != 0) CHECK_STR(category, want);
            if (count != 2) CHECK(count == 2);
        }
        if (q[0] == '1' && count != 3) CHECK(count == 3);
    }
    matchy_result_free(r);
    atomic_fetch_add(&total_lookups, n);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [THREADS] [SWAPS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    int swaps = argc > 3 ? atoi(argv[3]) : 20;
    char v1[4096], v2[4096], live[4096];
    join(v1, sizeof v1, argv[1], "threats.mxy");
    join(v2, sizeof v2, argv[1], "v2.mxy");
    join(live, sizeof live, argv[1], "live-threads.mxy");
    CHECK(swap_in(v1, live) == 0);

    matchy_open_options_t opts;
    matchy_init_open_options(&opts);
    opts.auto_reload = true;
    opts.debounce_ms = 10;
    opts.poll_interval_ms = 100;
    opts.reload_callback = on_reload;
    db = matchy_open_with_options(live, &opts);
    CHECK(db != NULL);
    if (!db) return finish("threads_test");

    pthread_t tids[64];
    if (threads > 64) threads = 64;
    for (long i = 0; i < threads; i++) CHECK(pthread_create(&tids[i], NULL, reader, (void *)i) == 0);

    uint64_t last_generation = matchy_generation(db);
    for (int s = 0; s < swaps; s++) {
        CHECK(swap_in(s % 2 == 0 ? v2 : v1, live) == 0);
        if (s % 4 == 3) {
            /* A manual reload racing with the watcher: either may win, both must be fine. */
            int rc = matchy_reload_now(db, NULL);
            CHECK(rc == MATCHY_OK);
        }
        double deadline = now_seconds() + 30.0;
        while (matchy_generation(db) == last_generation && now_seconds() < deadline) sleep_ms(5);
        CHECK(matchy_generation(db) > last_generation);
        last_generation = matchy_generation(db);
        sleep_ms(20);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);

    CHECK(atomic_load(&total_lookups) > 0);
    CHECK(matchy_generation(db) == (uint64_t)swaps + 1);
    matchy_stats_t st;
    st.struct_size = sizeof st;
    CHECK_RC(matchy_stats(db, &st), MATCHY_OK);
    CHECK(st.successes == (uint64_t)swaps && st.failures == 0);
    matchy_close(db);
    /* Every thread matchy started (watcher, inotify reader) is gone after close. */
    CHECK(wait_threads(1, 30.0));
    /* Callbacks report the watcher's reloads only (not the manual ones). */
    CHECK(atomic_load(&reloads_seen) <= swaps);
    printf("threads_test: %d threads, %d swaps, %ld lookups, %d reload callbacks\n", threads, swaps,
           atomic_load(&total_lookups), atomic_load(&reloads_seen));
    return finish("threads_test");
}
