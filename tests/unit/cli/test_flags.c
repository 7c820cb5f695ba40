/* flags_parse: the table-driven flag parser every twoway command uses. Each case checks the
 * exit code and the exact message on stderr (or the usage on stdout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/flags.h"

#define HINT "\n(see 'twoway test --help')\n"

struct target {
    bool verbose;
    const char *name;
    int count;
    int64_t wait;
    int color;
    char items[4][16]; /* --item, repeatable */
    int nitems;
    struct flags_tls tls;
};

static int item_flag(void *target, const char *value, struct tw_err *err)
{
    struct target *t = target;
    TW_ENSURE(strcmp(value, "bad") != 0, err, TW_ERR_USAGE, "--item '%s': not allowed", value);
    TW_ENSURE(t->nitems < 4, err, TW_ERR_USAGE, "--item: at most 4");
    snprintf(t->items[t->nitems++], sizeof(t->items[0]), "%s", value);
    return 0;
}

static const struct flag_choice colors[] = {
    {"red", 1},
    {"green", 2},
    {"blue", 3},
    {NULL, 0},
};

#define AT(field) offsetof(struct target, field)

static const struct flag flags[] = {
    {.name = "verbose", .kind = FLAG_BOOL, .off = AT(verbose), .short_name = 'v'},
    {.name = "name", .kind = FLAG_STRING, .off = AT(name), .short_name = 'n'},
    {.name = "count", .kind = FLAG_INT, .off = AT(count), .min = 1, .max = 10},
    {.name = "wait", .kind = FLAG_DURATION, .off = AT(wait), .min = 1, .max = 3600},
    {.name = "color", .kind = FLAG_CHOICE, .off = AT(color), .choices = colors},
    {.name = "item", .kind = FLAG_CALL, .call = item_flag},
    {.kind = FLAG_GROUP, .off = AT(tls), .group = flags_tls_group},
    {.kind = FLAG_END},
};

static const char usage[] = "usage: twoway test [--verbose] [--name N] ARGS\n";

struct result {
    int rc, nargs;
    char out[512], err[512];
};

static void slurp(FILE *fp, char *buf, size_t cap)
{
    rewind(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Parse argv (NULL-terminated) with stdout and stderr captured. */
static struct result run(const struct flag_set *set, void *target, char **argv)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    struct result r = {0};
    r.nargs = -1;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    r.rc = flags_parse(set, target, argc, argv, &r.nargs);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(out, r.out, sizeof(r.out));
    slurp(err, r.err, sizeof(r.err));
    return r;
}

static struct result parse_with(int nargs, struct target *t, char **argv)
{
    const struct flag_set set = {.cmd = "test", .usage = usage, .flags = flags, .nargs = nargs};
    return run(&set, t, argv);
}

#define PARSE(t, ...) parse_with(FLAGS_ANY_ARGS, t, (char *[]){"test", __VA_ARGS__, NULL})

static void every_kind_with_a_separate_value(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r =
        PARSE(&t, "--verbose", "--name", "alice", "--count", "7", "--wait", "15m", "--color",
              "green", "--item", "a", "--cert", "c.pem", "--key", "k.pem", "--ca", "ca.pem");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_string_equal(r.err, "");
    assert_int_equal(r.nargs, 0);
    assert_true(t.verbose);
    assert_string_equal(t.name, "alice");
    assert_int_equal(t.count, 7);
    assert_int_equal(t.wait, 900);
    assert_int_equal(t.color, 2);
    assert_int_equal(t.nitems, 1);
    assert_string_equal(t.items[0], "a");
    assert_string_equal(t.tls.cert, "c.pem");
    assert_string_equal(t.tls.key, "k.pem");
    assert_string_equal(t.tls.ca, "ca.pem");
}

static void equals_form(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r =
        PARSE(&t, "--name=x=y", "--count=3", "--wait=1h", "--color=blue", "--item=i", "--ca=");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_string_equal(t.name, "x=y");
    assert_int_equal(t.count, 3);
    assert_int_equal(t.wait, 3600);
    assert_int_equal(t.color, 3);
    assert_string_equal(t.items[0], "i");
    assert_string_equal(t.tls.ca, ""); /* an empty value is a value */
}

static void short_names(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "-v", "-n", "bob");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_true(t.verbose);
    assert_string_equal(t.name, "bob");
    struct target u = {0};
    r = PARSE(&u, "-vncarol");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_true(u.verbose);
    assert_string_equal(u.name, "carol");
}

