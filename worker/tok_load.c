/* tok_load.c — reads a Hugging Face tokenizer directory into a Tok
 * (tok_open_dir in include/tok.h; the building calls are in tok_internal.h).
 *
 * Two layouts, as HF's AutoTokenizer reads them (tokenizer.json first):
 *   tokenizer.json       model {type BPE, vocab, merges as "a b" strings or
 *                        ["a", "b"] pairs}, added_tokens, pre_tokenizer
 *                        ByteLevel or a Sequence of Splits ending in one;
 *   vocab.json + merges.txt   GPT-2's files; the vocabulary entries that no
 *                        merge makes and that are not one byte are the special
 *                        tokens (for GPT-2: <|endoftext|>).
 * Anything that would change the ids and is not implemented (a normalizer,
 * lstrip/rstrip added tokens, other pre-tokenizers, BPE dropout, subword
 * prefixes) is an error naming the file and the field, never ignored.
 * The BOS id comes from tokenizer_config.json or special_tokens_map.json
 * ("bos_token") when present, else it is <|endoftext|> if that is special.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "tok.h"
#include "tok_internal.h"

typedef struct Loader {
    const char *dir;
    char *path;        /* the file being read, for messages */
    const json_t *vocab; /* token string -> id, borrowed from the document */
    Tok *tok;
    char *scratch;     /* a merge's two halves joined, or a token's raw bytes */
    size_t scratch_cap;
    int add_prefix_space, ignore_merges; /* given to the Tok once all is read */
} Loader;

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *scratch(Loader *ld, size_t n)
{
    if (n > ld->scratch_cap) {
        ld->scratch_cap = n * 2;
        ld->scratch = xrealloc(ld->scratch, ld->scratch_cap);
    }
    return ld->scratch;
}

static json_t *load_json(const char *path, Err *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (je.line > 0)
            err_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        else
            err_set(err, "%s: %s", path, je.text);
    }
    return root;
}

/* Checks that vocab maps strings to distinct ids in [0, TOK_MAX_IDS) and
 * raises *n_ids to cover them. */
static int vocab_check(const char *where, const json_t *vocab, size_t *n_ids, Err *err)
{
    if (!json_is_object(vocab)) return err_set(err, "%s: the vocabulary is not a JSON object", where);
    const char *key;
    const json_t *val;
    size_t max = 0;
    json_object_foreach((json_t *)vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= (json_int_t)TOK_MAX_IDS)
            return err_set(err, "%s: token '%s' has id %s, not an integer in 0..%u", where, key,
                           json_is_integer(val) ? "out of range" : "of the wrong type",
                           TOK_MAX_IDS - 1);
        if ((size_t)id + 1 > max) max = (size_t)id + 1;
    }
    uint8_t *seen = xcalloc(max ? max : 1, 1);
    int rc = 0;
    json_object_foreach((json_t *)vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (seen[id]++) {
            rc = err_set(err, "%s: id %lld is given to two tokens, one of them '%s'", where,
                         (long long)id, key);
            break;
        }
    }
    free(seen);
    if (max > *n_ids) *n_ids = max;
    return rc;
}

/* Gives the Tok every vocabulary entry: byte-level strings as the bytes they
 * stand for, others (never produced by BPE) as their own UTF-8. */
static void vocab_fill(Loader *ld)
{
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)ld->vocab, key, val) {
        size_t n = strlen(key);
        char *raw = scratch(ld, n + 1);
        size_t k = tok_bytelevel_decode(key, n, raw);
        if (k == SIZE_MAX)
            tok_set_token(ld->tok, (int32_t)json_integer_value(val), TOK_KIND_OTHER, key, n);
        else
            tok_set_token(ld->tok, (int32_t)json_integer_value(val), TOK_KIND_BPE, raw, k);
    }
}

static int32_t vocab_id(const Loader *ld, const char *s, size_t n)
{
    const json_t *v = json_object_getn(ld->vocab, s, n);
    return v ? (int32_t)json_integer_value(v) : -1;
}

