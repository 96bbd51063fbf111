/* fuzz_cfg — experiment configs and JSON Lines datasets (runner/config.c,
 * runner/dataset.c).
 *
 * An input is a YAML config, optionally followed by a line "#jsonl" and the
 * contents of a JSON Lines file `p.jsonl` that the config may name. Both are
 * written into a directory that holds an empty model directory `m`; the
 * config is loaded and, when that succeeds, resolved against a fake model
 * (4 layers, 4 heads, vocabulary 100, n_ctx 32; no tokenizer). Besides
 * sanitizer reports, the target aborts when the contract of include/cfg.h is
 * broken: an error that is not one line starting with the config's or the
 * dataset's path, an error without *out = NULL, or a resolved Config whose
 * pairs, layers, heads or positions are out of range.
 *
 * Build (from the repository root):
 *
 *     clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *           -fno-sanitize-recover=all -Iinclude tests/fuzz/fuzz_cfg.c \
 *           runner/config.c runner/dataset.c worker/err.c worker/tokenizer.c \
 *           worker/tok_load.c -lyaml -ljansson -lpcre2-8 -o build/fuzz_cfg
 *     mkdir -p build/fuzz/cfg && build/fuzz_cfg -max_len=4096 build/fuzz/cfg tests/data/configs
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "model.h"

static char dir[] = "/tmp/fuzz_cfg.XXXXXX";
static char config_path[64], jsonl_path[64];

static const ModelConfig FAKE = {.family = MODEL_GPT2, .n_layers = 4, .n_heads = 4,
                                 .d_model = 16, .d_head = 4, .d_mlp = 64, .d_vocab = 100,
                                 .n_ctx = 32, .bos_id = -1};

static void write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) abort();
}

static void check_error(const Err *err)
{
    const char *m = err->msg;
    size_t nc = strlen(config_path), nj = strlen(jsonl_path);
    int ok = (strncmp(m, config_path, nc) == 0 && (m[nc] == ':')) ||
             (strncmp(m, jsonl_path, nj) == 0 && m[nj] == ':');
    if (!ok || strchr(m, '\n') != NULL || strlen(m) < nc + 3) {
        fprintf(stderr, "bad error message: \"%s\"\n", m);
        abort();
    }
}

static void check_resolved(const Config *cfg)
{
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const CfgPair *p = &cfg->pairs[i];
        if (p->n_tokens == 0 || p->n_tokens > FAKE.n_ctx || p->answer < 0 || p->wrong < 0 ||
            (size_t)p->answer >= FAKE.d_vocab || (size_t)p->wrong >= FAKE.d_vocab)
            abort();
        for (size_t t = 0; t < p->n_tokens; t++)
            if ((size_t)p->clean[t] >= FAKE.d_vocab || (size_t)p->corrupted[t] >= FAKE.d_vocab)
                abort();
        for (size_t j = 0; j < p->n_positions; j++)
            if (p->positions[j].index < 0 || (size_t)p->positions[j].index >= p->n_tokens) abort();
    }
    for (size_t e = 0; e < cfg->n_exps; e++) {
        const CfgExperiment *x = &cfg->exps[e];
        if (x->n_layers == 0 || x->layers[x->n_layers - 1] >= FAKE.n_layers) abort();
        for (size_t j = 1; j < x->n_layers; j++)
            if (x->layers[j] <= x->layers[j - 1]) abort();
        if ((x->kind >= PATCH_Z) != (x->heads != NULL)) abort();
        for (size_t j = 0; j < x->n_heads; j++)
            if (x->heads[j] >= FAKE.n_heads || (j && x->heads[j] <= x->heads[j - 1])) abort();
        for (size_t j = 0; j < x->n_positions; j++)
            for (size_t i = 0; i < cfg->n_pairs; i++) {
                long at = cfg_pos_index(&x->positions[j], &cfg->pairs[i]);
                if (at < -1 || at >= (long)cfg->pairs[i].n_tokens) abort();
                if (x->positions[j].name != NULL && at < 0) abort();
            }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (config_path[0] == '\0') {
        if (mkdtemp(dir) == NULL) abort();
        snprintf(config_path, sizeof config_path, "%s/c.yaml", dir);
        snprintf(jsonl_path, sizeof jsonl_path, "%s/p.jsonl", dir);
        char m[64];
        snprintf(m, sizeof m, "%s/m", dir);
        if (mkdir(m, 0755) != 0) abort();
    }
    static const char sep[] = "\n#jsonl\n";
    const uint8_t *cut = memmem(data, size, sep, sizeof sep - 1);
    size_t n_yaml = cut ? (size_t)(cut - data) : size;
    write_all(config_path, data, n_yaml);
    unlink(jsonl_path);
    if (cut) {
        size_t skip = n_yaml + sizeof sep - 1;
        write_all(jsonl_path, data + skip, size - skip);
    }

    Config *cfg = (Config *)1;
    Err err = {{0}};
    if (cfg_load(&cfg, config_path, &err) != 0) {
        if (cfg != NULL) abort();
        check_error(&err);
        return 0;
    }
    if (cfg_resolve(cfg, &FAKE, NULL, &err) != 0) {
        if (cfg->resolved) abort();
        check_error(&err);
    } else {
        check_resolved(cfg);
    }
    cfg_free(cfg);
    return 0;
}
