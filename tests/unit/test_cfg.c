/* test_cfg.c — experiment configs: valid configs (inline ids, JSON Lines,
 * every patch kind, "every" groups, selection forms, defaults, text through
 * the real GPT-2 tokenizer), and a corpus of bad configs that must each fail
 * with one line "file:line:col: ..." at the right node.
 *
 * Configs are written into a temporary directory holding an empty model
 * directory `m` (cfg_load only checks that it exists); cfg_resolve runs
 * against a fake 4-layer, 4-head, 100-token, n_ctx-32 ModelConfig.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "model.h"
#include "tok.h"

static char tmp_root[] = "/tmp/test_cfg.XXXXXX";

static const ModelConfig FAKE = {.family = MODEL_GPT2, .n_layers = 4, .n_heads = 4,
                                 .d_model = 16, .d_head = 4, .d_mlp = 64, .d_vocab = 100,
                                 .n_ctx = 32, .bos_id = -1};
/* For text through the GPT-2 tokenizer. */
static const ModelConfig FAKE_GPT2 = {.family = MODEL_GPT2, .n_layers = 2, .n_heads = 4,
                                      .d_model = 16, .d_head = 4, .d_mlp = 64, .d_vocab = 50257,
                                      .n_ctx = 64, .bos_id = 50256};

/* tmp_root/name, in a static buffer rotated so a few can be live at once. */
static const char *tmp_path(const char *fmt, ...)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    int n = snprintf(b, sizeof bufs[0], "%s/", tmp_root);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, sizeof bufs[0] - (size_t)n, fmt, ap);
    va_end(ap);
    return b;
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *name, const char *text)
{
    write_file(tmp_path("%s", name), text, strlen(text));
}

static Config *load_ok(const char *name)
{
    Config *cfg = NULL;
    Err err = {{0}};
    if (cfg_load(&cfg, tmp_path("%s", name), &err) != 0) fail_msg("cfg_load: %s", err.msg);
    assert_non_null(cfg);
    return cfg;
}

static Config *load_text_ok(const char *yaml)
{
    write_text("ok.yaml", yaml);
    return load_ok("ok.yaml");
}

static void resolve_ok(Config *cfg, const ModelConfig *mc, Tok *tok)
{
    Err err = {{0}};
    if (cfg_resolve(cfg, mc, tok, &err) != 0) fail_msg("cfg_resolve: %s", err.msg);
    assert_true(cfg->resolved);
}

static void assert_sizes(const size_t *got, size_t n_got, const size_t *want, size_t n_want)
{
    assert_int_equal(n_got, n_want);
    for (size_t i = 0; i < n_want; i++) assert_int_equal(got[i], want[i]);
}

static void assert_ids(const int32_t *got, const int32_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("id %zu: got %d, want %d", i, got[i], want[i]);
}

static const CfgExperiment *find_exp(const Config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_exps; i++)
        if (strcmp(cfg->exps[i].name, name) == 0) return &cfg->exps[i];
    fail_msg("no experiment '%s'", name);
    return NULL;
}

#define MODEL "model: m\n"
#define PAIRS                                                                                   \
    "dataset:\n"                                                                                \
    "  pairs:\n"                                                                                \
    "    - {clean_tokens: [1, 2, 3], corrupted_tokens: [1, 4, 3], answer_token: 5, "           \
    "wrong_token: 6}\n"
#define EXP "experiments:\n  - {name: a, patch: resid_pre}\n"

/* ---- valid configs ---- */

static void test_full_inline(void **state)
{
    Config *cfg = load_text_ok(
        "# every top-level key\n"
        "model: m\n"
        "output: out/r.h5\n"
        "prepend_bos: false\n"
        "seed: 42\n"
        "units_per_pair: 3\n"
        "metrics: [prob, kl]\n"
        "dataset:\n"
        "  pairs:\n"
        "    - clean_tokens: [1, 2, 3, 4]\n"
        "      corrupted_tokens: [1, 5, 3, 4]\n"
        "      answer_token: 7\n"
        "      wrong_token: 9\n"
        "      positions: {IO: 1, END: -1}\n"
        "    - {clean_tokens: [8, 8], corrupted_tokens: [9, 9], answer_token: 0, "
        "wrong_token: 99, positions: {IO: 0, END: 1}}\n"
        "experiments:\n"
        "  - name: resid\n"
        "    patch: resid_post\n"
        "    by: [layer, pos]\n"
        "    layers: [3, 0]\n"
        "    positions: [IO, -1, 0]\n"
        "    direction: noising\n"
        "    source: zero\n"
        "    metrics: [logit_diff, logit_diff_norm, prob, logprob, kl]\n"
        "  - {name: heads.v1-x, patch: z, heads: {from: 1, to: 2}, source: resample}\n");
    assert_string_equal(cfg->path, tmp_path("ok.yaml"));
    assert_non_null(cfg->text);
    assert_int_equal(cfg->text_len, strlen(cfg->text));
    assert_true(strncmp(cfg->text, "# every top-level key\n", 22) == 0);
    assert_string_equal(cfg->model_dir, tmp_path("m"));
    assert_string_equal(cfg->output, tmp_path("out/r.h5"));
    assert_null(cfg->dataset_file);
    assert_int_equal(cfg->prepend_bos, 0);
    assert_int_equal(cfg->seed, 42);
    assert_int_equal(cfg->units_per_pair, 3);
    assert_int_equal(cfg->model_mark.line, 2);
    assert_int_equal(cfg->model_mark.col, 8);
    assert_int_equal(cfg->dataset_mark.line, 9);

    assert_int_equal(cfg->n_pairs, 2);
    const CfgPair *p = &cfg->pairs[0];
    assert_null(p->clean_text);
    assert_null(p->answer_text);
    assert_int_equal(p->n_tokens, 4);
    assert_ids(p->clean, (int32_t[]){1, 2, 3, 4}, 4);
    assert_ids(p->corrupted, (int32_t[]){1, 5, 3, 4}, 4);
    assert_int_equal(p->answer, 7);
    assert_int_equal(p->wrong, 9);
    assert_int_equal(p->n_positions, 2);
    assert_string_equal(p->positions[0].name, "IO");
    assert_int_equal(p->positions[1].index, -1);
    assert_int_equal(p->mark.line, 10);
    assert_int_equal(p->mark.col, 7);
    assert_int_equal(p->field_mark[CFG_ANSWER].line, 12);
    assert_int_equal(p->field_mark[CFG_ANSWER].col, 21);
    assert_int_equal(cfg->pairs[1].mark.line, 15);
    assert_int_equal(cfg->pairs[1].mark.col, 7);

    assert_int_equal(cfg->n_exps, 2);
    const CfgExperiment *x = &cfg->exps[0];
    assert_string_equal(x->name, "resid");
    assert_int_equal(x->kind, PATCH_RESID_POST);
    assert_int_equal(x->per_pos, 1);
    assert_sizes(x->layers, x->n_layers, (size_t[]){0, 3}, 2); /* sorted at load */
    assert_null(x->heads);
    assert_int_equal(x->n_positions, 3);
    assert_string_equal(x->positions[0].name, "IO");
    assert_null(x->positions[1].name);
    assert_int_equal(x->positions[1].index, -1);
    assert_int_equal(x->dir, DIR_NOISING);
    assert_int_equal(x->source, SRC_ZERO);
    assert_int_equal(x->metrics, (1u << METRIC_COUNT) - 1);
    assert_int_equal(x->mark.line, 17);
    assert_int_equal(x->mark.col, 5);
    assert_int_equal(x->source_mark.line, 23);
    x = &cfg->exps[1];
    assert_string_equal(x->name, "heads.v1-x");
    assert_int_equal(x->kind, PATCH_Z);
    assert_int_equal(x->per_pos, 0);
    assert_true(x->layer_sel.all);
    assert_false(x->head_sel.all);
    assert_int_equal(x->head_sel.from, 1);
    assert_int_equal(x->head_sel.to, 2);
    assert_null(x->heads); /* a range is expanded by cfg_resolve */
    assert_null(x->positions);
    assert_int_equal(x->source, SRC_RESAMPLE);
    assert_int_equal(x->metrics, (1u << METRIC_PROB) | (1u << METRIC_KL));

    resolve_ok(cfg, &FAKE, NULL);
    x = &cfg->exps[0];
    assert_sizes(x->layers, x->n_layers, (size_t[]){0, 3}, 2);
    assert_int_equal(cfg->pairs[0].positions[1].index, 3); /* END: -1 of 4 tokens */
    assert_int_equal(cfg->pairs[1].positions[1].index, 1);
    assert_int_equal(cfg_pos_index(&x->positions[0], &cfg->pairs[0]), 1); /* IO */
    assert_int_equal(cfg_pos_index(&x->positions[0], &cfg->pairs[1]), 0);
    assert_int_equal(cfg_pos_index(&x->positions[1], &cfg->pairs[0]), 3); /* -1 */
    assert_int_equal(cfg_pos_index(&x->positions[1], &cfg->pairs[1]), 1);
    x = &cfg->exps[1];
    assert_sizes(x->layers, x->n_layers, (size_t[]){0, 1, 2, 3}, 4);
    assert_sizes(x->heads, x->n_heads, (size_t[]){1, 2}, 2);
    cfg_free(cfg);
}