/* Adds the merge a + b. `where` names the line or array element. */
static int add_merge(Loader *ld, const char *where, const char *a, size_t an, const char *b,
                     size_t bn, uint8_t *produced, Err *err)
{
    char *ab = scratch(ld, an + bn);
    memcpy(ab, a, an);
    memcpy(ab + an, b, bn);
    int32_t left = vocab_id(ld, a, an), right = vocab_id(ld, b, bn), merged = vocab_id(ld, ab, an + bn);
    const char *missing = left < 0 ? "first half" : right < 0 ? "second half" : merged < 0 ? "result" : NULL;
    if (missing)
        return err_set(err, "%s: merge '%.*s %.*s': its %s is not in the vocabulary", where,
                       (int)an, a, (int)bn, b, missing);
    tok_add_merge(ld->tok, left, right, merged);
    if (produced) produced[merged] = 1;
    return 0;
}

/* merges.txt: an optional "#version" line, then one "a b" per line. */
static int load_merges_txt(Loader *ld, uint8_t *produced, Err *err)
{
    FILE *f = fopen(ld->path, "rb");
    if (f == NULL) return err_set(err, "%s: %s", ld->path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') len--;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (strncmp(line, "#version", 8) == 0) continue;
        char where[64 + 4096];
        snprintf(where, sizeof where, "%s:%zu", ld->path, lineno);
        char *space = memchr(line, ' ', (size_t)len);
        if (space == NULL || space == line || space + 1 == line + len ||
            memchr(space + 1, ' ', (size_t)(line + len - space - 1)) != NULL) {
            rc = err_set(err, "%s: expected two tokens separated by one space, got '%.*s'", where,
                         (int)(len > 100 ? 100 : len), line);
            break;
        }
        rc = add_merge(ld, where, line, (size_t)(space - line), space + 1,
                       (size_t)(line + len - space - 1), produced, err);
    }
    if (rc == 0 && ferror(f)) rc = err_set(err, "%s: read error", ld->path);
    free(line);
    fclose(f);
    return rc;
}

/* model.merges: "a b" strings or ["a", "b"] pairs. */
static int load_merges_json(Loader *ld, const json_t *merges, Err *err)
{
    if (!json_is_array(merges)) return err_set(err, "%s: model.merges is not an array", ld->path);
    size_t i;
    const json_t *m;
    json_array_foreach(merges, i, m) {
        char where[4096 + 64];
        snprintf(where, sizeof where, "%s: model.merges[%zu]", ld->path, i);
        const char *a, *b;
        size_t an, bn;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *space = strchr(s, ' ');
            size_t n = json_string_length(m);
            if (space == NULL || space == s || strchr(space + 1, ' ') != NULL || space + 1 == s + n)
                return err_set(err, "%s: expected two tokens separated by one space, got '%s'",
                               where, s);
            a = s, an = (size_t)(space - s), b = space + 1, bn = (size_t)(s + n - b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), an = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)), bn = json_string_length(json_array_get(m, 1));
        } else {
            return err_set(err, "%s: expected a string \"a b\" or an array of two strings", where);
        }
        if (add_merge(ld, where, a, an, b, bn, NULL, err) != 0) return -1;
    }
    return 0;
}

