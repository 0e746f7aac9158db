/* Every function of the C API: normal use, NULL for every pointer argument, bad files, every
 * kind of lookup, every value type, ownership rules (outputs untouched on failure, results
 * valid after close and reload), the thread rule of results, and manual reloads.
 *
 * Usage: api_test DIR, where DIR holds the databases the Rust driver (ffi/tests/c_api.rs)
 * built: threats.mxy (v1), v2.mxy, v4only.mxy, garbage.mxy, truncated.mxy, empty.mxy. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/un.h>

#include "check.h"

static char dir[2048];
static char threats[4096], v2[4096], v4only[4096], garbage[4096], truncated[4096], empty[4096];

static const char *const VERSION_PATH[] = {"version", NULL};
static const char *const CATEGORY_PATH[] = {"category", NULL};

static void test_version_and_errors(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", MATCHY_VERSION_MAJOR, MATCHY_VERSION_MINOR,
             MATCHY_VERSION_PATCH);
    CHECK_STR(matchy_version(), want);

    int codes[] = {MATCHY_OK,
                   MATCHY_NOT_FOUND,
                   MATCHY_ERR_NULL_ARG,
                   MATCHY_ERR_INVALID_UTF8,
                   MATCHY_ERR_INVALID_ARG,
                   MATCHY_ERR_IO,
                   MATCHY_ERR_CORRUPT,
                   MATCHY_ERR_INVALID_QUERY,
                   MATCHY_ERR_TYPE,
                   MATCHY_ERR_RELOAD_FAILED,
                   MATCHY_ERR_UNSUPPORTED,
                   MATCHY_ERR_WRONG_THREAD,
                   MATCHY_ERR_PANIC};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = matchy_strerror(codes[i]);
        CHECK(s != NULL && strlen(s) > 0 && strcmp(s, "unknown error code") != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, matchy_strerror(codes[j])) != 0);
    }
    CHECK_STR(matchy_strerror(12345), "unknown error code");
    CHECK_STR(matchy_strerror(-12345), "unknown error code");
    CHECK(matchy_last_error() != NULL);
}

static void test_open_failures(void) {
    CHECK(matchy_open(NULL) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_NULL_ARG);
    CHECK(strstr(matchy_last_error(), "path") != NULL);

    char missing[4096];
    join(missing, sizeof missing, dir, "does-not-exist.mxy");
    CHECK(matchy_open(missing) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_IO);
    CHECK(strstr(matchy_last_error(), "does-not-exist.mxy") != NULL);

    CHECK(matchy_open(garbage) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_CORRUPT);
    CHECK(matchy_open(truncated) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_CORRUPT);
    CHECK(matchy_open(empty) == NULL);
    CHECK(matchy_last_error_code() == MATCHY_ERR_CORRUPT || matchy_last_error_code() == MATCHY_ERR_IO);
    CHECK(matchy_open(dir) == NULL); /* a directory */
    CHECK(matchy_last_error_code() < 0);
    CHECK(matchy_open("") == NULL);
    CHECK(matchy_last_error_code() < 0);

    /* A non-UTF-8 file name is just a file name: it fails because the file is missing. */
    char latin1[4096];
    snprintf(latin1, sizeof latin1, "%s/caf\xe9.mxy", dir);
    CHECK(matchy_open(latin1) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_IO);

    /* Options: NULL means defaults; struct_size and validation are checked. */
    matchy_init_open_options(NULL); /* ignored */
    matchy_open_options_t opts;
    memset(&opts, 0xAB, sizeof opts);
    matchy_init_open_options(&opts);
    CHECK(opts.struct_size == sizeof opts);
    CHECK(!opts.auto_reload && !opts.force_polling && !opts.in_memory);
    CHECK(opts.validation == MATCHY_VALIDATION_DEFAULT);
    CHECK(opts.debounce_ms == 0 && opts.poll_interval_ms == 0);
    CHECK(opts.reload_callback == NULL && opts.reload_callback_user_data == NULL);

    CHECK(matchy_open_with_options(NULL, &opts) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_NULL_ARG);

    matchy_open_options_t small = opts;
    small.struct_size = sizeof(size_t);
    CHECK(matchy_open_with_options(threats, &small) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_INVALID_ARG);
    CHECK(strstr(matchy_last_error(), "struct_size") != NULL);

    matchy_open_options_t bad_level = opts;
    bad_level.validation = 7;
    CHECK(matchy_open_with_options(threats, &bad_level) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_INVALID_ARG);

    matchy_open_options_t strict = opts;
    strict.validation = MATCHY_VALIDATION_STRICT;
    CHECK(matchy_open_with_options(garbage, &strict) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_CORRUPT);
    matchy_t *db = matchy_open_with_options(threats, &strict);
    CHECK(db != NULL);
    matchy_close(db);

    db = matchy_open_with_options(threats, NULL);
    CHECK(db != NULL);
    matchy_close(db);

    matchy_open_options_t mem = opts;
    mem.in_memory = true;
    db = matchy_open_with_options(threats, &mem);
    CHECK(db != NULL);
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    matchy_result_free(r);
    matchy_close(db);

    /* A flag byte other than 0 or 1 (memset, a different bool ABI) reads as true, no UB. */
    matchy_open_options_t odd = opts;
    memset(&odd.in_memory, 2, 1);
    db = matchy_open_with_options(threats, &odd);
    CHECK(db != NULL);
    matchy_close(db);

    /* A struct from a newer header (larger struct_size) is accepted. */
    struct {
        matchy_open_options_t known;
        char future_fields[64];
    } newer;
    memset(&newer, 0, sizeof newer);
    matchy_init_open_options(&newer.known);
    newer.known.struct_size = sizeof newer;
    db = matchy_open_with_options(threats, &newer.known);
    CHECK(db != NULL);
    matchy_close(db);

    /* Buffers: copied, so freeing ours right after open is fine. */
    CHECK(matchy_open_buffer(NULL, 10) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_NULL_ARG);
    CHECK(matchy_open_buffer("", 0) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_CORRUPT);
    CHECK(matchy_open_buffer("not a database at all", 21) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_CORRUPT);

    matchy_close(NULL);
}

