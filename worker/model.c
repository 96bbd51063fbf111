/* model.c — GPT-2 family: config, weights, TransformerLens hook points and
 * the segment-batched forward pass (see include/model.h).
 *
 * Dimension legend: L layers, T tokens of a prompt, C d_model, NH heads,
 * HD d_head, F d_mlp, V vocab, P context, R stacked rows of a run,
 * S segments of a run.
 */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "st.h"

/* ---- config ----------------------------------------------------------- */

typedef struct LayerW {
    const float *ln1_w, *ln1_b;       /* (C) */
    const float *qkv_w;               /* (C, 3C) HF Conv1D: in x out */
    const float *qkv_b;               /* (3C) */
    const float *proj_w;              /* (C, C) */
    const float *proj_b;              /* (C) */
    const float *ln2_w, *ln2_b;       /* (C) */
    const float *fc_w;                /* (C, F) */
    const float *fc_b;                /* (F) */
    const float *fcproj_w;            /* (F, C) */
    const float *fcproj_b;            /* (C) */
} LayerW;

struct Model {
    ModelConfig cfg;
    char *dir;
    StSet *st;
    const float *wte;     /* (V, C) */
    const float *wpe;     /* (P, C) */
    const float *lnf_w, *lnf_b; /* (C) */
    const float *unembed; /* (V, C): wte when tied, else lm_head.weight */
    LayerW *layers;       /* (L) */
    size_t n_params;
    char dtype[16];
};

const char *model_family_name(ModelFamily f)
{
    switch (f) {
    case MODEL_GPT2: return "gpt2";
    }
    return "?";
}

const char *model_act_name(ModelAct a)
{
    return a == MODEL_ACT_GELU ? "gelu" : "gelu_new";
}