/* obj[key] as a boolean, `dflt` when absent or null. */
static int get_bool(const char *where, const json_t *obj, const char *key, int dflt, int *out, Err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) return err_set(err, "%s: %s is not true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

static const char *get_type(const json_t *obj)
{
    const char *t = json_string_value(json_object_get(obj, "type"));
    return t ? t : "(no type)";
}

/* One Split pre-tokenizer: pattern {"Regex": ...} or {"String": ...},
 * behaviour Isolated, not inverted. */
static int load_split(Loader *ld, const char *where, const json_t *split, Err *err)
{
    const json_t *pat = json_object_get(split, "pattern");
    const json_t *regex = json_object_get(pat, "Regex"), *string = json_object_get(pat, "String");
    const json_t *p = json_is_string(regex) ? regex : string;
    if (!json_is_string(p))
        return err_set(err, "%s: pattern is not {\"Regex\": \"...\"} or {\"String\": \"...\"}", where);
    const char *behavior = json_string_value(json_object_get(split, "behavior"));
    if (behavior == NULL || strcmp(behavior, "Isolated") != 0)
        return err_set(err, "%s: behavior '%s' is not supported (only Isolated)", where,
                       behavior ? behavior : "(none)");
    int invert = 0;
    if (get_bool(where, split, "invert", 0, &invert, err) != 0) return -1;
    if (invert) return err_set(err, "%s: invert: true is not supported", where);
    if (tok_add_split(ld->tok, json_string_value(p), json_string_length(p), p == string, err) != 0)
        return err_prefix(err, "%s: ", where);
    return 0;
}

/* ByteLevel: the byte-to-unicode mapping, with GPT-2's regex if use_regex. */
static int load_bytelevel(Loader *ld, const char *where, const json_t *bl, int alone, Err *err)
{
    int add_prefix_space = 0, use_regex = 0;
    if (get_bool(where, bl, "add_prefix_space", 1, &add_prefix_space, err) != 0 ||
        get_bool(where, bl, "use_regex", 1, &use_regex, err) != 0)
        return -1;
    if (add_prefix_space && !alone)
        return err_set(err, "%s: add_prefix_space is supported only when ByteLevel is the only "
                       "pre-tokenizer", where);
    ld->add_prefix_space = add_prefix_space;
    if (use_regex && tok_add_split(ld->tok, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), 0, err) != 0)
        return err_prefix(err, "%s: ", where);
    return 0;
}

static int load_pre_tokenizer(Loader *ld, const json_t *pre, Err *err)
{
    char where[4096 + 64];
    snprintf(where, sizeof where, "%s: pre_tokenizer", ld->path);
    if (json_is_object(pre) && strcmp(get_type(pre), "ByteLevel") == 0)
        return load_bytelevel(ld, where, pre, 1, err);
    if (!json_is_object(pre) || strcmp(get_type(pre), "Sequence") != 0)
        return err_set(err, "%s: '%s' is not supported (only ByteLevel, or a Sequence of Splits "
                       "and a final ByteLevel: byte-level BPE)",
                       where, json_is_object(pre) ? get_type(pre) : "null");
    const json_t *list = json_object_get(pre, "pretokenizers");
    size_t n = json_array_size(list), i;
    const json_t *p;
    json_array_foreach(list, i, p) {
        snprintf(where, sizeof where, "%s: pre_tokenizer.pretokenizers[%zu]", ld->path, i);
        const char *type = json_is_object(p) ? get_type(p) : "(not an object)";
        if (strcmp(type, "Split") == 0 && i + 1 < n) {
            if (load_split(ld, where, p, err) != 0) return -1;
        } else if (strcmp(type, "ByteLevel") == 0 && i + 1 == n) {
            if (load_bytelevel(ld, where, p, n == 1, err) != 0) return -1;
        } else {
            return err_set(err, "%s: '%s' is not supported here (only Splits, then one ByteLevel "
                           "last)", where, type);
        }
    }
    if (n == 0)
        return err_set(err, "%s: pre_tokenizer.pretokenizers is not a non-empty array", ld->path);
    return 0;
}

/* Checks the BPE model's options that would change ids. */
static int check_model(Loader *ld, const json_t *model, Err *err)
{
    if (!json_is_object(model)) return err_set(err, "%s: no model object", ld->path);
    if (strcmp(get_type(model), "BPE") != 0)
        return err_set(err, "%s: model type '%s' is not supported (only BPE)", ld->path,
                       get_type(model));
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout != NULL && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return err_set(err, "%s: model.dropout is not supported (only null)", ld->path);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(model, affixes[i]);
        if (v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return err_set(err, "%s: model.%s is not supported (only null)", ld->path, affixes[i]);
    }
    char where[4096 + 16];
    snprintf(where, sizeof where, "%s: model", ld->path);
    return get_bool(where, model, "ignore_merges", 0, &ld->ignore_merges, err);
}