static void test_defaults(void **state)
{
    Config *cfg = load_text_ok(MODEL PAIRS
                               "experiments:\n"
                               "  - {name: r, patch: resid_pre}\n"
                               "  - {name: h, patch: pattern}\n");
    assert_string_equal(cfg->output, tmp_path("ok.h5"));
    assert_int_equal(cfg->prepend_bos, 1);
    assert_int_equal(cfg->seed, 0);
    assert_int_equal(cfg->units_per_pair, 0);
    const CfgExperiment *r = &cfg->exps[0], *h = &cfg->exps[1];
    assert_int_equal(r->per_pos, 1);
    assert_int_equal(r->dir, DIR_DENOISING);
    assert_int_equal(r->source, SRC_OTHER);
    assert_int_equal(r->metrics, 1u << METRIC_LOGIT_DIFF);
    assert_true(r->layer_sel.all);
    assert_null(r->layers);
    assert_null(r->positions);
    assert_int_equal(r->source_mark.line, r->mark.line);
    assert_int_equal(h->per_pos, 0); /* head kinds: [layer, head] by default */
    assert_true(h->head_sel.all);
    resolve_ok(cfg, &FAKE, NULL);
    assert_sizes(r->layers, r->n_layers, (size_t[]){0, 1, 2, 3}, 4);
    assert_null(r->heads);
    assert_int_equal(r->n_heads, 0);
    assert_sizes(h->heads, h->n_heads, (size_t[]){0, 1, 2, 3}, 4);
    cfg_free(cfg);

    /* The top-level metrics are the default of every experiment, wherever they are written. */
    cfg = load_text_ok(EXP PAIRS MODEL "metrics: [kl]\n");
    assert_int_equal(cfg->exps[0].metrics, 1u << METRIC_KL);
    cfg_free(cfg);

    /* Output and model relative to the config's directory; absolute paths kept. */
    assert_int_equal(mkdir(tmp_path("sub"), 0755), 0);
    write_text("sub/x.config.yml", "model: ../m\noutput: /abs/o.h5\n" PAIRS EXP);
    cfg = load_ok("sub/x.config.yml");
    assert_string_equal(cfg->model_dir, tmp_path("sub/../m"));
    assert_string_equal(cfg->output, "/abs/o.h5");
    cfg_free(cfg);
    write_text("sub/noext", "model: ../m\n" PAIRS EXP);
    cfg = load_ok("sub/noext");
    assert_string_equal(cfg->output, tmp_path("sub/noext.h5"));
    cfg_free(cfg);
}

static void test_every_patch_kind(void **state)
{
    static const char *const names[PATCH_KIND_COUNT] = {
        "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
        "z",         "q",         "k",          "v",        "pattern"};
    char yaml[4096];
    int o = snprintf(yaml, sizeof yaml, MODEL PAIRS "experiments:\n");
    for (int k = 0; k < PATCH_KIND_COUNT; k++)
        o += snprintf(yaml + o, sizeof yaml - (size_t)o, "  - {name: e%d, patch: %s}\n", k,
                      names[k]);
    o += snprintf(yaml + o, sizeof yaml - (size_t)o,
                  "  - {name: zp, patch: z, by: [layer, pos, head], positions: [0, -1]}\n");
    Config *cfg = load_text_ok(yaml);
    assert_int_equal(cfg->n_exps, PATCH_KIND_COUNT + 1);
    for (int k = 0; k < PATCH_KIND_COUNT; k++) {
        const CfgExperiment *x = &cfg->exps[k];
        assert_int_equal(x->kind, k);
        assert_string_equal(cfg_patch_name(x->kind), names[k]);
        assert_int_equal(x->per_pos, k < PATCH_Z);
    }
    const CfgExperiment *zp = &cfg->exps[PATCH_KIND_COUNT];
    assert_int_equal(zp->per_pos, 1);
    assert_int_equal(zp->n_positions, 2);
    resolve_ok(cfg, &FAKE, NULL);
    for (int k = 0; k < PATCH_KIND_COUNT; k++)
        assert_int_equal(cfg->exps[k].n_heads, k < PATCH_Z ? 0 : 4);
    cfg_free(cfg);

    assert_string_equal(cfg_metric_name(METRIC_LOGIT_DIFF_NORM), "logit_diff_norm");
    assert_string_equal(cfg_metric_name(METRIC_KL), "kl");
    assert_string_equal(cfg_dir_name(DIR_NOISING), "noising");
    assert_string_equal(cfg_source_name(SRC_RESAMPLE), "resample");
    assert_string_equal(cfg_source_name(SRC_MEAN), "mean");
}

static void test_every_groups(void **state)
{
    Config *cfg = load_text_ok(MODEL PAIRS
                               "experiments:\n"
                               "  - {name: blk, patch: block_every, layers: [1], positions: [0],"
                               " direction: noising, metrics: [prob]}\n"
                               "  - {name: hd, patch: head_every, heads: [0, 3]}\n"
                               "  - {name: hp, patch: head_every, by: [layer, pos, head],"
                               " positions: [-1]}\n");
    static const char *const want[] = {"blk_resid_pre", "blk_attn_out", "blk_mlp_out",
                                       "hd_z", "hd_q", "hd_k", "hd_v", "hd_pattern",
                                       "hp_z", "hp_q", "hp_k", "hp_v", "hp_pattern"};
    static const PatchKind kinds[] = {PATCH_RESID_PRE, PATCH_ATTN_OUT, PATCH_MLP_OUT,
                                      PATCH_Z, PATCH_Q, PATCH_K, PATCH_V, PATCH_PATTERN};
    assert_int_equal(cfg->n_exps, 13);
    for (size_t i = 0; i < 13; i++) {
        const CfgExperiment *x = &cfg->exps[i];
        assert_string_equal(x->name, want[i]);
        assert_int_equal(x->kind, kinds[i < 3 ? i : 3 + (i - 3) % 5]);
        assert_int_equal(x->per_pos, i < 3 || i >= 8);
        assert_int_equal(x->mark.line, i < 3 ? 6 : i < 8 ? 7 : 8);
    }
    const CfgExperiment *b = find_exp(cfg, "blk_mlp_out");
    assert_int_equal(b->dir, DIR_NOISING);
    assert_int_equal(b->metrics, 1u << METRIC_PROB);
    assert_sizes(b->layers, b->n_layers, (size_t[]){1}, 1);
    assert_int_equal(b->n_positions, 1);
    assert_null(find_exp(cfg, "hd_pattern")->positions);
    assert_sizes(find_exp(cfg, "hd_v")->heads, find_exp(cfg, "hd_v")->n_heads,
                 (size_t[]){0, 3}, 2);
    assert_int_equal(find_exp(cfg, "hp_k")->positions[0].index, -1);
    resolve_ok(cfg, &FAKE, NULL);
    assert_sizes(find_exp(cfg, "hd_q")->heads, find_exp(cfg, "hd_q")->n_heads, (size_t[]){0, 3},
                 2);
    assert_int_equal(find_exp(cfg, "hp_q")->n_heads, 4);
    cfg_free(cfg);
}