/* Reads an integer key; absent -> def (or an error when def < 0). */
static int json_size(json_t *root, const char *key, long long def, long long lo, long long hi,
                     long long *out, const char *path, Err *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        if (def < 0) return err_set(err, "%s: missing key \"%s\"", path, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(err, "%s: \"%s\" must be an integer", path, key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return err_set(err, "%s: \"%s\" is %lld, expected %lld..%lld", path, key, x, lo, hi);
    *out = x;
    return 0;
}

static int parse_config(ModelConfig *c, const char *dir, Err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (je.line < 0 || strstr(je.text, "unable to open"))
            return err_set(err, "%s: cannot read (is %s a Hugging Face model directory?)", path,
                           dir);
        return err_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    int rc = -1;
    if (!json_is_object(root)) {
        err_set(err, "%s: not a JSON object", path);
        goto out;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) {
        err_set(err, "%s: missing string \"model_type\"", path);
        goto out;
    }
    if (strcmp(json_string_value(mt), "gpt2") != 0) {
        err_set(err, "%s: model_type \"%s\" is not supported (supported: gpt2)", path,
                json_string_value(mt));
        goto out;
    }
    memset(c, 0, sizeof *c);
    c->family = MODEL_GPT2;
    long long nl, nh, ne, nv, np, ni, bos;
    const long long big = 1LL << 24;
    if (json_size(root, "n_layer", -1, 1, 4096, &nl, path, err) ||
        json_size(root, "n_head", -1, 1, 4096, &nh, path, err) ||
        json_size(root, "n_embd", -1, 1, 1 << 20, &ne, path, err) ||
        json_size(root, "vocab_size", -1, 1, big, &nv, path, err))
        goto out;
    if (json_object_get(root, "n_positions") != NULL) {
        if (json_size(root, "n_positions", -1, 1, big, &np, path, err)) goto out;
    } else if (json_size(root, "n_ctx", -1, 1, big, &np, path, err)) {
        goto out;
    }
    if (json_size(root, "n_inner", 4 * ne, 1, 1 << 22, &ni, path, err) ||
        json_size(root, "bos_token_id", 0, 0, nv - 1, &bos, path, err))
        goto out;
    if (json_object_get(root, "bos_token_id") == NULL) bos = -1;
    if (ne % nh != 0) {
        err_set(err, "%s: n_embd %lld is not a multiple of n_head %lld", path, ne, nh);
        goto out;
    }
    c->n_layers = (size_t)nl;
    c->n_heads = (size_t)nh;
    c->d_model = (size_t)ne;
    c->d_head = (size_t)(ne / nh);
    c->d_mlp = (size_t)ni;
    c->d_vocab = (size_t)nv;
    c->n_ctx = (size_t)np;
    c->bos_id = (int32_t)bos;

    json_t *eps = json_object_get(root, "layer_norm_epsilon");
    c->ln_eps = 1e-5f;
    if (eps != NULL) {
        if (!json_is_number(eps) || json_number_value(eps) <= 0 || json_number_value(eps) > 1) {
            err_set(err, "%s: \"layer_norm_epsilon\" must be a number in (0, 1]", path);
            goto out;
        }
        c->ln_eps = (float)json_number_value(eps);
    }
    json_t *act = json_object_get(root, "activation_function");
    c->act = MODEL_ACT_GELU_NEW;
    if (act != NULL) {
        const char *a = json_is_string(act) ? json_string_value(act) : "";
        if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0) {
            c->act = MODEL_ACT_GELU_NEW;
        } else if (strcmp(a, "gelu") == 0) {
            c->act = MODEL_ACT_GELU;
        } else {
            err_set(err, "%s: activation_function \"%s\" is not supported (gelu_new, gelu)",
                    path, a);
            goto out;
        }
    }
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    c->tied = 1;
    if (tie != NULL) {
        if (!json_is_boolean(tie)) {
            err_set(err, "%s: \"tie_word_embeddings\" must be true or false", path);
            goto out;
        }
        c->tied = json_is_true(tie);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ---- weights ---------------------------------------------------------- */

typedef struct Loader {
    StSet *st;
    const char *prefix;  /* "transformer." or "" */
    uint8_t *used;       /* (st_count) tensors claimed by the model */
    size_t n_params;
} Loader;

static int load(Loader *ld, const char *name, int with_prefix, const float **out, size_t d0,
                size_t d1, Err *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", with_prefix ? ld->prefix : "", name);
    size_t shape[2] = {d0, d1};
    size_t ndim = d1 ? 2 : 1;
    if (st_get_f32(ld->st, full, shape, ndim, out, err)) return -1;
    for (size_t i = 0; i < st_count(ld->st); i++)
        if (strcmp(st_tensor(ld->st, i)->name, full) == 0) ld->used[i] = 1;
    ld->n_params += d1 ? d0 * d1 : d0;
    return 0;
}

/* The causal-mask buffers old GPT-2 checkpoints carry: not parameters. */
static int is_old_buffer(const char *name)
{
    size_t n = strlen(name);
    return (n > 10 && strcmp(name + n - 10, ".attn.bias") == 0) ||
           (n > 17 && strcmp(name + n - 17, ".attn.masked_bias") == 0);
}

static int load_weights(Model *m, Err *err)
{
    const ModelConfig *c = &m->cfg;
    size_t C = c->d_model, F = c->d_mlp, V = c->d_vocab, P = c->n_ctx;
    Loader ld = {.st = m->st, .prefix = "", .used = xcalloc(st_count(m->st) + 1, 1)};
    int rc = -1;
    if (st_find(m->st, "transformer.wte.weight") != NULL) ld.prefix = "transformer.";
    m->layers = xcalloc(c->n_layers, sizeof *m->layers);
    if (load(&ld, "wte.weight", 1, &m->wte, V, C, err) ||
        load(&ld, "wpe.weight", 1, &m->wpe, P, C, err) ||
        load(&ld, "ln_f.weight", 1, &m->lnf_w, C, 0, err) ||
        load(&ld, "ln_f.bias", 1, &m->lnf_b, C, 0, err))
        goto out;
    for (size_t l = 0; l < c->n_layers; l++) {
        LayerW *w = &m->layers[l];
        char n[128];
#define LOAD(field, suffix, d0, d1)                                                           \
    do {                                                                                      \
        snprintf(n, sizeof n, "h.%zu.%s", l, suffix);                                         \
        if (load(&ld, n, 1, &w->field, d0, d1, err)) goto out;                                \
    } while (0)
        LOAD(ln1_w, "ln_1.weight", C, 0);
        LOAD(ln1_b, "ln_1.bias", C, 0);
        LOAD(qkv_w, "attn.c_attn.weight", C, 3 * C);
        LOAD(qkv_b, "attn.c_attn.bias", 3 * C, 0);
        LOAD(proj_w, "attn.c_proj.weight", C, C);
        LOAD(proj_b, "attn.c_proj.bias", C, 0);
        LOAD(ln2_w, "ln_2.weight", C, 0);
        LOAD(ln2_b, "ln_2.bias", C, 0);
        LOAD(fc_w, "mlp.c_fc.weight", C, F);
        LOAD(fc_b, "mlp.c_fc.bias", F, 0);
        LOAD(fcproj_w, "mlp.c_proj.weight", F, C);
        LOAD(fcproj_b, "mlp.c_proj.bias", C, 0);
#undef LOAD
    }
    const StTensor *lm = st_find(m->st, "lm_head.weight");
    if (c->tied) {
        m->unembed = m->wte;
        /* A tied checkpoint may still store the (identical) head: accept it. */
        if (lm != NULL)
            for (size_t i = 0; i < st_count(m->st); i++)
                if (st_tensor(m->st, i) == lm) ld.used[i] = 1;
    } else if (load(&ld, "lm_head.weight", 0, &m->unembed, V, C, err)) {
        goto out;
    }
    for (size_t i = 0; i < st_count(m->st); i++) {
        const StTensor *t = st_tensor(m->st, i);
        if (!ld.used[i] && !is_old_buffer(t->name)) {
            err_set(err, "%s: unexpected tensor '%s' for a %zu-layer gpt2 model", t->path,
                    t->name, c->n_layers);
            goto out;
        }
    }
    m->n_params = ld.n_params;
    snprintf(m->dtype, sizeof m->dtype, "%s", st_dtype_name(st_find(m->st, "wte.weight")
                                                               ? st_find(m->st, "wte.weight")->dtype
                                                               : st_find(m->st, "transformer.wte.weight")->dtype));
    rc = 0;
out:
    free(ld.used);
    return rc;
}

int model_open(Model **out, const char *dir, Err *err)
{
    *out = NULL;
    Model *m = xcalloc(1, sizeof *m);
    m->dir = xstrdup(dir);
    if (parse_config(&m->cfg, dir, err) || st_open_dir(&m->st, dir, err) || load_weights(m, err)) {
        model_close(m);
        return -1;
    }
    *out = m;
    return 0;
}

void model_close(Model *m)
{
    if (m == NULL) return;
    st_close(m->st);
    free(m->layers);
    free(m->dir);
    free(m);
}

const ModelConfig *model_config(const Model *m) { return &m->cfg; }
const char *model_dir(const Model *m) { return m->dir; }
size_t model_param_count(const Model *m) { return m->n_params; }
const char *model_dtype(const Model *m) { return m->dtype; }
const struct StSet *model_weights(const Model *m) { return m->st; }

/* ---- hook points -------------------------------------------------------- */

static const char *const hook_suffix[HOOK_KIND_COUNT] = {
    [HOOK_EMBED] = "hook_embed",
    [HOOK_POS_EMBED] = "hook_pos_embed",
    [HOOK_RESID_PRE] = "hook_resid_pre",
    [HOOK_LN1_SCALE] = "ln1.hook_scale",
    [HOOK_LN1_NORMALIZED] = "ln1.hook_normalized",
    [HOOK_Q] = "attn.hook_q",
    [HOOK_K] = "attn.hook_k",
    [HOOK_V] = "attn.hook_v",
    [HOOK_ATTN_SCORES] = "attn.hook_attn_scores",
    [HOOK_PATTERN] = "attn.hook_pattern",
    [HOOK_Z] = "attn.hook_z",
    [HOOK_ATTN_OUT] = "hook_attn_out",
    [HOOK_RESID_MID] = "hook_resid_mid",
    [HOOK_LN2_SCALE] = "ln2.hook_scale",
    [HOOK_LN2_NORMALIZED] = "ln2.hook_normalized",
    [HOOK_MLP_PRE] = "mlp.hook_pre",
    [HOOK_MLP_POST] = "mlp.hook_post",
    [HOOK_MLP_OUT] = "hook_mlp_out",
    [HOOK_RESID_POST] = "hook_resid_post",
    [HOOK_LNF_SCALE] = "ln_final.hook_scale",
    [HOOK_LNF_NORMALIZED] = "ln_final.hook_normalized",
};

int hook_per_layer(HookKind kind)
{
    return kind != HOOK_EMBED && kind != HOOK_POS_EMBED && kind != HOOK_LNF_SCALE &&
           kind != HOOK_LNF_NORMALIZED;
}

int hook_is_attn(HookKind kind) { return kind == HOOK_ATTN_SCORES || kind == HOOK_PATTERN; }

size_t hook_width(const ModelConfig *c, HookKind kind)
{
    switch (kind) {
    case HOOK_LN1_SCALE:
    case HOOK_LN2_SCALE:
    case HOOK_LNF_SCALE: return 1;
    case HOOK_MLP_PRE:
    case HOOK_MLP_POST: return c->d_mlp;
    case HOOK_Q:
    case HOOK_K:
    case HOOK_V:
    case HOOK_Z: return c->n_heads * c->d_head;
    case HOOK_ATTN_SCORES:
    case HOOK_PATTERN: return 0;
    default: return c->d_model;
    }
}

void hook_name(HookKind kind, size_t layer, char *buf, size_t n)
{
    if (hook_per_layer(kind))
        snprintf(buf, n, "blocks.%zu.%s", layer, hook_suffix[kind]);
    else
        snprintf(buf, n, "%s", hook_suffix[kind]);
}

int hook_parse(const ModelConfig *c, const char *name, HookKind *kind, size_t *layer)
{
    size_t l = 0;
    const char *rest = name;
    if (strncmp(name, "blocks.", 7) == 0) {
        char *end;
        unsigned long v = strtoul(name + 7, &end, 10);
        if (end == name + 7 || *end != '.' || v >= c->n_layers) return -1;
        l = v;
        rest = end + 1;
    }
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        if (strcmp(rest, hook_suffix[k]) != 0) continue;
        if (hook_per_layer((HookKind)k) != (rest != name)) return -1;
        *kind = (HookKind)k;
        *layer = l;
        return 0;
    }
    return -1;
}

size_t hook_shape(const ModelConfig *c, HookKind kind, size_t T, size_t shape[4])
{
    if (hook_is_attn(kind)) {
        shape[0] = c->n_heads, shape[1] = T, shape[2] = T;
        return 3;
    }
    if (kind == HOOK_Q || kind == HOOK_K || kind == HOOK_V || kind == HOOK_Z) {
        shape[0] = T, shape[1] = c->n_heads, shape[2] = c->d_head;
        return 3;
    }
    shape[0] = T, shape[1] = hook_width(c, kind);
    return 2;
}

size_t model_entry_kinds(ModelEntry entry, HookKind kinds[4])
{
    size_t n = 0;
    switch (entry) {
    case MODEL_ENTRY_EMBED: break;
    case MODEL_ENTRY_RESID_PRE: kinds[n++] = HOOK_RESID_PRE; break;
    case MODEL_ENTRY_QKV:
        kinds[n++] = HOOK_RESID_PRE, kinds[n++] = HOOK_Q, kinds[n++] = HOOK_K, kinds[n++] = HOOK_V;
        break;
    case MODEL_ENTRY_PATTERN:
        kinds[n++] = HOOK_RESID_PRE, kinds[n++] = HOOK_V, kinds[n++] = HOOK_PATTERN;
        break;
    case MODEL_ENTRY_Z: kinds[n++] = HOOK_RESID_PRE, kinds[n++] = HOOK_Z; break;
    case MODEL_ENTRY_ATTN_OUT: kinds[n++] = HOOK_RESID_PRE, kinds[n++] = HOOK_ATTN_OUT; break;
    case MODEL_ENTRY_RESID_MID: kinds[n++] = HOOK_RESID_MID; break;
    case MODEL_ENTRY_MLP_OUT: kinds[n++] = HOOK_RESID_MID, kinds[n++] = HOOK_MLP_OUT; break;
    }
    return n;
}

/* ---- workspace ---------------------------------------------------------- */

struct Fwd {
    const Model *m;
    uint8_t keep[HOOK_KIND_COUNT];
    float *buf[HOOK_KIND_COUNT]; /* per kind: nslots(kind) slots of slot[kind] floats */
    size_t cap[HOOK_KIND_COUNT]; /* floats allocated */
    size_t slot[HOOK_KIND_COUNT];
    float *logits;
    size_t logits_cap;
    size_t n_segs, segs_cap;
    size_t *row_off;   /* (S + 1) */
    size_t *attn_off;  /* (S + 1) */
    size_t *logit_off; /* (S + 1) */
    size_t *logit_w;   /* (S) */
    int attn_stacked;  /* attention blocks of all segments kept side by side */
    int keeps_any;     /* some kind is kept */
    double flops;
};

Fwd *fwd_new(const Model *m, const uint8_t *keep)
{
    Fwd *f = xcalloc(1, sizeof *f);
    f->m = m;
    if (keep) memcpy(f->keep, keep, sizeof f->keep);
    for (int k = 0; k < HOOK_KIND_COUNT; k++) f->keeps_any |= f->keep[k];
    return f;
}

void fwd_free(Fwd *f)
{
    if (f == NULL) return;
    for (int k = 0; k < HOOK_KIND_COUNT; k++) free(f->buf[k]);
    free(f->logits);
    free(f->row_off);
    free(f->attn_off);
    free(f->logit_off);
    free(f->logit_w);
    free(f);
}

/* Layer slots of a kind: every layer when kept (resid_pre has one more, the
 * input of ln_final), else one scratch slot. */
static size_t nslots(const Fwd *f, HookKind k)
{
    if (!f->keep[k] || !hook_per_layer(k)) return 1;
    return f->m->cfg.n_layers + (k == HOOK_RESID_PRE);
}

float *fwd_act(const Fwd *f, HookKind kind, size_t layer)
{
    size_t s = nslots(f, kind) > 1 ? layer : 0;
    CHECK(s < nslots(f, kind));
    return f->buf[kind] + s * f->slot[kind];
}

size_t fwd_rows(const Fwd *f) { return f->row_off[f->n_segs]; }
size_t fwd_row_off(const Fwd *f, size_t seg) { return f->row_off[seg]; }
size_t fwd_attn_off(const Fwd *f, size_t seg) { return f->attn_off[seg]; }
const float *fwd_logits(const Fwd *f, size_t seg) { return f->logits + f->logit_off[seg]; }
size_t fwd_logit_width(const Fwd *f, size_t seg) { return f->logit_w[seg]; }
double fwd_flops(const Fwd *f) { return f->flops; }

static void ensure(float **p, size_t *cap, size_t n)
{
    if (n <= *cap) return;
    free(*p);
    *p = xaligned(xmul(n, sizeof(float)));
    *cap = n;
}

static int want_hook(const ModelRun *run, HookKind k)
{
    return run->hook != NULL && (run->hook_want == NULL || run->hook_want[k]);
}

/* Offsets of every segment's rows, attention block and logits; buffers sized
 * for this run. */
static void layout(Fwd *f, const ModelRun *run)
{
    const ModelConfig *c = &f->m->cfg;
    size_t S = run->n_segs;
    if (S + 1 > f->segs_cap) {
        f->segs_cap = S + 1;
        f->row_off = xrealloc(f->row_off, f->segs_cap * sizeof(size_t));
        f->attn_off = xrealloc(f->attn_off, f->segs_cap * sizeof(size_t));
        f->logit_off = xrealloc(f->logit_off, f->segs_cap * sizeof(size_t));
        f->logit_w = xrealloc(f->logit_w, f->segs_cap * sizeof(size_t));
    }
    f->n_segs = S;
    f->attn_stacked = f->keep[HOOK_ATTN_SCORES] || f->keep[HOOK_PATTERN] ||
                      want_hook(run, HOOK_ATTN_SCORES) || want_hook(run, HOOK_PATTERN) ||
                      run->entry == MODEL_ENTRY_PATTERN;
    size_t rows = 0, attn = 0, attn_max = 0, logits = 0;
    for (size_t i = 0; i < S; i++) {
        const ModelSeg *s = &run->segs[i];
        size_t n = s->n_tokens - s->start;
        size_t a = xmul(xmul(c->n_heads, n), s->n_tokens);
        f->row_off[i] = rows;
        f->attn_off[i] = f->attn_stacked ? attn : 0;
        f->logit_off[i] = logits;
        f->logit_w[i] = s->logit_ids ? s->n_logit_ids : c->d_vocab;
        rows += n;
        attn += a;
        if (a > attn_max) attn_max = a;
        logits += xmul(run->last_only ? 1 : n, f->logit_w[i]);
    }
    f->row_off[S] = rows;
    f->attn_off[S] = f->attn_stacked ? attn : attn_max;
    f->logit_off[S] = logits;
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        HookKind kind = (HookKind)k;
        f->slot[k] = hook_is_attn(kind) ? f->attn_off[S] : xmul(rows, hook_width(c, kind));
        ensure(&f->buf[k], &f->cap[k], xmul(f->slot[k], nslots(f, kind)));
    }
    ensure(&f->logits, &f->logits_cap, logits);
}

/* ---- forward ------------------------------------------------------------ */

/* The computation of one layer, in order. A segment entering with entry E
 * joins at step join_step(E): earlier steps are not computed for it. */
typedef enum Step {
    STEP_LN1, STEP_QKV, STEP_SCORES, STEP_Z, STEP_ATTN_OUT, STEP_RESID_MID, STEP_LN2,
    STEP_MLP, STEP_MLP_OUT, STEP_RESID_POST
} Step;

static Step join_step(ModelEntry e)
{
    switch (e) {
    case MODEL_ENTRY_EMBED:
    case MODEL_ENTRY_RESID_PRE: return STEP_LN1;
    case MODEL_ENTRY_QKV: return STEP_SCORES;
    case MODEL_ENTRY_PATTERN: return STEP_Z;
    case MODEL_ENTRY_Z: return STEP_ATTN_OUT;
    case MODEL_ENTRY_ATTN_OUT: return STEP_RESID_MID;
    case MODEL_ENTRY_RESID_MID: return STEP_LN2;
    case MODEL_ENTRY_MLP_OUT: return STEP_RESID_POST;
    }
    return STEP_LN1;
}

/* State of one layer's computation. Segments [0, n_old) run the whole layer;
 * [n_old, n_act) enter at this layer and join at step `join`. In compact
 * mode (last layer, last_only) per-position tensors after the key/value
 * projection hold one row per segment: row i is segment i's last position. */
typedef struct LayerRun {
    const Model *m;
    Fwd *f;
    const ModelRun *run;
    size_t l;
    size_t n_old, n_act;
    Step join;
    int compact;
} LayerRun;

static size_t nsegs(const LayerRun *lr, Step s) { return s < lr->join ? lr->n_old : lr->n_act; }

/* Rows a step covers: all rows of its segments, or one per segment. */
static size_t nrows(const LayerRun *lr, Step s)
{
    size_t n = nsegs(lr, s);
    return lr->compact ? n : lr->f->row_off[n];
}

static size_t seg_rows(const ModelRun *run, size_t i)
{
    return run->segs[i].n_tokens - run->segs[i].start;
}

static float *act(const LayerRun *lr, HookKind k) { return fwd_act(lr->f, k, lr->l); }

static void call_hook(const LayerRun *lr, HookKind k)
{
    if (want_hook(lr->run, k)) lr->run->hook(lr->run->hook_ctx, k, lr->l, act(lr, k), lr->f);
}

/* Row i <- last row of segment i, for segments [from, n). Safe in place:
 * segment i's rows start at or after row i. */
static void compact_rows(float *buf, size_t width, const Fwd *f, const ModelRun *run,
                         size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        size_t src = f->row_off[i] + seg_rows(run, i) - 1;
        if (src != i) memmove(buf + i * width, buf + src * width, width * sizeof *buf);
    }
}

