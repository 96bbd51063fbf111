/* tokenizer.c — byte-level BPE encoding and decoding (include/tok.h).
 *
 * Encoding a text:
 *   1. check that it is UTF-8 once, with PCRE2's own validator, so that
 *      every regex match after it may skip the check;
 *   2. cut out added tokens (special ones only with TOK_ALLOW_SPECIAL),
 *      leftmost first, longest at a position (HF's added-token matching);
 *   3. pre-tokenize each remaining segment with the split regexes — for
 *      GPT-2 the one regex of OpenAI's encoder.py — where matches and the
 *      gaps between them are pieces (HF's "Isolated" split);
 *   4. merge the bytes of each piece by rank: first from the cache, else
 *      lowest rank first and leftmost first among equal ranks (HF's and
 *      tiktoken's order; for a merges list in training order, where a merge
 *      only uses tokens made by earlier merges, it gives what encoder.py's
 *      "merge every occurrence of the best pair" loop gives).
 * Symbols are token ids from the start: byte b is the id of the token
 * written as the single character tok_byte_to_unicode(b), and a merge maps
 * a pair of ids to an id, so merging never builds strings. A heap keeps the
 * merging of a piece O(n log n): a 1 MB run of digits is one piece.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tok.h"
#include "tok_internal.h"

const char TOK_GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Words longer than this are merged every time rather than cached (HF's
 * limit too): they seldom repeat and would fill the cache. */
#define CACHE_MAX_WORD 256
/* The cache is emptied when it would pass any of these bounds, which keeps
 * it under about 40 MB on endless streams of new words. */
#define CACHE_MAX_WORDS (1u << 17)
#define CACHE_MAX_IDS (1u << 22)
#define CACHE_MAX_KEY_BYTES (1u << 24)
#define EMPTY_KEY UINT32_MAX

/* ---- hashing ----------------------------------------------------------- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0x100000001b3ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    return mix64(h ^ v);
}

/* ---- bytes -> uint64 map (the word cache; the vocabulary for ignore_merges) */

typedef struct BmSlot {
    uint64_t hash;
    uint64_t value;
    uint32_t key_off, key_len; /* key_len EMPTY_KEY: free slot */
} BmSlot;

typedef struct BytesMap {
    BmSlot *slots; /* [cap], cap a power of two, at most half full */
    size_t cap, count;
    char *keys; /* the keys, back to back */
    size_t keys_len, keys_cap;
} BytesMap;

static void bm_clear(BytesMap *m)
{
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key_len = EMPTY_KEY;
    m->count = 0;
    m->keys_len = 0;
}

static void bm_free(BytesMap *m)
{
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

/* The slot holding key, or the free slot where it belongs. */
static BmSlot *bm_slot(const BytesMap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        BmSlot *s = &m->slots[i];
        if (s->key_len == EMPTY_KEY) return s;
        if (s->hash == h && s->key_len == len && memcmp(m->keys + s->key_off, key, len) == 0)
            return s;
    }
}

static int bm_get(const BytesMap *m, const char *key, size_t len, uint64_t h, uint64_t *value)
{
    if (m->count == 0) return 0;
    const BmSlot *s = bm_slot(m, key, len, h);
    if (s->key_len == EMPTY_KEY) return 0;
    *value = s->value;
    return 1;
}

static void bm_grow(BytesMap *m)
{
    BmSlot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 1024;
    m->slots = xmalloc(xmul(m->cap, sizeof *m->slots));
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key_len = EMPTY_KEY;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key_len == EMPTY_KEY) continue;
        size_t mask = m->cap - 1, j = (size_t)old[i].hash & mask;
        while (m->slots[j].key_len != EMPTY_KEY) j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    free(old);
}

/* Sets key -> value (keys shorter than 4 GiB in total, which the callers
 * guarantee by the cache's bounds and the vocabulary's size). */
