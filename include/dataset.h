/* dataset.h — JSON Lines pair files (`dataset: {file: pairs.jsonl}`).
 *
 * One JSON object per line, blank lines allowed. Each line is parsed with
 * jansson (strict JSON, duplicate keys rejected) and converted into a libyaml
 * document whose nodes are all marked with the line, so that config.c checks
 * it with the very schema walker that checks inline YAML pairs: a pair means
 * the same thing, and fails with the same message, in either place.
 *
 * In the converted document, JSON strings are double-quoted scalars (so "3" is
 * a string, not a number), and numbers, booleans and null are plain scalars
 * carrying their YAML core tag (tag:yaml.org,2002:int, float, bool, null).
 */
#ifndef PATCHGRID_DATASET_H
#define PATCHGRID_DATASET_H

#include <stdio.h>
#include <yaml.h>

#include "cfg.h"
#include "err.h"

/* Fills *pair (zeroed, pair->mark already set to the line) from the line's
 * object `obj` of `doc`. On error returns -1 with err set; *pair may hold
 * partial allocations that cfg_free releases. */
typedef int (*DatasetPairFn)(void *ctx, yaml_document_t *doc, yaml_node_t *obj, CfgPair *pair,
                             Err *err);

/* Reads the pairs of f (path names it in messages and marks; it must stay
 * valid as long as the pairs, since their marks point to it) and appends them
 * to (*pairs, *n_pairs), calling parse for each non-blank line. Errors are
 * "path:line: what is wrong" (a read error: "path: cannot read: ..."). On
 * error returns -1; the pairs appended so far, including the one that failed,
 * stay in *pairs for the caller to free. An empty file is not an error here
 * (*n_pairs is unchanged). */
int dataset_read_jsonl(FILE *f, const char *path, DatasetPairFn parse, void *ctx, CfgPair **pairs,
                       size_t *n_pairs, Err *err);

#endif