static void positionals_anywhere_in_order(void **state)
{
    (void)state;
    struct target t = {0};
    char *argv[] = {"test", "one", "--name", "n", "two", "-", "--verbose", "three", NULL};
    struct result r = parse_with(FLAGS_ANY_ARGS, &t, argv);
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_int_equal(r.nargs, 4);
    assert_string_equal(argv[1], "one");
    assert_string_equal(argv[2], "two");
    assert_string_equal(argv[3], "-"); /* a lone dash is an argument (stdin, by convention) */
    assert_string_equal(argv[4], "three");
    assert_string_equal(t.name, "n");
    assert_true(t.verbose);
}

static void double_dash_ends_the_flags(void **state)
{
    (void)state;
    struct target t = {0};
    char *argv[] = {"test", "--verbose", "--", "--name", "-x", NULL};
    struct result r = parse_with(FLAGS_ANY_ARGS, &t, argv);
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_int_equal(r.nargs, 2);
    assert_string_equal(argv[1], "--name");
    assert_string_equal(argv[2], "-x");
    assert_null(t.name);
}

static void a_value_may_start_with_a_dash(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "--name", "--verbose");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_string_equal(t.name, "--verbose");
    assert_false(t.verbose);
}

static void repeated_flags(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "--name", "first", "--item", "a", "--name", "last", "--item", "b");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_string_equal(t.name, "last"); /* a value flag: the last one wins */
    assert_int_equal(t.nitems, 2);       /* a call flag: every one counts */
    assert_string_equal(t.items[0], "a");
    assert_string_equal(t.items[1], "b");
}

static void unique_prefix(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "--verb", "--na", "x", "--cou=2");
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_true(t.verbose);
    assert_string_equal(t.name, "x");
    assert_int_equal(t.count, 2);
    /* --c: --count, --color, --cert, --ca */
    r = PARSE(&t, "--c", "1");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unknown option --c" HINT);
    /* an exact name wins over the longer names it prefixes */
    struct flag_set one = {
        .cmd = "test", .usage = usage, .flags = flags_p12_group, .nargs = FLAGS_ANY_ARGS};
    struct flags_p12 p = {0};
    int nargs = 0;
    assert_int_equal(flags_parse(&one, &p, 2, (char *[]){"test", "--p12", NULL}, &nargs),
                     FLAGS_GO_ON);
    assert_true(p.p12);
    assert_false(p.legacy);
}

static void unknown_flags(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "--bogus");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unknown option --bogus" HINT);
    r = PARSE(&t, "--bogus=1");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unknown option --bogus=1" HINT);
    r = PARSE(&t, "-vx");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unknown option -x" HINT);
    r = PARSE(&t, "--=x");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unknown option --=x" HINT);
}

static void missing_values(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "pos", "--name");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: option --name needs a value" HINT);
    r = PARSE(&t, "-n");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: option -n needs a value" HINT);
    r = PARSE(&t, "--verbose=yes");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: option --verbose takes no value" HINT);
}

static void bad_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {"x", "", "0", "11", "5x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct target t = {0};
        struct result r = PARSE(&t, "--count", (char *)bad[i]);
        char want[128];
        snprintf(want, sizeof(want),
                 "twoway test: --count '%s': expected a whole number from 1 to 10" HINT, bad[i]);
        assert_int_equal(r.rc, 2);
        assert_string_equal(r.err, want);
        assert_int_equal(t.count, 0); /* untouched */
    }
}

static void bad_durations_choices_and_calls(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "--wait", "soon");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err,
                        "twoway test: --wait 'soon': expected a duration (90s, 15m, 12h, 7d)" HINT);
    r = PARSE(&t, "--wait", "2h"); /* over max */
    assert_int_equal(r.rc, 2);
    r = PARSE(&t, "--wait", "0"); /* under min */
    assert_int_equal(r.rc, 2);
    r = PARSE(&t, "--color", "pink");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: --color 'pink': use red, green or blue" HINT);
    r = PARSE(&t, "--item", "ok", "--item", "bad");
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: --item 'bad': not allowed" HINT);
}

struct two {
    int n;
    int64_t d;
};

