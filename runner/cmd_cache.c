/* cmd_cache.c — `patchgrid cache`: TransformerLens's run_with_cache from the
 * command line. Runs a batch of equal-length prompts and writes the logits
 * and the chosen hook activations, TL's names and shapes, batch first. */
#include <errno.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "err.h"
#include "h5util.h"
#include "model.h"
#include "tok.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid cache MODEL_DIR (--tokens \"ID ID ...\" | --prompt TEXT)...\n"
            "                       [--hooks PATTERN]... [--no-bos] -o OUT.h5\n"
            "\n"
            "Runs the prompts through the model (one --tokens or --prompt per prompt; all\n"
            "the same length in tokens) and writes, like TransformerLens's run_with_cache:\n"
            "  /tokens                   int32   [batch, pos]\n"
            "  /logits                   float32 [batch, pos, d_vocab]\n"
            "  /activations/<hook name>  float32 TL's shape with batch first, e.g.\n"
            "      blocks.0.attn.hook_q        [batch, pos, head, d_head]\n"
            "      blocks.0.attn.hook_pattern  [batch, head, query_pos, key_pos]\n"
            "\n"
            "  --hooks PATTERN  shell glob over TL hook names (repeatable); default: every\n"
            "                   hook. --hooks none writes only the logits.\n"
            "  --prompt TEXT    text, tokenized with the model's tokenizer; BOS is prepended\n"
            "                   as TransformerLens does unless --no-bos, and special tokens\n"
            "                   such as <|endoftext|> in the text are read as such (as\n"
            "                   TransformerLens's to_tokens does; `patchgrid tokenize`\n"
            "                   needs --allow-special for that).\n"
            "  -o OUT.h5        written whole or not at all (via a temporary file).\n");
}

/* Parses "12 7 99" into ids; -1 with err on anything else. */
static int parse_ids(const char *s, TokIds *out, Err *err)
{
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (*p == '\0') break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 0 || v > INT32_MAX ||
            (*end != '\0' && *end != ' ' && *end != '\t' && *end != ','))
            return err_set(err, "--tokens \"%s\": not a list of token ids", s);
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 16;
            out->ids = xrealloc(out->ids, out->cap * sizeof *out->ids);
        }
        out->ids[out->n++] = (int32_t)v;
        p = end;
    }
    if (out->n == 0) return err_set(err, "--tokens \"%s\": no token ids", s);
    return 0;
}

typedef struct Args {
    const char *model_dir, *out;
    const char **tokens, **prompts; /* in command-line order, one of each per prompt */
    size_t n_prompts;
    const char **hooks;
    size_t n_hooks;
    int bos;
} Args;

static int parse_args(Args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->bos = 1;
    a->tokens = xcalloc((size_t)argc, sizeof *a->tokens);
    a->prompts = xcalloc((size_t)argc, sizeof *a->prompts);
    a->hooks = xcalloc((size_t)argc, sizeof *a->hooks);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(o, "--tokens") == 0 || strcmp(o, "--prompt") == 0) {
            if (!has_value) return cli_usage_error("cache", "%s needs a value", o);
            (o[2] == 't' ? a->tokens : a->prompts)[a->n_prompts++] = argv[++i];
        } else if (strcmp(o, "--hooks") == 0) {
            if (!has_value) return cli_usage_error("cache", "--hooks needs a pattern");
            a->hooks[a->n_hooks++] = argv[++i];
        } else if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0) {
            if (!has_value) return cli_usage_error("cache", "-o needs a file name");
            a->out = argv[++i];
        } else if (strcmp(o, "--no-bos") == 0) {
            a->bos = 0;
        } else if (o[0] == '-') {
            return cli_usage_error("cache", "unknown option '%s'", o);
        } else if (a->model_dir == NULL) {
            a->model_dir = o;
        } else {
            return cli_usage_error("cache", "unexpected argument '%s'", o);
        }
    }
    if (a->model_dir == NULL) return cli_usage_error("cache", "expected MODEL_DIR");
    if (a->n_prompts == 0) return cli_usage_error("cache", "give at least one --tokens or --prompt");
    if (a->out == NULL) return cli_usage_error("cache", "-o OUT.h5 is required");
    return 0;
}

static int hook_selected(const Args *a, const char *name)
{
    if (a->n_hooks == 0) return 1;
    for (size_t i = 0; i < a->n_hooks; i++)
        if (fnmatch(a->hooks[i], name, 0) == 0) return 1;
    return 0;
}