/* Keys and values of positions [0, start) of segment i at this layer. */
static void prefix_kv(const LayerRun *lr, size_t i, const float **kpre, const float **vpre)
{
    const ModelSeg *s = &lr->run->segs[i];
    if (s->start == 0) {
        *kpre = *vpre = NULL;
        return;
    }
    *kpre = fwd_act(s->prefix, HOOK_K, lr->l);
    *vpre = fwd_act(s->prefix, HOOK_V, lr->l);
}

static void attention_step(LayerRun *lr)
{
    const ModelConfig *c = &lr->m->cfg;
    Fwd *f = lr->f;
    const ModelRun *run = lr->run;
    size_t NH = c->n_heads, HD = c->d_head, ld = NH * HD;
    float *q = act(lr, HOOK_Q), *k = act(lr, HOOK_K), *v = act(lr, HOOK_V);
    float *scores = act(lr, HOOK_ATTN_SCORES), *pattern = act(lr, HOOK_PATTERN);
    float *z = act(lr, HOOK_Z);
    size_t n_scores = nsegs(lr, STEP_SCORES), n_z = nsegs(lr, STEP_Z);

    /* One query row per segment (its last) in compact mode, else all rows. */
    for (size_t i = 0; i < n_z; i++) {
        const ModelSeg *s = &run->segs[i];
        size_t T = s->n_tokens, n = seg_rows(run, i), r0 = f->row_off[i];
        size_t qpos = lr->compact ? T - 1 : s->start, nq = lr->compact ? 1 : n;
        size_t qrow = lr->compact ? i : r0;
        size_t hs = n * T; /* head stride of this segment's (NH, n, T) block */
        float *sc = scores + f->attn_off[i] + (qpos - s->start) * T;
        float *pa = pattern + f->attn_off[i] + (qpos - s->start) * T;
        const float *kpre, *vpre;
        prefix_kv(lr, i, &kpre, &vpre);
        if (i < n_scores) {
            f->flops += attn_scores_forward(sc, q + qrow * ld, kpre, k + r0 * ld, qpos, nq,
                                            s->start, T, NH, HD, ld, hs);
            if (!f->attn_stacked) attn_softmax_forward(pa, sc, qpos, nq, T, NH, hs);
        }
        if (!f->attn_stacked)
            f->flops += attn_values_forward(z + qrow * ld, pa, vpre, v + r0 * ld, qpos, nq,
                                            s->start, T, NH, HD, ld, hs);
    }
    if (!f->attn_stacked) return;
    /* Stacked blocks: hooks see all scores before the softmax, all patterns
     * before the values, as in TransformerLens. */
    call_hook(lr, HOOK_ATTN_SCORES);
    for (size_t i = 0; i < n_scores; i++) {
        const ModelSeg *s = &run->segs[i];
        size_t T = s->n_tokens, n = seg_rows(run, i);
        size_t qpos = lr->compact ? T - 1 : s->start, nq = lr->compact ? 1 : n;
        size_t off = f->attn_off[i] + (qpos - s->start) * T;
        attn_softmax_forward(pattern + off, scores + off, qpos, nq, T, NH, n * T);
    }
    call_hook(lr, HOOK_PATTERN);
    for (size_t i = 0; i < n_z; i++) {
        const ModelSeg *s = &run->segs[i];
        size_t T = s->n_tokens, n = seg_rows(run, i), r0 = f->row_off[i];
        size_t qpos = lr->compact ? T - 1 : s->start, nq = lr->compact ? 1 : n;
        size_t qrow = lr->compact ? i : r0;
        const float *kpre, *vpre;
        prefix_kv(lr, i, &kpre, &vpre);
        f->flops += attn_values_forward(z + qrow * ld, pattern + f->attn_off[i] +
                                            (qpos - s->start) * T,
                                        vpre, v + r0 * ld, qpos, nq, s->start, T, NH, HD, ld,
                                        n * T);
    }
}

