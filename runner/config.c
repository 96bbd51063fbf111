/* config.c — experiment configs: YAML in, a validated Config out (see
 * include/cfg.h; the schema is documented in docs/config.md).
 *
 * The document is loaded whole with libyaml, then walked with schema tables
 * (`Key`: name, handler, offset of the field it fills, required): every
 * mapping is checked for unknown, duplicate and missing keys in one function,
 * and every scalar goes through one of a few strict readers (string, integer,
 * boolean, enum). Pairs from a JSON Lines file arrive as libyaml documents
 * too (dataset.c), so inline and file pairs share one schema.
 */
#include "cfg.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "dataset.h"
#include "model.h"
#include "tok.h"

/* ---- names ---------------------------------------------------------- */

/* The values of `patch`: the PatchKinds, then the two "every" groups. */
enum { PATCH_BLOCK_EVERY = PATCH_KIND_COUNT, PATCH_HEAD_EVERY, PATCH_SPEC_COUNT };
static const char *const patch_names[PATCH_SPEC_COUNT] = {
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z",
    "q",         "k",         "v",          "pattern",  "block_every", "head_every"};
static const PatchKind block_every_kinds[] = {PATCH_RESID_PRE, PATCH_ATTN_OUT, PATCH_MLP_OUT};
static const PatchKind head_every_kinds[] = {PATCH_Z, PATCH_Q, PATCH_K, PATCH_V, PATCH_PATTERN};

static const char *const metric_names[METRIC_COUNT] = {"logit_diff", "logit_diff_norm", "prob",
                                                       "logprob", "kl"};
