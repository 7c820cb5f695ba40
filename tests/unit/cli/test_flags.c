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

/* Everything written to fd (1 or 2) between capture_start and capture_end. */
struct capture {
    int fd, saved;
    FILE *fp;
};

static struct capture capture_start(int fd)
{
    struct capture c = {fd, dup(fd), tmpfile()};
    assert_non_null(c.fp);
    fflush(stdout);
    fflush(stderr);
    dup2(fileno(c.fp), fd);
    return c;
}

static void capture_end(struct capture *c, char *buf, size_t cap)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    rewind(c->fp);
    size_t n = fread(buf, 1, cap - 1, c->fp);
    buf[n] = '\0';
    fclose(c->fp);
}

/* Parse argv (NULL-terminated) with stdout and stderr captured. */
static struct result run(const struct flag_set *set, void *target, char **argv)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    struct result r = {0};
    r.nargs = -1;
    struct capture out = capture_start(1), err = capture_start(2);
    r.rc = flags_parse(set, target, argc, argv, &r.nargs);
    capture_end(&err, r.err, sizeof(r.err));
    capture_end(&out, r.out, sizeof(r.out));
    return r;
}

static struct result parse_with(int nargs, struct target *t, char **argv)
{
    const struct flag_set set = {.cmd = "test", .usage = usage, .flags = flags, .nargs = nargs};
    return run(&set, t, argv);
}

#define PARSE(t, ...) parse_with(FLAGS_ANY_ARGS, t, (char *[]){"test", __VA_ARGS__, NULL})

/* A usage error: exit code 2, msg on stderr after "twoway test: ", nothing on stdout. */
static void refused(struct result r, const char *msg)
{
    char want[512];
    snprintf(want, sizeof(want), "twoway test: %s" HINT, msg);
    assert_int_equal(r.rc, 2);
    assert_string_equal(r.err, want);
    assert_string_equal(r.out, "");
}

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
    refused(PARSE(&t, "--c", "1"), "unknown option --c");
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
    refused(PARSE(&t, "--bogus"), "unknown option --bogus");
    refused(PARSE(&t, "--bogus=1"), "unknown option --bogus=1");
    refused(PARSE(&t, "-vx"), "unknown option -x");
    refused(PARSE(&t, "--=x"), "unknown option --=x");
}

static void missing_values(void **state)
{
    (void)state;
    struct target t = {0};
    refused(PARSE(&t, "pos", "--name"), "option --name needs a value");
    refused(PARSE(&t, "-n"), "option -n needs a value");
    refused(PARSE(&t, "--verbose=yes"), "option --verbose takes no value");
}

static void bad_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {"x", "", "0", "11", "5x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct target t = {0};
        char want[128];
        snprintf(want, sizeof(want), "--count '%s': expected a whole number from 1 to 10", bad[i]);
        refused(PARSE(&t, "--count", (char *)bad[i]), want);
        assert_int_equal(t.count, 0); /* untouched */
    }
}

static void bad_durations_choices_and_calls(void **state)
{
    (void)state;
    struct target t = {0};
    refused(PARSE(&t, "--wait", "soon"), "--wait 'soon': expected a duration (90s, 15m, 12h, 7d)");
    refused(PARSE(&t, "--wait", "2h"), "--wait '2h': expected a duration (90s, 15m, 12h, 7d)");
    refused(PARSE(&t, "--wait", "0"), "--wait '0': expected a duration (90s, 15m, 12h, 7d)");
    assert_int_equal(t.wait, 0); /* untouched */
    refused(PARSE(&t, "--color", "pink"), "--color 'pink': use red, green or blue");
    refused(PARSE(&t, "--item", "ok", "--item", "bad"), "--item 'bad': not allowed");
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
    struct capture err = capture_start(2);
    int rc1 = flags_parse(&set, &v, 3, (char *[]){"test", "--n", "9", NULL}, NULL);
    int rc2 = flags_parse(&set, &v, 3, (char *[]){"test", "--d", "x", NULL}, NULL);
    char text[512];
    capture_end(&err, text, sizeof(text));
    assert_int_equal(rc1, 2);
    assert_int_equal(rc2, 2);
    assert_string_equal(text, "twoway test: --n '9': give 1 to 5" HINT
                              "twoway test: --d 'x': give 1s or more" HINT);
}