static void bm_put(BytesMap *m, const char *key, size_t len, uint64_t h, uint64_t value)
{
    if (2 * (m->count + 1) > m->cap) bm_grow(m);
    BmSlot *s = bm_slot(m, key, len, h);
    if (s->key_len != EMPTY_KEY) {
        s->value = value;
        return;
    }
    CHECK(m->keys_len + len < EMPTY_KEY);
    if (m->keys_len + len > m->keys_cap) {
        m->keys_cap = (m->keys_len + len) * 2 + 4096;
        m->keys = xrealloc(m->keys, m->keys_cap);
    }
    memcpy(m->keys + m->keys_len, key, len);
    s->hash = h;
    s->value = value;
    s->key_off = (uint32_t)m->keys_len;
    s->key_len = (uint32_t)len;
    m->keys_len += len;
    m->count++;
}

/* ---- (left id, right id) -> (rank, merged id) -------------------------- */

typedef struct PmSlot {
    uint64_t key; /* UINT64_MAX: free (ids < 2^24 never make it) */
    int32_t rank, merged;
} PmSlot;

typedef struct PairMap {
    PmSlot *slots; /* [cap], a power of two, at most half full */
    size_t cap, count;
} PairMap;

static uint64_t pair_key(int32_t left, int32_t right)
{
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static PmSlot *pm_slot(const PairMap *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask)
        if (m->slots[i].key == key || m->slots[i].key == UINT64_MAX) return &m->slots[i];
}

static void pm_put(PairMap *m, uint64_t key, int32_t rank, int32_t merged)
{
    if (2 * (m->count + 1) > m->cap) {
        PmSlot *old = m->slots;
        size_t old_cap = m->cap;
        m->cap = old_cap ? old_cap * 2 : 1024;
        m->slots = xmalloc(xmul(m->cap, sizeof *m->slots));
        for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key != UINT64_MAX) *pm_slot(m, old[i].key) = old[i];
        free(old);
    }
    PmSlot *s = pm_slot(m, key);
    if (s->key == UINT64_MAX) m->count++;
    *s = (PmSlot){key, rank, merged};
}

/* The merge of left + right, or NULL. */
static const PmSlot *pm_get(const PairMap *m, int32_t left, int32_t right)
{
    if (m->count == 0) return NULL;
    const PmSlot *s = pm_slot(m, pair_key(left, right));
    return s->key == UINT64_MAX ? NULL : s;
}

/* ---- the tokenizer ----------------------------------------------------- */

typedef struct TokRegex {
    pcre2_code *code;
    pcre2_match_data *md;
    int jit; /* JIT-compiled: match with pcre2_jit_match */
} TokRegex;

typedef struct TokAdded {
    int32_t id;
    int special;
} TokAdded;

/* One candidate merge in the heap: the symbol at pos and the one after it,
 * which were `left` and `right` when it was pushed. */
typedef struct HeapItem {
    int32_t rank, merged, left, right;
    uint32_t pos;
} HeapItem;

struct Tok {
    size_t n_ids;
    uint8_t *kind;       /* [n_ids] TokKind */
    uint32_t *tok_off;   /* [n_ids] offset of the token's bytes in `bytes` */
    uint32_t *tok_len;   /* [n_ids] */
    char *bytes;
    size_t bytes_len, bytes_cap;

    int32_t byte_id[256]; /* the one-character token of each byte */
    PairMap merges;
    int32_t n_merges;
    BytesMap vocab; /* raw bytes of byte-level tokens -> id; built for ignore_merges */

    TokAdded *added; /* added and special tokens, longest first */
    size_t n_added;
    uint8_t added_first[2][256]; /* [allow special] bytes an active added token starts with */
    size_t n_active[2];

    TokRegex *splits;
    size_t n_splits;
    int add_prefix_space, ignore_merges;
    int32_t bos_id;

    pcre2_code *utf_check; /* the empty pattern: matching it validates the subject */
    pcre2_match_data *utf_md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;

    BytesMap cache;   /* word bytes -> (offset in cache_ids << 32 | count) */
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;

    /* scratch for merging one word, grown as needed */
    int32_t *sym_id;              /* [n] token id of the symbol starting at byte i, -1 if merged away */
    uint32_t *sym_prev, *sym_next; /* [n] neighbours, UINT32_MAX at the ends */
    size_t sym_cap;
    HeapItem *heap;
    size_t heap_cap;
    char *prefixed; /* a segment with the space add_prefix_space puts before it */
    size_t prefixed_cap;
};