static void test_lookups(matchy_t *db) {
    matchy_result_t *r = matchy_result_new();
    CHECK(r != NULL);
    CHECK(matchy_result_count(r) == 0);
    CHECK(matchy_result_count(NULL) == 0);
    char buf[256];
    const char *entry = NULL;

    /* IP text: IP network, then exact literal, then glob, in that order. */
    CHECK_RC(matchy_lookup(db, "1.2.3.4", r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 3);
    CHECK(matchy_result_kind(r, 0) == MATCHY_KIND_IP);
    CHECK(matchy_result_kind(r, 1) == MATCHY_KIND_LITERAL);
    CHECK(matchy_result_kind(r, 2) == MATCHY_KIND_GLOB);
    CHECK_RC(matchy_result_entry(r, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "1.2.3.0/24");
    CHECK_RC(matchy_result_entry(r, 1, &entry), MATCHY_OK);
    CHECK_STR(entry, "1.2.3.4");
    CHECK_RC(matchy_result_entry(r, 2, &entry), MATCHY_OK);
    CHECK_STR(entry, "1.2.3.*");
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "botnet");
    CHECK_STR(string_at(r, 1, CATEGORY_PATH, buf, sizeof buf), "literal-ip");
    CHECK_STR(string_at(r, 2, CATEGORY_PATH, buf, sizeof buf), "glob-ip");
    const char *const iso[] = {"country", "iso_code", NULL};
    CHECK_STR(string_at(r, 0, iso, buf, sizeof buf), "US");
    const char *const name_en[] = {"country", "names", "en", NULL};
    CHECK_STR(string_at(r, 0, name_en, buf, sizeof buf), "United States");

    matchy_network_t net;
    memset(&net, 0x55, sizeof net);
    CHECK_RC(matchy_result_network(r, 0, &net), MATCHY_OK);
    CHECK(net.family == 4 && net.prefix_len == 24);
    CHECK(net.addr[0] == 1 && net.addr[1] == 2 && net.addr[2] == 3 && net.addr[3] == 0);
    CHECK(net.addr[4] == 0 && net.addr[15] == 0);
    matchy_network_t untouched;
    memset(&untouched, 0x55, sizeof untouched);
    CHECK_RC(matchy_result_network(r, 1, &untouched), MATCHY_NOT_FOUND); /* a literal */
    CHECK(untouched.family == 0x55);
    CHECK_RC(matchy_result_network(r, 0, NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_network(NULL, 0, &net), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_network(r, 3, &untouched), MATCHY_ERR_INVALID_ARG);

    /* Out of range and NULL arguments of the accessors. */
    CHECK(matchy_result_kind(r, 3) == MATCHY_KIND_NONE);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_INVALID_ARG);
    CHECK(matchy_result_kind(NULL, 0) == MATCHY_KIND_NONE);
    const char *sentinel = "untouched";
    entry = sentinel;
    CHECK_RC(matchy_result_entry(r, 3, &entry), MATCHY_ERR_INVALID_ARG);
    CHECK(entry == sentinel);
    CHECK_RC(matchy_result_entry(r, (size_t)-1, &entry), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_result_entry(NULL, 0, &entry), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_entry(r, 0, NULL), MATCHY_ERR_NULL_ARG);
    CHECK(entry == sentinel);

    /* Strings from earlier accessor calls stay valid while the result is not reused. */
    const char *e0, *e1, *e2;
    CHECK_RC(matchy_result_entry(r, 0, &e0), MATCHY_OK);
    CHECK_RC(matchy_result_entry(r, 1, &e1), MATCHY_OK);
    for (int i = 0; i < 2000; i++) matchy_result_entry(r, 2, &e2); /* grow the string arena */
    CHECK_STR(e0, "1.2.3.0/24");
    CHECK_STR(e1, "1.2.3.4");
    CHECK_STR(e2, "1.2.3.*");

    /* Other kinds of string queries. */
    CHECK_RC(matchy_lookup(db, "10.200.0.1", r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 1);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "internal");
    CHECK_RC(matchy_result_entry(r, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "10.0.0.0/8");

    CHECK_RC(matchy_lookup(db, "2001:db8::1", r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 1);
    CHECK_RC(matchy_result_entry(r, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "2001:db8::/32");
    CHECK_RC(matchy_result_network(r, 0, &net), MATCHY_OK);
    CHECK(net.family == 6 && net.prefix_len == 32 && net.addr[0] == 0x20 && net.addr[1] == 0x01 &&
          net.addr[2] == 0x0d && net.addr[3] == 0xb8 && net.addr[15] == 0);

    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 2);
    CHECK(matchy_result_kind(r, 0) == MATCHY_KIND_LITERAL);
    CHECK(matchy_result_kind(r, 1) == MATCHY_KIND_GLOB);
    CHECK_RC(matchy_result_entry(r, 1, &entry), MATCHY_OK);
    CHECK_STR(entry, "*.com");

    CHECK_RC(matchy_lookup(db, "sub.evil.com", r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 2);
    CHECK_RC(matchy_result_entry(r, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "*.evil.com");
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "phishing-glob");
    CHECK_RC(matchy_result_entry(r, 1, &entry), MATCHY_OK);
    CHECK_STR(entry, "*.com");

    CHECK_RC(matchy_lookup(db, "caf\xc3\xa9.fr", r), MATCHY_OK); /* UTF-8 literal */
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "utf8");

    /* Misses empty the result. */
    CHECK_RC(matchy_lookup(db, "nothing.org", r), MATCHY_NOT_FOUND);
    CHECK(matchy_result_count(r) == 0);
    CHECK(matchy_result_kind(r, 0) == MATCHY_KIND_NONE);
    CHECK_RC(matchy_lookup(db, "", r), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_lookup(db, "192.168.1.1", r), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_lookup(db, "EVIL.COM", r), MATCHY_NOT_FOUND); /* case-sensitive database */

    /* NULLs and bad text; an error empties the result too. */
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_RC(matchy_lookup(NULL, "evil.com", r), MATCHY_ERR_NULL_ARG);
    CHECK(matchy_result_count(r) == 0);
    CHECK_RC(matchy_lookup(db, NULL, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup(db, "evil.com", NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup(db, "caf\xe9.fr", r), MATCHY_ERR_INVALID_UTF8);
    CHECK_RC(matchy_lookup(db, "\xff", r), MATCHY_ERR_INVALID_UTF8);

    /* Length-delimited queries: a field inside a larger buffer. */
    const char *line = "GET http://sub.evil.com/x 200";
    CHECK_RC(matchy_lookup_n(db, line + 11, 12, r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 2);
    CHECK_RC(matchy_lookup_n(db, "evil.com", 4, r), MATCHY_NOT_FOUND); /* "evil" */
    CHECK_RC(matchy_lookup_n(db, "evil\0com", 8, r), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_lookup_n(db, "caf\xc3", 4, r), MATCHY_ERR_INVALID_UTF8);
    CHECK_RC(matchy_lookup_n(db, "caf\xc3\xa9.fr!", 8, r), MATCHY_OK); /* UTF-8, not ASCII */
    CHECK_RC(matchy_lookup_n(db, "evil.co\0m", 9, r), MATCHY_ERR_INVALID_ARG); /* NUL, 9 bytes */
    CHECK_RC(matchy_lookup_n(db, "a.b\0", 4, r), MATCHY_ERR_INVALID_ARG); /* NUL, 4 bytes */
    CHECK_RC(matchy_lookup_n(db, NULL, 3, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_n(NULL, "x", 1, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_n(db, "x", 1, NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_n(db, "", 0, r), MATCHY_NOT_FOUND);

    /* Raw address bytes: only IP entries are searched. */
    uint8_t a4[4] = {1, 2, 3, 99};
    CHECK_RC(matchy_lookup_ip_bytes(db, a4, 4, r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 1);
    CHECK(matchy_result_kind(r, 0) == MATCHY_KIND_IP);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "botnet");
    uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
    CHECK_RC(matchy_lookup_ip_bytes(db, a6, 16, r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "v6net");
    uint8_t miss[4] = {8, 8, 8, 8};
    CHECK_RC(matchy_lookup_ip_bytes(db, miss, 4, r), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_lookup_ip_bytes(db, a4, 5, r), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_lookup_ip_bytes(db, a4, 0, r), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_lookup_ip_bytes(db, NULL, 4, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_ip_bytes(NULL, a4, 4, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_ip_bytes(db, a4, 4, NULL), MATCHY_ERR_NULL_ARG);

    /* struct sockaddr: IPv4, IPv6, IPv4-mapped IPv6, other families. */
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(443);
    CHECK(inet_pton(AF_INET, "10.9.8.7", &sin.sin_addr) == 1);
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sin, r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "internal");
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    CHECK(inet_pton(AF_INET6, "2001:db8:1::2", &sin6.sin6_addr) == 1);
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sin6, r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "v6net");
    CHECK(inet_pton(AF_INET6, "::ffff:1.2.3.200", &sin6.sin6_addr) == 1);
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sin6, r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, CATEGORY_PATH, buf, sizeof buf), "botnet");
    CHECK_RC(matchy_result_network(r, 0, &net), MATCHY_OK);
    CHECK(net.family == 4 && net.prefix_len == 24);
    CHECK(inet_pton(AF_INET6, "2002::1", &sin6.sin6_addr) == 1);
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sin6, r), MATCHY_NOT_FOUND);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sun, r), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_lookup_sockaddr(db, NULL, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_sockaddr(NULL, (const struct sockaddr *)&sin, r), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_lookup_sockaddr(db, (const struct sockaddr *)&sin, NULL), MATCHY_ERR_NULL_ARG);

    /* Clear: empties, keeps the handle usable. */
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_RC(matchy_result_clear(r), MATCHY_OK);
    CHECK(matchy_result_count(r) == 0);
    CHECK_RC(matchy_result_clear(r), MATCHY_OK);
    CHECK_RC(matchy_result_clear(NULL), MATCHY_ERR_NULL_ARG);

    matchy_result_free(r);
    matchy_result_free(NULL);
}

static void test_values(matchy_t *db) {
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    matchy_value_t v;

    const char *const p_s[] = {"types", "s", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_s, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING && v.size == 4);
    CHECK_STR(v.data.string, "text");
    CHECK(v.data.string[v.size] == '\0');

    const char *const p_d[] = {"types", "d", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_d, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_DOUBLE && v.data.float64 == 1.5);

    const char *const p_f[] = {"types", "f", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_f, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_FLOAT && v.data.float64 == 0.25);

    const char *const p_b[] = {"types", "b", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_b, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_BYTES && v.size == 3);
    CHECK(v.data.bytes[0] == 1 && v.data.bytes[1] == 2 && v.data.bytes[2] == 3);

    const char *const p_eb[] = {"types", "eb", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_eb, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_BYTES && v.size == 0 && v.data.bytes != NULL);

    const char *const p_u16[] = {"types", "u16", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_u16, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_UINT16 && v.data.uint64 == 65535);

    const char *const p_u32[] = {"types", "u32", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_u32, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_UINT32 && v.data.uint64 == 4000000000u);

    const char *const p_i32[] = {"types", "i32", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_i32, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_INT32 && v.data.int64 == -42);

    const char *const p_u64[] = {"types", "u64", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_u64, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_UINT64 && v.data.uint64 == UINT64_MAX);

    const char *const p_u128[] = {"types", "u128", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_u128, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_UINT128 && v.data.uint128.high == (1ull << 36) &&
          v.data.uint128.low == 5);

    const char *const p_t[] = {"types", "t", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_t, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_BOOL && v.data.boolean);

    const char *const p_arr[] = {"types", "arr", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_arr, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_ARRAY && v.size == 3);
    const char *const p_arr1[] = {"types", "arr", "1", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_arr1, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING);
    CHECK_STR(v.data.string, "two");
    const char *const p_arr20[] = {"types", "arr", "2", "0", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_arr20, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_UINT32 && v.data.uint64 == 3);

    const char *const p_types[] = {"types", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_types, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_MAP && v.size == 15);
    const char *const p_em[] = {"types", "em", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_em, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_MAP && v.size == 0);

    /* NULL path and an empty path both mean the data itself. */
    CHECK_RC(matchy_result_get_value(r, 0, NULL, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_MAP && v.size == 3);
    const char *const p_empty[] = {NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_empty, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_MAP && v.size == 3);

    /* Missing keys, indexes out of range, paths through scalars: NOT_FOUND, out untouched. */
    matchy_value_t keep;
    memset(&keep, 0x77, sizeof keep);
    const char *const p_missing[] = {"types", "nope", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_missing, &keep), MATCHY_NOT_FOUND);
    const char *const p_oob[] = {"types", "arr", "3", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_oob, &keep), MATCHY_NOT_FOUND);
    const char *const p_notidx[] = {"types", "arr", "x", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_notidx, &keep), MATCHY_NOT_FOUND);
    const char *const p_scalar[] = {"types", "s", "deeper", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_scalar, &keep), MATCHY_NOT_FOUND);
    const char *const p_bad[] = {"types", "\xff", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_bad, &keep), MATCHY_ERR_INVALID_UTF8);
    CHECK_RC(matchy_result_get_value(r, 0, p_s, NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_value(NULL, 0, p_s, &keep), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_value(r, 9, p_s, &keep), MATCHY_ERR_INVALID_ARG);
    unsigned char *raw = (unsigned char *)&keep;
    int intact = 1;
    for (size_t i = 0; i < sizeof keep; i++) intact &= raw[i] == 0x77;
    CHECK(intact);

    /* Paths longer than one batch of elements. */
    const char *const p_deep[] = {"types", "deep", "a", "a", "a", "a", "a",
                                  "a",     "a",    "a", "a", "a", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_deep, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING);
    CHECK_STR(v.data.string, "bottom");
    const char *const p_deeper[] = {"types", "deep", "a", "a", "a", "a", "a", "a",
                                    "a",     "a",    "a", "a", "a", NULL};
    CHECK_RC(matchy_result_get_value(r, 0, p_deeper, &keep), MATCHY_NOT_FOUND);

    /* Strings without a copy: pointer into the file + length, not NUL-terminated. */
    const char *s = NULL;
    size_t len = 0;
    CHECK_RC(matchy_result_get_string(r, 0, p_s, &s, &len), MATCHY_OK);
    CHECK(s != NULL && len == 4 && memcmp(s, "text", 4) == 0);
    CHECK_RC(matchy_result_get_string(r, 0, p_deep, &s, &len), MATCHY_OK);
    CHECK(len == 6 && memcmp(s, "bottom", 6) == 0);
    const char *const p_es[] = {"types", "es", NULL};
    CHECK_RC(matchy_result_get_string(r, 0, p_es, &s, &len), MATCHY_OK);
    CHECK(s != NULL && len == 0);
    CHECK_RC(matchy_result_get_value(r, 0, p_es, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING && v.size == 0);
    CHECK_STR(v.data.string, "");
    const char *const p_cat[] = {"category", NULL};
    CHECK_RC(matchy_result_get_string(r, 0, p_cat, &s, &len), MATCHY_OK);
    CHECK(len == 8 && memcmp(s, "phishing", 8) == 0);
    /* Outputs untouched on anything but MATCHY_OK. */
    const char *s_keep = (const char *)&keep;
    size_t len_keep = 77;
    s = s_keep;
    len = len_keep;
    CHECK_RC(matchy_result_get_string(r, 0, p_missing, &s, &len), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_string(r, 0, p_d, &s, &len), MATCHY_ERR_TYPE);
    CHECK(strstr(matchy_last_error(), "string") != NULL);
    CHECK_RC(matchy_result_get_string(r, 0, p_types, &s, &len), MATCHY_ERR_TYPE);
    CHECK_RC(matchy_result_get_string(r, 0, NULL, &s, &len), MATCHY_ERR_TYPE);
    CHECK_RC(matchy_result_get_string(r, 0, p_bad, &s, &len), MATCHY_ERR_INVALID_UTF8);
    CHECK_RC(matchy_result_get_string(r, 9, p_s, &s, &len), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_result_get_string(NULL, 0, p_s, &s, &len), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_string(r, 0, p_s, NULL, &len), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_string(r, 0, p_s, &s, NULL), MATCHY_ERR_NULL_ARG);
    CHECK(s == s_keep && len == len_keep);

    /* JSON of the whole data and of a path. */
    char *json = NULL;
    CHECK_RC(matchy_result_data_json(r, 0, &json), MATCHY_OK);
    CHECK(json != NULL && json[0] == '{');
    CHECK(json && strstr(json, "\"category\":\"phishing\"") != NULL);
    CHECK(json && strstr(json, "\"u64\":18446744073709551615") != NULL);
    CHECK(json && strstr(json, "\"u128\":1267650600228229401496703205381") != NULL);
    CHECK(json && strstr(json, "\"b\":[1,2,3]") != NULL);
    matchy_free_string(json);
    CHECK_RC(matchy_result_value_json(r, 0, p_arr, &json), MATCHY_OK);
    CHECK_STR(json, "[1,\"two\",[3]]");
    matchy_free_string(json);
    CHECK_RC(matchy_result_value_json(r, 0, p_s, &json), MATCHY_OK);
    CHECK_STR(json, "\"text\"");
    matchy_free_string(json);
    char *untouched_json = (char *)"untouched";
    json = untouched_json;
    CHECK_RC(matchy_result_value_json(r, 0, p_missing, &json), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_data_json(r, 5, &json), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_result_data_json(NULL, 0, &json), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_data_json(r, 0, NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_value_json(r, 0, p_bad, &json), MATCHY_ERR_INVALID_UTF8);
    CHECK(json == untouched_json);
    matchy_free_string(NULL);

    /* Values of an empty result. */
    CHECK_RC(matchy_lookup(db, "nothing.org", r), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_value(r, 0, NULL, &v), MATCHY_ERR_INVALID_ARG);
    matchy_result_free(r);
}

/* --- Prepared paths: matchy_path_new / _free, matchy_result_get_string_at / _get_value_at. */

static void test_prepared_paths(matchy_t *db) {
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);

    /* The elements are copied: the caller's array and strings may go right away. */
    char k1[] = "types", k2[] = "s";
    const char *elems[] = {k1, k2};
    matchy_path_t *p_s = matchy_path_new(elems, 2);
    CHECK(p_s != NULL);
    memset(k1, 'x', sizeof k1 - 1);
    memset(k2, 'y', sizeof k2 - 1);
    elems[0] = elems[1] = NULL;

    const char *s = NULL;
    size_t len = 0;
    CHECK_RC(matchy_result_get_string_at(r, 0, p_s, &s, &len), MATCHY_OK);
    CHECK(s != NULL && len == 4 && memcmp(s, "text", 4) == 0);
    matchy_value_t v;
    CHECK_RC(matchy_result_get_value_at(r, 0, p_s, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING && v.size == 4);
    CHECK_STR(v.data.string, "text");

    /* Deeper than one batch of elements; array indexes; an empty key. */
    const char *const deep[] = {"types", "deep", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a"};
    matchy_path_t *p_deep = matchy_path_new(deep, 12);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_deep, &s, &len), MATCHY_OK);
    CHECK(len == 6 && memcmp(s, "bottom", 6) == 0);
    const char *const arr1[] = {"types", "arr", "1"};
    matchy_path_t *p_arr1 = matchy_path_new(arr1, 3);
    CHECK_RC(matchy_result_get_value_at(r, 0, p_arr1, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_STRING);
    CHECK_STR(v.data.string, "two");
    const char *const d[] = {"types", "d"};
    matchy_path_t *p_d = matchy_path_new(d, 2);
    CHECK_RC(matchy_result_get_value_at(r, 0, p_d, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_DOUBLE && v.data.float64 == 1.5);
    const char *const empty_key[] = {""};
    matchy_path_t *p_empty_key = matchy_path_new(empty_key, 1);
    CHECK(p_empty_key != NULL);

    /* No elements: the data itself (the array may then be NULL). */
    matchy_path_t *p_root = matchy_path_new(NULL, 0);
    CHECK(p_root != NULL);
    CHECK_RC(matchy_result_get_value_at(r, 0, p_root, &v), MATCHY_OK);
    CHECK(v.type == MATCHY_TYPE_MAP && v.size == 3);

    /* Failures leave the outputs untouched. */
    const char *const missing[] = {"types", "nope"};
    matchy_path_t *p_missing = matchy_path_new(missing, 2);
    const char *s_keep = "keep";
    size_t len_keep = 77;
    s = s_keep;
    len = len_keep;
    matchy_value_t keep;
    memset(&keep, 0x77, sizeof keep);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_missing, &s, &len), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_value_at(r, 0, p_missing, &keep), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_empty_key, &s, &len), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_d, &s, &len), MATCHY_ERR_TYPE);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_root, &s, &len), MATCHY_ERR_TYPE);
    CHECK_RC(matchy_result_get_string_at(r, 9, p_s, &s, &len), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_result_get_value_at(r, 9, p_s, &keep), MATCHY_ERR_INVALID_ARG);
    /* NULL for each pointer. */
    CHECK_RC(matchy_result_get_string_at(NULL, 0, p_s, &s, &len), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_string_at(r, 0, NULL, &s, &len), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_s, NULL, &len), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_s, &s, NULL), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_value_at(NULL, 0, p_s, &keep), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_value_at(r, 0, NULL, &keep), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_result_get_value_at(r, 0, p_s, NULL), MATCHY_ERR_NULL_ARG);
    CHECK(s == s_keep && len == len_keep);
    unsigned char *raw = (unsigned char *)&keep;
    int intact = 1;
    for (size_t i = 0; i < sizeof keep; i++) intact &= raw[i] == 0x77;
    CHECK(intact);

    /* Bad paths are refused when made. */
    const char *const with_null[] = {"types", NULL};
    CHECK(matchy_path_new(with_null, 2) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_NULL_ARG);
    CHECK(matchy_path_new(NULL, 1) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_NULL_ARG);
    const char *const bad_utf8[] = {"types", "\xff"};
    CHECK(matchy_path_new(bad_utf8, 2) == NULL);
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_INVALID_UTF8);
    CHECK(matchy_path_new(deep, 257) == NULL); /* refused before any element is read */
    CHECK_RC(matchy_last_error_code(), MATCHY_ERR_INVALID_ARG);

    /* An empty result; a path outlives results and serves any of them. */
    CHECK_RC(matchy_lookup(db, "nothing.org", r), MATCHY_NOT_FOUND);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_s, &s, &len), MATCHY_ERR_INVALID_ARG);
    matchy_result_free(r);
    r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_RC(matchy_result_get_string_at(r, 0, p_s, &s, &len), MATCHY_OK);
    CHECK(len == 4 && memcmp(s, "text", 4) == 0);
    matchy_result_free(r);

    matchy_path_free(p_s);
    matchy_path_free(p_deep);
    matchy_path_free(p_arr1);
    matchy_path_free(p_d);
    matchy_path_free(p_empty_key);
    matchy_path_free(p_root);
    matchy_path_free(p_missing);
    matchy_path_free(NULL);
}