static const char *const dir_names[] = {"denoising", "noising"};
static const char *const source_names[] = {"other", "zero", "mean", "resample"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *cfg_patch_name(PatchKind k)
{
    CHECK((unsigned)k < PATCH_KIND_COUNT);
    return patch_names[k];
}

const char *cfg_metric_name(Metric m)
{
    CHECK((unsigned)m < METRIC_COUNT);
    return metric_names[m];
}

const char *cfg_dir_name(PatchDir d)
{
    CHECK((unsigned)d < COUNT(dir_names));
    return dir_names[d];
}

const char *cfg_source_name(PatchSource s)
{
    CHECK((unsigned)s < COUNT(source_names));
    return source_names[s];
}

static int is_head_patch(int patch)
{
    return (patch >= PATCH_Z && patch <= PATCH_PATTERN) || patch == PATCH_HEAD_EVERY;
}

/* Pair fields by CfgField: as text, and as token ids. */
static const char *const text_keys[CFG_FIELD_COUNT] = {"clean", "corrupted", "answer", "wrong"};
static const char *const id_keys[CFG_FIELD_COUNT] = {"clean_tokens", "corrupted_tokens",
                                                     "answer_token", "wrong_token"};

/* ---- locations and messages ----------------------------------------- */

/* One walk over one libyaml document: the config, or one JSON Lines line. */
typedef struct Walk {
    yaml_document_t *doc;
    const char *file;  /* for marks; owned by the Config */
    int line_only;     /* JSON Lines: a mark is a line, without column */
    char q;            /* quote around key names: ' in YAML, " in JSON */
    size_t *budget;    /* node visits left (aliases can make a small file a huge tree); or NULL */
} Walk;

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

static int clamp_int(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* libyaml marks are 0-based; this is the one place that makes them 1-based. */
static CfgMark mark_of(const Walk *w, yaml_mark_t m)
{
    CfgMark k = {w->file, clamp_int(m.line + 1), w->line_only ? 0 : clamp_int(m.column + 1)};
    return k;
}

static CfgMark node_mark(const Walk *w, const yaml_node_t *n)
{
    return mark_of(w, n->start_mark);
}

static int mark_before(CfgMark a, CfgMark b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* Sets err to "file:line:col: message" ("file:line: ..." without a column,
 * "file: ..." without a line) and returns -1. */
static int err_at(Err *err, CfgMark m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int err_at(Err *err, CfgMark m, const char *fmt, ...)
{
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m.line <= 0) return err_set(err, "%s: %s", m.file, msg);
    if (m.col <= 0) return err_set(err, "%s:%d: %s", m.file, m.line, msg);
    return err_set(err, "%s:%d:%d: %s", m.file, m.line, m.col, msg);
}

/* Key names in messages are quoted as the file would write them. */
static char quote_of(CfgMark m)
{
    return m.col > 0 ? '\'' : '"';
}

/* s[0..n) for a one-line message: between quote characters q (none if q is
 * 0), with control characters, q and '\\' escaped, cut short (at a character
 * boundary) when long. */
static const char *escaped(const char *s, size_t n, char q, char *out, size_t cap)
{
    const size_t room = cap - 8; /* leaves space for an escape or `...`, the quote and NUL */
    size_t o = 0;
    if (q) out[o++] = q;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= room && (c & 0xC0) != 0x80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if ((q && c == (unsigned char)q) || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\t') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (q) out[o++] = q;
    out[o] = '\0';
    return out;
}

typedef struct QBuf {
    char s[128];
} QBuf;

/* A string value for messages: "text", escaped. */
static const char *quoted(const char *s, size_t n, QBuf *b)
{
    return escaped(s, n, '"', b->s, sizeof b->s);
}

/* A key name (or an enum value) for messages, quoted as the file would
 * write it: 'name' in YAML, "name" in JSON. */
typedef struct KBuf {
    char s[80];
} KBuf;

static const char *kq(char q, const char *name, KBuf *b)
{
    return escaped(name, strlen(name), q, b->s, sizeof b->s);
}

static const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- scalars: YAML 1.2 core schema ---------------------------------- */

typedef enum ScalarType { SC_STR, SC_INT, SC_FLOAT, SC_BOOL, SC_NULL } ScalarType;

static int all_in(const char *s, const char *set)
{
    if (*s == '\0') return 0;
    for (; *s; s++)
        if (strchr(set, *s) == NULL) return 0;
    return 1;
}

static int one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

static int core_int(const char *s)
{
    if (strncmp(s, "0o", 2) == 0) return all_in(s + 2, "01234567");
    if (strncmp(s, "0x", 2) == 0) return all_in(s + 2, "0123456789abcdefABCDEF");
    if (*s == '-' || *s == '+') s++;
    return all_in(s, "0123456789");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?, .inf, .nan */
static int core_float(const char *s)
{
    static const char *const special[] = {".nan", ".NaN", ".NAN", NULL};
    static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
    if (one_of(s, special)) return 1;
    if (*s == '-' || *s == '+') s++;
    if (one_of(s, inf)) return 1;
    size_t digits = strspn(s, "0123456789");
    s += digits;
    if (*s == '.') {
        size_t frac = strspn(s + 1, "0123456789");
        if (digits == 0 && frac == 0) return 0;
        s += 1 + frac;
    } else if (digits == 0) {
        return 0;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') s++;
        size_t e = strspn(s, "0123456789");
        if (e == 0) return 0;
        s += e;
    }
    return *s == '\0';
}

/* What a scalar is under the YAML 1.2 core schema: quoted scalars are
 * strings; plain ones are null, booleans, numbers or strings by their text.
 * An explicit numeric/boolean/null tag (JSON Lines documents carry them)
 * decides by itself. */
static ScalarType scalar_type(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    const char *tag = (const char *)n->tag;
    if (tag != NULL) {
        if (strcmp(tag, YAML_INT_TAG) == 0) return SC_INT;
        if (strcmp(tag, YAML_FLOAT_TAG) == 0) return SC_FLOAT;
        if (strcmp(tag, YAML_BOOL_TAG) == 0) return SC_BOOL;
        if (strcmp(tag, YAML_NULL_TAG) == 0) return SC_NULL;
    }
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return SC_STR;
    const char *s = scalar_text(n);
    if (one_of(s, nulls)) return SC_NULL;
    if (one_of(s, bools)) return SC_BOOL;
    if (core_int(s)) return SC_INT;
    if (core_float(s)) return SC_FLOAT;
    return SC_STR;
}

static int is_string(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && scalar_type(n) == SC_STR;
}

static int is_string_eq(const yaml_node_t *n, const char *s)
{
    return is_string(n) && strcmp(scalar_text(n), s) == 0;
}

/* A node as the tail of "must be X, not ...". */
static const char *describe(const yaml_node_t *n, QBuf *b)
{
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    const char *s = scalar_text(n);
    switch (scalar_type(n)) {
    case SC_NULL: return *s ? "null" : "an empty value";
    case SC_STR: {
        QBuf q;
        snprintf(b->s, sizeof b->s, "the string %s", quoted(s, n->data.scalar.length, &q));
        return b->s;
    }
    default: return escaped(s, n->data.scalar.length, 0, b->s, sizeof b->s);
    }
}

/* ---- walking -------------------------------------------------------- */

/* Node `id` of the document, counted against the visit budget. */
static yaml_node_t *node_get(Walk *w, int id, Err *err)
{
    yaml_node_t *n = yaml_document_get_node(w->doc, id);
    CHECK(n != NULL);
    if (w->budget != NULL) {
        if (*w->budget == 0) {
            err_at(err, node_mark(w, n), "the config expands to too many values "
                                         "(aliases to aliases?)");
            return NULL;
        }
        --*w->budget;
    }
    return n;
}

typedef int (*KeyFn)(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err);

/* A schema table row: key `name` is read by fn into (char *)obj + offset. */
typedef struct Key {
    const char *name;
    KeyFn fn;
    size_t offset;
    int required;
} Key;

enum { MAX_KEYS = 16 };

/* The keys of a table that a mapping gave, and where. */
typedef struct Seen {
    unsigned bits;
    CfgMark key[MAX_KEYS], val[MAX_KEYS];
} Seen;

static int seen(const Seen *s, size_t i)
{
    return (s->bits >> i) & 1u;
}

static void key_list(const Key *keys, size_t n_keys, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n_keys && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", keys[i].name);
}

/* Checks that node is a mapping (called `what` in messages) of known,
 * distinct keys with every required key present, calling each key's handler
 * in document order. */
static int walk_mapping(Walk *w, yaml_node_t *node, const char *what, const Key *keys,
                        size_t n_keys, void *obj, Seen *s, Err *err)
{
    CHECK(n_keys <= MAX_KEYS);
    memset(s, 0, sizeof *s);
    QBuf d;
    KBuf kb;
    if (node->type != YAML_MAPPING_NODE)
        return err_at(err, node_mark(w, node), "%s must be a mapping (key: value), not %s", what,
                      describe(node, &d));
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_get(w, p->key, err);
        if (k == NULL) return -1;
        if (k->type != YAML_SCALAR_NODE)
            return err_at(err, node_mark(w, k), "a key must be a name, not %s", describe(k, &d));
        const char *name = scalar_text(k);
        size_t i = 0;
        while (i < n_keys && strcmp(keys[i].name, name) != 0) i++;
        if (i == n_keys) {
            char list[512];
            key_list(keys, n_keys, list, sizeof list);
            return err_at(err, node_mark(w, k), "unknown key %s (expected one of: %s)",
                          kq(w->q, name, &kb), list);
        }
        if (seen(s, i))
            return err_at(err, node_mark(w, k), "duplicate key %s (first given at line %d)",
                          kq(w->q, name, &kb), s->key[i].line);
        s->bits |= 1u << i;
        s->key[i] = node_mark(w, k);
        yaml_node_t *v = node_get(w, p->value, err);
        if (v == NULL) return -1;
        s->val[i] = node_mark(w, v);
        if (keys[i].fn(w, v, keys[i].name, (char *)obj + keys[i].offset, err)) return -1;
    }
    for (size_t i = 0; i < n_keys; i++)
        if (keys[i].required && !seen(s, i))
            return err_at(err, node_mark(w, node), "%s is missing key %s", what,
                          kq(w->q, keys[i].name, &kb));
    return 0;
}

/* Items of a sequence node, or -1 with "`what` must be a list..." */
static int want_list(Walk *w, yaml_node_t *v, const char *what, const char *of, int non_empty,
                     size_t *n, Err *err)
{
    QBuf d;
    if (v->type != YAML_SEQUENCE_NODE)
        return err_at(err, node_mark(w, v), "%s must be a list of %s, not %s", what, of,
                      describe(v, &d));
    *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (non_empty && *n == 0)
        return err_at(err, node_mark(w, v), "%s must not be an empty list", what);
    return 0;
}

/* Duplicate detection for lists that may be long: sort, compare neighbours. */
typedef struct DupKey {
    const char *name; /* or NULL: compare value */
    long value;
    size_t order;     /* position in the document */
} DupKey;

static int dupkey_cmp(const void *pa, const void *pb)
{
    const DupKey *a = pa, *b = pb;
    if ((a->name == NULL) != (b->name == NULL)) return a->name == NULL ? -1 : 1;
    if (a->name != NULL) {
        int c = strcmp(a->name, b->name);
        if (c != 0) return c;
    } else if (a->value != b->value) {
        return a->value < b->value ? -1 : 1;
    }
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Sorts keys[0..n); if a key repeats, returns its later occurrence (the
 * entry before it is an earlier one), else NULL. */
static const DupKey *find_dup(DupKey *keys, size_t n)
{
    qsort(keys, n, sizeof *keys, dupkey_cmp);
    for (size_t i = 1; i < n; i++) {
        const DupKey *a = &keys[i - 1], *b = &keys[i];
        if ((a->name == NULL && b->name == NULL && a->value == b->value) ||
            (a->name != NULL && b->name != NULL && strcmp(a->name, b->name) == 0))
            return b;
    }
    return NULL;
}

/* ---- scalar readers --------------------------------------------------- */

/* A non-empty string without NUL bytes (borrowed from the node). */
static int want_string(Walk *w, yaml_node_t *v, const char *what, const char **out, Err *err)
{
    QBuf d;
    if (!is_string(v)) {
        const char *hint = v->type == YAML_SCALAR_NODE && scalar_type(v) != SC_NULL
                               ? " (quote it to make it a string)" : "";
        return err_at(err, node_mark(w, v), "%s must be a string, not %s%s", what,
                      describe(v, &d), w->line_only ? "" : hint);
    }
    if (v->data.scalar.length == 0)
        return err_at(err, node_mark(w, v), "%s must not be empty", what);
    if (strlen(scalar_text(v)) != v->data.scalar.length)
        return err_at(err, node_mark(w, v), "%s must not contain a NUL character", what);
    *out = scalar_text(v);
    return 0;
}

/* An integer in [lo, hi], written in decimal (strtol, whole text, in range). */
static int want_long(Walk *w, yaml_node_t *v, const char *what, long lo, long hi, long *out,
                     Err *err)
{
    QBuf d;
    if (v->type != YAML_SCALAR_NODE || scalar_type(v) != SC_INT)
        return err_at(err, node_mark(w, v), "%s must be an integer, not %s", what,
                      describe(v, &d));
    const char *s = scalar_text(v);
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || x < lo || x > hi) {
        escaped(s, v->data.scalar.length, 0, d.s, sizeof d.s);
        if (end == s || *end != '\0')
            return err_at(err, node_mark(w, v), "%s must be a decimal integer, not %s", what, d.s);
        return err_at(err, node_mark(w, v), "%s must be an integer from %ld to %ld, not %s",
                      what, lo, hi, d.s);
    }
    *out = x;
    return 0;
}

/* One of names[0..n) (a string), as its index. `noun` names the kind of
 * value in "unknown noun 'x'". */
static int want_enum(Walk *w, yaml_node_t *v, const char *what, const char *noun,
                     const char *const *names, size_t n, int *out, Err *err)
{
    char list[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", names[i]);
    QBuf d;
    KBuf kb;
    if (!is_string(v))
        return err_at(err, node_mark(w, v), "%s must be one of: %s; not %s", what, list,
                      describe(v, &d));
    for (size_t i = 0; i < n; i++)
        if (strcmp(scalar_text(v), names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    return err_at(err, node_mark(w, v), "unknown %s %s (expected one of: %s)", noun,
                  kq(w->q, scalar_text(v), &kb), list);
}

/* ---- key handlers ---------------------------------------------------- */

static int h_string(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    const char *s = NULL;
    if (want_string(w, v, kq(w->q, key, &kb), &s, err)) return -1;
    *(char **)dst = xstrdup(s);
    return 0;
}

/* A path: a string without control characters (they would break messages). */
static int h_path(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    const char *s = NULL;
    if (want_string(w, v, kq(w->q, key, &kb), &s, err)) return -1;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return err_at(err, node_mark(w, v), "%s must not contain control characters", kb.s);
    *(char **)dst = xstrdup(s);
    return 0;
}

static int h_node(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    *(yaml_node_t **)dst = v;
    return 0;
}

/* YAML 1.2 booleans: exactly true or false. */
static int h_bool(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    static const char *const yaml11[] = {"yes", "Yes", "YES", "no", "No", "NO", "on", "On",
                                         "ON", "off", "Off", "OFF", "y", "Y", "n", "N", NULL};
    KBuf kb;
    QBuf d;
    if (v->type == YAML_SCALAR_NODE && scalar_type(v) == SC_BOOL) {
        if (strcmp(scalar_text(v), "true") == 0) return *(int *)dst = 1, 0;
        if (strcmp(scalar_text(v), "false") == 0) return *(int *)dst = 0, 0;
    }
    int old = v->type == YAML_SCALAR_NODE && one_of(scalar_text(v), yaml11);
    return err_at(err, node_mark(w, v), "%s must be true or false, not %s%s", kq(w->q, key, &kb),
                  describe(v, &d), old ? " (YAML 1.2 booleans are only true and false)" : "");
}

static int h_seed(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    long x;
    if (want_long(w, v, kq(w->q, key, &kb), 0, LONG_MAX, &x, err)) return -1;
    *(uint64_t *)dst = (uint64_t)x;
    return 0;
}

/* A count or index: 0 .. INT32_MAX. */
static int h_count(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_long(w, v, kq(w->q, key, &kb), 0, INT32_MAX, (long *)dst, err);
}

static int h_metrics(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    size_t n;
    if (want_list(w, v, kq(w->q, key, &kb), "metric names", 1, &n, err)) return -1;
    uint32_t mask = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        int m;
        if (item == NULL ||
            want_enum(w, item, "a metric", "metric", metric_names, METRIC_COUNT, &m, err))
            return -1;
        if (mask & (1u << m))
            return err_at(err, node_mark(w, item), "metric %s is listed twice",
                          kq(w->q, metric_names[m], &kb));
        mask |= 1u << m;
    }
    *(uint32_t *)dst = mask;
    return 0;
}

/* A list of hook-name globs as read. */
typedef struct GlobsIn {
    char **globs;
    CfgMark *marks;
    size_t n;
} GlobsIn;

/* A list of TransformerLens hook-name globs (checked against the model's
 * hooks in cfg_resolve). */
static int h_globs(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    GlobsIn *g = dst;
    KBuf kb;
    size_t n;
    if (want_list(w, v, kq(w->q, key, &kb), "hook names (globs like 'blocks.*.hook_z')", 1,
                  &n, err))
        return -1;
    g->globs = xcalloc(n, sizeof *g->globs);
    g->marks = xcalloc(n, sizeof *g->marks);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        if (item == NULL || h_path(w, item, "a hook name", &g->globs[g->n], err)) return -1;
        g->marks[g->n++] = node_mark(w, item);
    }
    return 0;
}

/* ---- pairs ----------------------------------------------------------- */

static int is_pos_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

/* Position indices stay within int32 so that negating one cannot overflow. */
#define POS_MAX ((long)INT32_MAX)

typedef struct IdList {
    int32_t *ids;
    size_t n;
} IdList;

typedef struct PosList {
    CfgNamedPos *pos;
    size_t n;
} PosList;

/* A pair as read, before it becomes a CfgPair. */
typedef struct PairIn {
    char *text[CFG_FIELD_COUNT];
    IdList prompt[2];            /* clean_tokens, corrupted_tokens */
    long answer[2];              /* answer_token, wrong_token */
    PosList positions;
} PairIn;

static void pos_list_free(CfgNamedPos *pos, size_t n)
{
    for (size_t i = 0; i < n; i++) free(pos[i].name);
    free(pos);
}

static int h_token_id(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_long(w, v, kq(w->q, key, &kb), 0, INT32_MAX, (long *)dst, err);
}

static int h_token_ids(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    IdList *l = dst;
    KBuf kb;
    char what[128];
    size_t n;
    if (want_list(w, v, kq(w->q, key, &kb), "token ids", 1, &n, err)) return -1;
    snprintf(what, sizeof what, "a token id in %s", kb.s);
    l->ids = xmalloc(xmul(n, sizeof *l->ids));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        long id;
        if (item == NULL || want_long(w, item, what, 0, INT32_MAX, &id, err)) return -1;
        l->ids[l->n++] = (int32_t)id;
    }
    return 0;
}

static int h_pair_positions(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    PosList *l = dst;
    KBuf kb;
    QBuf d;
    if (v->type != YAML_MAPPING_NODE)
        return err_at(err, node_mark(w, v), "%s must be a mapping of names to token indices "
                      "(e.g. {IO: 2, END: -1}), not %s", kq(w->q, key, &kb), describe(v, &d));
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    l->pos = xcalloc(n, sizeof *l->pos);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = node_get(w, p->key, err), *val;
        if (k == NULL) return -1;
        if (!is_string(k) || !is_pos_name(scalar_text(k)) || strcmp(scalar_text(k), "all") == 0)
            return err_at(err, node_mark(w, k), "a position name must be a letter or '_' "
                          "followed by letters, digits or '_' (and not \"all\"), not %s",
                          describe(k, &d));
        char what[128];
        snprintf(what, sizeof what, "position %s", kq(w->q, scalar_text(k), &kb));
        CfgNamedPos *np = &l->pos[l->n];
        if ((val = node_get(w, p->value, err)) == NULL ||
            want_long(w, val, what, -POS_MAX, POS_MAX, &np->index, err))
            return -1;
        np->name = xstrdup(scalar_text(k));
        np->mark = node_mark(w, val);
        l->n++;
    }
    DupKey *dk = xmalloc(xmul(n, sizeof *dk));
    for (size_t i = 0; i < n; i++) dk[i] = (DupKey){l->pos[i].name, 0, i};
    const DupKey *dup = find_dup(dk, n);
    size_t first = dup ? dup[-1].order : 0, again = dup ? dup->order : 0;
    free(dk);
    if (dup)
        return err_at(err, l->pos[again].mark, "duplicate position %s (first given at line %d)",
                      kq(w->q, l->pos[again].name, &kb), l->pos[first].mark.line);
    return 0;
}

static const Key pair_keys[] = {
    {"clean", h_string, offsetof(PairIn, text[CFG_CLEAN]), 0},
    {"corrupted", h_string, offsetof(PairIn, text[CFG_CORRUPTED]), 0},
    {"answer", h_string, offsetof(PairIn, text[CFG_ANSWER]), 0},
    {"wrong", h_string, offsetof(PairIn, text[CFG_WRONG]), 0},
    {"clean_tokens", h_token_ids, offsetof(PairIn, prompt[0]), 0},
    {"corrupted_tokens", h_token_ids, offsetof(PairIn, prompt[1]), 0},
    {"answer_token", h_token_id, offsetof(PairIn, answer[0]), 0},
    {"wrong_token", h_token_id, offsetof(PairIn, answer[1]), 0},
    {"positions", h_pair_positions, offsetof(PairIn, positions), 0},
};

/* "pair N: clean prompt has A tokens but corrupted has B; they must match" */
static int length_mismatch(Err *err, const CfgPair *p, size_t index, size_t n_clean,
                           size_t n_corrupted)
{
    return err_at(err, p->mark, "pair %zu: clean prompt has %zu token%s but corrupted has %zu; "
                  "they must match", index + 1, n_clean, plural(n_clean), n_corrupted);
}

/* Reads pair number index+1 from node into *p (zeroed; p->mark may be preset). */
static int parse_pair(Walk *w, yaml_node_t *node, size_t index, CfgPair *p, Err *err)
{
    PairIn in;
    memset(&in, 0, sizeof in);
    Seen s;
    KBuf ka, kb;
    int rc = -1;
    if (p->mark.file == NULL) p->mark = node_mark(w, node);
    if (walk_mapping(w, node, "a pair", pair_keys, COUNT(pair_keys), &in, &s, err)) goto out;
    for (size_t f = 0; f < CFG_FIELD_COUNT; f++) {
        size_t t = f, i = f + CFG_FIELD_COUNT; /* key indices: as text, as ids */
        if (seen(&s, t) && seen(&s, i)) {
            err_at(err, mark_before(s.key[t], s.key[i]) ? s.key[i] : s.key[t],
                   "give %s or %s, not both", kq(w->q, text_keys[f], &ka),
                   kq(w->q, id_keys[f], &kb));
            goto out;
        }
        if (!seen(&s, t) && !seen(&s, i)) {
            err_at(err, node_mark(w, node), "missing key %s (or %s)",
                   kq(w->q, text_keys[f], &ka), kq(w->q, id_keys[f], &kb));
            goto out;
        }
        p->field_mark[f] = s.val[seen(&s, t) ? t : i];
    }
    if (in.prompt[0].ids && in.prompt[1].ids && in.prompt[0].n != in.prompt[1].n) {
        length_mismatch(err, p, index, in.prompt[0].n, in.prompt[1].n);
        goto out;
    }
    p->clean_text = in.text[CFG_CLEAN];
    p->corrupted_text = in.text[CFG_CORRUPTED];
    p->answer_text = in.text[CFG_ANSWER];
    p->wrong_text = in.text[CFG_WRONG];
    p->clean = in.prompt[0].ids;
    p->corrupted = in.prompt[1].ids;
    p->n_tokens = in.prompt[0].ids ? in.prompt[0].n : in.prompt[1].n;
    p->answer = seen(&s, CFG_FIELD_COUNT + CFG_ANSWER) ? (int32_t)in.answer[0] : -1;
    p->wrong = seen(&s, CFG_FIELD_COUNT + CFG_WRONG) ? (int32_t)in.answer[1] : -1;
    p->positions = in.positions.pos;
    p->n_positions = in.positions.n;
    memset(&in, 0, sizeof in); /* all moved into *p */
    rc = 0;
out:
    for (size_t f = 0; f < CFG_FIELD_COUNT; f++) free(in.text[f]);
    free(in.prompt[0].ids);
    free(in.prompt[1].ids);
    pos_list_free(in.positions.pos, in.positions.n);
    return rc;
}

/* The DatasetPairFn of JSON Lines files: the same schema, line marks. */
static int parse_jsonl_pair(void *ctx, yaml_document_t *doc, yaml_node_t *obj, CfgPair *pair,
                            Err *err)
{
    Config *cfg = ctx;
    Walk w = {doc, cfg->dataset_file, 1, '"', NULL};
    return parse_pair(&w, obj, (size_t)(pair - cfg->pairs), pair, err);
}

/* ---- experiments ------------------------------------------------------ */

enum { BY_UNSET, BY_LAYER_POS, BY_LAYER_HEAD, BY_LAYER_POS_HEAD };

typedef struct SelIn {
    CfgSel sel;
    size_t *list; /* sorted, distinct; NULL for "all" and {from, to} */
    size_t n;
} SelIn;

typedef struct PosIn {
    CfgPos *pos;  /* NULL: all positions */
    size_t n;
} PosIn;

/* An experiment as read, before it becomes one or more CfgExperiments. */
typedef struct ExpIn {
    char *name;
    int patch, by, dir, source;
    SelIn layers, heads;
    PosIn positions;
    uint32_t metrics; /* 0: the top-level default */
} ExpIn;

static void exp_in_free(ExpIn *e)
{
    free(e->name);
    free(e->layers.list);
    free(e->heads.list);
    for (size_t i = 0; i < e->positions.n; i++) free(e->positions.pos[i].name);
    free(e->positions.pos);
}

static int h_patch(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_enum(w, v, kq(w->q, key, &kb), "patch kind", patch_names, PATCH_SPEC_COUNT,
                     (int *)dst, err);
}

static int h_dir(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_enum(w, v, kq(w->q, key, &kb), "direction", dir_names, COUNT(dir_names),
                     (int *)dst, err);
}

static int h_source(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_enum(w, v, kq(w->q, key, &kb), "source", source_names, COUNT(source_names),
                     (int *)dst, err);
}

static int h_by(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    static const char *const forms[] = {"", "layer,pos", "layer,head", "layer,pos,head"};
    KBuf kb;
    char got[64] = "";
    int ok = v->type == YAML_SEQUENCE_NODE;
    size_t n = ok ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start) : 0;
    for (size_t i = 0; ok && i < n && i < 3; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        if (item == NULL) return -1;
        ok = is_string(item) && strlen(scalar_text(item)) < 8;
        if (ok) {
            strcat(got, i ? "," : "");
            strcat(got, scalar_text(item));
        }
    }
    for (int f = BY_LAYER_POS; ok && n <= 3 && f <= BY_LAYER_POS_HEAD; f++)
        if (strcmp(got, forms[f]) == 0) return *(int *)dst = f, 0;
    return err_at(err, node_mark(w, v),
                  "%s must be [layer, pos], [layer, head] or [layer, pos, head]",
                  kq(w->q, key, &kb));
}

static int h_range_end(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    KBuf kb;
    return want_long(w, v, kq(w->q, key, &kb), 0, INT32_MAX, (long *)dst, err);
}

typedef struct RangeIn {
    long from, to;
} RangeIn;

static const Key range_keys[] = {
    {"from", h_range_end, offsetof(RangeIn, from), 1},
    {"to", h_range_end, offsetof(RangeIn, to), 1},
};

/* layers / heads: "all" | [i, j, ...] | {from: A, to: B} */
static int h_sel(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    SelIn *s = dst;
    const char *noun = strcmp(key, "layers") == 0 ? "layer" : "head";
    KBuf kb;
    QBuf d;
    kq(w->q, key, &kb);
    if (is_string_eq(v, "all")) {
        s->sel.all = 1;
        return 0;
    }
    if (v->type == YAML_MAPPING_NODE) {
        RangeIn r = {0, 0};
        Seen seen_keys;
        if (walk_mapping(w, v, kb.s, range_keys, COUNT(range_keys), &r, &seen_keys, err))
            return -1;
        if (r.from > r.to)
            return err_at(err, seen_keys.val[1], "%s: 'from' (%ld) is greater than 'to' (%ld)",
                          kb.s, r.from, r.to);
        s->sel = (CfgSel){0, (size_t)r.from, (size_t)r.to, seen_keys.val[1]};
        return 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return err_at(err, node_mark(w, v), "%s must be \"all\", a list of integers or "
                      "{from, to}, not %s", kb.s, describe(v, &d));
    size_t n;
    if (want_list(w, v, kb.s, "integers", 1, &n, err)) return -1;
    char what[128];
    snprintf(what, sizeof what, "a %s in %s", noun, kb.s);
    DupKey *dk = xmalloc(xmul(n, sizeof *dk));
    CfgMark *marks = xmalloc(xmul(n, sizeof *marks));
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        if (item == NULL || want_long(w, item, what, 0, INT32_MAX, &dk[i].value, err)) goto out;
        dk[i].name = NULL;
        dk[i].order = i;
        marks[i] = node_mark(w, item);
    }
    const DupKey *dup = find_dup(dk, n);
    if (dup) {
        err_at(err, marks[dup->order], "%s %ld is listed twice in %s", noun, dup->value, kb.s);
        goto out;
    }
    s->list = xmalloc(xmul(n, sizeof *s->list));
    for (size_t i = 0; i < n; i++) s->list[i] = (size_t)dk[i].value;
    s->n = n;
    s->sel = (CfgSel){0, s->list[0], s->list[n - 1], marks[dk[n - 1].order]};
    rc = 0;
out:
    free(dk);
    free(marks);
    return rc;
}

/* positions: "all" | a list of indices and names */
static int h_exp_positions(Walk *w, yaml_node_t *v, const char *key, void *dst, Err *err)
{
    PosIn *pl = dst;
    KBuf kb;
    QBuf d;
    kq(w->q, key, &kb);
    if (is_string_eq(v, "all")) return 0;
    size_t n;
    if (v->type != YAML_SEQUENCE_NODE)
        return err_at(err, node_mark(w, v), "%s must be \"all\" or a list of integers and "
                      "position names, not %s", kb.s, describe(v, &d));
    if (want_list(w, v, kb.s, "positions", 1, &n, err)) return -1;
    pl->pos = xcalloc(n, sizeof *pl->pos);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        if (item == NULL) return -1;
        CfgPos *p = &pl->pos[pl->n];
        p->mark = node_mark(w, item);
        if (item->type == YAML_SCALAR_NODE && scalar_type(item) == SC_INT) {
            if (want_long(w, item, "a position", -POS_MAX, POS_MAX, &p->index, err)) return -1;
        } else if (is_string(item) && is_pos_name(scalar_text(item)) &&
                   strcmp(scalar_text(item), "all") != 0) {
            p->name = xstrdup(scalar_text(item));
        } else {
            return err_at(err, p->mark, "%s must be \"all\" or a list of integers and position "
                          "names, not a list holding %s", kb.s, describe(item, &d));
        }
        pl->n++;
    }
    DupKey *dk = xmalloc(xmul(n, sizeof *dk));
    for (size_t i = 0; i < n; i++) dk[i] = (DupKey){pl->pos[i].name, pl->pos[i].index, i};
    const DupKey *dup = find_dup(dk, n);
    size_t again = dup ? dup->order : 0;
    free(dk);
    if (!dup) return 0;
    const CfgPos *p = &pl->pos[again];
    if (p->name) return err_at(err, p->mark, "position %s is listed twice", kq(w->q, p->name, &kb));
    return err_at(err, p->mark, "position %ld is listed twice", p->index);
}

static const Key exp_keys[] = {
    {"name", h_string, offsetof(ExpIn, name), 1},
    {"patch", h_patch, offsetof(ExpIn, patch), 1},
    {"by", h_by, offsetof(ExpIn, by), 0},
    {"layers", h_sel, offsetof(ExpIn, layers), 0},
    {"heads", h_sel, offsetof(ExpIn, heads), 0},
    {"positions", h_exp_positions, offsetof(ExpIn, positions), 0},
    {"direction", h_dir, offsetof(ExpIn, dir), 0},
    {"source", h_source, offsetof(ExpIn, source), 0},
    {"metrics", h_metrics, offsetof(ExpIn, metrics), 0},
};
enum { EK_NAME, EK_PATCH, EK_BY, EK_LAYERS, EK_HEADS, EK_POSITIONS, EK_DIR, EK_SOURCE };

static int valid_exp_name(const char *s)
{
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 200) return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
           strlen(s);
}

