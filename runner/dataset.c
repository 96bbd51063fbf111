/* dataset.c — JSON Lines pair files (see include/dataset.h). */
#include "dataset.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds `v` to doc with every node marked at 0-based line `line0`; returns the
 * node id, or 0 if libyaml refused (out of memory: it has no other reason to,
 * since jansson hands out valid UTF-8). Recursion depth is bounded by
 * jansson's nesting limit. */
static int add_json(yaml_document_t *doc, const json_t *v, size_t line0)
{
    char num[64];
    int id = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        id = yaml_document_add_mapping(doc, (yaml_char_t *)YAML_MAP_TAG, YAML_FLOW_MAPPING_STYLE);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            int k = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_STR_TAG,
                                             (const yaml_char_t *)key, (int)strlen(key),
                                             YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            if (k) doc->nodes.start[k - 1].start_mark.line = line0;
            int c = add_json(doc, val, line0);
            if (!k || !c || !yaml_document_append_mapping_pair(doc, id, k, c)) return 0;
        }
        break;
    }
    case JSON_ARRAY: {
        id = yaml_document_add_sequence(doc, (yaml_char_t *)YAML_SEQ_TAG, YAML_FLOW_SEQUENCE_STYLE);
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) {
            int c = add_json(doc, val, line0);
            if (!c || !yaml_document_append_sequence_item(doc, id, c)) return 0;
        }
        break;
    }
    case JSON_STRING:
        id = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_STR_TAG,
                                      (const yaml_char_t *)json_string_value(v),
                                      (int)json_string_length(v), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        id = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_INT_TAG, (yaml_char_t *)num, -1,
                                      YAML_PLAIN_SCALAR_STYLE);
        break;
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        if (strpbrk(num, ".eEn") == NULL) strcat(num, ".0"); /* 1.0 must not read as 1 */
        id = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_FLOAT_TAG, (yaml_char_t *)num, -1,
                                      YAML_PLAIN_SCALAR_STYLE);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        id = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_BOOL_TAG,
                                      (yaml_char_t *)(json_is_true(v) ? "true" : "false"), -1,
                                      YAML_PLAIN_SCALAR_STYLE);
        break;
    case JSON_NULL:
        id = yaml_document_add_scalar(doc, (yaml_char_t *)YAML_NULL_TAG, (yaml_char_t *)"null",
                                      -1, YAML_PLAIN_SCALAR_STYLE);
        break;
    }
    if (id) doc->nodes.start[id - 1].start_mark.line = line0;
    return id;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

int dataset_read_jsonl(FILE *f, const char *path, DatasetPairFn parse, void *ctx, CfgPair **pairs,
                       size_t *n_pairs, Err *err)
{
    char *line = NULL;
    size_t cap = 0, pair_cap = *n_pairs;
    int rc = -1;
    for (size_t lineno = 1;; lineno++) {
        errno = 0;
        ssize_t len = getline(&line, &cap, f);
        if (len < 0) {
            if (ferror(f)) {
                err_set(err, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
                goto out;
            }
            break;
        }
        const char *text = line;
        size_t n = (size_t)len;
        if (lineno == 1 && n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
            text += 3;
            n -= 3;
        }
        if (is_blank(text, n)) continue;

        json_error_t jerr;
        json_t *obj = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL) {
            if (jerr.column > 0)
                err_set(err, "%s:%zu: not valid JSON: %s (column %d)", path, lineno, jerr.text,
                        jerr.column);
            else
                err_set(err, "%s:%zu: not valid JSON: %s", path, lineno, jerr.text);
            goto out;
        }
        if (!json_is_object(obj)) {
            err_set(err, "%s:%zu: expected a JSON object (one pair per line), got %s", path,
                    lineno, json_kind(obj));
            json_decref(obj);
            goto out;
        }
        yaml_document_t doc;
        if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1)) {
            json_decref(obj);
            die_at(__FILE__, __LINE__, "out of memory (yaml_document_initialize)");
        }
        int root = add_json(&doc, obj, lineno - 1);
        json_decref(obj);
        if (root == 0) {
            yaml_document_delete(&doc);
            die_at(__FILE__, __LINE__, "out of memory building the document of %s:%zu", path,
                   lineno);
        }
        if (*n_pairs == pair_cap) {
            pair_cap = pair_cap ? 2 * pair_cap : 64;
            *pairs = xrealloc(*pairs, xmul(pair_cap, sizeof **pairs));
        }
        CfgPair *p = &(*pairs)[(*n_pairs)++];
        memset(p, 0, sizeof *p);
        p->mark = (CfgMark){path, (int)lineno, 0};
        int prc = parse(ctx, &doc, yaml_document_get_node(&doc, root), p, err);
        yaml_document_delete(&doc);
        if (prc) goto out;
    }
    rc = 0;
out:
    free(line);
    return rc;
}
