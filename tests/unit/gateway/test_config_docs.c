/* The documentation and the reference configuration cover every key of the key table, and the
 * reference configuration loads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/config_priv.h"
#include "util/fs.h"

static char *read_repo_file(const char *rel, char *path, size_t cap)
{
    const char *data_dir = getenv("TW_TEST_DATA");
    assert_non_null(data_dir);
    snprintf(path, cap, "%s/../../%s", data_dir, rel);
    char *text;
    size_t len;
    struct tw_err err;
    if (fs_read_file(path, FS_READ_LIMIT_DEFAULT, &text, &len, &err) != 0)
        fail_msg("%s", err.msg);
    return text;
}

static void test_docs_cover_every_key(void **state)
{
    (void)state;
    char path[4096];
    char *doc = read_repo_file("docs/config.md", path, sizeof(path));
    for (size_t i = 0; i < cfg_nkeys; i++) {
        char heading[96];
        snprintf(heading, sizeof(heading), "\n### `%s`\n", cfg_keys[i].name);
        if (strstr(doc, heading) == NULL)
            fail_msg("docs/config.md has no section for %s", cfg_keys[i].name);
    }
    free(doc);
}

static void test_example_covers_every_key_and_loads(void **state)
{
    (void)state;
    char path[4096];
    char *ex = read_repo_file("examples/twoway.conf", path, sizeof(path));
    for (size_t i = 0; i < cfg_nkeys; i++) {
        char set[96], commented[96];
        snprintf(set, sizeof(set), "\n%s = ", cfg_keys[i].name);
        snprintf(commented, sizeof(commented), "\n; %s = ", cfg_keys[i].name);
        if (strstr(ex, set) == NULL && strstr(ex, commented) == NULL)
            fail_msg("examples/twoway.conf does not show %s", cfg_keys[i].name);
    }
    free(ex);
    struct tw_err err;
    struct gw_config *cfg = gw_config_load_file(path, &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(cfg->n_services, 3);
    assert_int_equal(cfg->n_listeners, 3);
    assert_int_equal(cfg->listeners[0].n_services, 2);
    gw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docs_cover_every_key),
        cmocka_unit_test(test_example_covers_every_key_and_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