static size_t *copy_sizes(const size_t *a, size_t n)
{
    if (a == NULL) return NULL;
    size_t *c = xmalloc(xmul(n, sizeof *c));
    memcpy(c, a, n * sizeof *c);
    return c;
}

/* Where each experiment's name is written, for duplicate-name errors. */
typedef struct NameRef {
    CfgMark mark;
    const char *group; /* the "every" group it came from, or NULL */
} NameRef;

/* Appends the experiments that `e` stands for (one, or an "every" group's). */
static void add_experiments(Config *cfg, NameRef **refs, const ExpIn *e, const Seen *s,
                            CfgMark mark)
{
    PatchKind single = (PatchKind)e->patch;
    const PatchKind *kinds;
    size_t n = 1;
    if (e->patch == PATCH_BLOCK_EVERY) {
        kinds = block_every_kinds;
        n = COUNT(block_every_kinds);
    } else if (e->patch == PATCH_HEAD_EVERY) {
        kinds = head_every_kinds;
        n = COUNT(head_every_kinds);
    } else {
        kinds = &single;
    }
    cfg->exps = xrealloc(cfg->exps, xmul(cfg->n_exps + n, sizeof *cfg->exps));
    *refs = xrealloc(*refs, xmul(cfg->n_exps + n, sizeof **refs));
    for (size_t i = 0; i < n; i++) {
        CfgExperiment *x = &cfg->exps[cfg->n_exps];
        memset(x, 0, sizeof *x);
        (*refs)[cfg->n_exps] = (NameRef){s->val[EK_NAME], n > 1 ? patch_names[e->patch] : NULL};
        cfg->n_exps++;
        if (n > 1) {
            size_t len = strlen(e->name) + 1 + strlen(patch_names[kinds[i]]) + 1;
            x->name = xmalloc(len);
            snprintf(x->name, len, "%s_%s", e->name, patch_names[kinds[i]]);
        } else {
            x->name = xstrdup(e->name);
        }
        x->kind = kinds[i];
        x->per_pos = e->by != BY_LAYER_HEAD;
        x->layer_sel = e->layers.sel;
        x->layers = copy_sizes(e->layers.list, e->layers.n);
        x->n_layers = e->layers.list ? e->layers.n : 0;
        if (is_head_patch(kinds[i])) {
            x->head_sel = e->heads.sel;
            x->heads = copy_sizes(e->heads.list, e->heads.n);
            x->n_heads = e->heads.list ? e->heads.n : 0;
        }
        if (e->positions.pos != NULL) {
            x->positions = xcalloc(e->positions.n, sizeof *x->positions);
            x->n_positions = e->positions.n;
            for (size_t j = 0; j < e->positions.n; j++) {
                x->positions[j] = e->positions.pos[j];
                if (e->positions.pos[j].name)
                    x->positions[j].name = xstrdup(e->positions.pos[j].name);
            }
        }
        x->dir = (PatchDir)e->dir;
        x->source = (PatchSource)e->source;
        x->metrics = e->metrics;
        x->mark = mark;
        x->source_mark = seen(s, EK_SOURCE) ? s->val[EK_SOURCE] : mark;
    }
}