static void layer_forward(LayerRun *lr)
{
    const ModelConfig *c = &lr->m->cfg;
    const LayerW *w = &lr->m->layers[lr->l];
    Fwd *f = lr->f;
    const ModelRun *run = lr->run;
    size_t C = c->d_model, F = c->d_mlp, ld = c->n_heads * c->d_head;
    float *resid_pre = act(lr, HOOK_RESID_PRE);

    /* Inputs: the previous layer's output for segments already running, the
     * fill callback's tensors for segments entering here. */
    if (lr->l > 0 && lr->n_old > 0)
        memcpy(resid_pre, fwd_act(f, HOOK_RESID_POST, lr->l - 1),
               f->row_off[lr->n_old] * C * sizeof(float));
    for (size_t i = lr->n_old; i < lr->n_act; i++) {
        HookKind kinds[4];
        size_t nk = model_entry_kinds(run->entry, kinds);
        for (size_t j = 0; j < nk; j++) {
            float *dst = hook_is_attn(kinds[j])
                             ? act(lr, kinds[j]) + f->attn_off[i]
                             : act(lr, kinds[j]) + f->row_off[i] * hook_width(c, kinds[j]);
            run->fill(run->fill_ctx, i, kinds[j], lr->l, dst);
        }
    }
    call_hook(lr, HOOK_RESID_PRE);

    float *ln1 = act(lr, HOOK_LN1_NORMALIZED);
    layernorm_forward(ln1, act(lr, HOOK_LN1_SCALE), resid_pre, w->ln1_w, w->ln1_b,
                      nrows(lr, STEP_LN1), C, c->ln_eps);
    call_hook(lr, HOOK_LN1_SCALE);
    call_hook(lr, HOOK_LN1_NORMALIZED);

    float *q = act(lr, HOOK_Q), *k = act(lr, HOOK_K), *v = act(lr, HOOK_V);
    size_t n_qkv = nrows(lr, STEP_QKV);
    f->flops += matmul_forward(k, ln1, w->qkv_w + C, w->qkv_b + C, n_qkv, C, ld, 3 * C);
    f->flops += matmul_forward(v, ln1, w->qkv_w + 2 * C, w->qkv_b + 2 * C, n_qkv, C, ld, 3 * C);
    if (run->last_only && lr->l + 1 == c->n_layers && !f->keeps_any) {
        /* Keys and values are needed at every position; from here on only
         * each segment's last position matters (and nothing is kept that
         * would miss the other rows). */
        compact_rows(ln1, C, f, run, 0, nsegs(lr, STEP_QKV));
        compact_rows(resid_pre, C, f, run, 0, lr->n_act);
        compact_rows(q, ld, f, run, 0, lr->n_act);
        compact_rows(act(lr, HOOK_Z), ld, f, run, 0, lr->n_act);
        compact_rows(act(lr, HOOK_ATTN_OUT), C, f, run, 0, lr->n_act);
        compact_rows(act(lr, HOOK_RESID_MID), C, f, run, 0, lr->n_act);
        compact_rows(act(lr, HOOK_MLP_OUT), C, f, run, 0, lr->n_act);
        lr->compact = 1;
        n_qkv = nrows(lr, STEP_QKV);
    }
    f->flops += matmul_forward(q, ln1, w->qkv_w, w->qkv_b, n_qkv, C, ld, 3 * C);
    call_hook(lr, HOOK_Q);
    call_hook(lr, HOOK_K);
    call_hook(lr, HOOK_V);

    attention_step(lr);
    call_hook(lr, HOOK_Z);

    float *attn_out = act(lr, HOOK_ATTN_OUT);
    f->flops += matmul_forward(attn_out, act(lr, HOOK_Z), w->proj_w, w->proj_b,
                               nrows(lr, STEP_ATTN_OUT), ld, C, C);
    call_hook(lr, HOOK_ATTN_OUT);

    float *resid_mid = act(lr, HOOK_RESID_MID);
    residual_forward(resid_mid, resid_pre, attn_out, nrows(lr, STEP_RESID_MID) * C);
    call_hook(lr, HOOK_RESID_MID);

    float *ln2 = act(lr, HOOK_LN2_NORMALIZED);
    layernorm_forward(ln2, act(lr, HOOK_LN2_SCALE), resid_mid, w->ln2_w, w->ln2_b,
                      nrows(lr, STEP_LN2), C, c->ln_eps);
    call_hook(lr, HOOK_LN2_SCALE);
    call_hook(lr, HOOK_LN2_NORMALIZED);

    size_t n_mlp = nrows(lr, STEP_MLP);
    float *pre = act(lr, HOOK_MLP_PRE), *post = act(lr, HOOK_MLP_POST);
    f->flops += matmul_forward(pre, ln2, w->fc_w, w->fc_b, n_mlp, C, F, F);
    call_hook(lr, HOOK_MLP_PRE);
    if (c->act == MODEL_ACT_GELU)
        gelu_erf_forward(post, pre, n_mlp * F);
    else
        gelu_new_forward(post, pre, n_mlp * F);
    call_hook(lr, HOOK_MLP_POST);

    float *mlp_out = act(lr, HOOK_MLP_OUT);
    f->flops += matmul_forward(mlp_out, post, w->fcproj_w, w->fcproj_b, nrows(lr, STEP_MLP_OUT),
                               F, C, C);
    call_hook(lr, HOOK_MLP_OUT);

    residual_forward(act(lr, HOOK_RESID_POST), resid_mid, mlp_out,
                     nrows(lr, STEP_RESID_POST) * C);
    call_hook(lr, HOOK_RESID_POST);
}