uint32_t tok_byte_to_unicode(unsigned char b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    if (b <= 0x20) return 0x100u + b;        /* 33 control and space bytes */
    if (b <= 0xa0) return 0x121u + (b - 0x7f); /* DEL, C1 controls, NBSP */
    return 0x143u;                            /* 0xad, the soft hyphen */
}

/* The byte a code point stands for, or -1 outside the alphabet. */
static int unicode_to_byte(uint32_t cp)
{
    if (cp < 0x100) return tok_byte_to_unicode((unsigned char)cp) == cp ? (int)cp : -1;
    if (cp <= 0x120) return (int)(cp - 0x100);
    if (cp <= 0x142) return (int)(cp - 0x121 + 0x7f);
    if (cp == 0x143) return 0xad;
    return -1;
}

size_t tok_bytelevel_decode(const char *s, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (u[i] < 0x80) {
            cp = u[i++];
        } else if ((u[i] & 0xe0) == 0xc0 && i + 1 < n && (u[i + 1] & 0xc0) == 0x80) {
            cp = (uint32_t)(u[i] & 0x1f) << 6 | (u[i + 1] & 0x3f);
            i += 2;
        } else {
            return SIZE_MAX; /* 3- and 4-byte characters are all outside */
        }
        int b = unicode_to_byte(cp);
        if (b < 0) return SIZE_MAX;
        out[k++] = (char)b;
    }
    return k;
}

size_t tok_bytelevel_encode(const char *bytes, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = tok_byte_to_unicode((unsigned char)bytes[i]);
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else {
            out[k++] = (char)(0xc0 | cp >> 6);
            out[k++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    return k;
}

char *tok_regex_translate(const char *p, size_t n)
{
    size_t cap = n * 8 + 1, k = 0; /* "\s" (2) becomes "\p{White_Space}" (15) */
    char *out = xmalloc(cap);
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 == n) {
            out[k++] = p[i];
            continue;
        }
        char c = p[++i];
        if (quoted) {
            if (c == 'E') quoted = 0;
        } else if (c == 'Q') {
            quoted = 1;
        } else if (c == 's' || c == 'S') {
            const char *cls = c == 's' ? "\\p{White_Space}" : "\\P{White_Space}";
            memcpy(out + k, cls, strlen(cls));
            k += strlen(cls);
            continue;
        }
        out[k++] = '\\';
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

Tok *tok_new(size_t n_ids)
{
    CHECK(n_ids <= TOK_MAX_IDS);
    Tok *tok = xcalloc(1, sizeof *tok);
    tok->n_ids = n_ids;
    tok->kind = xcalloc(n_ids, 1);
    tok->tok_off = xcalloc(n_ids, sizeof *tok->tok_off);
    tok->tok_len = xcalloc(n_ids, sizeof *tok->tok_len);
    tok->bos_id = -1;
    for (int b = 0; b < 256; b++) tok->byte_id[b] = -1;
    tok->mctx = pcre2_match_context_create(NULL);
    tok->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    CHECK(tok->mctx != NULL && tok->jit_stack != NULL);
    pcre2_jit_stack_assign(tok->mctx, NULL, tok->jit_stack);
    int code;
    PCRE2_SIZE at;
    tok->utf_check = pcre2_compile((PCRE2_SPTR) "", 0, PCRE2_UTF, &code, &at, NULL);
    CHECK(tok->utf_check != NULL);
    tok->utf_md = pcre2_match_data_create(1, NULL);
    CHECK(tok->utf_md != NULL);
    return tok;
}

void tok_close(Tok *tok)
{
    if (tok == NULL) return;
    for (size_t i = 0; i < tok->n_splits; i++) {
        pcre2_match_data_free(tok->splits[i].md);
        pcre2_code_free(tok->splits[i].code);
    }
    free(tok->splits);
    pcre2_match_data_free(tok->utf_md);
    pcre2_code_free(tok->utf_check);
    pcre2_match_context_free(tok->mctx);
    pcre2_jit_stack_free(tok->jit_stack);
    free(tok->kind);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->bytes);
    free(tok->merges.slots);
    bm_free(&tok->vocab);
    bm_free(&tok->cache);
    free(tok->cache_ids);
    free(tok->added);
    free(tok->sym_id);
    free(tok->sym_prev);
    free(tok->sym_next);
    free(tok->heap);
    free(tok->prefixed);
    free(tok);
}

void tok_set_token(Tok *tok, int32_t id, TokKind kind, const char *bytes, size_t len)
{
    CHECK(id >= 0 && (size_t)id < tok->n_ids && kind != TOK_KIND_NONE);
    CHECK(tok->bytes_len + len < UINT32_MAX);
    if (tok->bytes_len + len > tok->bytes_cap) {
        tok->bytes_cap = (tok->bytes_len + len) * 2 + 4096;
        tok->bytes = xrealloc(tok->bytes, tok->bytes_cap);
    }
    if (len > 0) memcpy(tok->bytes + tok->bytes_len, bytes, len);
    tok->kind[id] = (uint8_t)kind;
    tok->tok_off[id] = (uint32_t)tok->bytes_len;
    tok->tok_len[id] = (uint32_t)len;
    tok->bytes_len += len;
}

void tok_add_merge(Tok *tok, int32_t left, int32_t right, int32_t merged)
{
    CHECK(left >= 0 && right >= 0 && merged >= 0 && (size_t)left < tok->n_ids &&
          (size_t)right < tok->n_ids && (size_t)merged < tok->n_ids && tok->n_merges < INT32_MAX);
    pm_put(&tok->merges, pair_key(left, right), tok->n_merges++, merged);
}

int tok_add_split(Tok *tok, const char *pattern, size_t len, int literal, Err *err)
{
    char *translated = literal ? NULL : tok_regex_translate(pattern, len);
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(literal ? pattern : translated),
                                   literal ? len : PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0), &code,
                                   &at, NULL);
    int rewritten = translated != NULL && (strlen(translated) != len || memcmp(translated, pattern, len));
    free(translated);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set(err, "pre-tokenizer pattern '%.*s': %s (at offset %zu%s)",
                       (int)(len > 200 ? 200 : len), pattern, (const char *)msg, (size_t)at,
                       rewritten ? " once \\s is written \\p{White_Space}" : "");
    }
    tok->splits = xrealloc(tok->splits, (tok->n_splits + 1) * sizeof *tok->splits);
    TokRegex *r = &tok->splits[tok->n_splits++];
    r->code = re;
    r->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    r->md = pcre2_match_data_create_from_pattern(re, NULL);
    CHECK(r->md != NULL);
    return 0;
}