/* Checks one experiment node and appends what it stands for to cfg->exps. */
static int parse_experiment(Walk *w, yaml_node_t *node, uint32_t default_metrics, Config *cfg,
                            NameRef **refs, Err *err)
{
    ExpIn e;
    memset(&e, 0, sizeof e);
    e.layers.sel.all = e.heads.sel.all = 1;
    Seen s;
    KBuf kb;
    int rc = -1;
    if (walk_mapping(w, node, "an experiment", exp_keys, COUNT(exp_keys), &e, &s, err)) goto out;
    if (!valid_exp_name(e.name)) {
        QBuf d;
        err_at(err, s.val[EK_NAME], "experiment name %s must be made of letters, digits, "
               "'_', '.' and '-' (at most 200, not just dots)",
               quoted(e.name, strlen(e.name), &d));
        goto out;
    }
    const char *patch = patch_names[e.patch];
    int heads = is_head_patch(e.patch);
    if (!seen(&s, EK_BY)) {
        e.by = heads ? BY_LAYER_HEAD : BY_LAYER_POS;
    } else if (!heads && e.by != BY_LAYER_POS) {
        err_at(err, s.val[EK_BY], "patch %s is per (layer, pos): 'by' must be [layer, pos]",
               patch);
        goto out;
    } else if (heads && e.by == BY_LAYER_POS) {
        err_at(err, s.val[EK_BY], "patch %s is per head: 'by' must be [layer, head] or "
               "[layer, pos, head]", patch);
        goto out;
    }
    if (!heads && seen(&s, EK_HEADS)) {
        err_at(err, s.key[EK_HEADS], "%s is only for head patches (z, q, k, v, pattern, "
               "head_every); patch %s has no head axis", kq(w->q, "heads", &kb), patch);
        goto out;
    }
    if (heads && e.by == BY_LAYER_HEAD && seen(&s, EK_POSITIONS)) {
        err_at(err, s.key[EK_POSITIONS], "%s is not allowed with by: [layer, head], which "
               "patches all positions at once (use by: [layer, pos, head])",
               kq(w->q, "positions", &kb));
        goto out;
    }
    if (e.metrics == 0) e.metrics = default_metrics;
    add_experiments(cfg, refs, &e, &s, node_mark(w, node));
    rc = 0;
out:
    exp_in_free(&e);
    return rc;
}

