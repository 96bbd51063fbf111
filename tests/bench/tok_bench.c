/* tok_bench.c — throughput of tok_encode, without the command line around it.
 *
 *   tok_bench MODEL_DIR FILE LABEL
 *
 * Loads the tokenizer (timed), then encodes FILE line by line (as
 * `patchgrid tokenize` does) twice with the same Tok: the first pass starts
 * with an empty word cache, the second finds it full. Prints one table row
 * per pass (see bench_tokenizer.sh for the header):
 *   what  input  MB  lines  tokens  seconds  MB/s  lines/s
 * MB is 10^6 bytes. Exits non-zero if anything fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tok.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void row(const char *what, const char *label, size_t bytes, size_t lines, size_t tokens,
                double secs)
{
    printf("%-28s %-22s %8.2f %9zu %10zu %8.3f %8.1f %10.0f\n", what, label, (double)bytes / 1e6,
           lines, tokens, secs, (double)bytes / 1e6 / secs, (double)lines / secs);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tok_bench MODEL_DIR FILE LABEL\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc((size_t)size + 1);
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        perror(argv[2]);
        return 1;
    }
    fclose(f);

    Err err;
    Tok *tok;
    double t0 = now();
    if (tok_open_dir(&tok, argv[1], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load = now() - t0;
    printf("%-28s %-22s %8s %9s %10s %8.3f\n", "load tokenizer", "vocab+merges", "", "", "", load);

    TokIds ids = {0};
    for (int pass = 0; pass < 2; pass++) {
        size_t lines = 0, tokens = 0;
        t0 = now();
        for (char *p = text, *end = text + size; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            ids.n = 0;
            if (tok_encode(tok, p, len, 0, &ids, &err) != 0) {
                fprintf(stderr, "%s line %zu: %s\n", argv[2], lines + 1, err.msg);
                return 1;
            }
            tokens += ids.n;
            lines++;
            p += len + 1;
        }
        row(pass == 0 ? "tok_encode, empty cache" : "tok_encode, cache filled", argv[3], (size_t)size,
            lines, tokens, now() - t0);
    }
    free(ids.ids);
    free(text);
    tok_close(tok);
    return 0;
}
