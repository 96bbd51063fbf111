/* tok.h — GPT-2 byte-level BPE tokenizer, read from a Hugging Face model
 * directory: vocab.json + merges.txt, or tokenizer.json (BPE model, byte-level
 * pre-tokenizer, added/special tokens) when that is what the directory has.
 *
 * Pre-tokenization uses the GPT-2 regex through PCRE2 (UTF + UCP, JIT), its
 * \s read as Unicode White_Space like the engines it was written for; words
 * are mapped through the byte-to-unicode table and merged by rank, with a
 * cache of merged words. Not thread-safe (the cache): one Tok per thread/rank.
 * What is supported, and how the ids were checked: docs/tokenizer.md.
 */
#ifndef PATCHGRID_TOK_H
#define PATCHGRID_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct Tok Tok; /* opaque */

/* A growable array of token ids; free ids with free(). Zero-initialise. */
typedef struct TokIds {
    int32_t *ids;
    size_t n, cap;
} TokIds;

/* Loads the tokenizer files of `dir`: tokenizer.json if there is one, else
 * vocab.json + merges.txt; the BOS token from tokenizer_config.json or
 * special_tokens_map.json when they name one. On error returns -1, sets err
 * (naming the file and what is wrong) and *out is NULL. A directory with no
 * tokenizer files is an error too, and so is any tokenizer.json feature that
 * would change the ids and is not implemented (a normalizer, ...). */
int tok_open_dir(Tok **out, const char *dir, Err *err);
void tok_close(Tok *tok); /* accepts NULL */

enum {
    TOK_ALLOW_SPECIAL = 1 /* recognise special tokens such as <|endoftext|> in text (added
                             tokens not marked special are always recognised, as in HF) */
};

/* Appends the ids of text[0..len) to out. Without TOK_ALLOW_SPECIAL, special
 * tokens in the text are plain text (tiktoken's default). Text that is not
 * valid UTF-8 is an error (-1, err says at which byte offset); out is then
 * left as it was. */
int tok_encode(Tok *tok, const char *text, size_t len, int flags, TokIds *out, Err *err);

/* Appends the bytes of ids[0..n) to *buf (realloc'ed; *len updated; the
 * result is NUL-terminated at buf[len] but may contain NUL bytes; it need not
 * be UTF-8 when a character is split between ids). An id out of range is an
 * error, and *buf and *len are then unchanged. */
int tok_decode(const Tok *tok, const int32_t *ids, size_t n, char **buf, size_t *len, Err *err);

size_t tok_vocab_size(const Tok *tok);

/* The id of a special token by its text ("<|endoftext|>"), or -1. */
int32_t tok_special_id(const Tok *tok, const char *text);

/* The BOS id TransformerLens prepends for this tokenizer (GPT-2: the id of
 * <|endoftext|>), or -1 if the tokenizer has none. */
int32_t tok_bos_id(const Tok *tok);

/* The bytes id decodes to (for labels: " Mary" for 5335), *len set; owned by
 * tok, valid until tok_close, not NUL-terminated. NULL (and *len 0) if id is
 * not a token of this tokenizer. */
const char *tok_token_bytes(const Tok *tok, int32_t id, size_t *len);

/* GPT-2's byte-to-unicode table: the code point that stands for `byte` in
 * vocab.json and merges.txt (printable Latin-1 bytes stand for themselves,
 * the other 68 for U+0100..U+0143 in order: ' ' is U+0120 'Ġ'). */
uint32_t tok_byte_to_unicode(unsigned char byte);

#endif