static void test_selection_forms(void **state)
{
    Config *cfg = load_text_ok(MODEL
                               "dataset:\n"
                               "  pairs:\n"
                               "    - clean_tokens: [1, 2, 3, 4, 5]\n"
                               "      corrupted_tokens: [1, 2, 3, 4, 6]\n"
                               "      answer_token: 1\n"
                               "      wrong_token: 2\n"
                               "      positions: {S: 1, E: -1}\n"
                               "    - clean_tokens: [1, 2]\n"
                               "      corrupted_tokens: [3, 4]\n"
                               "      answer_token: 1\n"
                               "      wrong_token: 2\n"
                               "      positions: {S: 0, E: 1}\n"
                               "experiments:\n"
                               "  - {name: all, patch: mlp_out, layers: all, positions: all}\n"
                               "  - {name: rng, patch: v, layers: {from: 1, to: 3}, heads: all}\n"
                               "  - {name: one, patch: q, layers: {to: 2, from: 2}, heads: [2]}\n"
                               "  - name: mix\n"
                               "    patch: resid_mid\n"
                               "    layers: [2, 0, 1]\n"
                               "    positions: [E, 4, -5, S, 0]\n");
    resolve_ok(cfg, &FAKE, NULL);
    const CfgExperiment *all = find_exp(cfg, "all"), *rng = find_exp(cfg, "rng"),
                        *one = find_exp(cfg, "one"), *mix = find_exp(cfg, "mix");
    assert_int_equal(all->n_layers, 4);
    assert_null(all->positions);
    assert_sizes(rng->layers, rng->n_layers, (size_t[]){1, 2, 3}, 3);
    assert_int_equal(rng->n_heads, 4);
    assert_sizes(one->layers, one->n_layers, (size_t[]){2}, 1);
    assert_sizes(one->heads, one->n_heads, (size_t[]){2}, 1);
    assert_sizes(mix->layers, mix->n_layers, (size_t[]){0, 1, 2}, 3);
    /* positions keep their written order; per pair: an index out of range is -1 */
    const CfgPair *p5 = &cfg->pairs[0], *p2 = &cfg->pairs[1];
    static const long want5[] = {4, 4, 0, 1, 0}, want2[] = {1, -1, -1, 0, 0};
    assert_int_equal(mix->n_positions, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(cfg_pos_index(&mix->positions[i], p5), want5[i]);
        assert_int_equal(cfg_pos_index(&mix->positions[i], p2), want2[i]);
    }
    CfgPos missing = {"nope", 0, {NULL, 0, 0}};
    assert_int_equal(cfg_pos_index(&missing, p5), -1);
    cfg_free(cfg);
}

static void test_jsonl(void **state)
{
    assert_int_equal(mkdir(tmp_path("j"), 0755), 0);
    assert_int_equal(mkdir(tmp_path("j/data"), 0755), 0);
    const char jsonl[] =
        "\xEF\xBB\xBF{\"clean_tokens\": [1, 2, 3], \"corrupted_tokens\": [1, 4, 3], "
        "\"answer_token\": 5, \"wrong_token\": 6, \"positions\": {\"X\": -2}}\n"
        "\n"
        "   \t\r\n"
        "{\"clean_tokens\": [9, 8], \"corrupted_tokens\": [9, 7], \"answer_token\": 0, "
        "\"wrong_token\": 1, \"positions\": {\"X\": 0}}\r\n"
        "{\"clean\": \"text \\u00e9\", \"corrupted\": \"other\", \"answer\": \" a\", "
        "\"wrong_token\": 1, \"positions\": {\"X\": 1}}"; /* no final newline */
    write_file(tmp_path("j/data/p.jsonl"), jsonl, sizeof jsonl - 1);
    write_text("j/c.yaml", "model: ../m\ndataset: {file: data/p.jsonl}\n"
                           "experiments: [{name: a, patch: resid_pre, positions: [X]}]\n");
    Config *cfg = load_ok("j/c.yaml");
    assert_string_equal(cfg->dataset_file, tmp_path("j/data/p.jsonl"));
    assert_int_equal(cfg->n_pairs, 3);
    static const int lines[] = {1, 4, 5};
    for (size_t i = 0; i < 3; i++) {
        const CfgPair *p = &cfg->pairs[i];
        assert_string_equal(p->mark.file, cfg->dataset_file);
        assert_int_equal(p->mark.line, lines[i]);
        assert_int_equal(p->mark.col, 0);
        assert_int_equal(p->field_mark[CFG_WRONG].line, lines[i]);
        assert_int_equal(p->positions[0].mark.line, lines[i]);
    }
    assert_ids(cfg->pairs[1].corrupted, (int32_t[]){9, 7}, 2);
    assert_int_equal(cfg->pairs[1].n_tokens, 2);
    const CfgPair *t = &cfg->pairs[2];
    assert_string_equal(t->clean_text, "text \xC3\xA9");
    assert_string_equal(t->answer_text, " a");
    assert_null(t->clean);
    assert_int_equal(t->answer, -1);
    assert_int_equal(t->wrong, 1);
    assert_int_equal(t->n_tokens, 0);
    cfg_free(cfg);
}

/* Anchors and aliases are YAML: a shared positions map, a repeated pair. */
static void test_aliases(void **state)
{
    Config *cfg = load_text_ok(MODEL
                               "dataset:\n"
                               "  pairs:\n"
                               "    - &p {clean_tokens: [1, 2], corrupted_tokens: [3, 4],"
                               " answer_token: 5, wrong_token: 6, positions: &pos {A: 1}}\n"
                               "    - *p\n"
                               "    - {clean_tokens: [1], corrupted_tokens: [3], answer_token: 5,"
                               " wrong_token: 6, positions: *pos}\n"
                               EXP);
    assert_int_equal(cfg->n_pairs, 3);
    assert_ids(cfg->pairs[1].corrupted, (int32_t[]){3, 4}, 2);
    assert_string_equal(cfg->pairs[2].positions[0].name, "A");
    cfg_free(cfg);
}

/* The GPT-2 tokenizer of the shared data directory: $PATCHGRID_SHARED, by
 * default ../shared beside the repository (the tests run from its root). */