/* added_tokens: checks them and raises *n_ids; with tok set, gives them to it. */
static int load_added(Loader *ld, const json_t *added, size_t *n_ids, Err *err)
{
    if (added == NULL || json_is_null(added)) return 0;
    if (!json_is_array(added)) return err_set(err, "%s: added_tokens is not an array", ld->path);
    size_t i;
    const json_t *a;
    json_array_foreach(added, i, a) {
        char where[4096 + 64];
        snprintf(where, sizeof where, "%s: added_tokens[%zu]", ld->path, i);
        const json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t)TOK_MAX_IDS)
            return err_set(err, "%s: id is not an integer in 0..%u", where, TOK_MAX_IDS - 1);
        if (!json_is_string(content) || json_string_length(content) == 0)
            return err_set(err, "%s: content is not a non-empty string", where);
        static const char *const unsupported[] = {"single_word", "lstrip", "rstrip"};
        int special = 0, flag = 0;
        for (size_t k = 0; k < 3; k++) {
            if (get_bool(where, a, unsupported[k], 0, &flag, err) != 0) return -1;
            if (flag)
                return err_set(err, "%s: '%s': %s: true is not supported", where,
                               json_string_value(content), unsupported[k]);
        }
        if (get_bool(where, a, "special", 0, &special, err) != 0) return -1;
        size_t n = (size_t)json_integer_value(id) + 1;
        if (n > *n_ids) *n_ids = n;
        if (ld->tok)
            tok_set_token(ld->tok, (int32_t)json_integer_value(id),
                          special ? TOK_KIND_SPECIAL : TOK_KIND_ADDED, json_string_value(content),
                          json_string_length(content));
    }
    return 0;
}

static int load_tokenizer_json(Loader *ld, Err *err)
{
    json_t *root = load_json(ld->path, err);
    if (root == NULL) return -1;
    int rc = -1;
    const json_t *model = json_object_get(root, "model");
    const json_t *normalizer = json_object_get(root, "normalizer");
    if (normalizer != NULL && !json_is_null(normalizer)) {
        err_set(err, "%s: normalizer '%s' is not supported (only null)", ld->path, get_type(normalizer));
        goto out;
    }
    if (check_model(ld, model, err) != 0) goto out;
    ld->vocab = json_object_get(model, "vocab");
    size_t n_ids = 0;
    char where[4096 + 16];
    snprintf(where, sizeof where, "%s: model.vocab", ld->path);
    if (vocab_check(where, ld->vocab, &n_ids, err) != 0 ||
        load_added(ld, json_object_get(root, "added_tokens"), &n_ids, err) != 0)
        goto out;
    ld->tok = tok_new(n_ids);
    vocab_fill(ld);
    load_added(ld, json_object_get(root, "added_tokens"), &n_ids, err); /* checked above */
    if (load_merges_json(ld, json_object_get(model, "merges"), err) != 0 ||
        load_pre_tokenizer(ld, json_object_get(root, "pre_tokenizer"), err) != 0)
        goto out;
    tok_set_options(ld->tok, ld->add_prefix_space, ld->ignore_merges);
    rc = 0;
out:
    ld->vocab = NULL;
    json_decref(root);
    return rc;
}

static int load_vocab_merges(Loader *ld, const char *vocab_path, const char *merges_path, Err *err)
{
    json_t *vocab = load_json(vocab_path, err);
    if (vocab == NULL) return -1;
    int rc = -1;
    size_t n_ids = 0;
    uint8_t *produced = NULL;
    ld->vocab = vocab;
    if (vocab_check(vocab_path, vocab, &n_ids, err) != 0) goto out;
    ld->tok = tok_new(n_ids);
    vocab_fill(ld);
    produced = xcalloc(n_ids ? n_ids : 1, 1);
    free(ld->path);
    ld->path = xstrdup(merges_path);
    if (load_merges_txt(ld, produced, err) != 0) goto out;
    /* What no merge makes and is not a single byte can only be special. */
    for (size_t id = 0; id < n_ids; id++) {
        size_t len;
        const char *bytes = tok_token_bytes(ld->tok, (int32_t)id, &len);
        if (bytes == NULL || produced[id] || len == 1) continue;
        char *copy = scratch(ld, len); /* tok_set_token may move the Tok's bytes */
        memcpy(copy, bytes, len);
        tok_set_token(ld->tok, (int32_t)id, TOK_KIND_SPECIAL, copy, len);
    }
    if (tok_add_split(ld->tok, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), 0, err) != 0) goto out;
    free(ld->path);
    ld->path = xstrdup(vocab_path);
    rc = 0;