static void test_info_stats_validate(matchy_t *db) {
    matchy_info_t *info = NULL;
    CHECK_RC(matchy_info(db, &info), MATCHY_OK);
    CHECK(info != NULL);
    if (info) {
        CHECK(info->struct_size == sizeof *info);
        CHECK_STR(info->format, "matchy");
        CHECK_STR(info->database_type, "matchy-ffi-test");
        CHECK_STR(info->path, threats);
        CHECK(info->generation == 1);
        CHECK(info->build_epoch == 1700000000);
        CHECK(info->ip_version == 6);
        CHECK(info->record_size == 24 || info->record_size == 28 || info->record_size == 32);
        CHECK(info->node_count > 0);
        CHECK(!info->case_insensitive);
        CHECK(info->has_counts);
        CHECK(info->ip_count == 3 && info->literal_count == 3 && info->glob_count == 3);
        CHECK(info->file_size > info->tree_size && info->data_section_size > 0);
        CHECK(info->description_count == 1);
        if (info->description_count == 1) {
            CHECK_STR(info->descriptions[0].language, "en");
            CHECK_STR(info->descriptions[0].text, "FFI test database");
        }
        for (size_t i = 0; i < info->language_count; i++) CHECK(info->languages[i] != NULL);
    }
    matchy_info_free(info);
    matchy_info_free(NULL);
    matchy_info_t *keep = (matchy_info_t *)&keep;
    CHECK_RC(matchy_info(NULL, &keep), MATCHY_ERR_NULL_ARG);
    CHECK(keep == (matchy_info_t *)&keep);
    CHECK_RC(matchy_info(db, NULL), MATCHY_ERR_NULL_ARG);

    matchy_stats_t st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    CHECK_RC(matchy_stats(db, &st), MATCHY_OK);
    CHECK(st.struct_size == sizeof st);
    CHECK(st.generation == 1 && st.attempts == 0 && st.successes == 0 && st.failures == 0);
    CHECK(st.last_success_unix == 0 && st.last_duration_ns == 0);
    CHECK_STR(st.watch_mode, "off");
    matchy_stats_t small;
    memset(&small, 0x11, sizeof small);
    small.struct_size = 8;
    CHECK_RC(matchy_stats(db, &small), MATCHY_ERR_INVALID_ARG);
    CHECK(small.generation == 0x1111111111111111ull);
    CHECK_RC(matchy_stats(NULL, &st), MATCHY_ERR_NULL_ARG);
    CHECK_RC(matchy_stats(db, NULL), MATCHY_ERR_NULL_ARG);

    CHECK(matchy_generation(db) == 1);
    CHECK(matchy_generation(NULL) == 0);

    CHECK_RC(matchy_validate(db, MATCHY_VALIDATION_DEFAULT), MATCHY_OK);
    CHECK_RC(matchy_validate(db, MATCHY_VALIDATION_STANDARD), MATCHY_OK);
    CHECK_RC(matchy_validate(db, MATCHY_VALIDATION_STRICT), MATCHY_OK);
    CHECK_RC(matchy_validate(db, 3), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_validate(db, -1), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_validate(NULL, MATCHY_VALIDATION_STRICT), MATCHY_ERR_NULL_ARG);
}