static int parse_experiments(Walk *w, yaml_node_t *v, uint32_t default_metrics, Config *cfg,
                             Err *err)
{
    size_t n;
    if (want_list(w, v, "'experiments'", "experiments", 1, &n, err)) return -1;
    NameRef *refs = NULL;
    DupKey *dk = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_get(w, v->data.sequence.items.start[i], err);
        if (item == NULL || parse_experiment(w, item, default_metrics, cfg, &refs, err)) goto out;
    }
    dk = xmalloc(xmul(cfg->n_exps, sizeof *dk));
    for (size_t i = 0; i < cfg->n_exps; i++) dk[i] = (DupKey){cfg->exps[i].name, 0, i};
    const DupKey *dup = find_dup(dk, cfg->n_exps);
    if (dup) {
        size_t first = dup[-1].order, again = dup->order;
        const NameRef *r = &refs[again];
        char from[96] = "";
        if (r->group) snprintf(from, sizeof from, " (made by patch: %s)", r->group);
        err_at(err, r->mark, "duplicate experiment name '%s'%s: also used at line %d",
               cfg->exps[again].name, from, refs[first].mark.line);
        goto out;
    }
    rc = 0;
out:
    free(dk);
    free(refs);
    return rc;
}

/* ---- the config file -------------------------------------------------- */