static void arguments_refused_when_not_taken(void **state)
{
    (void)state;
    struct target t = {0};
    refused(parse_with(0, &t, (char *[]){"test", "--verbose", "stray", NULL}),
            "unexpected argument 'stray'");
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
    refused(run(&set, &t, (char *[]){"test", "a", NULL}), "expected FROM and TO");
    refused(run(&set, &t, (char *[]){"test", "a", "b", "c", NULL}), "expected FROM and TO");
    const struct flag_set bare = {.cmd = "test", .usage = usage, .flags = flags, .nargs = 1};
    refused(run(&bare, &t, (char *[]){"test", "a", "b", NULL}), "unexpected argument 'b'");
    refused(run(&bare, &t, (char *[]){"test", NULL}), "expected 1 argument");
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
    refused(PARSE(&t, "--bogus", "--help"), "unknown option --bogus"); /* read in order */
}

static void p12_rules(void **state)
{
    (void)state;
    unsetenv("TWOWAY_P12_PASS_FILE");
    struct flags_p12 none = {0}, legacy = {.legacy = true}, bare = {.p12 = true};
    struct flags_p12 full = {.p12 = true, .pass_file = "pass.txt"};
    struct capture err = capture_start(2);
    int rcs[] = {flags_p12_check("test", &none), flags_p12_check("test", &legacy),
                 flags_p12_check("test", &bare), flags_p12_check("test", &full)};
    setenv("TWOWAY_P12_PASS_FILE", "env.txt", 1);
    int rc_env = flags_p12_check("test", &bare);
    unsetenv("TWOWAY_P12_PASS_FILE");
    char text[512];
    capture_end(&err, text, sizeof(text));
    assert_int_equal(rcs[0], FLAGS_GO_ON);
    assert_int_equal(rcs[1], 2);
    assert_int_equal(rcs[2], 2);
    assert_int_equal(rcs[3], FLAGS_GO_ON);
    assert_int_equal(rc_env, FLAGS_GO_ON);
    assert_string_equal(text, "twoway test: --p12-legacy and --p12-pass-file need --p12" HINT
                              "twoway test: --p12 needs a password: --p12-pass-file F or "
                              "TWOWAY_P12_PASS_FILE" HINT);
}

static void host_port(void **state)
{
    (void)state;
    char host[16], port[8];
    assert_int_equal(
        flags_host_port("test", "example.com:8443", host, sizeof(host), port, sizeof(port)),
        FLAGS_GO_ON);
    assert_string_equal(host, "example.com");
    assert_string_equal(port, "8443");
    assert_int_equal(flags_host_port("test", "[::1]:1", host, sizeof(host), port, sizeof(port)),
                     FLAGS_GO_ON);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "1");
    static const char *const bad[][2] = {
        {"nohostport", "'nohostport': give HOST:PORT"},
        {"h:", "'h:': give HOST:PORT"},
        {":443", "':443': give HOST:PORT"},
        {"h:0", "'h:0': port must be 1-65535"},
        {"h:65536", "'h:65536': port must be 1-65535"},
        {"h:44x", "'h:44x': port must be 1-65535"},
        {"[]:443", "'[]:443': host is empty or too long"},
        {"a-name-longer-than-16:443", "'a-name-longer-than-16:443': host is empty or too long"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct capture err = capture_start(2);
        int rc = flags_host_port("test", bad[i][0], host, sizeof(host), port, sizeof(port));
        char text[256], want[256];
        capture_end(&err, text, sizeof(text));
        snprintf(want, sizeof(want), "twoway test: %s" HINT, bad[i][1]);
        assert_int_equal(rc, 2);
        assert_string_equal(text, want);
    }
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
        cmocka_unit_test(host_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