static Tok *open_gpt2(void)
{
    const char *shared = getenv("PATCHGRID_SHARED");
    char dir[1024], vocab[1100];
    snprintf(dir, sizeof dir, "%s/tokenizers/gpt2", shared && *shared ? shared : "../shared");
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    if (access(vocab, R_OK) != 0)
        fail_msg("GPT-2 tokenizer files missing: %s not found (looked in "
                 "$PATCHGRID_SHARED/tokenizers/gpt2, default ../shared)", vocab);
    Tok *tok = NULL;
    Err err = {{0}};
    if (tok_open_dir(&tok, dir, &err) != 0) fail_msg("%s", err.msg);
    return tok;
}

static void test_text_pairs(void **state)
{
    Tok *tok = open_gpt2();
    Config *cfg = load_text_ok(
        MODEL
        "dataset:\n"
        "  pairs:\n"
        "    - clean: \"When Mary and John went to the store, John gave a drink to\"\n"
        "      corrupted: \"When Mary and John went to the store, Mary gave a drink to\"\n"
        "      answer: \" Mary\"\n"
        "      wrong: \" John\"\n"
        "      positions: {IO: 2, S1: 4, S2: 10, END: -1}\n"
        "    - clean: 'When John and Mary went to the store, Mary gave a drink to'\n"
        "      corrupted_tokens: [50256, 2215, 1757, 290, 5335, 1816, 284, 262, 3650, 11,"
        " 1757, 2921, 257, 4144, 284]\n"
        "      answer_token: 1757\n"
        "      wrong: \" Mary\"\n"
        "      positions: {IO: 2, S1: 4, S2: 10, END: -1}\n"
        "    - {clean: \"<|endoftext|>x\", corrupted: \"<|endoftext|>y\", answer: \" a\","
        " wrong: \" b\", positions: {IO: 0, S2: 1, END: 2}}\n"
        "experiments:\n"
        "  - {name: r, patch: resid_pre, positions: [IO, S2, END]}\n");
    resolve_ok(cfg, &FAKE_GPT2, tok);
    const CfgPair *p = &cfg->pairs[0];
    static const int32_t clean[] = {50256, 2215, 5335, 290, 1757, 1816, 284, 262,
                                    3650, 11, 1757, 2921, 257, 4144, 284};
    assert_int_equal(p->n_tokens, 15);
    assert_ids(p->clean, clean, 15);
    assert_int_equal(p->corrupted[10], 5335);
    assert_int_equal(p->answer, 5335);
    assert_int_equal(p->wrong, 1757);
    assert_int_equal(p->positions[3].index, 14);
    assert_string_equal(p->clean_text, "When Mary and John went to the store, John gave a drink to");
    p = &cfg->pairs[1];
    assert_int_equal(p->n_tokens, 15);
    assert_int_equal(p->clean[2], 1757);
    assert_int_equal(p->answer, 1757);
    assert_int_equal(p->wrong, 5335);
    assert_null(p->corrupted_text);
    /* Special tokens in text are read as such, as TransformerLens (HF) does. */
    p = &cfg->pairs[2];
    assert_int_equal(p->n_tokens, 3);
    assert_ids(p->clean, (int32_t[]){50256, 50256, 87}, 3);
    const CfgExperiment *x = &cfg->exps[0];
    assert_int_equal(cfg_pos_index(&x->positions[1], &cfg->pairs[0]), 10);
    cfg_free(cfg);

    /* prepend_bos: false */
    cfg = load_text_ok(MODEL "prepend_bos: false\n"
                       "dataset: {pairs: [{clean: Hello, corrupted: World, answer: ' x',"
                       " wrong_token: 3}]}\n" EXP);
    resolve_ok(cfg, &FAKE_GPT2, tok);
    assert_int_equal(cfg->pairs[0].n_tokens, 1);
    assert_int_equal(cfg->pairs[0].clean[0], 15496); /* "Hello" */
    cfg_free(cfg);
    tok_close(tok);
}

/* The configs of tests/data/configs (paths relative to the repository root,
 * where tests/run_all.sh runs the tests). */
#define DATA "tests/data/configs/"

static Config *load_data(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    if (access(path, R_OK) != 0) fail_msg("%s not found: run the tests from the repository root", path);
    Config *cfg = NULL;
    Err err = {{0}};
    if (cfg_load(&cfg, path, &err) != 0) fail_msg("cfg_load: %s", err.msg);
    return cfg;
}

static void test_data_configs(void **state)
{
    Config *cfg = load_data("ids_all_kinds.yaml");
    assert_string_equal(cfg->model_dir, DATA ".");
    assert_string_equal(cfg->output, DATA "ids_all_kinds.h5");
    assert_int_equal(cfg->seed, 7);
    assert_int_equal(cfg->n_pairs, 2);
    assert_int_equal(cfg->n_exps, 11 + 3 + 5);
    resolve_ok(cfg, &FAKE_GPT2, NULL);
    assert_int_equal(find_exp(cfg, "mlp")->source, SRC_MEAN);
    assert_int_equal(find_exp(cfg, "mlp")->metrics, 1u << METRIC_KL);
    assert_int_equal(find_exp(cfg, "q")->metrics,
                     (1u << METRIC_LOGIT_DIFF) | (1u << METRIC_PROB));
    assert_sizes(find_exp(cfg, "post")->layers, find_exp(cfg, "post")->n_layers,
                 (size_t[]){0, 1}, 2);
    assert_int_equal(find_exp(cfg, "hd_pattern")->per_pos, 1);
    assert_string_equal(find_exp(cfg, "hd_v")->positions[0].name, "END");
    assert_int_equal(cfg->pairs[1].positions[1].index, 4);
    cfg_free(cfg);

    /* Text in a JSON Lines file: without a tokenizer, a clear error naming the line. */
    cfg = load_data("jsonl_pairs.yaml");
    assert_string_equal(cfg->dataset_file, DATA "jsonl_pairs.jsonl");
    assert_string_equal(cfg->output, DATA "jsonl_pairs_out.h5");
    assert_int_equal(cfg->n_pairs, 2);
    assert_string_equal(cfg->pairs[1].clean_text, "I like cats");
    Err err = {{0}};
    assert_int_equal(cfg_resolve(cfg, &FAKE_GPT2, NULL, &err), -1);
    assert_string_equal(err.msg, DATA "jsonl_pairs.jsonl:3: pair 2: \"clean\" is text, but the "
                        "model directory '" DATA ".' has no tokenizer (give \"clean_tokens\" as "
                        "token ids)");
    cfg_free(cfg);

    Tok *tok = open_gpt2();
    cfg = load_data("jsonl_pairs.yaml");
    resolve_ok(cfg, &FAKE_GPT2, tok);
    assert_ids(cfg->pairs[1].clean, (int32_t[]){50256, 40, 588, 11875}, 4);
    assert_ids(cfg->pairs[1].corrupted, cfg->pairs[0].corrupted, 4);
    cfg_free(cfg);

    cfg = load_data("text_ioi.yaml");
    resolve_ok(cfg, &FAKE_GPT2, tok);
    static const int32_t tom[] = {50256, 2215, 4186, 290, 3700, 1816, 284, 262,
                                  3952, 11, 4186, 2921, 257, 2613, 284};
    assert_ids(cfg->pairs[1].corrupted, tom, 15);
    assert_int_equal(cfg->pairs[1].answer, 4186);
    assert_int_equal(cfg->pairs[1].wrong, 3700);
    assert_int_equal(cfg->pairs[1].positions[3].index, 14);
    assert_int_equal(cfg->n_exps, 6);
    cfg_free(cfg);
    tok_close(tok);
}

/* ---- errors ---- */

typedef enum Stage { AT_LOAD, AT_RESOLVE, AT_RESOLVE_GPT2 } Stage;