/* The top-level keys as read. */
typedef struct TopIn {
    char *model, *output;
    int prepend_bos;
    uint64_t seed;
    long units_per_pair, pairs_per_unit;
    GlobsIn activations;
    uint32_t metrics;
    yaml_node_t *dataset, *experiments;
} TopIn;

static const Key top_keys[] = {
    {"model", h_path, offsetof(TopIn, model), 1},
    {"output", h_path, offsetof(TopIn, output), 0},
    {"prepend_bos", h_bool, offsetof(TopIn, prepend_bos), 0},
    {"seed", h_seed, offsetof(TopIn, seed), 0},
    {"units_per_pair", h_count, offsetof(TopIn, units_per_pair), 0},
    {"pairs_per_unit", h_count, offsetof(TopIn, pairs_per_unit), 0},
    {"activations", h_globs, offsetof(TopIn, activations), 0},
    {"metrics", h_metrics, offsetof(TopIn, metrics), 0},
    {"dataset", h_node, offsetof(TopIn, dataset), 1},
    {"experiments", h_node, offsetof(TopIn, experiments), 1},
};
enum {
    TK_MODEL, TK_OUTPUT, TK_BOS, TK_SEED, TK_UNITS, TK_PAIRS_PER_UNIT, TK_ACTIVATIONS, TK_METRICS,
    TK_DATASET, TK_EXPERIMENTS
};

typedef struct DataIn {
    yaml_node_t *pairs;
    char *file;
} DataIn;

static const Key data_keys[] = {
    {"pairs", h_node, offsetof(DataIn, pairs), 0},
    {"file", h_path, offsetof(DataIn, file), 0},
};

/* rel, seen from the current directory, when it is relative to the
 * directory of the file `base`. */
static char *path_beside(const char *base, const char *rel)
{
    const char *slash = strrchr(base, '/');
    if (rel[0] == '/' || slash == NULL) return xstrdup(rel);
    size_t dn = (size_t)(slash - base) + 1, rn = strlen(rel);
    char *p = xmalloc(dn + rn + 1);
    memcpy(p, base, dn);
    memcpy(p + dn, rel, rn + 1);
    return p;
}

/* <stem of path>.h5 beside path. */
static char *default_output(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *name = xmalloc(stem + 4);
    memcpy(name, base, stem);
    memcpy(name + stem, ".h5", 4);
    char *out = path_beside(path, name);
    free(name);
    return out;
}

static int parse_dataset(Walk *w, yaml_node_t *v, Config *cfg, Err *err)
{
    DataIn in = {NULL, NULL};
    Seen s;
    FILE *f = NULL;
    int rc = -1;
    cfg->dataset_mark = node_mark(w, v);
    if (walk_mapping(w, v, "'dataset'", data_keys, COUNT(data_keys), &in, &s, err)) goto out;
    if (seen(&s, 0) && seen(&s, 1)) {
        err_at(err, mark_before(s.key[0], s.key[1]) ? s.key[1] : s.key[0],
               "'dataset' takes 'pairs' or 'file', not both");
        goto out;
    }
    if (in.pairs != NULL) {
        size_t n;
        if (want_list(w, in.pairs, "'pairs'", "pairs", 1, &n, err)) goto out;
        cfg->pairs = xcalloc(n, sizeof *cfg->pairs);
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item = node_get(w, in.pairs->data.sequence.items.start[i], err);
            if (item == NULL) goto out;
            cfg->n_pairs++;
            if (parse_pair(w, item, i, &cfg->pairs[i], err)) goto out;
        }
    } else if (in.file != NULL) {
        cfg->dataset_file = path_beside(cfg->path, in.file);
        struct stat st;
        f = fopen(cfg->dataset_file, "r");
        if (f == NULL) {
            err_at(err, s.val[1], "cannot open dataset file '%s': %s", cfg->dataset_file,
                   strerror(errno));
            goto out;
        }
        if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
            err_at(err, s.val[1], "dataset file '%s' is a directory", cfg->dataset_file);
            goto out;
        }
        if (dataset_read_jsonl(f, cfg->dataset_file, parse_jsonl_pair, cfg, &cfg->pairs,
                               &cfg->n_pairs, err))
            goto out;
        if (cfg->n_pairs == 0) {
            err_at(err, s.val[1], "dataset file '%s' has no pairs", cfg->dataset_file);
            goto out;
        }
    } else {
        err_at(err, cfg->dataset_mark, "'dataset' needs 'pairs' (a list of pairs) or 'file' "
               "(a JSON Lines file)");
        goto out;
    }
    rc = 0;
out:
    if (f) fclose(f);
    free(in.file);
    return rc;
}

static int read_file(const char *path, char **text, size_t *len, Err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return err_set(err, "%s: cannot read: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (cap - n < 2) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(err, "%s: cannot read: %s", path, strerror(saved ? saved : EIO));
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The 0-based line and column of byte `offset` of text. */
static yaml_mark_t mark_at_offset(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {offset, 0, 0};
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}

/* The parser's error as "file:line:col: problem (context at line L, column C)". */
static int yaml_error(const yaml_parser_t *p, const Walk *w, const char *text, size_t len,
                      Err *err)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) die_at(__FILE__, __LINE__, "out of memory in libyaml");
    if (p->error == YAML_READER_ERROR) {
        CfgMark m = mark_of(w, mark_at_offset(text, len, p->problem_offset));
        if (p->problem_value != -1)
            return err_at(err, m, "%s (0x%02X)", problem, (unsigned)p->problem_value);
        return err_at(err, m, "%s", problem);
    }
    CfgMark m = mark_of(w, p->problem_mark);
    if (p->context) {
        CfgMark c = mark_of(w, p->context_mark);
        return err_at(err, m, "%s (%s at line %d, column %d)", problem, p->context, c.line, c.col);
    }
    return err_at(err, m, "%s", problem);
}

