/* Auto-reload through the C API: the callback with its user_data, a lookup from inside the
 * callback, a refused broken file, no callback after matchy_close, and matchy_close called from
 * inside the callback.
 *
 * Usage: reload_test DIR (DIR holds threats.mxy (v1), v2.mxy and garbage.mxy). */
#include <pthread.h>

#include "check.h"

static char threats[4096], v2[4096], garbage[4096], live[4096], live2[4096];
static const char *const VERSION_PATH[] = {"version", NULL};

struct ctx {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic(matchy_t *) db; /* published after open returns */
    int calls;
    matchy_reload_kind_t last_kind;
    uint64_t last_generation;
    int last_had_error;
    int bad_event; /* struct_size, path or user_data wrong */
    char seen_inside[16]; /* "version" of evil.com looked up inside the callback */
    int close_inside; /* close the database from inside the callback */
    int closed;
};

static struct ctx *expected_ctx;

static void on_reload(const matchy_reload_event_t *ev, void *user_data) {
    struct ctx *c = user_data;
    int bad = c != expected_ctx || ev == NULL || ev->struct_size != sizeof *ev || ev->path == NULL ||
              (strcmp(ev->path, live) != 0 && strcmp(ev->path, live2) != 0);
    char seen[16] = "";
    matchy_t *db = atomic_load(&c->db);
    if (db && !c->close_inside) {
        matchy_result_t *r = matchy_result_new();
        if (matchy_lookup(db, "evil.com", r) == MATCHY_OK) string_at(r, 0, VERSION_PATH, seen, sizeof seen);
        matchy_result_free(r);
    }
    if (db && c->close_inside) {
        atomic_store(&c->db, NULL);
        matchy_close(db); /* from the watcher thread, inside the callback */
    }
    pthread_mutex_lock(&c->lock);
    c->calls++;
    c->bad_event |= bad;
    c->last_kind = ev ? ev->kind : 0;
    c->last_generation = ev ? ev->generation : 0;
    c->last_had_error = ev && ev->error != NULL && strlen(ev->error) > 0;
    if (c->close_inside) c->closed = 1;
    snprintf(c->seen_inside, sizeof c->seen_inside, "%s", seen);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Wait until the callback has run `calls` times in all; 1 if it did within `seconds`. */
static int wait_calls(struct ctx *c, int calls, double seconds) {
    double deadline = now_seconds() + seconds;
    pthread_mutex_lock(&c->lock);
    while (c->calls < calls && now_seconds() < deadline) {
        pthread_mutex_unlock(&c->lock);
        sleep_ms(10);
        pthread_mutex_lock(&c->lock);
    }
    int ok = c->calls >= calls;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

static void ctx_init(struct ctx *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    expected_ctx = c;
}

static void ctx_destroy(struct ctx *c) {
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

static matchy_t *open_auto(const char *path, struct ctx *c) {
    matchy_open_options_t opts;
    matchy_init_open_options(&opts);
    opts.auto_reload = true;
    opts.debounce_ms = 50;
    opts.poll_interval_ms = 200;
    opts.reload_callback = on_reload;
    opts.reload_callback_user_data = c;
    matchy_t *db = matchy_open_with_options(path, &opts);
    atomic_store(&c->db, db);
    return db;
}

static void test_reload_with_callback(void) {
    struct ctx c;
    ctx_init(&c);
    CHECK(swap_in(threats, live) == 0);
    matchy_t *db = open_auto(live, &c);
    CHECK(db != NULL);
    if (!db) return;
    char buf[16];
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v1");
    matchy_stats_t st;
    st.struct_size = sizeof st;
    CHECK_RC(matchy_stats(db, &st), MATCHY_OK);
    CHECK(strcmp(st.watch_mode, "inotify") == 0 || strcmp(st.watch_mode, "polling") == 0);

    /* Rename a new version into place: the callback reports it and already sees it. */
    CHECK(swap_in(v2, live) == 0);
    CHECK(wait_calls(&c, 1, 30.0));
    pthread_mutex_lock(&c.lock);
    CHECK(c.calls == 1);
    CHECK(!c.bad_event);
    CHECK(c.last_kind == MATCHY_RELOAD_RELOADED);
    CHECK(c.last_generation == 2);
    CHECK(!c.last_had_error);
    CHECK_STR(c.seen_inside, "v2");
    pthread_mutex_unlock(&c.lock);
    CHECK(matchy_generation(db) == 2);
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v2");
    CHECK_RC(matchy_lookup(db, "new.example", r), MATCHY_OK);

    /* A broken file: reported as FAILED with a reason; v2 serves on. */
    CHECK(swap_in(garbage, live) == 0);
    CHECK(wait_calls(&c, 2, 30.0));
    pthread_mutex_lock(&c.lock);
    CHECK(c.last_kind == MATCHY_RELOAD_FAILED);
    CHECK(c.last_had_error);
    CHECK(c.last_generation == 2);
    CHECK_STR(c.seen_inside, "v2");
    pthread_mutex_unlock(&c.lock);
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v2");

    /* And back to a good file. */
    CHECK(swap_in(threats, live) == 0);
    CHECK(wait_calls(&c, 3, 30.0));
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v1");
    CHECK_RC(matchy_stats(db, &st), MATCHY_OK);
    CHECK(st.successes == 2 && st.failures == 1 && st.generation == 3);

    /* After matchy_close returns, no callback runs (and `c` could be freed). */
    matchy_result_free(r);
    atomic_store(&c.db, NULL);
    matchy_close(db);
    pthread_mutex_lock(&c.lock);
    int calls = c.calls;
    pthread_mutex_unlock(&c.lock);
    CHECK(swap_in(v2, live) == 0);
    sleep_ms(1500);
    pthread_mutex_lock(&c.lock);
    CHECK(c.calls == calls);
    pthread_mutex_unlock(&c.lock);
    ctx_destroy(&c);
}

static void test_close_inside_callback(void) {
    struct ctx c;
    ctx_init(&c);
    c.close_inside = 1;
    CHECK(swap_in(threats, live2) == 0);
    matchy_t *db = open_auto(live2, &c);
    CHECK(db != NULL);
    if (!db) return;
    CHECK(swap_in(v2, live2) == 0);
    CHECK(wait_calls(&c, 1, 30.0));
    pthread_mutex_lock(&c.lock);
    CHECK(c.closed == 1);
    CHECK(!c.bad_event);
    pthread_mutex_unlock(&c.lock);
    CHECK(atomic_load(&c.db) == NULL);
    /* The watcher is gone: further changes call nothing. */
    CHECK(swap_in(threats, live2) == 0);
    sleep_ms(1500);
    pthread_mutex_lock(&c.lock);
    CHECK(c.calls == 1);
    pthread_mutex_unlock(&c.lock);
    ctx_destroy(&c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    join(threats, sizeof threats, argv[1], "threats.mxy");
    join(v2, sizeof v2, argv[1], "v2.mxy");
    join(garbage, sizeof garbage, argv[1], "garbage.mxy");
    join(live, sizeof live, argv[1], "live.mxy");
    join(live2, sizeof live2, argv[1], "live2.mxy");
    int threads_before = thread_count();
    test_reload_with_callback();
    test_close_inside_callback();
    /* Every thread matchy started (watchers, inotify readers) is gone after close. */
    CHECK(wait_threads(threads_before, 30.0));
    return finish("reload_test");
}
