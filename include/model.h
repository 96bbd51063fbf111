/* model.h — a hooked transformer: Hugging Face model directories in,
 * TransformerLens hook points out.
 *
 * A Model is the config plus weights (pointing into the mmap'ed safetensors
 * where possible). model_forward() runs a *batch of segments*: a segment is
 * positions [start, T) of one prompt of T tokens, entering the network at
 * layer `entry_layer` (earlier layers are not computed for it). Positions
 * [0, start) are not computed either: attention reads their keys and values
 * from a `prefix` run of the same prompt. The plain forward pass is the case
 * start = 0, entry_layer = 0, entry = MODEL_ENTRY_EMBED; the patch engine uses
 * the general case to recompute only what a patch can change.
 *
 * Activations follow TransformerLens (TL) names and shapes. Rows of all
 * segments are stacked: a per-position activation of a layer is one
 * (rows, width) matrix where segment i owns rows [row_off[i], row_off[i] +
 * T_i - start_i). Attention scores/patterns of segment i are (NH, rows_i, T_i)
 * starting at attn_off[i]. For B equal-length prompts with start 0 this is
 * exactly TL's (B, T, ...) and (B, NH, T, T).
 *
 * Dimension legend: T tokens of a prompt, C d_model, NH heads, HD d_head,
 * F d_mlp, V vocab, L layers, R stacked rows.
 */
#ifndef PATCHGRID_MODEL_H
#define PATCHGRID_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum ModelFamily { MODEL_GPT2 } ModelFamily;
typedef enum ModelAct { MODEL_ACT_GELU_NEW, MODEL_ACT_GELU } ModelAct;

typedef struct ModelConfig {
    ModelFamily family;
    size_t n_layers, n_heads, d_model, d_head, d_mlp, d_vocab, n_ctx;
    float ln_eps;
    ModelAct act;
    int tied;            /* unembedding is the token embedding */
    int32_t bos_id;      /* config.json bos_token_id, or -1 */
} ModelConfig;

typedef struct Model Model; /* opaque */

/* Opens DIR/config.json and the safetensors checkpoint, checks every weight's
 * name and shape against the config (unknown tensors are errors, except the
 * attn.bias/masked_bias buffers old GPT-2 files carry). On error returns -1,
 * *out = NULL, err names the file and what is wrong. */
int model_open(Model **out, const char *dir, Err *err);
void model_close(Model *m); /* accepts NULL */

const ModelConfig *model_config(const Model *m);
const char *model_dir(const Model *m);
const char *model_family_name(ModelFamily f);
const char *model_act_name(ModelAct a);
size_t model_param_count(const Model *m); /* distinct parameters (tied counted once) */
const char *model_dtype(const Model *m);   /* stored dtype of the weights, e.g. "F32" */
struct StSet;
const struct StSet *model_weights(const Model *m);

/* ---- hook points ---------------------------------------------------- */

typedef enum HookKind {
    HOOK_EMBED, HOOK_POS_EMBED,                         /* not per layer */
    HOOK_RESID_PRE, HOOK_LN1_SCALE, HOOK_LN1_NORMALIZED,
    HOOK_Q, HOOK_K, HOOK_V, HOOK_ATTN_SCORES, HOOK_PATTERN, HOOK_Z,
    HOOK_ATTN_OUT, HOOK_RESID_MID, HOOK_LN2_SCALE, HOOK_LN2_NORMALIZED,
    HOOK_MLP_PRE, HOOK_MLP_POST, HOOK_MLP_OUT, HOOK_RESID_POST,
    HOOK_LNF_SCALE, HOOK_LNF_NORMALIZED,                /* not per layer */
    HOOK_KIND_COUNT
} HookKind;

/* 1 if the kind exists once per layer, 0 if once per model. */
int hook_per_layer(HookKind kind);
/* 1 for the attention kinds stored as (NH, rows, T) per segment. */
int hook_is_attn(HookKind kind);
/* Width of one row of a per-position kind (C, 1, NH*HD, F). */
size_t hook_width(const ModelConfig *c, HookKind kind);
/* TL's name, e.g. "blocks.3.attn.hook_z"; writes at most n bytes. */
void hook_name(HookKind kind, size_t layer, char *buf, size_t n);
/* Parses a TL name; 0 on success, -1 if it is not a hook of this model. */
int hook_parse(const ModelConfig *c, const char *name, HookKind *kind, size_t *layer);
/* TL's shape of one prompt's activation (without the batch axis) into
 * shape[], returns the number of dims: e.g. (T, NH, HD) for hook_q,
 * (NH, T, T) for hook_pattern, (T, 1) for hook_scale. */
size_t hook_shape(const ModelConfig *c, HookKind kind, size_t T, size_t shape[4]);

/* ---- forward pass --------------------------------------------------- */