static int check_run(const Model *m, const Fwd *f, const ModelRun *run, Err *err)
{
    const ModelConfig *c = &m->cfg;
    CHECK(f->m == m);
    CHECK(!run->last_only || run->hook == NULL);
    CHECK(run->entry == MODEL_ENTRY_EMBED || run->fill != NULL);
    for (size_t i = 0; i < run->n_segs; i++) {
        const ModelSeg *s = &run->segs[i];
        if (s->n_tokens == 0) return err_set(err, "prompt %zu is empty", i);
        if (s->n_tokens > c->n_ctx)
            return err_set(err, "prompt %zu has %zu tokens, more than the model's context of %zu",
                           i, s->n_tokens, c->n_ctx);
        for (size_t t = s->start; t < s->n_tokens; t++)
            if (s->tokens[t] < 0 || (size_t)s->tokens[t] >= c->d_vocab)
                return err_set(err, "prompt %zu: token id %d at position %zu is outside the "
                               "vocabulary of %zu", i, (int)s->tokens[t], t, c->d_vocab);
        for (size_t j = 0; j < (s->logit_ids ? s->n_logit_ids : 0); j++)
            if (s->logit_ids[j] < 0 || (size_t)s->logit_ids[j] >= c->d_vocab)
                return err_set(err, "token id %d is outside the vocabulary of %zu",
                               (int)s->logit_ids[j], c->d_vocab);
        CHECK(s->start < s->n_tokens);
        CHECK(s->entry_layer <= c->n_layers);
        CHECK(i == 0 || run->segs[i - 1].entry_layer <= s->entry_layer);
        CHECK(run->entry != MODEL_ENTRY_EMBED || (s->start == 0 && s->entry_layer == 0));
        CHECK(s->start == 0 || (s->prefix != NULL && s->prefix->keep[HOOK_K] &&
                                s->prefix->keep[HOOK_V] && s->prefix->m == m &&
                                s->prefix->row_off[1] >= s->start));
    }
    return 0;
}

