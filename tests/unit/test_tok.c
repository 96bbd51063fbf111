/* test_tok.c — unit tests of the GPT-2 tokenizer (include/tok.h).
 *
 * Uses the GPT-2 files in $PATCHGRID_SHARED/tokenizers/gpt2 (default
 * <repo>/../shared/tokenizers/gpt2, the repo found from this binary's path);
 * if they are missing every test fails, saying where it looked. The
 * comparison with the reference implementations on a large corpus is in
 * tests/py/test_tokenizer.py.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../worker/tok_internal.h"
#include "err.h"
#include "tok.h"

static char gpt2_dir[PATH_MAX + 64];

/* Fills gpt2_dir; returns 0 if vocab.json and merges.txt are there. */
static int find_gpt2(void)
{
    const char *shared = getenv("PATCHGRID_SHARED");
    char exe[PATH_MAX], repo_shared[PATH_MAX + 16];
    if (shared == NULL || shared[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        for (int up = 0; up < 4; up++) { /* repo/build/rel/tests/test_tok */
            char *slash = strrchr(exe, '/');
            if (slash) *slash = '\0';
        }
        snprintf(repo_shared, sizeof repo_shared, "%s/../shared", exe);
        shared = repo_shared;
    }
    snprintf(gpt2_dir, sizeof gpt2_dir, "%s/tokenizers/gpt2", shared);
    char path[sizeof gpt2_dir + 16];
    struct stat st;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", gpt2_dir, i ? "merges.txt" : "vocab.json");
        if (stat(path, &st) != 0) {
            fprintf(stderr, "test_tok: GPT-2 tokenizer files missing: %s not found (looked in "
                    "$PATCHGRID_SHARED/tokenizers/gpt2, default <repo>/../shared/tokenizers/gpt2)\n", path);
            return -1;
        }
    }
    return 0;
}

static int setup(void **state)
{
    if (find_gpt2() != 0) return -1;
    Err err;
    Tok *tok;
    if (tok_open_dir(&tok, gpt2_dir, &err) != 0) {
        fprintf(stderr, "test_tok: %s\n", err.msg);
        return -1;
    }
    *state = tok;
    return 0;
}

static int teardown(void **state)
{
    tok_close(*state);
    return 0;
}

/* Encodes text and checks the ids against want[0..n). */
static void expect_ids(Tok *tok, const char *text, size_t len, int flags, const int32_t *want, size_t n)
{
    TokIds ids = {0};
    Err err;
    int rc = tok_encode(tok, text, len, flags, &ids, &err);
    if (rc != 0) fail_msg("tok_encode(\"%s\"): %s", text, err.msg);
    if (ids.n != n) fail_msg("\"%s\": %zu ids, expected %zu", text, ids.n, n);
    for (size_t i = 0; i < n; i++)
        if (ids.ids[i] != want[i]) fail_msg("\"%s\": id #%zu is %d, expected %d", text, i, ids.ids[i], want[i]);
    free(ids.ids);
}

#define EXPECT(tok, text, flags, ...)                                                     \
    do {                                                                                  \
        const int32_t want_[] = {__VA_ARGS__};                                            \
        expect_ids(tok, text, strlen(text), flags, want_, sizeof want_ / sizeof want_[0]); \
    } while (0)

static void test_byte_to_unicode(void **state)
{
    (void)state;
    /* bytes_to_unicode() of OpenAI's encoder.py, written out as there */
    int printable[256] = {0};
    for (int b = '!'; b <= '~'; b++) printable[b] = 1;
    for (int b = 0xa1; b <= 0xac; b++) printable[b] = 1;
    for (int b = 0xae; b <= 0xff; b++) printable[b] = 1;
    uint32_t next = 256, seen[0x200] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t want = printable[b] ? (uint32_t)b : next++;
        assert_int_equal(tok_byte_to_unicode((unsigned char)b), want);
        assert_true(want < 0x200 && !seen[want]);
        seen[want] = 1;
    }
    assert_int_equal(next, 256 + 68);
    assert_int_equal(tok_byte_to_unicode(' '), 0x120);  /* Ġ */
    assert_int_equal(tok_byte_to_unicode('\n'), 0x10a); /* Ċ */
    assert_int_equal(tok_byte_to_unicode(0xad), 0x143);

    /* the internal conversions both ways */
    char all[256], written[512], back[256];
    for (int b = 0; b < 256; b++) all[b] = (char)b;
    size_t n = tok_bytelevel_encode(all, 256, written);
    assert_int_equal(tok_bytelevel_decode(written, n, back), 256);
    assert_memory_equal(all, back, 256);
    assert_int_equal(tok_bytelevel_decode("\xc4\xa0t", 3, back), 2); /* "Ġt" */
    assert_memory_equal(back, " t", 2);
    assert_int_equal(tok_bytelevel_decode("\xe2\x82\xac", 3, back), SIZE_MAX); /* € is not in it */
    assert_int_equal(tok_bytelevel_decode(" ", 1, back), SIZE_MAX);            /* nor is ' ' */
}

