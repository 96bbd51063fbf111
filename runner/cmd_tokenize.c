/* cmd_tokenize.c — `patchgrid tokenize`: text to token ids and back with a
 * model directory's tokenizer (include/tok.h). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "tok.h"

static const char usage_text[] =
    "usage: patchgrid tokenize [--allow-special] MODEL_DIR [TEXT]\n"
    "       patchgrid tokenize --decode MODEL_DIR [IDS...]\n"
    "\n"
    "Prints the token ids of TEXT, space-separated, on one line. Without TEXT, reads\n"
    "standard input and prints one line of ids per input line (the line without its\n"
    "'\\n'; a '\\r' before it is part of the text). MODEL_DIR holds tokenizer.json, or\n"
    "vocab.json and merges.txt. Input must be UTF-8.\n"
    "\n"
    "  --allow-special  read special tokens such as <|endoftext|> in the text as\n"
    "                   those tokens; by default they are plain text (tiktoken's\n"
    "                   default, and gpt-3-encoder's)\n"
    "  --decode         the reverse: prints the bytes of IDS (or of each input line\n"
    "                   of ids), then a newline; ids are separated by white space\n"
    "  -h, --help       this text\n"
    "\n"
    "Put -- before a TEXT that starts with '-'.\n";

/* Appends the decimal ids, space-separated, and a newline to *line. */
static void format_ids(const TokIds *ids, char **line, size_t *cap)
{
    size_t need = ids->n * 12 + 2, k = 0;
    if (need > *cap) {
        *cap = need * 2;
        *line = xrealloc(*line, *cap);
    }
    char *p = *line;
    for (size_t i = 0; i < ids->n; i++) {
        char digits[12];
        size_t nd = 0;
        uint32_t v = (uint32_t)ids->ids[i]; /* ids are never negative */
        do digits[nd++] = (char)('0' + v % 10); while ((v /= 10) != 0);
        if (i > 0) p[k++] = ' ';
        while (nd > 0) p[k++] = digits[--nd];
    }
    p[k++] = '\n';
    p[k] = '\0';
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Parses the ids in s[0..len), separated by spaces, tabs or CRs, into *ids. */
static int parse_ids(const char *s, size_t len, TokIds *ids, Err *err)
{
    size_t i = 0;
    while (i < len) {
        if (is_blank(s[i])) {
            i++;
            continue;
        }
        size_t start = i;
        long long v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (v <= INT32_MAX) v = v * 10 + (s[i] - '0');
            i++;
        }
        if (i == start || (i < len && !is_blank(s[i]))) {
            while (i < len && !is_blank(s[i])) i++;
            return err_set(err, "'%.*s' is not a token id", (int)(i - start > 40 ? 40 : i - start),
                           s + start);
        }
        if (v > INT32_MAX) return err_set(err, "token id %.*s is too large", (int)(i - start), s + start);
        if (ids->n == ids->cap) {
            ids->cap = ids->cap ? ids->cap * 2 : 64;
            ids->ids = xrealloc(ids->ids, xmul(ids->cap, sizeof *ids->ids));
        }
        ids->ids[ids->n++] = (int32_t)v;
    }
    return 0;
}

/* Turns one piece of input (text, or ids with decode) into one output line. */
static int convert(Tok *tok, int decode, int flags, const char *in, size_t len, char **out,
                   size_t *out_cap, size_t *out_len, Err *err)
{
    TokIds ids = {0};
    int rc;
    if (decode) {
        *out_len = 0;
        rc = parse_ids(in, len, &ids, err);
        if (rc == 0) rc = tok_decode(tok, ids.ids, ids.n, out, out_len, err);
        if (rc == 0) {
            *out = xrealloc(*out, *out_len + 2);
            (*out)[(*out_len)++] = '\n';
            *out_cap = *out_len;
        }
    } else {
        rc = tok_encode(tok, in, len, flags, &ids, err);
        if (rc == 0) {
            format_ids(&ids, out, out_cap);
            *out_len = strlen(*out);
        }
    }
    free(ids.ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option options[] = {
        {"allow-special", no_argument, NULL, 's'},
        {"decode", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int decode = 0, flags = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 's': flags |= TOK_ALLOW_SPECIAL; break;
        case 'd': decode = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return cli_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    if (nargs < 1) return cli_usage_error("tokenize", "missing MODEL_DIR");
    if (!decode && nargs > 2)
        return cli_usage_error("tokenize", "expected one TEXT argument, got %d (quote the text)",
                               nargs - 1);
    if (decode && (flags & TOK_ALLOW_SPECIAL))
        return cli_usage_error("tokenize", "--allow-special is for encoding, not --decode");

    Err err;
    Tok *tok;
    if (tok_open_dir(&tok, argv[optind], &err) != 0) return cli_fail(&err);

    int status = 0;
    char *out = NULL;
    size_t out_cap = 0, out_len = 0;
    if (nargs > 1) {
        /* The arguments as one input: TEXT, or every IDS argument. */
        size_t len = 0;
        for (int i = optind + 1; i < argc; i++) len += strlen(argv[i]) + 1;
        char *in = xmalloc(len + 1);
        size_t k = 0;
        for (int i = optind + 1; i < argc; i++) {
            size_t n = strlen(argv[i]);
            memcpy(in + k, argv[i], n);
            k += n;
            if (decode && i + 1 < argc) in[k++] = ' ';
        }
        if (convert(tok, decode, flags, in, k, &out, &out_cap, &out_len, &err) != 0) {
            err_prefix(&err, "%s argument: ", decode ? "IDS" : "TEXT");
            status = cli_fail(&err);
        } else {
            fwrite(out, 1, out_len, stdout);
        }
        free(in);
    } else {
        char *line = NULL;
        size_t line_cap = 0, lineno = 0;
        ssize_t n;
        errno = 0;
        while ((n = getline(&line, &line_cap, stdin)) >= 0) {
            lineno++;
            size_t len = (size_t)n;
            if (len > 0 && line[len - 1] == '\n') len--;
            if (convert(tok, decode, flags, line, len, &out, &out_cap, &out_len, &err) != 0) {
                err_prefix(&err, "<stdin>:%zu: ", lineno);
                status = cli_fail(&err);
                break;
            }
            fwrite(out, 1, out_len, stdout);
        }
        if (status == 0 && ferror(stdin)) {
            err_set(&err, "<stdin>: read error: %s", strerror(errno));
            status = cli_fail(&err);
        }
        free(line);
    }
    free(out);
    tok_close(tok);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        err_set(&err, "<stdout>: write error: %s", strerror(errno));
        return cli_fail(&err);
    }
    return status;
}