/* Where segments that start at entry_layer join the computation of that
 * layer. Before the join point nothing is computed for them; instead the
 * run's fill callback provides the tensors listed by model_entry_kinds(). */
typedef enum ModelEntry {
    MODEL_ENTRY_EMBED,     /* tokens -> embeddings (entry_layer must be 0) */
    MODEL_ENTRY_RESID_PRE, /* fill resid_pre */
    MODEL_ENTRY_QKV,       /* fill resid_pre, q, k, v */
    MODEL_ENTRY_PATTERN,   /* fill resid_pre, v, pattern */
    MODEL_ENTRY_Z,         /* fill resid_pre, z */
    MODEL_ENTRY_ATTN_OUT,  /* fill resid_pre, attn_out */
    MODEL_ENTRY_RESID_MID, /* fill resid_mid */
    MODEL_ENTRY_MLP_OUT,   /* fill resid_mid, mlp_out */
} ModelEntry;

/* The kinds the fill callback must provide for `entry`, in the order it is
 * called; returns their number. */
size_t model_entry_kinds(ModelEntry entry, HookKind kinds[4]);

typedef struct Fwd Fwd; /* opaque workspace + activation store of one run */

typedef struct ModelSeg {
    const int32_t *tokens;   /* (T) the whole prompt */
    size_t n_tokens;         /* T */
    size_t start;            /* first computed position */
    size_t entry_layer;      /* first layer computed; == n_layers: only ln_final + unembed */
    const Fwd *prefix;       /* a run of this prompt (its segment 0, start 0) that kept
                                HOOK_K and HOOK_V; required when start > 0 */
    const int32_t *logit_ids; /* (n_logit_ids) vocabulary columns wanted; NULL: all V */
    size_t n_logit_ids;
} ModelSeg;

/* Called after each hook point with the stacked activation of all segments
 * active at that layer (rows [0, rows) or the attention block); may modify it
 * in place (a patch). `layer` is 0 for the per-model kinds. */
typedef void (*ModelHookFn)(void *ctx, HookKind kind, size_t layer, float *act,
                            const Fwd *fwd);
/* Called for a segment entering at its entry layer, once per kind of
 * model_entry_kinds(entry): write the segment's rows (rows_i x width), or for
 * the pattern its (NH, rows_i, T_i) block, into dst. */
typedef void (*ModelFillFn)(void *ctx, size_t seg, HookKind kind, size_t layer, float *dst);

typedef struct ModelRun {
    const ModelSeg *segs;   /* (n_segs) sorted by entry_layer */
    size_t n_segs;
    ModelEntry entry;
    int last_only;          /* logits only at each segment's last position; when
                               the workspace keeps nothing, the last layer then
                               computes only what that needs. Not combinable
                               with a hook. */
    ModelHookFn hook;       /* or NULL */
    void *hook_ctx;
    const uint8_t *hook_want; /* (HOOK_KIND_COUNT) kinds the hook is called for; NULL: all */
    ModelFillFn fill;       /* required unless entry == MODEL_ENTRY_EMBED */
    void *fill_ctx;
} ModelRun;

/* A workspace that keeps, after a run, every layer of the kinds with
 * keep[kind] != 0 (keep may be NULL: keep nothing). Other kinds live in
 * one-layer scratch. Buffers grow on demand and are reused across runs. */
Fwd *fwd_new(const Model *m, const uint8_t *keep);
void fwd_free(Fwd *f); /* accepts NULL */

/* Runs the batch. Errors (returned, not asserted): a token id outside the
 * vocabulary, a prompt longer than the context. Violations of the segment
 * contract (start > 0 without prefix, unsorted layers, ...) abort. */
int model_forward(const Model *m, Fwd *f, const ModelRun *run, Err *err);

/* After a run: the stacked activation of `kind` at `layer` (a kept kind, or
 * the last layer computed for a scratch kind; layer 0 for per-model kinds). */
float *fwd_act(const Fwd *f, HookKind kind, size_t layer);
size_t fwd_rows(const Fwd *f);                 /* stacked rows of the last run */
size_t fwd_row_off(const Fwd *f, size_t seg);  /* first row of segment seg */
size_t fwd_attn_off(const Fwd *f, size_t seg); /* offset of seg's attention block */
/* Logits of segment seg: (rows_i or 1 if last_only, n_logit_ids or V). */
const float *fwd_logits(const Fwd *f, size_t seg);
size_t fwd_logit_width(const Fwd *f, size_t seg);

/* A new workspace holding segment seg of f's last run as a run of its own:
 * its kept activations and logits, copied (so that a batch of prompts run
 * together can serve as separate one-prompt runs, e.g. as prefixes). */
Fwd *fwd_extract(const Fwd *f, size_t seg);

/* FLOPs of the matrix products of the last run (for GFLOP/s figures). */
double fwd_flops(const Fwd *f);

#endif