static void custom_bad_text(void **state)
{
    (void)state;
    static const struct flag custom[] = {
        {.name = "n",
         .kind = FLAG_INT,
         .off = offsetof(struct two, n),
         .min = 1,
         .max = 5,
         .bad = "give"},
        {.name = "d",
         .kind = FLAG_DURATION,
         .off = offsetof(struct two, d),
         .min = 1,
         .bad = "give 1s or more"},
        {.kind = FLAG_END},
    };
    const struct flag_set set = {.cmd = "test", .usage = usage, .flags = custom};
    struct two v = {0, 0};
    FILE *err = tmpfile();
    int saved = dup(2), nargs = 0;
    fflush(stderr);
    dup2(fileno(err), 2);
    int rc1 = flags_parse(&set, &v, 3, (char *[]){"test", "--n", "9", NULL}, &nargs);
    int rc2 = flags_parse(&set, &v, 3, (char *[]){"test", "--d", "x", NULL}, &nargs);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[512];
    slurp(err, text, sizeof(text));
    assert_int_equal(rc1, 2);
    assert_int_equal(rc2, 2);
    assert_string_equal(text, "twoway test: --n '9': give 1 to 5" HINT
                              "twoway test: --d 'x': give 1s or more" HINT);
}

static void arguments_refused_when_not_taken(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = parse_with(0, &t, (char *[]){"test", "--verbose", "stray", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unexpected argument 'stray'" HINT);
}

static void argument_count(void **state)
{
    (void)state;
    const struct flag_set set = {.cmd = "test",
                                 .usage = usage,
                                 .flags = flags,
                                 .nargs = 2,
                                 .nargs_error = "expected FROM and TO"};
    struct target t = {0};
    char *two[] = {"test", "a", "--verbose", "b", NULL};
    struct result r = run(&set, &t, two);
    assert_int_equal(r.rc, FLAGS_GO_ON);
    assert_int_equal(r.nargs, 2);
    r = run(&set, &t, (char *[]){"test", "a", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: expected FROM and TO" HINT);
    r = run(&set, &t, (char *[]){"test", "a", "b", "c", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: expected FROM and TO" HINT);
    const struct flag_set bare = {.cmd = "test", .usage = usage, .flags = flags, .nargs = 1};
    r = run(&bare, &t, (char *[]){"test", "a", "b", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: unexpected argument 'b'" HINT);
    r = run(&bare, &t, (char *[]){"test", NULL});
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, "twoway test: expected 1 arguments" HINT);
}

static void help(void **state)
{
    (void)state;
    struct target t = {0};
    struct result r = PARSE(&t, "pos", "--help", "--bogus");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, usage);
    assert_string_equal(r.err, "");
    r = PARSE(&t, "-h");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, usage);
    r = PARSE(&t, "--bogus", "--help"); /* flags are read in order */
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.out, "");
}

static void p12_rules(void **state)
{
    (void)state;
    unsetenv("TWOWAY_P12_PASS_FILE");
    struct flags_p12 none = {0}, legacy = {.legacy = true}, bare = {.p12 = true};
    struct flags_p12 full = {.p12 = true, .pass_file = "pass.txt"};
    FILE *err = tmpfile();
    int saved = dup(2);
    fflush(stderr);
    dup2(fileno(err), 2);
    int rcs[] = {flags_p12_check("test", &none), flags_p12_check("test", &legacy),
                 flags_p12_check("test", &bare), flags_p12_check("test", &full)};
    setenv("TWOWAY_P12_PASS_FILE", "env.txt", 1);
    int rc_env = flags_p12_check("test", &bare);
    unsetenv("TWOWAY_P12_PASS_FILE");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[512];
    slurp(err, text, sizeof(text));
    assert_int_equal(rcs[0], FLAGS_GO_ON);
    assert_int_equal(rcs[1], 2);
    assert_int_equal(rcs[2], 2);
    assert_int_equal(rcs[3], FLAGS_GO_ON);
    assert_int_equal(rc_env, FLAGS_GO_ON);
    assert_string_equal(text, "twoway test: --p12-legacy and --p12-pass-file need --p12" HINT
                              "twoway test: --p12 needs a password: --p12-pass-file F or "
                              "TWOWAY_P12_PASS_FILE" HINT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_with_a_separate_value),
        cmocka_unit_test(equals_form),
        cmocka_unit_test(short_names),
        cmocka_unit_test(positionals_anywhere_in_order),
        cmocka_unit_test(double_dash_ends_the_flags),
        cmocka_unit_test(a_value_may_start_with_a_dash),
        cmocka_unit_test(repeated_flags),
        cmocka_unit_test(unique_prefix),
        cmocka_unit_test(unknown_flags),
        cmocka_unit_test(missing_values),
        cmocka_unit_test(bad_numbers),
        cmocka_unit_test(bad_durations_choices_and_calls),
        cmocka_unit_test(custom_bad_text),
        cmocka_unit_test(arguments_refused_when_not_taken),
        cmocka_unit_test(argument_count),
        cmocka_unit_test(help),
        cmocka_unit_test(p12_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
