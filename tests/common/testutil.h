/* testutil.h - helpers shared by the cmocka tests: shared/ paths, temp dirs, free ports,
 * JSON golden files. Include after <cmocka.h>'s prerequisites (stdarg, stddef, setjmp). */
#ifndef RAGD_TESTUTIL_H
#define RAGD_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

/* Path under $RAGD_SHARED (or ../shared); returns a static-per-call malloc'd string. */
char *tu_shared(const char *rel);
/* Skip the current test (cmocka skip) when the shared file is missing. */
#define TU_REQUIRE_SHARED(path)                                                                    \
    do {                                                                                           \
        if (!tu_exists(path)) {                                                                    \
            print_message("shared file missing: %s\n", path);                                      \
            skip();                                                                                \
        }                                                                                          \
    } while (0)
int tu_exists(const char *path);
/* Parse a JSON file; fails the test on error. */
cJSON *tu_load_json(const char *path);
/* Make a fresh temporary directory (mkdtemp); caller frees the string. */
char *tu_tmpdir(void);
/* Remove a directory tree (rm -rf). */
void tu_rmtree(const char *path);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);

#endif