int cfg_load_model(Config **out, const char *path, const char *model_dir, Err *err)
{
    *out = NULL;
    Config *cfg = xcalloc(1, sizeof *cfg);
    cfg->path = xstrdup(path);
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_parser = 0, have_doc = 0, have_extra = 0, rc = -1;
    TopIn top;
    memset(&top, 0, sizeof top);
    top.prepend_bos = 1;
    top.metrics = 1u << METRIC_LOGIT_DIFF;
    size_t budget = 0;
    Walk w = {&doc, cfg->path, 0, '\'', &budget};

    if (read_file(path, &cfg->text, &cfg->text_len, err)) goto out;
    if (!yaml_parser_initialize(&parser)) die_at(__FILE__, __LINE__, "out of memory in libyaml");
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)cfg->text, cfg->text_len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&parser, &w, cfg->text, cfg->text_len, err);
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        err_set(err, "%s: the config is empty (it needs at least model, dataset and experiments)",
                path);
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_error(&parser, &w, cfg->text, cfg->text_len, err);
        goto out;
    }
    have_extra = 1;
    if (yaml_document_get_root_node(&extra) != NULL) {
        err_at(err, mark_of(&w, extra.start_mark), "a config is one YAML document; this is a "
               "second one");
        goto out;
    }
    budget = 8 * (size_t)(doc.nodes.top - doc.nodes.start) + ((size_t)1 << 20);

    Seen s;
    if (walk_mapping(&w, root, "the config", top_keys, COUNT(top_keys), &top, &s, err)) goto out;

    cfg->model_mark = s.val[TK_MODEL];
    cfg->model_dir = model_dir ? xstrdup(model_dir) : path_beside(path, top.model);
    if (model_dir) /* errors about it name the command line, not the config */
        cfg->model_mark = (CfgMark){.file = "--model", .line = 0, .col = 0};
    struct stat st;
    if (stat(cfg->model_dir, &st) != 0) {
        if (errno == ENOENT)
            err_at(err, cfg->model_mark, "model directory '%s' does not exist", cfg->model_dir);
        else
            err_at(err, cfg->model_mark, "model directory '%s': %s", cfg->model_dir,
                   strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_at(err, cfg->model_mark, "model '%s' is not a directory (expected a Hugging Face "
               "model directory)", cfg->model_dir);
        goto out;
    }
    cfg->output = top.output ? path_beside(path, top.output) : default_output(path);
    cfg->prepend_bos = top.prepend_bos;
    cfg->seed = top.seed;
    cfg->units_per_pair = (size_t)top.units_per_pair;
    cfg->pairs_per_unit = (size_t)top.pairs_per_unit;
    cfg->activations = top.activations.globs;
    cfg->activation_marks = top.activations.marks;
    cfg->n_activations = top.activations.n;
    top.activations = (GlobsIn){NULL, NULL, 0};

    if (parse_dataset(&w, top.dataset, cfg, err) ||
        parse_experiments(&w, top.experiments, top.metrics, cfg, err))
        goto out;
    for (size_t i = 0; i < cfg->n_exps; i++)
        if (cfg->exps[i].source == SRC_RESAMPLE && cfg->n_pairs < 2) {
            err_at(err, cfg->exps[i].source_mark, "source: resample needs at least 2 pairs "
                   "(it patches in another pair's activation); the dataset has %zu",
                   cfg->n_pairs);
            goto out;
        }
    rc = 0;
out:
    free(top.model);
    free(top.output);
    for (size_t i = 0; i < top.activations.n; i++) free(top.activations.globs[i]);
    free(top.activations.globs);
    free(top.activations.marks);
    if (have_extra) yaml_document_delete(&extra);
    if (have_doc) yaml_document_delete(&doc);
    if (have_parser) yaml_parser_delete(&parser);
    if (rc == 0) {
        *out = cfg;
    } else {
        cfg_free(cfg);
    }
    return rc;
}

/* ---- against the model ----------------------------------------------- */

typedef struct Resolver {
    Config *cfg;
    const ModelConfig *mc;
    Tok *tok;
    int32_t bos;   /* -1 until needed */
} Resolver;

/* Checks ids against the vocabulary; from_text: they came from the tokenizer. */
static int check_vocab(const Resolver *r, const CfgPair *p, size_t pi, CfgField f,
                       const int32_t *ids, size_t n, int from_text, Err *err)
{
    size_t V = r->mc->d_vocab;
    KBuf kb;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)ids[i] < V) continue;
        if (from_text)
            return err_at(err, p->field_mark[f], "pair %zu: %s tokenizes to id %d, but the "
                          "model's vocabulary has %zu tokens (is the tokenizer the model's?)",
                          pi + 1, kq(quote_of(p->field_mark[f]), text_keys[f], &kb), ids[i], V);
        return err_at(err, p->field_mark[f], "pair %zu: token id %d in %s is out of range: the "
                      "vocabulary has %zu tokens (0..%zu)", pi + 1, ids[i],
                      kq(quote_of(p->field_mark[f]), id_keys[f], &kb), V, V - 1);
    }
    return 0;
}

/* The text of field f tokenized into *ids (replacing its content). */
static int tokenize(Resolver *r, const CfgPair *p, size_t pi, CfgField f, int with_bos,
                    TokIds *ids, Err *err)
{
    const char *text = f == CFG_CLEAN ? p->clean_text : f == CFG_CORRUPTED ? p->corrupted_text
                     : f == CFG_ANSWER ? p->answer_text : p->wrong_text;
    CfgMark m = p->field_mark[f];
    KBuf ka, kb;
    if (r->tok == NULL)
        return err_at(err, m, "pair %zu: %s is text, but the model directory '%s' has no "
                      "tokenizer (give %s as token ids)", pi + 1,
                      kq(quote_of(m), text_keys[f], &ka), r->cfg->model_dir,
                      kq(quote_of(m), id_keys[f], &kb));
    ids->n = 0;
    if (with_bos) {
        if (r->bos < 0) r->bos = tok_bos_id(r->tok);
        if (r->bos < 0) r->bos = r->mc->bos_id;
        if (r->bos < 0)
            return err_at(err, m, "pair %zu: prepend_bos is true but the tokenizer has no BOS "
                          "token (set prepend_bos: false)", pi + 1);
        if (ids->cap == 0) {
            ids->cap = 64;
            ids->ids = xrealloc(ids->ids, ids->cap * sizeof *ids->ids);
        }
        ids->ids[ids->n++] = r->bos;
    }
    Err terr;
    if (tok_encode(r->tok, text, strlen(text), TOK_ALLOW_SPECIAL, ids, &terr))
        return err_at(err, m, "pair %zu: cannot tokenize %s: %s", pi + 1,
                      kq(quote_of(m), text_keys[f], &ka), terr.msg);
    return 0;
}

