// The header from C++: it compiles cleanly (-Wall -Wextra -Werror -pedantic), its declarations
// have C linkage, and RAII wrappers over the handles work.
//
// Usage: header_test DB
#include <matchy.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

static_assert(std::is_standard_layout<matchy_open_options_t>::value, "options are plain C");
static_assert(std::is_trivially_copyable<matchy_value_t>::value, "values are plain C");

struct db_closer {
    void operator()(matchy_t *db) const { matchy_close(db); }
};
struct result_freer {
    void operator()(matchy_result_t *r) const { matchy_result_free(r); }
};
struct string_freer {
    void operator()(char *s) const { matchy_free_string(s); }
};

static int failures = 0;
#define EXPECT(cond)                                                              \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "%s:%d: EXPECT failed: %s (%s)\n", __FILE__,     \
                         __LINE__, #cond, matchy_last_error());                   \
            failures++;                                                           \
        }                                                                         \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    matchy_open_options_t opts;
    matchy_init_open_options(&opts);
    opts.reload_callback = [](const matchy_reload_event_t *, void *) {};
    std::unique_ptr<matchy_t, db_closer> db(matchy_open_with_options(argv[1], &opts));
    EXPECT(db != nullptr);
    if (!db) return 1;
    std::unique_ptr<matchy_result_t, result_freer> r(matchy_result_new());
    EXPECT(matchy_lookup(db.get(), "sub.evil.com", r.get()) == MATCHY_OK);
    EXPECT(matchy_result_count(r.get()) == 2);
    const char *entry = nullptr;
    EXPECT(matchy_result_entry(r.get(), 0, &entry) == MATCHY_OK);
    EXPECT(entry && std::string(entry) == "*.evil.com");
    const char *const path[] = {"category", nullptr};
    matchy_value_t v;
    EXPECT(matchy_result_get_value(r.get(), 0, path, &v) == MATCHY_OK);
    EXPECT(v.type == MATCHY_TYPE_STRING && std::string(v.data.string, v.size) == "phishing-glob");
    char *raw = nullptr;
    EXPECT(matchy_result_data_json(r.get(), 0, &raw) == MATCHY_OK);
    std::unique_ptr<char, string_freer> json(raw);
    EXPECT(json && std::strstr(json.get(), "phishing-glob") != nullptr);
    EXPECT(matchy_lookup(nullptr, "x", r.get()) == MATCHY_ERR_NULL_ARG);
    EXPECT(std::string(matchy_version()) ==
           std::to_string(MATCHY_VERSION_MAJOR) + "." + std::to_string(MATCHY_VERSION_MINOR) + "." +
               std::to_string(MATCHY_VERSION_PATCH));
    std::printf("header_test: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