typedef struct ErrCase {
    const char *yaml;   /* written to c.yaml */
    const char *jsonl;  /* or NULL: written to p.jsonl */
    const char *where;  /* the message starts with tmp_root/where + ": " */
    const char *phrase; /* and contains this */
    Stage stage;
} ErrCase;

#define LOAD(yaml, where, phrase) {yaml, NULL, where, phrase, AT_LOAD}
#define JSONL(jsonl, where, phrase)                                                             \
    {MODEL "dataset: {file: p.jsonl}\n" EXP, jsonl, where, phrase, AT_LOAD}
#define RESOLVE(yaml, where, phrase) {yaml, NULL, where, phrase, AT_RESOLVE}

/* A complete pair in JSON. */
#define JPAIR "{\"clean_tokens\": [1, 2], \"corrupted_tokens\": [1, 3], \"answer_token\": 4, " \
              "\"wrong_token\": 5}\n"
/* experiments: [{name: a, patch: resid_pre, <extra>}] — values of `extra` start at column 38 */
#define EXPX(extra) "experiments: [{name: a, patch: resid_pre, " extra "}]\n"
/* one pair of tokens with `extra` keys; these start at column 99 */
#define PAIRX(extra)                                                                            \
    "dataset:\n  pairs:\n    - {clean_tokens: [1, 2, 3], corrupted_tokens: [1, 4, 3], "        \
    "answer_token: 5, wrong_token: 6" extra "}\n"

