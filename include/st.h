/* st.h — safetensors checkpoints: mmap, validate, look up tensors.
 *
 * A checkpoint is one `model.safetensors` or the shards listed by
 * `model.safetensors.index.json`. Files are mmap'ed read-only (ranks on one
 * node share the page cache). Every header is validated before any use:
 *   - 8-byte little-endian header length N with 2 <= N <= ST_MAX_HEADER and
 *     8 + N <= file size;
 *   - the header is a JSON object (jansson, duplicate keys rejected), each
 *     entry an object {dtype, shape, data_offsets} (plus the optional
 *     "__metadata__" object of string values);
 *   - dtype is one of the known safetensors dtypes;
 *   - shape is an array of non-negative integers, at most ST_MAX_DIMS, whose
 *     product times the item size does not overflow and equals end - begin;
 *   - 0 <= begin <= end <= data buffer size; tensors do not overlap and,
 *     sorted by offset, cover the data buffer with no hole and nothing after.
 * An index's weight_map must name only existing shard files inside the
 * model directory, and every tensor it lists must be in its shard.
 *
 * Errors are one line naming the file: "DIR/model.safetensors: tensor
 * 'h.0.attn.c_attn.weight': data_offsets [10, 20] overlap tensor 'wte.weight'".
 */
#ifndef PATCHGRID_ST_H
#define PATCHGRID_ST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1024u * 1024u) /* bytes, as the reference implementation */

typedef enum StDtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32,
    ST_F32, ST_F64, ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2, ST_DTYPE_COUNT
} StDtype;

typedef struct StTensor {
    const char *name;          /* owned by the StSet */
    StDtype dtype;
    size_t ndim;
    size_t shape[ST_MAX_DIMS];
    size_t numel;              /* product of shape (1 for a scalar) */
    const void *data;          /* into the read-only mapping; may be unaligned */
    size_t nbytes;
    const char *path;          /* the file it lives in (owned by the StSet) */
} StTensor;

typedef struct StSet StSet; /* opaque: one checkpoint (one or more mapped files) */

/* Opens DIR/model.safetensors, or DIR/model.safetensors.index.json and its
 * shards when there is no single file. A tensor a shard holds beyond those
 * the index lists is kept (as transformers does); a tensor in two shards is
 * an error. On error returns -1, sets err, *out is NULL and nothing stays
 * mapped or allocated. */
int st_open_dir(StSet **out, const char *dir, Err *err);

/* Opens one .safetensors file (used by st_open_dir and the tests); same
 * contract as st_open_dir. */
int st_open_file(StSet **out, const char *path, Err *err);

/* Unmaps and frees everything, including buffers returned by st_get_f32.
 * Accepts NULL. */
void st_close(StSet *set);

size_t st_count(const StSet *set);
const StTensor *st_tensor(const StSet *set, size_t i);     /* sorted by name */
const StTensor *st_find(const StSet *set, const char *name); /* NULL if absent */

/* Files of the checkpoint: 1, or the shards sorted by file name
 * (model-00001-of-00003.safetensors, ...). */
size_t st_file_count(const StSet *set);
const char *st_file_path(const StSet *set, size_t i);

/* The tensor `name` as float32, checked to have exactly the shape
 * shape[0..ndim). F32 data that is 4-byte aligned is returned in place (a
 * pointer into the read-only mapping); F16, BF16, F64 and unaligned F32 are
 * converted into a buffer the StSet owns (freed by st_close). Any other
 * dtype, a missing tensor or a shape mismatch is an error naming the file and
 * the tensor. A conversion is done once and cached in the set, so the set is
 * not safe to share between threads during st_get_f32. */
int st_get_f32(StSet *set, const char *name, const size_t *shape, size_t ndim,
               const float **out, Err *err);

const char *st_dtype_name(StDtype dt);
size_t st_dtype_size(StDtype dt); /* bytes per element (F8: 1, BOOL: 1) */

/* SHA-256 of the checkpoint as 64 lowercase hex chars + NUL: for one file
 * its digest (what sha256sum prints); for several shards the digest of their
 * 32-byte binary digests concatenated in st_file_path order. */
void st_sha256_hex(const StSet *set, char out[65]);

#endif