static void embed(const Model *m, Fwd *f, const ModelRun *run)
{
    size_t C = m->cfg.d_model;
    float *tok = fwd_act(f, HOOK_EMBED, 0), *pos = fwd_act(f, HOOK_POS_EMBED, 0);
    for (size_t i = 0; i < run->n_segs; i++) {
        const ModelSeg *s = &run->segs[i];
        for (size_t t = 0; t < s->n_tokens; t++) {
            size_t r = f->row_off[i] + t;
            memcpy(tok + r * C, m->wte + (size_t)s->tokens[t] * C, C * sizeof(float));
            memcpy(pos + r * C, m->wpe + t * C, C * sizeof(float));
        }
    }
    LayerRun lr = {.m = m, .f = f, .run = run};
    call_hook(&lr, HOOK_EMBED);
    call_hook(&lr, HOOK_POS_EMBED);
    residual_forward(fwd_act(f, HOOK_RESID_PRE, 0), tok, pos, f->row_off[run->n_segs] * C);
}

/* ln_final and the unembedding of rows [0, R) (one per segment when
 * compact), only the vocabulary columns each segment asked for. */
static void unembed(const Model *m, Fwd *f, const ModelRun *run, const float *x, size_t R,
                    int compact)
{
    const ModelConfig *c = &m->cfg;
    size_t C = c->d_model;
    float *xn = fwd_act(f, HOOK_LNF_NORMALIZED, 0);
    layernorm_forward(xn, fwd_act(f, HOOK_LNF_SCALE, 0), x, m->lnf_w, m->lnf_b, R, C, c->ln_eps);
    LayerRun lr = {.m = m, .f = f, .run = run};
    call_hook(&lr, HOOK_LNF_SCALE);
    call_hook(&lr, HOOK_LNF_NORMALIZED);

    int all_full = 1;
    for (size_t i = 0; i < run->n_segs; i++) all_full &= run->segs[i].logit_ids == NULL;
    if (all_full) { /* one product for every row: logits rows follow the x rows */
        f->flops += matmul_forward_t(f->logits, xn, m->unembed, R, C, c->d_vocab);
        return;
    }
    for (size_t i = 0; i < run->n_segs; i++) {
        const ModelSeg *s = &run->segs[i];
        size_t r0 = compact ? i : f->row_off[i], n = compact ? 1 : seg_rows(run, i);
        float *out = f->logits + f->logit_off[i];
        if (s->logit_ids == NULL) {
            f->flops += matmul_forward_t(out, xn + r0 * C, m->unembed, n, C, c->d_vocab);
            continue;
        }
        for (size_t r = 0; r < n; r++)
            for (size_t j = 0; j < s->n_logit_ids; j++) {
                const float *row = xn + (r0 + r) * C;
                const float *wv = m->unembed + (size_t)s->logit_ids[j] * C;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (size_t d = 0; d < C; d++) dot += row[d] * wv[d];
                out[r * s->n_logit_ids + j] = dot;
            }
        f->flops += 2.0 * (double)(n * s->n_logit_ids * C);
    }
}

