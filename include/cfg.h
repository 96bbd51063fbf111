/* cfg.h — experiment configs: YAML in, a validated Config out.
 *
 * cfg_load() parses the YAML (libyaml) and walks it with schema tables:
 * unknown keys, wrong types, bad enum values, missing required keys are
 * errors "path:line:col: what is wrong" (1-based line and column of the
 * offending node). The dataset is given inline (`dataset: {pairs: [...]}`) or
 * in a JSON Lines file (`dataset: {file: pairs.jsonl}`, errors "file:line:
 * ..."). Relative paths in the config (model, dataset file, output) are
 * relative to the directory of the config file.
 *
 * cfg_resolve() then checks everything that needs the model: text is
 * tokenized (BOS prepended unless prepend_bos is false; special tokens such
 * as <|endoftext|> in the text are read as such, like TransformerLens/HF),
 * answers must be single tokens, a pair's clean and corrupted prompts must
 * have the same length, token ids, layers, heads and named positions must be
 * in range. An integer experiment position may be out of range for some
 * pairs (their cells are not computed) but not for all. Its errors point at
 * the YAML node (or JSONL line) that holds the bad value.
 *
 * The full schema is documented in docs/config.md.
 */
#ifndef PATCHGRID_CFG_H
#define PATCHGRID_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct ModelConfig;
struct Tok;

/* What an experiment patches. The first five are per (layer, pos); the head
 * kinds are per (layer, head) over all positions or per (layer, pos, head). */
typedef enum PatchKind {
    PATCH_RESID_PRE, PATCH_RESID_MID, PATCH_RESID_POST, PATCH_ATTN_OUT, PATCH_MLP_OUT,
    PATCH_Z, PATCH_Q, PATCH_K, PATCH_V, PATCH_PATTERN, PATCH_KIND_COUNT
} PatchKind;

typedef enum PatchDir { DIR_DENOISING, DIR_NOISING } PatchDir;
typedef enum PatchSource { SRC_OTHER, SRC_ZERO, SRC_MEAN, SRC_RESAMPLE } PatchSource;

typedef enum Metric {
    METRIC_LOGIT_DIFF,      /* logit[answer] - logit[wrong] at the last position */
    METRIC_LOGIT_DIFF_NORM, /* (ld - ld_corrupted) / (ld_clean - ld_corrupted) */
    METRIC_PROB,            /* softmax(logits)[answer] */
    METRIC_LOGPROB,         /* log_softmax(logits)[answer] */
    METRIC_KL,              /* KL(clean || patched) of the last position's distribution */
    METRIC_COUNT
} Metric;

/* A source location for error messages: YAML line/col, or a JSONL line
 * (col 0). file is the config path or the dataset file path. */
typedef struct CfgMark {
    const char *file; /* owned by the Config */
    int line, col;    /* 1-based; 0 = unknown */
} CfgMark;

/* A position in a prompt: an index (negative counts from the end, -1 is the
 * last token) or the name of a per-pair named position ("IO", "END"). */
typedef struct CfgPos {
    char *name;    /* NULL for an index */
    long index;
    CfgMark mark;
} CfgPos;

typedef struct CfgNamedPos {
    char *name;
    long index;    /* as written (negative from the end); resolved: 0 <= index < n_tokens */
    CfgMark mark;
} CfgNamedPos;

/* The four prompt fields of a pair, each given as text or as token ids. */
typedef enum CfgField { CFG_CLEAN, CFG_CORRUPTED, CFG_ANSWER, CFG_WRONG, CFG_FIELD_COUNT } CfgField;

typedef struct CfgPair {
    /* As given: text (NULL if ids were given) ... */
    char *clean_text, *corrupted_text, *answer_text, *wrong_text;
    /* ... or ids (NULL / -1 if text was given). After cfg_resolve: always set. */
    int32_t *clean, *corrupted; /* (n_tokens) */
    size_t n_tokens;
    int32_t answer, wrong;
    CfgNamedPos *positions;     /* (n_positions) named positions of this pair */
    size_t n_positions;
    CfgMark mark;               /* the pair's node / JSONL line */
    CfgMark field_mark[CFG_FIELD_COUNT]; /* where each field's value is written */
} CfgPair;