static void test_known_ids(void **state)
{
    Tok *tok = *state;
    EXPECT(tok, "Hello world", 0, 15496, 995);
    EXPECT(tok, " Mary", 0, 5335);
    EXPECT(tok, " Hello world, When Mary and John went to the store", 0, 18435, 995, 11, 1649, 5335,
           290, 1757, 1816, 284, 262, 3650);
    EXPECT(tok, "When Mary and John went to the store, John gave a drink to", 0, 2215, 5335, 290, 1757,
           1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284);
    EXPECT(tok, "<|endoftext|>", 0, 27, 91, 437, 1659, 5239, 91, 29);
    EXPECT(tok, "<|endoftext|>", TOK_ALLOW_SPECIAL, 50256);
    EXPECT(tok, "a<|endoftext|>b<|endoftext|>", TOK_ALLOW_SPECIAL, 64, 50256, 65, 50256);
    EXPECT(tok, "<|endoftext|", TOK_ALLOW_SPECIAL, 27, 91, 437, 1659, 5239, 91);
    EXPECT(tok, "it's", 0, 270, 338);
    EXPECT(tok, "   x", 0, 220, 220, 2124); /* \s+(?!\S) leaves the last space to the word */
    assert_int_equal(tok_vocab_size(tok), 50257);
    assert_int_equal(tok_special_id(tok, "<|endoftext|>"), 50256);
    assert_int_equal(tok_special_id(tok, "Hello"), -1);
    assert_int_equal(tok_bos_id(tok), 50256);
}

static void test_empty_text(void **state)
{
    Tok *tok = *state;
    TokIds ids = {0};
    Err err;
    assert_int_equal(tok_encode(tok, "", 0, 0, &ids, &err), 0);
    assert_int_equal(tok_encode(tok, NULL, 0, TOK_ALLOW_SPECIAL, &ids, &err), 0);
    assert_int_equal(ids.n, 0);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(tok_decode(tok, NULL, 0, &buf, &len, &err), 0);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(buf[0], '\0');
    free(buf);
    free(ids.ids);
}

static void test_round_trip(void **state)
{
    Tok *tok = *state;
    static const char *const texts[] = {
        "Hello world",
        "  leading and trailing  \t\n",
        "caf\xc3\xa9 cafe\xcc\x81 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd0\x9f\xd1\x80\xd0\xb8",
        "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7",
        "x = [1, 2, 3]  # it's   they're   we'll\r\n",
        "\xc2\x85\xef\xbb\xbf\xe1\xa0\x8e \xc2\xa0\xe3\x80\x80",
        "<|endoftext|>",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int flags = 0; flags <= TOK_ALLOW_SPECIAL; flags += TOK_ALLOW_SPECIAL) {
            TokIds ids = {0};
            Err err;
            assert_int_equal(tok_encode(tok, texts[i], strlen(texts[i]), flags, &ids, &err), 0);
            char *buf = xstrdup("prefix:");
            size_t len = 7;
            assert_int_equal(tok_decode(tok, ids.ids, ids.n, &buf, &len, &err), 0);
            assert_int_equal(len, 7 + strlen(texts[i]));
            assert_string_equal(buf + 7, texts[i]);
            free(buf);
            free(ids.ids);
        }
    }
    /* NUL bytes are text like any other */
    static const char with_nul[] = "a\0b\0\0 c";
    TokIds ids = {0};
    Err err;
    assert_int_equal(tok_encode(tok, with_nul, sizeof with_nul - 1, 0, &ids, &err), 0);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(tok_decode(tok, ids.ids, ids.n, &buf, &len, &err), 0);
    assert_int_equal(len, sizeof with_nul - 1);
    assert_memory_equal(buf, with_nul, len);
    free(buf);
    free(ids.ids);
}

static void test_encode_appends(void **state)
{
    Tok *tok = *state;
    TokIds ids = {0};
    Err err;
    assert_int_equal(tok_encode(tok, "Hello", 5, 0, &ids, &err), 0);
    assert_int_equal(tok_encode(tok, " world", 6, 0, &ids, &err), 0);
    assert_int_equal(ids.n, 2);
    assert_int_equal(ids.ids[0], 15496);
    assert_int_equal(ids.ids[1], 995);
    free(ids.ids);
}