Fwd *fwd_extract(const Fwd *f, size_t seg)
{
    CHECK(seg < f->n_segs);
    const ModelConfig *c = &f->m->cfg;
    Fwd *g = fwd_new(f->m, f->keep);
    size_t rows = f->row_off[seg + 1] - f->row_off[seg];
    size_t attn = f->attn_off[seg + 1] - f->attn_off[seg];
    size_t logits = f->logit_off[seg + 1] - f->logit_off[seg];
    /* One segment, laid out as a run of just that prompt. */
    g->segs_cap = 2;
    g->row_off = xcalloc(2, sizeof(size_t));
    g->attn_off = xcalloc(2, sizeof(size_t));
    g->logit_off = xcalloc(2, sizeof(size_t));
    g->logit_w = xcalloc(2, sizeof(size_t));
    g->n_segs = 1;
    g->row_off[1] = rows;
    g->attn_off[1] = attn;
    g->logit_off[1] = logits;
    g->logit_w[0] = f->logit_w[seg];
    g->attn_stacked = 1;
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        HookKind kind = (HookKind)k;
        size_t w = hook_is_attn(kind) ? 0 : hook_width(c, kind);
        g->slot[k] = hook_is_attn(kind) ? attn : rows * w;
        size_t slots = f->keep[k] ? nslots(f, kind) : 0;
        ensure(&g->buf[k], &g->cap[k], xmul(g->slot[k], slots ? slots : 1));
        for (size_t l = 0; l < slots; l++) {
            const float *src = f->buf[k] + l * f->slot[k] +
                               (hook_is_attn(kind) ? f->attn_off[seg] : f->row_off[seg] * w);
            memcpy(g->buf[k] + l * g->slot[k], src, g->slot[k] * sizeof(float));
        }
    }
    ensure(&g->logits, &g->logits_cap, logits);
    memcpy(g->logits, f->logits + f->logit_off[seg], logits * sizeof(float));
    g->flops = 0.0;
    return g;
}

