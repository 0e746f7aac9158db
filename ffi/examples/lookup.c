/* lookup: print every match of each query, with its data as JSON.
 *
 *   cc ffi/examples/lookup.c -o lookup -lmatchy     (after ffi/install.sh; see ffi/README.md)
 *   ./lookup threats.mxy 1.2.3.4 sub.evil.com
 */
#include <matchy.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATABASE QUERY...\n", argv[0]);
        return 2;
    }
    matchy_t *db = matchy_open(argv[1]);
    if (!db) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], matchy_last_error());
        return 2;
    }
    static const char *const kinds[] = {"none", "ip", "literal", "glob"};
    matchy_result_t *result = matchy_result_new(); /* reused for every query */
    int status = 1;                                 /* 1 = nothing found */
    for (int q = 2; q < argc; q++) {
        int rc = matchy_lookup(db, argv[q], result);
        if (rc == MATCHY_NOT_FOUND) {
            printf("%s: no match\n", argv[q]);
            continue;
        }
        if (rc != MATCHY_OK) {
            fprintf(stderr, "%s: %s\n", argv[q], matchy_last_error());
            status = 2;
            break;
        }
        status = status == 2 ? 2 : 0;
        for (size_t i = 0; i < matchy_result_count(result); i++) {
            const char *entry = "";
            char *json = NULL;
            matchy_result_entry(result, i, &entry);       /* owned by the result */
            matchy_result_data_json(result, i, &json);    /* owned by us */
            printf("%s: %s %s %s\n", argv[q], kinds[matchy_result_kind(result, i)], entry,
                   json ? json : "null");
            matchy_free_string(json);
        }
    }
    matchy_result_free(result);
    matchy_close(db);
    return status;
}
