/* tok_internal.h — how the tokenizer's file reader (tok_load.c) builds a Tok
 * (tokenizer.c). Not a public header: only these two files include it.
 *
 * The reader creates a Tok for a known number of ids, gives it every token
 * as raw bytes with its kind, the merges in rank order and the pre-tokenizer
 * regexes, then calls tok_finish, which checks the whole and builds the
 * lookups encoding needs.
 */
#ifndef PATCHGRID_TOK_INTERNAL_H
#define PATCHGRID_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tok.h"

/* Ids are < TOK_MAX_IDS, so a pair of ids packs into 64 bits with room to
 * spare and a vocabulary array stays reasonable; real vocabularies are far
 * smaller (GPT-2: 50257, Llama 3: 128256). */
#define TOK_MAX_IDS (1u << 24)

typedef enum TokKind {
    TOK_KIND_NONE = 0, /* no token has this id */
    TOK_KIND_BPE,      /* written in the byte-level alphabet: BPE can produce it */
    TOK_KIND_OTHER,    /* a vocabulary entry outside the alphabet: decodes to its UTF-8 */
    TOK_KIND_ADDED,    /* added token, always matched in text (HF's non-special added tokens) */
    TOK_KIND_SPECIAL,  /* special token, matched in text only with TOK_ALLOW_SPECIAL */
} TokKind;

/* The regex of GPT-2's pre-tokenizer, as written in OpenAI's encoder.py and
 * Hugging Face's ByteLevel pre-tokenizer. */
extern const char TOK_GPT2_PATTERN[];

/* A Tok with ids 0..n_ids-1, all without a token yet (n_ids <= TOK_MAX_IDS). */
Tok *tok_new(size_t n_ids);

/* Gives id its kind and raw bytes (copied). A later call for the same id
 * replaces the earlier one (an added token overrides the vocabulary entry). */
void tok_set_token(Tok *tok, int32_t id, TokKind kind, const char *bytes, size_t len);

/* Adds the merge left + right -> merged; ranks are the order of the calls.
 * The same pair added again takes the later rank (as encoder.py and HF). */
void tok_add_merge(Tok *tok, int32_t left, int32_t right, int32_t merged);

/* Appends a pre-tokenizer split (HF Split, behaviour "Isolated": matches and
 * the gaps between them become pieces; a later split divides the pieces of
 * the earlier ones). `literal`: the pattern is a plain string, not a regex.
 * A regex is compiled with UTF + UCP and JIT; its \s and \S are read as
 * Unicode White_Space as in the regex engines the patterns were written for
 * (see tok_regex_translate). On a compile error returns -1 with the PCRE2
 * message and the offset in err. */
int tok_add_split(Tok *tok, const char *pattern, size_t len, int literal, Err *err);

void tok_set_options(Tok *tok, int add_prefix_space, int ignore_merges);
void tok_set_bos(Tok *tok, int32_t id);

/* Checks that every byte has its one-character token and builds the
 * matching tables. On error returns -1 (err says what is missing); the
 * caller still frees tok with tok_close. */
int tok_finish(Tok *tok, Err *err);

/* The raw bytes a byte-level token string stands for ("Ġt" -> " t"): writes
 * them to out (at most n bytes) and returns their count, or SIZE_MAX if the
 * string has a character outside the alphabet (or is not UTF-8). */
size_t tok_bytelevel_decode(const char *s, size_t n, char *out);

/* The byte-level token string of raw bytes (" t" -> "Ġt"): writes to out
 * (at most 2n bytes) and returns the length. */
size_t tok_bytelevel_encode(const char *bytes, size_t n, char *out);

/* Rewrites \s and \S outside \Q..\E as \p{White_Space} and \P{White_Space}
 * (PCRE2's UCP \s adds U+180E to White_Space; Python's regex, Oniguruma and
 * Rust's regex do not). Returns a malloc'ed NUL-terminated string. */
char *tok_regex_translate(const char *pattern, size_t len);

#endif