int model_forward(const Model *m, Fwd *f, const ModelRun *run, Err *err)
{
    const ModelConfig *c = &m->cfg;
    if (check_run(m, f, run, err)) return -1;
    layout(f, run);
    f->flops = 0.0;
    size_t C = c->d_model, L = c->n_layers, S = run->n_segs;
    size_t n_old = 0;
    if (run->entry == MODEL_ENTRY_EMBED) {
        embed(m, f, run);
        n_old = S;
    }
    int compact = 0;
    for (size_t l = 0; l < L; l++) {
        size_t n_act = n_old;
        while (n_act < S && run->segs[n_act].entry_layer == l) n_act++;
        if (n_act == 0) continue;
        LayerRun lr = {.m = m, .f = f, .run = run, .l = l, .n_old = n_old, .n_act = n_act,
                       .join = join_step(run->entry)};
        layer_forward(&lr);
        compact = lr.compact;
        n_old = n_act;
    }
    /* The input of ln_final: the last layer's output (already one row per
     * segment when compact), and for segments entering after the last layer
     * (a patch of its resid_post) the fill callback's rows. */
    float *x = fwd_act(f, HOOK_RESID_PRE, L);
    if (n_old > 0 && L > 0) {
        size_t rows = compact ? n_old : f->row_off[n_old];
        memcpy(x, fwd_act(f, HOOK_RESID_POST, L - 1), rows * C * sizeof(float));
    }
    for (size_t i = n_old; i < S; i++)
        run->fill(run->fill_ctx, i, HOOK_RESID_PRE, L, x + f->row_off[i] * C);
    if (run->last_only) compact_rows(x, C, f, run, compact ? n_old : 0, S);
    unembed(m, f, run, x, run->last_only ? S : f->row_off[S], run->last_only);
    return 0;
}