static int resolve_pair(Resolver *r, CfgPair *p, size_t pi, TokIds *ids, Err *err)
{
    const ModelConfig *mc = r->mc;
    int32_t **prompt[2] = {&p->clean, &p->corrupted};
    size_t n[2];
    for (CfgField f = CFG_CLEAN; f <= CFG_CORRUPTED; f++) {
        if (*prompt[f] != NULL) {
            n[f] = p->n_tokens;
            if (check_vocab(r, p, pi, f, *prompt[f], n[f], 0, err)) return -1;
            continue;
        }
        if (tokenize(r, p, pi, f, r->cfg->prepend_bos, ids, err) ||
            check_vocab(r, p, pi, f, ids->ids, ids->n, 1, err))
            return -1;
        n[f] = ids->n;
        *prompt[f] = xmalloc(xmul(ids->n, sizeof **prompt[f]));
        memcpy(*prompt[f], ids->ids, ids->n * sizeof **prompt[f]);
    }
    if (n[0] != n[1]) return length_mismatch(err, p, pi, n[0], n[1]);
    p->n_tokens = n[0];
    if (p->n_tokens > mc->n_ctx)
        return err_at(err, p->field_mark[CFG_CLEAN], "pair %zu: the prompts have %zu tokens, "
                      "more than the model's context of %zu (n_ctx)", pi + 1, p->n_tokens,
                      mc->n_ctx);

    int32_t *answer[2] = {&p->answer, &p->wrong};
    for (CfgField f = CFG_ANSWER; f <= CFG_WRONG; f++) {
        int32_t *id = answer[f - CFG_ANSWER];
        if (*id >= 0) {
            if (check_vocab(r, p, pi, f, id, 1, 0, err)) return -1;
            continue;
        }
        if (tokenize(r, p, pi, f, 0, ids, err)) return -1;
        if (ids->n != 1) {
            QBuf q;
            const char *text = f == CFG_ANSWER ? p->answer_text : p->wrong_text;
            return err_at(err, p->field_mark[f], "pair %zu: %s %s is %zu tokens; an answer must "
                          "be a single token", pi + 1, text_keys[f],
                          quoted(text, strlen(text), &q), ids->n);
        }
        if (check_vocab(r, p, pi, f, ids->ids, 1, 1, err)) return -1;
        *id = ids->ids[0];
    }

    for (size_t i = 0; i < p->n_positions; i++) {
        CfgNamedPos *np = &p->positions[i];
        long at = np->index < 0 ? np->index + (long)p->n_tokens : np->index;
        if (at < 0 || at >= (long)p->n_tokens)
            return err_at(err, np->mark, "pair %zu: position '%s' = %ld is out of range: the "
                          "prompts have %zu token%s", pi + 1, np->name, np->index, p->n_tokens,
                          plural(p->n_tokens));
        np->index = at;
    }
    return 0;
}

/* Checks a layers/heads selection against the model's count and expands it. */
static int resolve_sel(const CfgSel *s, size_t **list, size_t *n, size_t model_n,
                       const char *noun, CfgMark exp_mark, Err *err)
{
    if (model_n == 0) return err_at(err, exp_mark, "the model has no %ss", noun);
    size_t from = s->all ? 0 : s->from, to = s->all ? model_n - 1 : s->to;
    if (to >= model_n)
        return err_at(err, s->to_mark, "%s %zu is out of range: the model has %zu %s%s (0..%zu)",
                      noun, to, model_n, noun, plural(model_n), model_n - 1);
    if (*list != NULL) return 0; /* a list: already sorted and distinct */
    *n = to - from + 1;
    *list = xmalloc(xmul(*n, sizeof **list));
    for (size_t i = 0; i < *n; i++) (*list)[i] = from + i;
    return 0;
}

static const CfgNamedPos *find_named(const CfgPair *p, const char *name)
{
    for (size_t i = 0; i < p->n_positions; i++)
        if (strcmp(p->positions[i].name, name) == 0) return &p->positions[i];
    return NULL;
}

static int resolve_experiment(const Resolver *r, CfgExperiment *x, size_t max_tokens, Err *err)
{
    const Config *cfg = r->cfg;
    if (resolve_sel(&x->layer_sel, &x->layers, &x->n_layers, r->mc->n_layers, "layer", x->mark,
                    err))
        return -1;
    if (x->kind >= PATCH_Z &&
        resolve_sel(&x->head_sel, &x->heads, &x->n_heads, r->mc->n_heads, "head", x->mark, err))
        return -1;
    for (size_t i = 0; i < x->n_positions; i++) {
        const CfgPos *pos = &x->positions[i];
        if (pos->name != NULL) {
            for (size_t pi = 0; pi < cfg->n_pairs; pi++)
                if (find_named(&cfg->pairs[pi], pos->name) == NULL)
                    return err_at(err, cfg->pairs[pi].mark, "pair %zu has no position '%s', "
                                  "which experiment '%s' patches (%s:%d:%d)", pi + 1, pos->name,
                                  x->name, pos->mark.file, pos->mark.line, pos->mark.col);
        } else if (pos->index >= 0 ? pos->index >= (long)max_tokens
                                   : -pos->index > (long)max_tokens) {
            return err_at(err, pos->mark, "position %ld is out of range for every pair (the "
                          "longest has %zu token%s)", pos->index, max_tokens, plural(max_tokens));
        }
    }
    if (x->source == SRC_MEAN)
        for (size_t pi = 1; pi < cfg->n_pairs; pi++)
            if (cfg->pairs[pi].n_tokens != cfg->pairs[0].n_tokens)
                return err_at(err, cfg->pairs[pi].mark, "pair %zu has %zu token%s but pair 1 has "
                              "%zu: experiment '%s' uses source: mean, which needs pairs of "
                              "equal length", pi + 1, cfg->pairs[pi].n_tokens,
                              plural(cfg->pairs[pi].n_tokens), cfg->pairs[0].n_tokens, x->name);
    return 0;
}

int cfg_resolve(Config *cfg, const ModelConfig *mc, Tok *tok, Err *err)
{
    CHECK(!cfg->resolved);
    Resolver r = {cfg, mc, tok, -1};
    TokIds ids = {NULL, 0, 0};
    size_t max_tokens = 0;
    int rc = -1;
    for (size_t pi = 0; pi < cfg->n_pairs; pi++) {
        if (resolve_pair(&r, &cfg->pairs[pi], pi, &ids, err)) goto out;
        if (cfg->pairs[pi].n_tokens > max_tokens) max_tokens = cfg->pairs[pi].n_tokens;
    }
    for (size_t i = 0; i < cfg->n_exps; i++)
        if (resolve_experiment(&r, &cfg->exps[i], max_tokens, err)) goto out;
    for (size_t i = 0; i < cfg->n_activations; i++) {
        int matched = 0;
        for (int k = 0; k < HOOK_KIND_COUNT && !matched; k++)
            for (size_t l = 0; l < (hook_per_layer((HookKind)k) ? mc->n_layers : 1) && !matched;
                 l++) {
                char name[128];
                hook_name((HookKind)k, l, name, sizeof name);
                matched = fnmatch(cfg->activations[i], name, 0) == 0;
            }
        if (!matched) {
            KBuf kb;
            err_at(err, cfg->activation_marks[i], "activations: %s matches no hook of this "
                   "model (TransformerLens names such as 'blocks.0.hook_resid_pre', "
                   "'blocks.*.attn.hook_z', 'hook_embed')", kq('\'', cfg->activations[i], &kb));
            goto out;
        }
    }
    cfg->resolved = 1;
    rc = 0;
out:
    free(ids.ids);
    return rc;
}

int cfg_load(Config **out, const char *path, Err *err)
{
    return cfg_load_model(out, path, NULL, err);
}

long cfg_pos_index(const CfgPos *pos, const CfgPair *pair)
{
    if (pos->name != NULL) {
        const CfgNamedPos *np = find_named(pair, pos->name);
        return np ? np->index : -1;
    }
    long n = (long)pair->n_tokens;
    long at = pos->index < 0 ? pos->index + n : pos->index;
    return at >= 0 && at < n ? at : -1;
}

void cfg_free(Config *cfg)
{
    if (cfg == NULL) return;
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        CfgPair *p = &cfg->pairs[i];
        free(p->clean_text);
        free(p->corrupted_text);
        free(p->answer_text);
        free(p->wrong_text);
        free(p->clean);
        free(p->corrupted);
        pos_list_free(p->positions, p->n_positions);
    }
    for (size_t i = 0; i < cfg->n_exps; i++) {
        CfgExperiment *x = &cfg->exps[i];
        free(x->name);
        free(x->layers);
        free(x->heads);
        for (size_t j = 0; j < x->n_positions; j++) free(x->positions[j].name);
        free(x->positions);
    }
    for (size_t i = 0; i < cfg->n_activations; i++) free(cfg->activations[i]);
    free(cfg->activations);
    free(cfg->activation_marks);
    free(cfg->pairs);
    free(cfg->exps);
    free(cfg->path);
    free(cfg->text);
    free(cfg->model_dir);
    free(cfg->output);
    free(cfg->dataset_file);
    free(cfg);
}