void tok_set_options(Tok *tok, int add_prefix_space, int ignore_merges)
{
    tok->add_prefix_space = add_prefix_space;
    tok->ignore_merges = ignore_merges;
}

void tok_set_bos(Tok *tok, int32_t id)
{
    CHECK(id >= -1 && (id < 0 || (size_t)id < tok->n_ids));
    tok->bos_id = id;
}

static int cmp_added_longest_first(const void *a, const void *b, void *arg)
{
    const Tok *tok = arg;
    const TokAdded *x = a, *y = b;
    uint32_t lx = tok->tok_len[x->id], ly = tok->tok_len[y->id];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int tok_finish(Tok *tok, Err *err)
{
    for (size_t id = 0; id < tok->n_ids; id++) {
        if (tok->kind[id] != TOK_KIND_BPE || tok->tok_len[id] != 1) continue;
        tok->byte_id[(unsigned char)tok->bytes[tok->tok_off[id]]] = (int32_t)id;
    }
    for (int b = 0; b < 256; b++) {
        if (tok->byte_id[b] >= 0) continue;
        char byte = (char)b, s[2];
        size_t n = tok_bytelevel_encode(&byte, 1, s);
        return err_set(err, "no token for byte 0x%02x (written '%.*s'): not a byte-level BPE vocabulary",
                       b, (int)n, s);
    }
    for (size_t id = 0; id < tok->n_ids; id++) {
        if (tok->kind[id] == TOK_KIND_ADDED || tok->kind[id] == TOK_KIND_SPECIAL) {
            if (tok->tok_len[id] == 0) return err_set(err, "added token %zu is empty", id);
            tok->added = xrealloc(tok->added, (tok->n_added + 1) * sizeof *tok->added);
            tok->added[tok->n_added++] = (TokAdded){(int32_t)id, tok->kind[id] == TOK_KIND_SPECIAL};
        }
        if (tok->ignore_merges && tok->kind[id] == TOK_KIND_BPE) {
            const char *s = tok->bytes + tok->tok_off[id];
            bm_put(&tok->vocab, s, tok->tok_len[id], hash_bytes(s, tok->tok_len[id]), id);
        }
    }
    if (tok->n_added > 1)
        qsort_r(tok->added, tok->n_added, sizeof *tok->added, cmp_added_longest_first, tok);
    for (size_t i = 0; i < tok->n_added; i++) {
        unsigned char first = (unsigned char)tok->bytes[tok->tok_off[tok->added[i].id]];
        for (int allow = 0; allow < 2; allow++) {
            if (tok->added[i].special && !allow) continue;
            tok->added_first[allow][first] = 1;
            tok->n_active[allow]++;
        }
    }
    return 0;
}

size_t tok_vocab_size(const Tok *tok) { return tok->n_ids; }
int32_t tok_bos_id(const Tok *tok) { return tok->bos_id; }

int32_t tok_special_id(const Tok *tok, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i < tok->n_added; i++) {
        int32_t id = tok->added[i].id;
        if (tok->added[i].special && tok->tok_len[id] == n &&
            memcmp(tok->bytes + tok->tok_off[id], text, n) == 0)
            return id;
    }
    return -1;
}