out:
    free(produced);
    ld->vocab = NULL;
    json_decref(vocab);
    return rc;
}

/* The id of a token given by its text: an added/special token, else a
 * vocabulary entry. -1 if none. */
static int32_t find_token_by_text(Tok *tok, const char *text)
{
    int32_t special = tok_special_id(tok, text);
    if (special >= 0) return special;
    size_t n = strlen(text);
    for (size_t id = 0; id < tok_vocab_size(tok); id++) {
        size_t len;
        const char *b = tok_token_bytes(tok, (int32_t)id, &len);
        if (b != NULL && len == n && memcmp(b, text, n) == 0) return (int32_t)id;
    }
    return -1;
}

/* bos_token from tokenizer_config.json, then special_tokens_map.json
 * (a string, {"content": ...} or null); else <|endoftext|> if special. */
static int load_bos(Loader *ld, Err *err)
{
    static const char *const files[] = {"tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < 2; i++) {
        char *path = path_join(ld->dir, files[i]);
        if (!is_file(path)) {
            free(path);
            continue;
        }
        json_t *root = load_json(path, err);
        if (root == NULL) {
            free(path);
            return -1;
        }
        const json_t *bos = json_object_get(root, "bos_token");
        if (json_is_object(bos)) bos = json_object_get(bos, "content");
        int rc = 1; /* not said here */
        if (json_is_null(bos)) {
            tok_set_bos(ld->tok, -1);
            rc = 0;
        } else if (json_is_string(bos)) {
            int32_t id = find_token_by_text(ld->tok, json_string_value(bos));
            if (id < 0)
                rc = err_set(err, "%s: bos_token '%s' is not a token of this tokenizer", path,
                             json_string_value(bos));
            else
                tok_set_bos(ld->tok, id), rc = 0;
        } else if (bos != NULL) {
            rc = err_set(err, "%s: bos_token is not a string, an object with content, or null", path);
        }
        json_decref(root);
        free(path);
        if (rc <= 0) return rc;
    }
    tok_set_bos(ld->tok, tok_special_id(ld->tok, "<|endoftext|>"));
    return 0;
}

int tok_open_dir(Tok **out, const char *dir, Err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) return err_set(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return err_set(err, "%s: not a directory", dir);
    Loader ld = {.dir = dir};
    char *tj = path_join(dir, "tokenizer.json"), *vj = path_join(dir, "vocab.json"),
         *mt = path_join(dir, "merges.txt");
    int rc = -1;
    if (is_file(tj)) {
        ld.path = xstrdup(tj);
        rc = load_tokenizer_json(&ld, err);
    } else if (is_file(vj) && is_file(mt)) {
        ld.path = xstrdup(vj);
        rc = load_vocab_merges(&ld, vj, mt, err);
    } else if (is_file(vj) || is_file(mt)) {
        err_set(err, "%s: has %s but no %s (and no tokenizer.json)", dir,
                is_file(vj) ? "vocab.json" : "merges.txt", is_file(vj) ? "merges.txt" : "vocab.json");
    } else {
        err_set(err, "%s: no tokenizer files (expected tokenizer.json, or vocab.json and merges.txt)",
                dir);
    }
    if (rc == 0 && tok_finish(ld.tok, err) != 0) rc = err_prefix(err, "%s: ", ld.path);
    if (rc == 0) rc = load_bos(&ld, err);
    if (rc == 0) {
        *out = ld.tok;
    } else {
        tok_close(ld.tok);
    }
    free(ld.path);
    free(ld.scratch);
    free(tj);
    free(vj);
    free(mt);
    return rc;
}