static void test_buffer(void) {
    size_t len = 0;
    unsigned char *bytes = read_file(threats, &len);
    CHECK(bytes != NULL);
    matchy_t *db = matchy_open_buffer(bytes, len);
    CHECK(db != NULL);
    memset(bytes, 0, len); /* the library made its own copy */
    free(bytes);
    matchy_result_t *r = matchy_result_new();
    char buf[64];
    CHECK_RC(matchy_lookup(db, "sub.evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v1");
    matchy_info_t *info = NULL;
    CHECK_RC(matchy_info(db, &info), MATCHY_OK);
    CHECK(info && info->path == NULL);
    matchy_info_free(info);
    matchy_reload_event_t ev;
    ev.struct_size = sizeof ev;
    CHECK_RC(matchy_reload_now(db, &ev), MATCHY_ERR_UNSUPPORTED);
    matchy_result_free(r);
    matchy_close(db);
}

static void test_ipv4_only(void) {
    matchy_t *db = matchy_open(v4only);
    CHECK(db != NULL);
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "10.1.1.1", r), MATCHY_OK);
    /* A string query treats an IPv6 address as a miss on an IPv4 database... */
    CHECK_RC(matchy_lookup(db, "2001:db8::1", r), MATCHY_NOT_FOUND);
    /* ...an address query says it cannot be answered. */
    uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};
    CHECK_RC(matchy_lookup_ip_bytes(db, a6, 16, r), MATCHY_ERR_INVALID_QUERY);
    CHECK(matchy_result_count(r) == 0);
    matchy_info_t *info = NULL;
    CHECK_RC(matchy_info(db, &info), MATCHY_OK);
    CHECK(info && info->ip_version == 4);
    matchy_info_free(info);
    matchy_result_free(r);
    matchy_close(db);
}