static const ErrCase cases[] = {
    /* the file and its YAML */
    LOAD(MODEL "modle: m\n" PAIRS EXP, "c.yaml:2:1", "unknown key 'modle' (expected one of: model, "
         "output, prepend_bos, seed, units_per_pair, pairs_per_unit, activations, metrics, dataset, experiments)"),
    LOAD(MODEL PAIRS EXP "model: m\n", "c.yaml:7:1", "duplicate key 'model' (first given at line 1)"),
    LOAD(PAIRS EXP, "c.yaml:1:1", "the config is missing key 'model'"),
    LOAD(MODEL EXP, "c.yaml:1:1", "the config is missing key 'dataset'"),
    LOAD("model: nodir\n" PAIRS EXP, "c.yaml:1:8", "nodir' does not exist"),
    LOAD("model: c.yaml\n" PAIRS EXP, "c.yaml:1:8", "c.yaml' is not a directory"),
    LOAD(MODEL "  x: : y\n", "c.yaml:2:4", "mapping values are not allowed in this context"),
    LOAD(MODEL "experiments: [a, b\n", "c.yaml:3:1",
         "did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 14)"),
    LOAD(MODEL "\tseed: 1\n", "c.yaml:2:1", "found a tab character that violates indentation"),
    LOAD(MODEL "seed: *nope\n", "c.yaml:2:7", "found undefined alias"),
    LOAD("# nothing\n", "c.yaml", "the config is empty"),
    LOAD(MODEL PAIRS EXP "---\nmodel: m\n", "c.yaml:7:1", "a config is one YAML document"),
    LOAD("- model: m\n", "c.yaml:1:1", "the config must be a mapping (key: value), not a list"),
    LOAD(MODEL "seed: 1 2: 3\n", "c.yaml:2:10", "mapping values are not allowed"),
    LOAD("model: m\xff\n", "c.yaml:1:9", "invalid leading UTF-8 octet (0xFF)"),
    /* messages stay on one line whatever the file holds */
    LOAD(MODEL "\"se\\ned\": 1\n", "c.yaml:2:1", "unknown key 'se\\ned' (expected one of"),
    LOAD(MODEL PAIRS "experiments: [{name: a, patch: \"z\\n\\tx\"}]\n", "c.yaml:5:32",
         "unknown patch kind 'z\\n\\tx'"),
    LOAD(MODEL "seed: !!int \"1\\n2\"\n" PAIRS EXP, "c.yaml:2:7",
         "'seed' must be a decimal integer, not 1\\n2"),
    LOAD("model: \"m\\n\"\n" PAIRS EXP, "c.yaml:1:8", "'model' must not contain control characters"),
    /* top-level scalars */
    LOAD(MODEL "seed: \"3\"\n" PAIRS EXP, "c.yaml:2:7", "'seed' must be an integer, not the string \"3\""),
    LOAD(MODEL "seed: 1e3\n" PAIRS EXP, "c.yaml:2:7", "'seed' must be an integer, not 1e3"),
    LOAD(MODEL "seed: 2.0\n" PAIRS EXP, "c.yaml:2:7", "'seed' must be an integer, not 2.0"),
    LOAD(MODEL "seed: true\n" PAIRS EXP, "c.yaml:2:7", "'seed' must be an integer, not true"),
    LOAD(MODEL "seed: 0x10\n" PAIRS EXP, "c.yaml:2:7", "'seed' must be a decimal integer, not 0x10"),
    LOAD(MODEL "seed: 99999999999999999999\n" PAIRS EXP, "c.yaml:2:7",
         "'seed' must be an integer from 0 to 9223372036854775807, not 99999999999999999999"),
    LOAD(MODEL "seed:\n" PAIRS EXP, "c.yaml:2:6", "'seed' must be an integer, not an empty value"),
    LOAD(MODEL "units_per_pair: -1\n" PAIRS EXP, "c.yaml:2:17",
         "'units_per_pair' must be an integer from 0 to 2147483647, not -1"),
    LOAD(MODEL "prepend_bos: yes\n" PAIRS EXP, "c.yaml:2:14",
         "'prepend_bos' must be true or false, not the string \"yes\" (YAML 1.2 booleans are only "
         "true and false)"),
    LOAD(MODEL "prepend_bos: 1\n" PAIRS EXP, "c.yaml:2:14", "'prepend_bos' must be true or false, not 1"),
    LOAD("model: 12\n" PAIRS EXP, "c.yaml:1:8", "'model' must be a string, not 12 (quote it"),
    LOAD("model: \"\"\n" PAIRS EXP, "c.yaml:1:8", "'model' must not be empty"),
    LOAD("model: [m]\n" PAIRS EXP, "c.yaml:1:8", "'model' must be a string, not a list"),
    LOAD(MODEL "metrics: [logit_diff, foo]\n" PAIRS EXP, "c.yaml:2:23",
         "unknown metric 'foo' (expected one of: logit_diff, logit_diff_norm, prob, logprob, kl)"),
    LOAD(MODEL "metrics: logit_diff\n" PAIRS EXP, "c.yaml:2:10",
         "'metrics' must be a list of metric names, not the string \"logit_diff\""),
    LOAD(MODEL "metrics: []\n" PAIRS EXP, "c.yaml:2:10", "'metrics' must not be an empty list"),
    LOAD(MODEL "metrics: [prob, prob]\n" PAIRS EXP, "c.yaml:2:17", "metric 'prob' is listed twice"),
    /* the dataset */
    LOAD(MODEL "dataset:\n  pairs: []\n  file: p.jsonl\n" EXP, "c.yaml:4:3",
         "'dataset' takes 'pairs' or 'file', not both"),
    LOAD(MODEL "dataset: {}\n" EXP, "c.yaml:2:10", "'dataset' needs 'pairs' (a list of pairs) or "
         "'file' (a JSON Lines file)"),
    LOAD(MODEL "dataset: [1]\n" EXP, "c.yaml:2:10", "'dataset' must be a mapping (key: value), not a list"),
    LOAD(MODEL "dataset: {pair: []}\n" EXP, "c.yaml:2:11", "unknown key 'pair' (expected one of: pairs, file)"),
    LOAD(MODEL "dataset: {pairs: []}\n" EXP, "c.yaml:2:18", "'pairs' must not be an empty list"),
    LOAD(MODEL "dataset: {file: nope.jsonl}\n" EXP, "c.yaml:2:17",
         "cannot open dataset file '" /* tmp_root */),
    LOAD(MODEL "dataset: {file: m}\n" EXP, "c.yaml:2:17", "m' is a directory"),
    LOAD(MODEL "dataset: {pairs: [[1, 2]]}\n" EXP, "c.yaml:2:19", "a pair must be a mapping (key: value), not a list"),
    LOAD(MODEL PAIRX(", clean: x") EXP, "c.yaml:4:95", "give 'clean' or 'clean_tokens', not both"),
    LOAD(MODEL "dataset: {pairs: [{clean: a, corrupted: b, answer: c}]}\n" EXP, "c.yaml:2:19",
         "missing key 'wrong' (or 'wrong_token')"),
    LOAD(MODEL "dataset: {pairs: [{clean: a, corrupted: b, answer: c, wrong: '', x: 1}]}\n" EXP,
         "c.yaml:2:62", "'wrong' must not be empty"),
    LOAD(MODEL "dataset: {pairs: [{clean: a, corrupted: b, answer: c, wrong: d, x: 1}]}\n" EXP,
         "c.yaml:2:65", "unknown key 'x' (expected one of: clean, corrupted, answer, wrong, "
         "clean_tokens, corrupted_tokens, answer_token, wrong_token, positions)"),
    LOAD(MODEL "dataset: {pairs: [{clean_tokens: [1, -2]}]}\n" EXP, "c.yaml:2:38",
         "a token id in 'clean_tokens' must be an integer from 0 to 2147483647, not -2"),
    LOAD(MODEL "dataset: {pairs: [{clean_tokens: [1, 2.5]}]}\n" EXP, "c.yaml:2:38",
         "a token id in 'clean_tokens' must be an integer, not 2.5"),
    LOAD(MODEL "dataset: {pairs: [{clean_tokens: 3}]}\n" EXP, "c.yaml:2:34",
         "'clean_tokens' must be a list of token ids, not 3"),
    LOAD(MODEL "dataset: {pairs: [{clean_tokens: []}]}\n" EXP, "c.yaml:2:34",
         "'clean_tokens' must not be an empty list"),
    LOAD(MODEL "dataset: {pairs: [{answer_token: \"5\"}]}\n" EXP, "c.yaml:2:34",
         "'answer_token' must be an integer, not the string \"5\""),
    LOAD(MODEL "dataset: {pairs: [{clean_tokens: [1, 2], corrupted_tokens: [1], answer_token: 1,"
         " wrong_token: 2}]}\n" EXP, "c.yaml:2:19",
         "pair 1: clean prompt has 2 tokens but corrupted has 1; they must match"),
    LOAD(MODEL PAIRX(", positions: {1x: 2}") EXP, "c.yaml:4:107", "a position name must be a letter"),
    LOAD(MODEL PAIRX(", positions: {all: 2}") EXP, "c.yaml:4:107", "(and not \"all\")"),
    LOAD(MODEL PAIRX(", positions: {A: 1, A: 2}") EXP, "c.yaml:4:116",
         "duplicate position 'A' (first given at line 4)"),
    LOAD(MODEL PAIRX(", positions: {A: x}") EXP, "c.yaml:4:110",
         "position 'A' must be an integer, not the string \"x\""),
    LOAD(MODEL PAIRX(", positions: {A: -3000000000}") EXP, "c.yaml:4:110",
         "position 'A' must be an integer from -2147483647 to 2147483647, not -3000000000"),
    LOAD(MODEL PAIRX(", positions: [1]") EXP, "c.yaml:4:106", "'positions' must be a mapping of names"),
    /* experiments */
    LOAD(MODEL PAIRS, "c.yaml:1:1", "the config is missing key 'experiments'"),
    LOAD(MODEL PAIRS "experiments: []\n", "c.yaml:5:14", "'experiments' must not be an empty list"),
    LOAD(MODEL PAIRS "experiments: {name: a}\n", "c.yaml:5:14", "'experiments' must be a list of "
         "experiments, not a mapping"),
    LOAD(MODEL PAIRS "experiments:\n  - {patch: z}\n", "c.yaml:6:5", "an experiment is missing key 'name'"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a}\n", "c.yaml:6:5", "an experiment is missing key 'patch'"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a b, patch: z}\n", "c.yaml:6:12",
         "experiment name \"a b\" must be made of letters, digits, '_', '.' and '-'"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: .., patch: z}\n", "c.yaml:6:12", "experiment name \"..\""),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a, patch: resid}\n", "c.yaml:6:22",
         "unknown patch kind 'resid' (expected one of: resid_pre, resid_mid, resid_post, attn_out, "
         "mlp_out, z, q, k, v, pattern, block_every, head_every)"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a, patch: resid_pre, layer: 1}\n", "c.yaml:6:33",
         "unknown key 'layer' (expected one of: name, patch, by, layers, heads, positions, "
         "direction, source, metrics)"),
    LOAD(MODEL PAIRS EXPX("by: [layer, head]"), "c.yaml:5:47",
         "patch resid_pre is per (layer, pos): 'by' must be [layer, pos]"),
    LOAD(MODEL PAIRS "experiments: [{name: a, patch: z, by: [layer, pos]}]\n", "c.yaml:5:39",
         "patch z is per head: 'by' must be [layer, head] or [layer, pos, head]"),
    LOAD(MODEL PAIRS EXPX("by: [pos, layer]"), "c.yaml:5:47",
         "'by' must be [layer, pos], [layer, head] or [layer, pos, head]"),
    LOAD(MODEL PAIRS EXPX("heads: [1]"), "c.yaml:5:43",
         "'heads' is only for head patches (z, q, k, v, pattern, head_every); patch resid_pre has "
         "no head axis"),
    LOAD(MODEL PAIRS "experiments: [{name: a, patch: head_every, positions: [0]}]\n", "c.yaml:5:44",
         "'positions' is not allowed with by: [layer, head], which patches all positions at once"),
    LOAD(MODEL PAIRS EXPX("layers: some"), "c.yaml:5:51",
         "'layers' must be \"all\", a list of integers or {from, to}, not the string \"some\""),
    LOAD(MODEL PAIRS EXPX("layers: 2"), "c.yaml:5:51",
         "'layers' must be \"all\", a list of integers or {from, to}, not 2"),
    LOAD(MODEL PAIRS EXPX("layers: {from: 3, to: 1}"), "c.yaml:5:65",
         "'layers': 'from' (3) is greater than 'to' (1)"),
    LOAD(MODEL PAIRS EXPX("layers: {from: 1}"), "c.yaml:5:51", "'layers' is missing key 'to'"),
    LOAD(MODEL PAIRS EXPX("layers: {from: 0, to: 1, step: 2}"), "c.yaml:5:68",
         "unknown key 'step' (expected one of: from, to)"),
    LOAD(MODEL PAIRS EXPX("layers: [1, 2, 1]"), "c.yaml:5:58", "layer 1 is listed twice in 'layers'"),
    LOAD(MODEL PAIRS EXPX("layers: [-1]"), "c.yaml:5:52",
         "a layer in 'layers' must be an integer from 0 to 2147483647, not -1"),
    LOAD(MODEL PAIRS EXPX("layers: []"), "c.yaml:5:51", "'layers' must not be an empty list"),
    LOAD(MODEL PAIRS "experiments: [{name: a, patch: z, heads: [0, 0]}]\n", "c.yaml:5:46",
         "head 0 is listed twice in 'heads'"),
    LOAD(MODEL PAIRS EXPX("positions: [IO, IO]"), "c.yaml:5:59", "position 'IO' is listed twice"),
    LOAD(MODEL PAIRS EXPX("positions: [-1, 2, -1]"), "c.yaml:5:62", "position -1 is listed twice"),
    LOAD(MODEL PAIRS EXPX("positions: [1.5]"), "c.yaml:5:55",
         "'positions' must be \"all\" or a list of integers and position names, not a list holding 1.5"),
    LOAD(MODEL PAIRS EXPX("positions: [\"3\"]"), "c.yaml:5:55", "not a list holding the string \"3\""),
    LOAD(MODEL PAIRS EXPX("positions: IO"), "c.yaml:5:54",
         "'positions' must be \"all\" or a list of integers and position names, not the string \"IO\""),
    LOAD(MODEL PAIRS EXPX("direction: forwards"), "c.yaml:5:54",
         "unknown direction 'forwards' (expected one of: denoising, noising)"),
    LOAD(MODEL PAIRS EXPX("source: 0"), "c.yaml:5:51",
         "'source' must be one of: other, zero, mean, resample; not 0"),
    LOAD(MODEL PAIRS EXPX("metrics: [kl, KL]"), "c.yaml:5:57", "unknown metric 'KL'"),
    LOAD(MODEL PAIRS EXPX("source: resample"), "c.yaml:5:51",
         "source: resample needs at least 2 pairs (it patches in another pair's activation); the "
         "dataset has 1"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a_attn_out, patch: attn_out}\n"
         "  - {name: a, patch: block_every}\n", "c.yaml:7:12",
         "duplicate experiment name 'a_attn_out' (made by patch: block_every): also used at line 6"),
    LOAD(MODEL PAIRS "experiments:\n  - {name: a, patch: z}\n  - {name: a, patch: q}\n", "c.yaml:7:12",
         "duplicate experiment name 'a': also used at line 6"),
    /* JSON Lines */
    JSONL(JPAIR "\n{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer\": \" x\"}\n",
          "p.jsonl:3", "missing key \"wrong\" (or \"wrong_token\")"),
    JSONL(JPAIR "{\"clean_tokens\": [1, 2\n", "p.jsonl:2", "not valid JSON: "),
    JSONL("[1, 2]\n", "p.jsonl:1", "expected a JSON object (one pair per line), got an array"),
    JSONL("\n\n  \n", "c.yaml:2:17", "p.jsonl' has no pairs"),
    JSONL(JPAIR JPAIR "{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer_token\": \"4\","
          " \"wrong_token\": 5}\n", "p.jsonl:3", "\"answer_token\" must be an integer, not the string \"4\""),
    JSONL("{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer_token\": 4.0,"
          " \"wrong_token\": 5}\n", "p.jsonl:1", "\"answer_token\" must be an integer, not 4.0"),
    JSONL("{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer_token\": 4,"
          " \"wrong_token\": true}\n", "p.jsonl:1", "\"wrong_token\" must be an integer, not true"),
    JSONL("{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer_token\": 4,"
          " \"wrong_token\": null}\n", "p.jsonl:1", "\"wrong_token\" must be an integer, not null"),
    JSONL("{\"clean\": \"a\", \"clean\": \"b\"}\n", "p.jsonl:1", "duplicate object key"),
    JSONL("{\"clean_tokens\": [1], \"corrupted_tokens\": [2], \"answer_token\": 4,"
          " \"wrong_token\": 5, \"extra\": 1}\n", "p.jsonl:1", "unknown key \"extra\" (expected one of: "),
    JSONL("{\"clean_tokens\": [1, 2], \"corrupted_tokens\": [2], \"answer_token\": 4,"
          " \"wrong_token\": 5}\n", "p.jsonl:1", "pair 1: clean prompt has 2 tokens but corrupted has 1"),
    /* cfg_resolve, fake model: 4 layers, 4 heads, vocabulary 100, n_ctx 32 */
    RESOLVE(MODEL PAIRS EXPX("layers: [0, 4]"), "c.yaml:5:55", "layer 4 is out of range: the model has 4 layers (0..3)"),
    RESOLVE(MODEL PAIRS EXPX("layers: {from: 2, to: 9}"), "c.yaml:5:65", "layer 9 is out of range: the model has 4 layers (0..3)"),
    RESOLVE(MODEL PAIRS "experiments: [{name: a, patch: head_every, heads: [7, 1]}]\n", "c.yaml:5:52",
            "head 7 is out of range: the model has 4 heads (0..3)"),
    RESOLVE(MODEL "dataset: {pairs: [{clean_tokens: [1, 100], corrupted_tokens: [1, 2],"
            " answer_token: 1, wrong_token: 2}]}\n" EXP, "c.yaml:2:34",
            "pair 1: token id 100 in 'clean_tokens' is out of range: the vocabulary has 100 tokens (0..99)"),
    RESOLVE(MODEL "dataset: {pairs: [{clean_tokens: [1], corrupted_tokens: [2], answer_token: 150,"
            " wrong_token: 2}]}\n" EXP, "c.yaml:2:76", "pair 1: token id 150 in 'answer_token' is out of range"),
    RESOLVE(MODEL "dataset: {pairs: [{clean_tokens: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
            "1,1,1,1,1,1,1,1,1], corrupted_tokens: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
            "1,1,1,1,1,1,1,1,1], answer_token: 1, wrong_token: 2}]}\n" EXP, "c.yaml:2:34",
            "pair 1: the prompts have 33 tokens, more than the model's context of 32"),
    RESOLVE(MODEL "dataset:\n  pairs:\n"
            "    - {clean_tokens: [1, 2], corrupted_tokens: [3, 4], answer_token: 1, wrong_token: 2,"
            " positions: {S2: 1}}\n"
            "    - {clean_tokens: [1, 2], corrupted_tokens: [3, 4], answer_token: 1, wrong_token: 2}\n"
            EXPX("positions: [S2]"), "c.yaml:5:7",
            "pair 2 has no position 'S2', which experiment 'a' patches ("),
    RESOLVE(MODEL PAIRX(", positions: {END: -5}") EXP, "c.yaml:4:112",
            "pair 1: position 'END' = -5 is out of range: the prompts have 3 tokens"),
    RESOLVE(MODEL PAIRX(", positions: {P: 3}") EXP, "c.yaml:4:110",
            "pair 1: position 'P' = 3 is out of range: the prompts have 3 tokens"),
    RESOLVE(MODEL PAIRS EXPX("positions: [0, 3]"), "c.yaml:5:58",
            "position 3 is out of range for every pair (the longest has 3 tokens)"),
    RESOLVE(MODEL PAIRS EXPX("positions: [-3, -4]"), "c.yaml:5:59",
            "position -4 is out of range for every pair (the longest has 3 tokens)"),
    RESOLVE(MODEL "dataset:\n  pairs:\n"
            "    - {clean_tokens: [1, 2], corrupted_tokens: [3, 4], answer_token: 1, wrong_token: 2}\n"
            "    - {clean_tokens: [1, 2], corrupted_tokens: [3, 4], answer_token: 1, wrong_token: 2}\n"
            "    - {clean_tokens: [1], corrupted_tokens: [3], answer_token: 1, wrong_token: 2}\n"
            EXPX("source: mean"), "c.yaml:6:7",
            "pair 3 has 1 token but pair 1 has 2: experiment 'a' uses source: mean, which needs "
            "pairs of equal length"),
    RESOLVE(MODEL "dataset:\n  pairs:\n"
            "    - {clean: x, corrupted_tokens: [3, 4], answer_token: 1, wrong_token: 2}\n" EXP,
            "c.yaml:4:15", "pair 1: 'clean' is text, but the model directory '"),
    {MODEL "dataset: {file: p.jsonl}\n" EXP, JPAIR "{\"clean_tokens\": [1, 200], "
     "\"corrupted_tokens\": [1, 3], \"answer_token\": 4, \"wrong_token\": 5}\n", "p.jsonl:2",
     "pair 2: token id 200 in \"clean_tokens\" is out of range", AT_RESOLVE},
    /* cfg_resolve with the GPT-2 tokenizer */
    {MODEL "dataset:\n  pairs:\n"
     "    - {clean: a b, corrupted: a c, answer: \" Mary\", wrong: \" John\"}\n"
     "    - clean: When Mary and John went to the store, John gave a drink to\n"
     "      corrupted: When Mary and John went to the store, Mary gave a drink to\n"
     "      answer: \" Mary Ann\"\n"
     "      wrong: \" John\"\n" EXP, NULL, "c.yaml:7:15",
     "pair 2: answer \" Mary Ann\" is 2 tokens; an answer must be a single token", AT_RESOLVE_GPT2},
    {MODEL "dataset:\n  pairs:\n"
     "    - {clean: \"When Mary and John\", corrupted: \"When Mary and Johnathan\", answer: \" Mary\","
     " wrong_token: 1}\n" EXP, NULL, "c.yaml:4:7",
     "pair 1: clean prompt has 5 tokens but corrupted has 6; they must match", AT_RESOLVE_GPT2},
    {MODEL "dataset:\n  pairs:\n"
     "    - {clean: \"x\", corrupted: \"y\", answer: \"\\n\\n\\n\\t\\\"long\\\" answer text that goes "
     "on and on and on, past what a message should quote in full, far past\", wrong_token: 1}\n"
     EXP, NULL, "c.yaml:4:44", "pair 1: answer \"\\n\\n\\n\\t\\\"long\\\" answer text that goes on",
     AT_RESOLVE_GPT2},
};