/* A layers/heads selection as written. cfg_load stores a listed selection in
 * the experiment's layers/heads (sorted, distinct); for "all" and {from, to}
 * those stay NULL until cfg_resolve, which checks the selection against the
 * model and expands it. */
typedef struct CfgSel {
    int all;          /* "all" (the default): every layer/head of the model */
    size_t from, to;  /* otherwise the smallest and largest selected, inclusive */
    CfgMark to_mark;  /* where `to` is written: out-of-range errors point there */
} CfgSel;

typedef struct CfgExperiment {
    char *name;                 /* unique; "every" groups expand to NAME_<kind> */
    PatchKind kind;
    int per_pos;                /* head kinds: 1 = (layer, pos, head), 0 = all positions;
                                   always 1 for the (layer, pos) kinds */
    size_t *layers, n_layers;   /* resolved: sorted, distinct, < model layers */
    size_t *heads, n_heads;     /* head kinds only; resolved like layers */
    CfgSel layer_sel, head_sel; /* as written (head_sel: head kinds only) */
    CfgPos *positions;          /* NULL = every position; else the pos axis, as written */
    size_t n_positions;
    PatchDir dir;
    PatchSource source;
    uint32_t metrics;           /* bit (1u << Metric) per metric */
    CfgMark mark;               /* the experiment's node ("every" groups: the group's) */
    CfgMark source_mark;        /* the `source` value, or the experiment's node */
} CfgExperiment;

typedef struct Config {
    char *path;                 /* the config file as given */
    char *text;                 /* its bytes, verbatim (stored in the results) */
    size_t text_len;
    char *model_dir;            /* resolved path */
    char *output;               /* resolved path; default: <config stem>.h5 beside the config */
    char *dataset_file;         /* resolved path or NULL (inline pairs) */
    int prepend_bos;            /* default 1 */
    uint64_t seed;              /* for resample; default 0 */
    size_t units_per_pair;      /* work-unit split hint (default 0 = automatic) */
    size_t pairs_per_unit;      /* pairs per work unit (default 0 = automatic) */
    char **activations;         /* (n_activations) TL hook-name globs to store, or none */
    CfgMark *activation_marks;  /* (n_activations) */
    size_t n_activations;
    CfgPair *pairs;
    size_t n_pairs;
    CfgExperiment *exps;
    size_t n_exps;
    CfgMark model_mark, dataset_mark;
    int resolved;               /* set by a successful cfg_resolve */
} Config;

/* Parses and validates what can be checked without the model. On error
 * returns -1, err = "path:line:col: message", *out = NULL. */
int cfg_load(Config **out, const char *path, Err *err);

/* cfg_load with the config's `model` replaced by model_dir (a command-line
 * override; errors about it then name "--model" instead of a line). */
int cfg_load_model(Config **out, const char *path, const char *model_dir, Err *err);

/* Tokenizes and range-checks against the model (see the header comment).
 * tok may be NULL when every pair gives token ids. On error returns -1 and
 * err points at the offending node; the Config may then be half resolved and
 * is only fit for cfg_free. Call once per Config. */
int cfg_resolve(Config *cfg, const struct ModelConfig *mc, struct Tok *tok, Err *err);

void cfg_free(Config *cfg); /* accepts NULL */

/* The resolved position (0 <= p < n_tokens) of pos in pair, or -1 when an
 * index is out of range for this pair (its cells are then not computed). */
long cfg_pos_index(const CfgPos *pos, const CfgPair *pair);

const char *cfg_patch_name(PatchKind k);   /* "resid_pre", ..., "pattern" */
const char *cfg_metric_name(Metric m);     /* "logit_diff", "logit_diff_norm", "prob", "logprob", "kl" */
const char *cfg_dir_name(PatchDir d);      /* "denoising", "noising" */
const char *cfg_source_name(PatchSource s); /* "other", "zero", "mean", "resample" */

#endif
