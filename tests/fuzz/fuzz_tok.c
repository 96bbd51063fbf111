/* fuzz_tok.c — libFuzzer target for the GPT-2 tokenizer (worker/tokenizer.c).
 *
 * Each input is a text, encoded with and without TOK_ALLOW_SPECIAL by the
 * GPT-2 tokenizer of $PATCHGRID_SHARED/tokenizers/gpt2 (default
 * ../shared/tokenizers/gpt2 from the repository root). Beyond "no crash, no
 * sanitizer report" it checks the contract of include/tok.h: valid UTF-8
 * decodes back to exactly the input; anything else is refused with one line
 * "invalid UTF-8 at byte N (...)", N inside the input, and the ids are left
 * as they were.
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=all -Iinclude tests/fuzz/fuzz_tok.c \
 *         worker/tokenizer.c worker/tok_load.c worker/err.c \
 *         $(pkg-config --cflags --libs libpcre2-8 jansson) -o build/fuzz_tok
 *   build/fuzz_tok -max_len=4096 -max_total_time=600 build/fuzz/tok_corpus
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

static Tok *open_gpt2(void)
{
    const char *shared = getenv("PATCHGRID_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizers/gpt2", shared && *shared ? shared : "../shared");
    Tok *tok;
    Err err;
    if (tok_open_dir(&tok, dir, &err) != 0) {
        fprintf(stderr, "fuzz_tok: %s\n", err.msg);
        abort();
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static Tok *tok;
    if (tok == NULL) tok = open_gpt2();
    const char *text = (const char *)data;
    for (int flags = 0; flags <= TOK_ALLOW_SPECIAL; flags += TOK_ALLOW_SPECIAL) {
        TokIds ids = {0};
        Err err = {{0}};
        CHECK(tok_encode(tok, "x", 1, 0, &ids, &err) == 0 && ids.n == 1);
        if (tok_encode(tok, text, size, flags, &ids, &err) != 0) {
            size_t at;
            CHECK(sscanf(err.msg, "invalid UTF-8 at byte %zu (", &at) == 1 && at < size);
            CHECK(strchr(err.msg, '\n') == NULL);
            CHECK(ids.n == 1);
            free(ids.ids);
            return 0;
        }
        char *buf = NULL;
        size_t len = 0;
        CHECK(tok_decode(tok, ids.ids + 1, ids.n - 1, &buf, &len, &err) == 0);
        CHECK(len == size && memcmp(buf, data, size) == 0 && buf[len] == '\0');
        free(buf);
        free(ids.ids);
    }
    return 0;
}