/* Tokenizes the prompts; all must have the same length. */
static int prompt_tokens(const Args *a, const Model *m, TokIds *ids, Err *err)
{
    Tok *tok = NULL;
    int rc = -1;
    for (size_t i = 0; i < a->n_prompts; i++) {
        if (a->tokens[i] != NULL) {
            if (parse_ids(a->tokens[i], &ids[i], err)) goto out;
        } else {
            if (tok == NULL && tok_open_dir(&tok, model_dir(m), err)) goto out;
            int32_t bos = tok_bos_id(tok);
            if (a->bos && bos < 0) {
                err_set(err, "%s: the tokenizer has no BOS token; use --no-bos",
                        model_dir(m));
                goto out;
            }
            if (a->bos) {
                ids[i].ids = xmalloc(sizeof(int32_t) * 16);
                ids[i].cap = 16;
                ids[i].ids[ids[i].n++] = bos;
            }
            if (tok_encode(tok, a->prompts[i], strlen(a->prompts[i]), TOK_ALLOW_SPECIAL, &ids[i],
                           err))
                goto out;
        }
        if (ids[i].n != ids[0].n) {
            err_set(err, "prompt %zu has %zu tokens but prompt 1 has %zu: cache needs prompts of "
                    "equal length", i + 1, ids[i].n, ids[0].n);
            goto out;
        }
    }
    rc = 0;
out:
    tok_close(tok);
    return rc;
}

static int write_results(const Args *a, const Model *m, const Fwd *f, const TokIds *ids,
                         const char *path, Err *err)
{
    const ModelConfig *c = model_config(m);
    size_t B = a->n_prompts, T = ids[0].n;
    int rc = -1;
    H5Writer *w = h5w_create(path, err);
    if (w == NULL) return -1;
    int32_t *tok = xmalloc(xmul(B, T) * sizeof *tok);
    for (size_t b = 0; b < B; b++) memcpy(tok + b * T, ids[b].ids, T * sizeof *tok);
    size_t tshape[2] = {B, T};
    size_t lshape[3] = {B, T, c->d_vocab};
    if (h5w_int32(w, "/tokens", tok, tshape, 2, err) ||
        h5w_float(w, "/logits", fwd_logits(f, 0), lshape, 3, err) ||
        h5w_group(w, "/activations", err))
        goto out;
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        HookKind kind = (HookKind)k;
        size_t layers = hook_per_layer(kind) ? c->n_layers : 1;
        for (size_t l = 0; l < layers; l++) {
            char name[128], dset[160];
            hook_name(kind, l, name, sizeof name);
            if (!hook_selected(a, name)) continue;
            size_t shape[5] = {B};
            size_t nd = 1 + hook_shape(c, kind, T, shape + 1);
            snprintf(dset, sizeof dset, "/activations/%s", name);
            if (h5w_float(w, dset, fwd_act(f, kind, l), shape, nd, err)) goto out;
        }
    }
    rc = 0;
out:
    free(tok);
    if (h5w_close(w, rc == 0, err)) rc = -1;
    return rc;
}

int cmd_cache(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    Args a;
    int rc = parse_args(&a, argc, argv);
    Model *m = NULL;
    Fwd *f = NULL;
    TokIds *ids = NULL;
    ModelSeg *segs = NULL;
    Err err;
    if (rc != 0) goto out;
    rc = 1;
    blas_init_threads();
    if (model_open(&m, a.model_dir, &err)) goto fail;
    const ModelConfig *c = model_config(m);
    ids = xcalloc(a.n_prompts, sizeof *ids);
    if (prompt_tokens(&a, m, ids, &err)) goto fail;

    uint8_t keep[HOOK_KIND_COUNT] = {0};
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        size_t layers = hook_per_layer((HookKind)k) ? c->n_layers : 1;
        for (size_t l = 0; l < layers && !keep[k]; l++) {
            char name[128];
            hook_name((HookKind)k, l, name, sizeof name);
            keep[k] = (uint8_t)hook_selected(&a, name);
        }
    }
    f = fwd_new(m, keep);
    segs = xcalloc(a.n_prompts, sizeof *segs);
    for (size_t b = 0; b < a.n_prompts; b++)
        segs[b] = (ModelSeg){.tokens = ids[b].ids, .n_tokens = ids[b].n};
    ModelRun run = {.segs = segs, .n_segs = a.n_prompts, .entry = MODEL_ENTRY_EMBED};
    if (model_forward(m, f, &run, &err)) {
        err_prefix(&err, "%s: ", a.model_dir);
        goto fail;
    }
    if (write_results(&a, m, f, ids, a.out, &err)) goto fail;
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    for (size_t b = 0; ids && b < a.n_prompts; b++) free(ids[b].ids);
    free(ids);
    free(segs);
    fwd_free(f);
    model_close(m);
    free(a.tokens);
    free(a.prompts);
    free(a.hooks);
    return rc;
}