/* --- The thread rule of results. */

struct other_thread_args {
    matchy_t *db;
    matchy_result_t *filled; /* holds matches of the main thread */
    matchy_result_t *empty;
    matchy_path_t *version_path;
    int rc_entry, rc_string, rc_string_at, rc_clear, rc_lookup_into_filled, rc_lookup_into_empty;
    matchy_kind_t kind;
    size_t count;
    char version[16];
};

static void *other_thread(void *p) {
    struct other_thread_args *a = p;
    const char *entry = NULL;
    a->rc_entry = matchy_result_entry(a->filled, 0, &entry);
    const char *s;
    size_t len;
    a->rc_string = matchy_result_get_string(a->filled, 0, VERSION_PATH, &s, &len);
    a->rc_string_at = matchy_result_get_string_at(a->filled, 0, a->version_path, &s, &len);
    a->kind = matchy_result_kind(a->filled, 0);
    a->rc_clear = matchy_result_clear(a->filled);
    a->rc_lookup_into_filled = matchy_lookup(a->db, "evil.com", a->filled);
    a->count = matchy_result_count(a->filled);
    a->rc_lookup_into_empty = matchy_lookup(a->db, "evil.com", a->empty);
    string_at(a->empty, 0, VERSION_PATH, a->version, sizeof a->version);
    matchy_result_clear(a->empty); /* leaves it empty so the main thread may free it */
    return NULL;
}