const char *tok_token_bytes(const Tok *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids || tok->kind[id] == TOK_KIND_NONE) {
        *len = 0;
        return NULL;
    }
    *len = tok->tok_len[id];
    return tok->bytes + tok->tok_off[id];
}

/* ---- encoding ---------------------------------------------------------- */

static void ids_reserve(TokIds *out, size_t extra)
{
    if (out->n + extra <= out->cap) return;
    size_t cap = out->cap ? out->cap : 64;
    while (cap < out->n + extra) cap = xmul(cap, 2);
    out->ids = xrealloc(out->ids, xmul(cap, sizeof *out->ids));
    out->cap = cap;
}

static void ids_push(TokIds *out, int32_t id)
{
    ids_reserve(out, 1);
    out->ids[out->n++] = id;
}

static int heap_less(const HeapItem *a, const HeapItem *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_sift_down(HeapItem *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && heap_less(&h[l], &h[m])) m = l;
        if (l + 1 < n && heap_less(&h[l + 1], &h[m])) m = l + 1;
        if (m == i) return;
        HeapItem t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_push(Tok *tok, size_t *n, HeapItem item)
{
    if (*n == tok->heap_cap) {
        tok->heap_cap = tok->heap_cap ? tok->heap_cap * 2 : 256;
        tok->heap = xrealloc(tok->heap, xmul(tok->heap_cap, sizeof *tok->heap));
    }
    HeapItem *h = tok->heap;
    size_t i = (*n)++;
    while (i > 0 && heap_less(&item, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = item;
}

/* Pushes the merge of the symbol at pos with its successor, if there is one. */
static void push_pair(Tok *tok, size_t *n, uint32_t pos)
{
    uint32_t next = tok->sym_next[pos];
    if (next == UINT32_MAX) return;
    int32_t left = tok->sym_id[pos], right = tok->sym_id[next];
    const PmSlot *m = pm_get(&tok->merges, left, right);
    if (m != NULL) heap_push(tok, n, (HeapItem){m->rank, m->merged, left, right, pos});
}

/* Merges the n bytes of one word (n >= 2, n < 2^32) and appends its ids. */
static void bpe_merge(Tok *tok, const unsigned char *w, size_t n, TokIds *out)
{
    if (n > tok->sym_cap) {
        tok->sym_cap = n > 2 * tok->sym_cap ? n : 2 * tok->sym_cap;
        tok->sym_id = xrealloc(tok->sym_id, xmul(tok->sym_cap, sizeof *tok->sym_id));
        tok->sym_prev = xrealloc(tok->sym_prev, xmul(tok->sym_cap, sizeof *tok->sym_prev));
        tok->sym_next = xrealloc(tok->sym_next, xmul(tok->sym_cap, sizeof *tok->sym_next));
    }
    for (size_t i = 0; i < n; i++) {
        tok->sym_id[i] = tok->byte_id[w[i]];
        tok->sym_prev[i] = i == 0 ? UINT32_MAX : (uint32_t)(i - 1);
        tok->sym_next[i] = i + 1 == n ? UINT32_MAX : (uint32_t)(i + 1);
    }
    size_t heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(tok, &heap_n, (uint32_t)i);
    while (heap_n > 0) {
        HeapItem top = tok->heap[0];
        tok->heap[0] = tok->heap[--heap_n];
        heap_sift_down(tok->heap, heap_n, 0);
        /* Stale entries: the symbol was merged away or into something else,
         * or its successor changed. */
        uint32_t pos = top.pos, next = tok->sym_next[pos];
        if (tok->sym_id[pos] != top.left || next == UINT32_MAX || tok->sym_id[next] != top.right)
            continue;
        tok->sym_id[pos] = top.merged;
        tok->sym_id[next] = -1;
        uint32_t after = tok->sym_next[next];
        tok->sym_next[pos] = after;
        if (after != UINT32_MAX) tok->sym_prev[after] = pos;
        if (tok->sym_prev[pos] != UINT32_MAX) push_pair(tok, &heap_n, tok->sym_prev[pos]);
        push_pair(tok, &heap_n, pos);
    }
    for (uint32_t i = 0; i != UINT32_MAX; i = tok->sym_next[i]) ids_push(out, tok->sym_id[i]);
}

/* Appends the ids of one pre-token. */
static void encode_word(Tok *tok, const char *w, size_t n, TokIds *out)
{
    if (n == 1) {
        ids_push(out, tok->byte_id[(unsigned char)w[0]]);
        return;
    }
    uint64_t h = hash_bytes(w, n), v;
    if (bm_get(&tok->cache, w, n, h, &v)) {
        size_t off = (size_t)(v >> 32), count = (size_t)(v & 0xffffffffu);
        ids_reserve(out, count);
        memcpy(out->ids + out->n, tok->cache_ids + off, count * sizeof *out->ids);
        out->n += count;
        return;
    }
    size_t start = out->n;
    if (tok->ignore_merges && bm_get(&tok->vocab, w, n, h, &v))
        ids_push(out, (int32_t)v);
    else
        bpe_merge(tok, (const unsigned char *)w, n, out);
    if (n > CACHE_MAX_WORD) return;
    size_t count = out->n - start;
    if (tok->cache.count >= CACHE_MAX_WORDS || tok->cache_ids_len + count > CACHE_MAX_IDS ||
        tok->cache.keys_len + n > CACHE_MAX_KEY_BYTES) {
        bm_clear(&tok->cache);
        tok->cache_ids_len = 0;
    }
    if (tok->cache_ids_len + count > tok->cache_ids_cap) {
        tok->cache_ids_cap = (tok->cache_ids_len + count) * 2 + 4096;
        tok->cache_ids = xrealloc(tok->cache_ids, xmul(tok->cache_ids_cap, sizeof *tok->cache_ids));
    }
    memcpy(tok->cache_ids + tok->cache_ids_len, out->ids + start, count * sizeof *out->ids);
    bm_put(&tok->cache, w, n, h, (uint64_t)tok->cache_ids_len << 32 | count);
    tok->cache_ids_len += count;
}

static size_t utf8_char_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* Splits s[0..n) with split `level` and the ones after it, then merges the
 * pieces. s is valid UTF-8. Returns 0, or -1 if PCRE2 failed (a resource
 * limit; err says where). */
static int encode_pieces(Tok *tok, size_t level, const char *s, size_t n, TokIds *out, Err *err)
{
    if (level == tok->n_splits) {
        encode_word(tok, s, n, out);
        return 0;
    }
    const TokRegex *r = &tok->splits[level];
    size_t done = 0, from = 0; /* bytes already given to pieces; where to search next */
    while (from < n) {
        int rc = r->jit ? pcre2_jit_match(r->code, (PCRE2_SPTR)s, n, from, 0, r->md, tok->mctx)
                        : pcre2_match(r->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, r->md,
                                      tok->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set(err, "pre-tokenizer regex failed at byte %zu of a %zu-byte piece: %s",
                           from, n, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match makes no piece: look again one character on */
            if (ms >= n) break;
            from = ms + utf8_char_len((unsigned char)s[ms]);
            continue;
        }
        if (ms > done && encode_pieces(tok, level + 1, s + done, ms - done, out, err) != 0)
            return -1;
        if (encode_pieces(tok, level + 1, s + ms, me - ms, out, err) != 0) return -1;
        done = from = me;
    }
    if (done < n) return encode_pieces(tok, level + 1, s + done, n - done, out, err);
    return 0;
}

/* Encodes a segment of text between added tokens. */
static int encode_segment(Tok *tok, const char *s, size_t n, TokIds *out, Err *err)
{
    if (n == 0) return 0;
    if (tok->add_prefix_space && s[0] != ' ') {
        if (n + 1 > tok->prefixed_cap) {
            tok->prefixed_cap = n + 1 > 2 * tok->prefixed_cap ? n + 1 : 2 * tok->prefixed_cap;
            tok->prefixed = xrealloc(tok->prefixed, tok->prefixed_cap);
        }
        tok->prefixed[0] = ' ';
        memcpy(tok->prefixed + 1, s, n);
        s = tok->prefixed;
        n++;
    }
    return encode_pieces(tok, 0, s, n, out, err);
}

/* The leftmost added token in text[from..len) that is active, longest at
 * that position: returns its index in tok->added and sets *at, or -1. */
static long find_added(const Tok *tok, int allow, const char *text, size_t len, size_t from,
                       size_t *at)
{
    const uint8_t *first = tok->added_first[allow];
    for (size_t i = from; i < len; i++) {
        if (!first[(unsigned char)text[i]]) continue;
        for (size_t k = 0; k < tok->n_added; k++) { /* longest first */
            const TokAdded *a = &tok->added[k];
            if (a->special && !allow) continue;
            size_t n = tok->tok_len[a->id];
            if (n <= len - i && memcmp(text + i, tok->bytes + tok->tok_off[a->id], n) == 0) {
                *at = i;
                return (long)k;
            }
        }
    }
    return -1;
}

int tok_encode(Tok *tok, const char *text, size_t len, int flags, TokIds *out, Err *err)
{
    if (len == 0) return 0;
    if (len >= UINT32_MAX)
        return err_set(err, "text of %zu bytes is too long (the limit is 4 GiB per call)", len);
    int rc = pcre2_match(tok->utf_check, (PCRE2_SPTR)text, len, 0, 0, tok->utf_md, NULL);
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        const char *why = (const char *)msg;
        if (strncmp(why, "UTF-8 error: ", 13) == 0) why += 13;
        return err_set(err, "invalid UTF-8 at byte %zu (%s)", (size_t)pcre2_get_startchar(tok->utf_md),
                       why);
    }
    size_t n0 = out->n, done = 0;
    int allow = (flags & TOK_ALLOW_SPECIAL) != 0;
    if (tok->n_active[allow] > 0) {
        size_t at;
        long k;
        while ((k = find_added(tok, allow, text, len, done, &at)) >= 0) {
            int32_t id = tok->added[k].id;
            if (encode_segment(tok, text + done, at - done, out, err) != 0) goto fail;
            ids_push(out, id);
            done = at + tok->tok_len[id];
        }
    }
    if (encode_segment(tok, text + done, len - done, out, err) == 0) return 0;
fail:
    out->n = n0;
    return -1;
}

/* ---- decoding ---------------------------------------------------------- */

int tok_decode(const Tok *tok, const int32_t *ids, size_t n, char **buf, size_t *len, Err *err)
{
    size_t total = *len;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= tok->n_ids)
            return err_set(err, "token id %d is out of range (the vocabulary has ids 0..%zu)", id,
                           tok->n_ids - 1);
        if (tok->kind[id] == TOK_KIND_NONE)
            return err_set(err, "token id %d is not in the vocabulary", id);
        total += tok->tok_len[id];
    }
    char *b = xrealloc(*buf, total + 1);
    size_t k = *len;
    for (size_t i = 0; i < n; i++) {
        memcpy(b + k, tok->bytes + tok->tok_off[ids[i]], tok->tok_len[ids[i]]);
        k += tok->tok_len[ids[i]];
    }
    b[k] = '\0';
    *buf = b;
    *len = k;
    return 0;
}