#define COUNT_CASES (sizeof cases / sizeof cases[0])

/* Prints line `line` of file `name` in tmp_root with a caret under column col. */
static void show_location(const char *name, long line, long col)
{
    FILE *f = fopen(tmp_path("%s", name), "rb");
    if (f == NULL) return;
    char buf[4096];
    for (long l = 1; fgets(buf, sizeof buf, f) != NULL; l++)
        if (l == line) {
            buf[strcspn(buf, "\n")] = '\0';
            print_error("    %s\n    %*s\n", buf, (int)(col > 0 ? col : 1), "^");
            break;
        }
    fclose(f);
}

/* 0 if err is rc -1 with one line starting "tmp_root/where: " and containing
 * phrase; else prints what it got (and where that points) and returns 1. */
static int check_error(size_t i, int rc, const Err *err, const char *where, const char *phrase)
{
    char prefix[1200];
    snprintf(prefix, sizeof prefix, "%s/%s: ", tmp_root, where);
    if (rc == -1 && strncmp(err->msg, prefix, strlen(prefix)) == 0 &&
        strstr(err->msg, phrase) != NULL && strchr(err->msg, '\n') == NULL)
        return 0;
    print_error("case %zu: expected \"%s...%s...\"\n   got rc=%d \"%s\"\n", i, prefix, phrase, rc,
                err->msg);
    char name[64];
    long line = 0, col = 0;
    size_t n = strlen(tmp_root) + 1;
    if (strncmp(err->msg, tmp_root, n - 1) == 0 &&
        sscanf(err->msg + n, "%63[^:]:%ld:%ld", name, &line, &col) >= 2)
        show_location(name, line, col);
    return 1;
}