static void test_thread_rule(matchy_t *db) {
    struct other_thread_args a;
    memset(&a, 0, sizeof a);
    a.db = db;
    a.filled = matchy_result_new();
    a.empty = matchy_result_new();
    const char *const version[] = {"version"};
    a.version_path = matchy_path_new(version, 1); /* shared by both threads */
    CHECK_RC(matchy_lookup(db, "evil.com", a.filled), MATCHY_OK);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, &a) == 0);
    pthread_join(t, NULL);
    CHECK_RC(a.rc_entry, MATCHY_ERR_WRONG_THREAD);
    CHECK_RC(a.rc_string, MATCHY_ERR_WRONG_THREAD);
    CHECK_RC(a.rc_string_at, MATCHY_ERR_WRONG_THREAD);
    CHECK(a.kind == MATCHY_KIND_NONE);
    CHECK_RC(a.rc_clear, MATCHY_ERR_WRONG_THREAD);
    CHECK_RC(a.rc_lookup_into_filled, MATCHY_ERR_WRONG_THREAD);
    CHECK(a.count == 2); /* untouched */
    CHECK_RC(a.rc_lookup_into_empty, MATCHY_OK);
    CHECK_STR(a.version, "v1");
    /* The owner still reads it. */
    const char *entry = NULL;
    CHECK_RC(matchy_result_entry(a.filled, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "evil.com");
    const char *s = NULL;
    size_t len = 0;
    CHECK_RC(matchy_result_get_string_at(a.filled, 0, a.version_path, &s, &len), MATCHY_OK);
    CHECK(len == 2 && memcmp(s, "v1", 2) == 0);
    matchy_path_free(a.version_path);
    matchy_result_free(a.filled);
    matchy_result_free(a.empty);
}