static void test_invalid_utf8(void **state)
{
    Tok *tok = *state;
    static const struct {
        const char *text;
        size_t at;
    } bad[] = {
        {"ab\x80" "cd", 2}, {"ok \xc3", 3}, {"\xc3\x28", 0}, {"x\xed\xa0\x80", 1},
        {"\xf4\x90\x80\x80", 0}, {"\xc0\xaf", 0}, {"\xe2\x82", 0}, {"abc\xff", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TokIds ids = {0};
        Err err = {{0}};
        assert_int_equal(tok_encode(tok, "Hello", 5, 0, &ids, &err), 0);
        for (int flags = 0; flags <= TOK_ALLOW_SPECIAL; flags += TOK_ALLOW_SPECIAL) {
            assert_int_equal(tok_encode(tok, bad[i].text, strlen(bad[i].text), flags, &ids, &err), -1);
            char want[64];
            snprintf(want, sizeof want, "invalid UTF-8 at byte %zu (", bad[i].at);
            if (strncmp(err.msg, want, strlen(want)) != 0) fail_msg("%zu: got '%s'", i, err.msg);
            assert_null(strchr(err.msg, '\n'));
            assert_int_equal(ids.n, 1); /* left as it was */
            assert_int_equal(ids.ids[0], 15496);
        }
        free(ids.ids);
    }
}

static void test_decode_errors(void **state)
{
    Tok *tok = *state;
    static const int32_t bad[][2] = {{15496, -1}, {15496, 50257}, {INT32_MAX, 0}};
    for (size_t i = 0; i < 3; i++) {
        char *buf = NULL;
        size_t len = 0;
        Err err;
        assert_int_equal(tok_decode(tok, bad[i], 2, &buf, &len, &err), -1);
        assert_non_null(strstr(err.msg, "out of range"));
        assert_null(buf);
        assert_int_equal(len, 0);
    }
}

static void test_token_bytes(void **state)
{
    Tok *tok = *state;
    size_t len;
    const char *b = tok_token_bytes(tok, 5335, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(b, " Mary", 5);
    b = tok_token_bytes(tok, 50256, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(b, "<|endoftext|>", 13);
    b = tok_token_bytes(tok, 198, &len); /* "Ċ" */
    assert_int_equal(len, 1);
    assert_int_equal(b[0], '\n');
    assert_null(tok_token_bytes(tok, 50257, &len));
    assert_int_equal(len, 0);
    assert_null(tok_token_bytes(tok, -5, &len));
}

/* The cache empties itself after 2^17 words: ids must not depend on what it holds. */
static void test_cache_does_not_change_ids(void **state)
{
    Tok *tok = *state;
    size_t n_words = 150000, cap = n_words * 8, k = 0;
    char *text = xmalloc(cap);
    for (size_t i = 0; i < n_words; i++) {
        text[k++] = ' ';
        for (size_t v = i * 2654435761u % 1000003; v; v /= 26) text[k++] = (char)('a' + v % 26);
        text[k++] = 'q';
    }
    TokIds first = {0}, second = {0}, fresh = {0};
    Err err;
    assert_int_equal(tok_encode(tok, text, k, 0, &first, &err), 0);
    assert_int_equal(tok_encode(tok, text, k, 0, &second, &err), 0);
    Tok *other;
    assert_int_equal(tok_open_dir(&other, gpt2_dir, &err), 0);
    for (size_t i = 0, start = 0; i <= k; i++) { /* word by word into a fresh tokenizer */
        if (i == k || (text[i] == ' ' && i > start)) {
            assert_int_equal(tok_encode(other, text + start, i - start, 0, &fresh, &err), 0);
            start = i;
        }
    }
    assert_int_equal(first.n, second.n);
    assert_int_equal(first.n, fresh.n);
    assert_memory_equal(first.ids, second.ids, first.n * sizeof *first.ids);
    assert_memory_equal(first.ids, fresh.ids, first.n * sizeof *first.ids);
    tok_close(other);
    free(first.ids);
    free(second.ids);
    free(fresh.ids);
    free(text);
}

static void test_open_errors(void **state)
{
    (void)state;
    Err err;
    Tok *tok = (Tok *)1;
    assert_int_equal(tok_open_dir(&tok, "/nonexistent/model", &err), -1);
    assert_null(tok);
    assert_string_equal(err.msg, "/nonexistent/model: No such file or directory");
    char dir[] = "/tmp/test_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tok_open_dir(&tok, dir, &err), -1);
    assert_non_null(strstr(err.msg, "no tokenizer files"));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"a\": 0, \"b\": 1}", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "w");
    fputs("#version: 0.2\na b\n", f);
    fclose(f);
    assert_int_equal(tok_open_dir(&tok, dir, &err), -1); /* "ab" missing */
    assert_non_null(strstr(err.msg, "merges.txt:2: merge 'a b': its result is not in the vocabulary"));
    f = fopen(path, "w");
    fputs("#version: 0.2\n", f);
    fclose(f);
    assert_int_equal(tok_open_dir(&tok, dir, &err), -1); /* only 2 of 256 bytes */
    assert_non_null(strstr(err.msg, "vocab.json: no token for byte 0x00"));
    unlink(path);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    unlink(path);
    rmdir(dir);
}

static void test_regex_translate(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"\\s+(?!\\S)", "\\p{White_Space}+(?!\\P{White_Space})"},
        {"[^\\s\\p{L}]", "[^\\p{White_Space}\\p{L}]"},
        {"\\\\s", "\\\\s"},               /* an escaped backslash, then 's' */
        {"\\Q\\s\\E\\s", "\\Q\\s\\E\\p{White_Space}"},
        {"a\\", "a\\"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = tok_regex_translate(cases[i][0], strlen(cases[i][0]));
        assert_string_equal(t, cases[i][1]);
        free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_to_unicode),
        cmocka_unit_test(test_known_ids),
        cmocka_unit_test(test_empty_text),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_cache_does_not_change_ids),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_regex_translate),
    };
    return cmocka_run_group_tests_name("tok", tests, setup, teardown);
}