static void test_errors(void **state)
{
    Tok *gpt2 = NULL;
    int failures = 0;
    assert_true(COUNT_CASES >= 25);
    for (size_t i = 0; i < COUNT_CASES; i++) {
        const ErrCase *c = &cases[i];
        write_text("c.yaml", c->yaml);
        unlink(tmp_path("p.jsonl"));
        if (c->jsonl) write_text("p.jsonl", c->jsonl);
        Config *cfg = (Config *)1;
        Err err = {{0}};
        int rc = cfg_load(&cfg, tmp_path("c.yaml"), &err);
        if (rc == 0 && c->stage != AT_LOAD) {
            const ModelConfig *mc = &FAKE;
            if (c->stage == AT_RESOLVE_GPT2) {
                if (gpt2 == NULL) gpt2 = open_gpt2();
                mc = &FAKE_GPT2;
            }
            rc = cfg_resolve(cfg, mc, c->stage == AT_RESOLVE_GPT2 ? gpt2 : NULL, &err);
            assert_int_equal(cfg->resolved, rc == 0);
            cfg_free(cfg);
        } else if (rc == 0) {
            cfg_free(cfg);
        } else {
            assert_null(cfg);
        }
        failures += check_error(i, rc, &err, c->where, c->phrase);
    }
    tok_close(gpt2);
    if (failures) fail_msg("%d of %zu error cases failed", failures, COUNT_CASES);
}

static void test_unreadable(void **state)
{
    Config *cfg = (Config *)1;
    Err err = {{0}};
    assert_int_equal(cfg_load(&cfg, tmp_path("nope.yaml"), &err), -1);
    assert_null(cfg);
    char want[1200];
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", tmp_path("nope.yaml"));
    assert_string_equal(err.msg, want);

    cfg = (Config *)1;
    assert_int_equal(cfg_load(&cfg, tmp_path("m"), &err), -1);
    assert_null(cfg);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", tmp_path("m"));
    assert_string_equal(err.msg, want);
}

/* Aliases can make a small file a huge tree: a budget of node visits stops
 * it (1000 aliases of a pair of 2 x 5000 tokens would be 10M visits). */
static void test_alias_bomb(void **state)
{
    size_t cap = 1 << 20, o = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    o += (size_t)snprintf(y + o, cap - o, MODEL EXP "dataset:\n  pairs:\n    - &p\n      clean_tokens: [");
    for (int i = 0; i < 5000; i++) o += (size_t)snprintf(y + o, cap - o, "%s1", i ? "," : "");
    o += (size_t)snprintf(y + o, cap - o, "]\n      corrupted_tokens: [");
    for (int i = 0; i < 5000; i++) o += (size_t)snprintf(y + o, cap - o, "%s2", i ? "," : "");
    o += (size_t)snprintf(y + o, cap - o, "]\n      answer_token: 1\n      wrong_token: 2\n");
    for (int i = 0; i < 1000; i++) o += (size_t)snprintf(y + o, cap - o, "    - *p\n");
    assert_true(o < cap - 1);
    write_text("bomb.yaml", y);
    free(y);
    Config *cfg = (Config *)1;
    Err err = {{0}};
    assert_int_equal(cfg_load(&cfg, tmp_path("bomb.yaml"), &err), -1);
    assert_null(cfg);
    if (strstr(err.msg, "expands to too many values") == NULL) fail_msg("%s", err.msg);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    if (mkdtemp(tmp_root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (mkdir(tmp_path("m"), 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_inline),      cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_patch_kind), cmocka_unit_test(test_every_groups),
        cmocka_unit_test(test_selection_forms),  cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_aliases),          cmocka_unit_test(test_text_pairs),
        cmocka_unit_test(test_data_configs),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_alias_bomb),
    };
    int failed = cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed != 0;
}