/* --- Results outlive close and reload; manual reloads. */

static void test_lifetimes_and_reload_now(void) {
    char live[4096];
    join(live, sizeof live, dir, "live-manual.mxy");
    CHECK(swap_in(threats, live) == 0);
    matchy_t *db = matchy_open(live);
    CHECK(db != NULL);
    if (!db) return;
    char buf[64];
    matchy_result_t *old = matchy_result_new();
    matchy_result_t *r = matchy_result_new();
    CHECK_RC(matchy_lookup(db, "evil.com", old), MATCHY_OK);
    const char *old_entry = NULL;
    CHECK_RC(matchy_result_entry(old, 0, &old_entry), MATCHY_OK);

    matchy_reload_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    CHECK_RC(matchy_reload_now(db, &ev), MATCHY_OK);
    CHECK(ev.kind == MATCHY_RELOAD_SKIPPED && ev.generation == 1 && ev.error == NULL);
    CHECK(ev.struct_size == sizeof ev);
    CHECK_STR(ev.path, live);

    CHECK(swap_in(v2, live) == 0);
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    CHECK_RC(matchy_reload_now(db, &ev), MATCHY_OK);
    CHECK(ev.kind == MATCHY_RELOAD_RELOADED && ev.generation == 2 && ev.error == NULL);
    CHECK(ev.duration_ns > 0);
    CHECK(matchy_generation(db) == 2);
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v2");
    CHECK_RC(matchy_lookup(db, "new.example", r), MATCHY_OK);
    /* The old result still reads the version it came from. */
    CHECK_STR(old_entry, "evil.com");
    CHECK_STR(string_at(old, 0, VERSION_PATH, buf, sizeof buf), "v1");

    /* A broken file is refused; the good version serves on; `ev` untouched. */
    CHECK(swap_in(garbage, live) == 0);
    memset(&ev, 0x5A, sizeof ev);
    ev.struct_size = sizeof ev;
    CHECK_RC(matchy_reload_now(db, &ev), MATCHY_ERR_RELOAD_FAILED);
    CHECK(strlen(matchy_last_error()) > 0);
    CHECK(ev.generation == 0x5A5A5A5A5A5A5A5Aull);
    CHECK(matchy_generation(db) == 2);
    CHECK_RC(matchy_lookup(db, "evil.com", r), MATCHY_OK);
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v2");

    CHECK(swap_in(threats, live) == 0);
    CHECK_RC(matchy_reload_now(db, NULL), MATCHY_OK); /* NULL out is fine */
    CHECK(matchy_generation(db) == 3);
    matchy_reload_event_t small;
    small.struct_size = 4;
    CHECK_RC(matchy_reload_now(db, &small), MATCHY_ERR_INVALID_ARG);
    CHECK_RC(matchy_reload_now(NULL, &ev), MATCHY_ERR_NULL_ARG);

    matchy_stats_t st;
    st.struct_size = sizeof st;
    CHECK_RC(matchy_stats(db, &st), MATCHY_OK);
    CHECK(st.generation == 3 && st.successes == 2 && st.failures == 1 && st.attempts == 3);
    CHECK(st.last_success_unix > 1600000000 && st.last_duration_ns > 0);

    /* Results stay valid after close. */
    CHECK_RC(matchy_lookup(db, "sub.evil.com", r), MATCHY_OK);
    matchy_close(db);
    const char *entry = NULL;
    CHECK_RC(matchy_result_entry(r, 0, &entry), MATCHY_OK);
    CHECK_STR(entry, "*.evil.com");
    CHECK_STR(string_at(r, 0, VERSION_PATH, buf, sizeof buf), "v1");
    CHECK_STR(string_at(old, 0, VERSION_PATH, buf, sizeof buf), "v1");
    char *json = NULL;
    CHECK_RC(matchy_result_data_json(old, 0, &json), MATCHY_OK);
    matchy_free_string(json);
    matchy_result_free(r);
    matchy_result_free(old);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    join(threats, sizeof threats, dir, "threats.mxy");
    join(v2, sizeof v2, dir, "v2.mxy");
    join(v4only, sizeof v4only, dir, "v4only.mxy");
    join(garbage, sizeof garbage, dir, "garbage.mxy");
    join(truncated, sizeof truncated, dir, "truncated.mxy");
    join(empty, sizeof empty, dir, "empty.mxy");

    test_version_and_errors();
    test_open_failures();
    matchy_t *db = matchy_open(threats);
    CHECK(db != NULL);
    if (!db) return finish("api_test");
    test_lookups(db);
    test_values(db);
    test_prepared_paths(db);
    test_info_stats_validate(db);
    test_thread_rule(db);
    matchy_close(db);
    test_buffer();
    test_ipv4_only();
    test_lifetimes_and_reload_now();
    return finish("api_test");
}
