/* safetensors.c — mmap, validate and look up safetensors checkpoints (see include/st.h).
 *
 * A file is: u64 little-endian header length N, N bytes of JSON header, then
 * the data buffer. Nothing in the header is trusted: every field is checked
 * (sizes with overflow-checked size_t arithmetic) before a pointer into the
 * mapping is formed. Errors name the file first; anything user-controlled
 * that ends up in a message is clipped and has control bytes replaced so the
 * message stays one line.
 */
#include "st.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is used in place: port the loader first"
#endif

#define SHOWN_MAX 100 /* bytes of a user-supplied name shown in a message */

typedef struct StFile {
    char *path;
    const unsigned char *map; /* whole file, read-only; NULL until mapped */
    size_t size;
    char *names;              /* this file's tensor names, NUL-separated */
} StFile;

/* A tensor and, once st_get_f32 needed one, its converted copy. */
typedef struct Slot {
    StTensor t;
    float *f32;
} Slot;

struct StSet {
    char *origin;  /* what was opened (file or index): named in lookup errors */
    StFile *files; /* (nfiles) */
    size_t nfiles;
    Slot *slots;   /* (n) sorted by name once open */
    size_t n;
};

static const char *const dtype_names[ST_DTYPE_COUNT] = {
    [ST_BOOL] = "BOOL", [ST_U8] = "U8",     [ST_I8] = "I8",   [ST_I16] = "I16",
    [ST_U16] = "U16",   [ST_F16] = "F16",   [ST_BF16] = "BF16", [ST_I32] = "I32",
    [ST_U32] = "U32",   [ST_F32] = "F32",   [ST_F64] = "F64", [ST_I64] = "I64",
    [ST_U64] = "U64",   [ST_F8_E4M3] = "F8_E4M3", [ST_F8_E5M2] = "F8_E5M2",
};
static const unsigned char dtype_sizes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = 1, [ST_U8] = 1,  [ST_I8] = 1,   [ST_I16] = 2, [ST_U16] = 2,
    [ST_F16] = 2,  [ST_BF16] = 2, [ST_I32] = 4, [ST_U32] = 4, [ST_F32] = 4,
    [ST_F64] = 8,  [ST_I64] = 8, [ST_U64] = 8,  [ST_F8_E4M3] = 1, [ST_F8_E5M2] = 1,
};

const char *st_dtype_name(StDtype dt)
{
    CHECK((unsigned)dt < ST_DTYPE_COUNT);
    return dtype_names[dt];
}

size_t st_dtype_size(StDtype dt)
{
    CHECK((unsigned)dt < ST_DTYPE_COUNT);
    return dtype_sizes[dt];
}

/* err_set, then make the message safe to print as one line: names and JSON
 * excerpts come from the file and may hold newlines or invalid UTF-8. */
__attribute__((format(printf, 2, 3))) static int fail(Err *err, const char *fmt, ...)
{
    if (err == NULL) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

/* Length of s to print with "%.*s": at most SHOWN_MAX bytes, cut on a UTF-8
 * character boundary. */
static int shown(const char *s)
{
    size_t n = strnlen(s, SHOWN_MAX + 1);
    if (n > SHOWN_MAX) {
        n = SHOWN_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    return (int)n;
}

/* JSON with duplicate keys rejected (at any depth). DECODE_ANY so that a
 * non-object top level gets the caller's more specific message. On error
 * returns NULL with "PATH: WHAT is not valid JSON: ...". */
static json_t *load_json(const void *buf, size_t n, const char *path, const char *what, Err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        for (char *p = jerr.text; *p; p++) /* jansson quotes the input: keep it ASCII */
            if ((unsigned char)*p >= 0x80) *p = '?';
        fail(err, "%s: %s is not valid JSON: %s (byte %d)", path, what, jerr.text, jerr.position);
    }
    return root;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2), *q = p + a;
    memcpy(p, dir, a);
    if (a == 0 || dir[a - 1] != '/') *q++ = '/'; /* "dir/" stays "dir/name" in messages */
    memcpy(q, name, b + 1);
    return p;
}

/* Maps a whole regular, non-empty file read-only. O_NONBLOCK so that a FIFO
 * is rejected by the type check instead of blocking the open. */
static int map_file(const char *path, const unsigned char **map, size_t *size, Err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) why = strerror(errno);
    else if (S_ISDIR(st.st_mode)) why = "is a directory, expected a file";
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (st.st_size == 0) why = "empty file";
    else if ((unsigned long long)st.st_size > SIZE_MAX) why = "file too large to map";
    void *p = why ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (why == NULL && p == MAP_FAILED) why = strerror(errno);
    close(fd); /* the mapping outlives the descriptor */
    if (why) return fail(err, "%s: %s", path, why);
    *map = p;
    *size = (size_t)st.st_size;
    return 0;
}

/* "2, 3, 4" into buf (clipped to cap). */
static void format_shape(char *buf, size_t cap, const size_t *shape, size_t ndim)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%zu", d ? ", " : "", shape[d]);
}

/* A JSON integer in [0, SIZE_MAX], or -1. */
static int json_size(const json_t *v, size_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    if ((unsigned long long)json_integer_value(v) > SIZE_MAX) return -1;
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int parse_dtype(StDtype *out, const char *s)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    }
    return -1;
}

/* Fills t (name already set) from one header entry; `data`/`data_size` is the
 * data buffer. Checks everything about the entry alone; the layout across
 * entries is check_layout's job. */
static int parse_entry(StTensor *t, const json_t *entry, const StFile *f,
                       const unsigned char *data, size_t data_size, Err *err)
{
    const char *path = f->path;
    int nl = shown(t->name);
    if (!json_is_object(entry))
        return fail(err, "%s: tensor '%.*s': entry is not a JSON object", path, nl, t->name);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)entry, key, v) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return fail(err, "%s: tensor '%.*s': unknown field '%.*s'", path, nl, t->name,
                        shown(key), key);
    }
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offsets = json_object_get(entry, "data_offsets");
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing)
        return fail(err, "%s: tensor '%.*s': missing field '%s'", path, nl, t->name, missing);

    if (!json_is_string(dtype))
        return fail(err, "%s: tensor '%.*s': dtype is not a string", path, nl, t->name);
    if (parse_dtype(&t->dtype, json_string_value(dtype)) != 0)
        return fail(err, "%s: tensor '%.*s': unknown dtype '%.*s'", path, nl, t->name,
                    shown(json_string_value(dtype)), json_string_value(dtype));

    if (!json_is_array(shape))
        return fail(err, "%s: tensor '%.*s': shape is not an array", path, nl, t->name);
    t->ndim = json_array_size(shape);
    if (t->ndim > ST_MAX_DIMS)
        return fail(err, "%s: tensor '%.*s': shape has %zu dims, too many dims (max %d)", path,
                    nl, t->name, t->ndim, ST_MAX_DIMS);
    t->numel = 1;
    for (size_t d = 0; d < t->ndim; d++) {
        if (json_size(json_array_get(shape, d), &t->shape[d]) != 0)
            return fail(err, "%s: tensor '%.*s': shape[%zu] is not a non-negative integer", path,
                        nl, t->name, d);
        if (__builtin_mul_overflow(t->numel, t->shape[d], &t->numel))
            return fail(err, "%s: tensor '%.*s': shape product overflows", path, nl, t->name);
    }
    size_t need;
    if (__builtin_mul_overflow(t->numel, st_dtype_size(t->dtype), &need))
        return fail(err, "%s: tensor '%.*s': shape product overflows", path, nl, t->name);

    size_t begin, end;
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        json_size(json_array_get(offsets, 0), &begin) != 0 ||
        json_size(json_array_get(offsets, 1), &end) != 0)
        return fail(err, "%s: tensor '%.*s': data_offsets is not a pair of non-negative integers",
                    path, nl, t->name);
    if (begin > end)
        return fail(err, "%s: tensor '%.*s': data_offsets [%zu, %zu] are reversed", path, nl,
                    t->name, begin, end);
    if (end > data_size)
        return fail(err, "%s: tensor '%.*s': data_offsets [%zu, %zu] out of the data buffer "
                    "(%zu bytes)", path, nl, t->name, begin, end, data_size);
    if (end - begin != need) {
        char dims[256];
        format_shape(dims, sizeof dims, t->shape, t->ndim);
        return fail(err, "%s: tensor '%.*s': size mismatch: %s [%s] needs %zu bytes, "
                    "data_offsets [%zu, %zu] span %zu", path, nl, t->name,
                    st_dtype_name(t->dtype), dims, need, begin, end, end - begin);
    }
    t->data = data + begin;
    t->nbytes = need;
    t->path = f->path;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const StTensor *x = &((const Slot *)a)->t, *y = &((const Slot *)b)->t;
    const unsigned char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* The tensors of one file must tile its data buffer exactly: a hole or tail
 * would be bytes no tensor accounts for (a sign of a corrupt or crafted
 * file), an overlap two tensors aliasing memory. Sorts slots by offset. */
static int check_layout(Slot *slots, size_t n, const unsigned char *data, size_t data_size,
                        const char *path, Err *err)
{
    qsort(slots, n, sizeof *slots, cmp_offset);
    size_t covered = 0; /* end of the bytes claimed so far */
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const StTensor *t = &slots[i].t;
        size_t begin = (size_t)((const unsigned char *)t->data - data);
        if (begin < covered)
            return fail(err, "%s: tensor '%.*s': data_offsets [%zu, %zu] overlap tensor '%.*s'",
                        path, shown(t->name), t->name, begin, begin + t->nbytes, shown(last),
                        last);
        if (begin > covered)
            return fail(err, "%s: hole in the data buffer: bytes [%zu, %zu) before tensor '%.*s' "
                        "belong to no tensor", path, covered, begin, shown(t->name), t->name);
        covered = begin + t->nbytes;
        if (t->nbytes > 0) last = t->name;
    }
    if (covered != data_size)
        return fail(err, "%s: %zu trailing bytes after the last tensor", path, data_size - covered);
    return 0;
}

static int check_metadata(const json_t *meta, const char *path, Err *err)
{
    if (!json_is_object(meta))
        return fail(err, "%s: __metadata__ is not a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return fail(err, "%s: __metadata__ value of '%.*s' is not a string", path,
                        shown(key), key);
    }
    return 0;
}

/* Maps f->path, validates its header and appends its tensors to set->slots.
 * On error the caller's st_close releases whatever was set up. */
static int load_file(StSet *set, StFile *f, Err *err)
{
    const char *path = f->path;
    if (map_file(path, &f->map, &f->size, err) != 0) return -1;
    if (f->size < 8)
        return fail(err, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                    path, f->size);
    unsigned long long hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
    if (hlen < 2) return fail(err, "%s: header length %llu too small", path, hlen);
    if (hlen > ST_MAX_HEADER)
        return fail(err, "%s: header length %llu exceeds the limit of %u bytes", path, hlen,
                    ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return fail(err, "%s: header length %llu exceeds the file size (%zu bytes)", path, hlen,
                    f->size);
    const unsigned char *data = f->map + 8 + hlen;
    size_t data_size = f->size - 8 - (size_t)hlen;

    int rc = -1;
    json_t *root = load_json(f->map + 8, (size_t)hlen, path, "header", err);
    if (root == NULL) goto out;
    if (!json_is_object(root)) {
        fail(err, "%s: header is not a JSON object", path);
        goto out;
    }

    const char *key;
    json_t *v;
    size_t names_size = 0, count = json_object_size(root);
    json_object_foreach(root, key, v) names_size += strlen(key) + 1;
    f->names = xmalloc(names_size);
    set->slots = xrealloc(set->slots, xmul(set->n + count, sizeof *set->slots));
    size_t first = set->n;
    char *name = f->names;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (check_metadata(v, path, err) != 0) goto out;
            continue;
        }
        Slot *s = &set->slots[set->n];
        memset(s, 0, sizeof *s);
        size_t len = strlen(key) + 1;
        memcpy(name, key, len);
        s->t.name = name;
        name += len;
        if (parse_entry(&s->t, v, f, data, data_size, err) != 0) goto out;
        set->n++;
    }
    rc = check_layout(set->slots + first, set->n - first, data, data_size, path, err);
out:
    json_decref(root);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const Slot *)a)->t.name, ((const Slot *)b)->t.name);
}

/* Shards live in one directory, so path order is shard order: a tensor in
 * two shards is reported in the later one, whatever qsort does with ties. */
static int cmp_name_path(const void *a, const void *b)
{
    int c = cmp_name(a, b);
    return c ? c : strcmp(((const Slot *)a)->t.path, ((const Slot *)b)->t.path);
}

/* Sorts by name for st_tensor/st_find; a name twice can only come from two
 * shards (one header rejects duplicate keys). */
static int index_names(StSet *set, Err *err)
{
    qsort(set->slots, set->n, sizeof *set->slots, cmp_name_path);
    for (size_t i = 1; i < set->n; i++) {
        const StTensor *a = &set->slots[i - 1].t, *b = &set->slots[i].t;
        if (strcmp(a->name, b->name) == 0)
            return fail(err, "%s: tensor '%.*s' is also in %s", b->path, shown(b->name), b->name,
                        a->path);
    }
    return 0;
}

static StSet *set_new(const char *origin, size_t nfiles)
{
    StSet *set = xcalloc(1, sizeof *set);
    set->origin = xstrdup(origin);
    set->files = xcalloc(nfiles, sizeof *set->files);
    set->nfiles = nfiles;
    return set;
}

int st_open_file(StSet **out, const char *path, Err *err)
{
    *out = NULL;
    StSet *set = set_new(path, 1);
    set->files[0].path = xstrdup(path);
    if (load_file(set, &set->files[0], err) != 0 || index_names(set, err) != 0) {
        st_close(set);
        return -1;
    }
    *out = set;
    return 0;
}

/* A shard must be a plain file name so the index cannot reach outside the
 * model directory ("../x", "/etc/x", "a/../../x"). */
static int plain_name(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Opens the shards named by an index's weight_map, sorted by file name
 * (model-00001-of-00003, ...), then checks that every listed tensor is in
 * the shard the index says. Extra tensors in a shard are kept, as
 * transformers does. */
static int open_index(StSet **out, const char *dir, const char *index_path, Err *err)
{
    const unsigned char *map = NULL;
    size_t size = 0;
    json_t *root = NULL;
    const char **shards = NULL;
    StSet *set = NULL;
    int rc = -1;
    if (map_file(index_path, &map, &size, err) != 0) return -1;

    root = load_json(map, size, index_path, "index", err);
    if (root == NULL) goto out;
    json_t *wmap = json_object_get(root, "weight_map");
    json_t *meta = json_object_get(root, "metadata");
    if (!json_is_object(root) || !json_is_object(wmap) || json_object_size(wmap) == 0) {
        fail(err, "%s: expected an object with a non-empty \"weight_map\" object", index_path);
        goto out;
    }
    if (meta != NULL && !json_is_object(meta)) {
        fail(err, "%s: \"metadata\" is not an object", index_path);
        goto out;
    }

    size_t nshards = 0;
    const char *key;
    json_t *v;
    shards = xcalloc(json_object_size(wmap), sizeof *shards);
    json_object_foreach(wmap, key, v) {
        const char *shard = json_string_value(v);
        if (shard == NULL || !plain_name(shard)) {
            fail(err, "%s: weight_map: tensor '%.*s': shard must be a file name inside %s",
                 index_path, shown(key), key, dir);
            goto out;
        }
        shards[nshards++] = shard;
    }
    qsort(shards, nshards, sizeof *shards, cmp_str);
    size_t unique = 0;
    for (size_t i = 0; i < nshards; i++)
        if (unique == 0 || strcmp(shards[unique - 1], shards[i]) != 0) shards[unique++] = shards[i];

    set = set_new(index_path, unique);
    for (size_t i = 0; i < unique; i++) {
        const char *shard = set->files[i].path = path_join(dir, shards[i]);
        struct stat st;
        if (stat(shard, &st) != 0 && errno == ENOENT) {
            fail(err, "%s: weight_map names a missing shard %s", index_path, shard);
            goto out;
        }
        if (load_file(set, &set->files[i], err) != 0) goto out;
    }
    if (index_names(set, err) != 0) goto out;
    json_object_foreach(wmap, key, v) {
        const StTensor *t = st_find(set, key);
        const char *want = json_string_value(v);
        /* t->path is dir/shard, and a shard name has no '/'. */
        if (t == NULL || strcmp(strrchr(t->path, '/') + 1, want) != 0) {
            fail(err, "%s: weight_map: tensor '%.*s' is not in its shard '%.*s'%s%s", index_path,
                 shown(key), key, shown(want), want, t ? "; it is in " : "", t ? t->path : "");
            goto out;
        }
    }
    *out = set;
    set = NULL;
    rc = 0;
out:
    st_close(set);
    free(shards);
    json_decref(root);
    munmap((void *)map, size);
    return rc;
}

int st_open_dir(StSet **out, const char *dir, Err *err)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) return fail(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fail(err, "%s: not a directory", dir);
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    int rc;
    /* Anything at model.safetensors other than "nothing" (a directory, a
     * dangling link, no permission) is reported, not silently skipped. */
    if (stat(single, &st) == 0 || errno != ENOENT)
        rc = st_open_file(out, single, err);
    else if (stat(index, &st) == 0 || errno != ENOENT)
        rc = open_index(out, dir, index, err);
    else
        rc = fail(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(single);
    free(index);
    return rc;
}

void st_close(StSet *set)
{
    if (set == NULL) return;
    for (size_t i = 0; i < set->nfiles; i++) {
        StFile *f = &set->files[i];
        if (f->map != NULL) munmap((void *)f->map, f->size);
        free(f->path);
        free(f->names);
    }
    for (size_t i = 0; i < set->n; i++) free(set->slots[i].f32);
    free(set->files);
    free(set->slots);
    free(set->origin);
    free(set);
}

size_t st_count(const StSet *set) { return set->n; }

const StTensor *st_tensor(const StSet *set, size_t i)
{
    CHECK(i < set->n);
    return &set->slots[i].t;
}

const StTensor *st_find(const StSet *set, const char *name)
{
    Slot key = {.t.name = name};
    const Slot *s = bsearch(&key, set->slots, set->n, sizeof *set->slots, cmp_name);
    return s ? &s->t : NULL;
}

size_t st_file_count(const StSet *set) { return set->nfiles; }

const char *st_file_path(const StSet *set, size_t i)
{
    CHECK(i < set->nfiles);
    return set->files[i].path;
}

/* IEEE half to single, exactly: every half (subnormals included) is a float. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13; /* inf, or nan keeping its payload */
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | mant << 13; /* rebias 15 -> 127 */
    } else {
        float f = (float)mant * 0x1p-24f; /* zero or subnormal: mant * 2^-24 */
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Copies or converts t's elements to float32; out holds t->numel floats. */
static void convert(float *out, const StTensor *t)
{
    const unsigned char *p = t->data;
    uint16_t h;
    uint32_t u;
    double d;
    switch (t->dtype) {
    case ST_F32: memcpy(out, p, t->numel * sizeof *out); break; /* unaligned source */
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        break;
    case ST_BF16: /* the top half of a float32 */
        for (size_t i = 0; i < t->numel; i++) {
            memcpy(&h, p + 2 * i, 2);
            u = (uint32_t)h << 16;
            memcpy(&out[i], &u, 4);
        }
        break;
    case ST_F64: /* IEEE rounding; beyond float range gives inf */
        for (size_t i = 0; i < t->numel; i++) {
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default: die_at(__FILE__, __LINE__, "convert: dtype %s", st_dtype_name(t->dtype));
    }
}

int st_get_f32(StSet *set, const char *name, const size_t *shape, size_t ndim,
               const float **out, Err *err)
{
    *out = NULL;
    Slot key = {.t.name = name};
    Slot *s = bsearch(&key, set->slots, set->n, sizeof *set->slots, cmp_name);
    if (s == NULL) return fail(err, "%s: no tensor '%.*s'", set->origin, shown(name), name);
    const StTensor *t = &s->t;
    int nl = shown(name);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return fail(err, "%s: tensor '%.*s': dtype %s cannot be read as float32", t->path, nl,
                    name, st_dtype_name(t->dtype));
    if (ndim != t->ndim || (ndim > 0 && memcmp(shape, t->shape, ndim * sizeof *shape) != 0)) {
        char have[256], want[256];
        format_shape(have, sizeof have, t->shape, t->ndim);
        format_shape(want, sizeof want, shape, ndim);
        return fail(err, "%s: tensor '%.*s': shape [%s], expected [%s]", t->path, nl, name,
                    have, want);
    }
    if (t->dtype == ST_F32 && (uintptr_t)t->data % sizeof(float) == 0) {
        *out = t->data;
        return 0;
    }
    if (s->f32 == NULL) {
        size_t bytes;
        if (__builtin_mul_overflow(t->numel, sizeof(float), &bytes))
            return fail(err, "%s: tensor '%.*s': too large to convert", t->path, nl, name);
        s->f32 = xmalloc(bytes);
        convert(s->f32, t);
    }
    *out = s->f32;
    return 0;
}

void st_sha256_hex(const StSet *set, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *all = EVP_MD_CTX_new();
    CHECK(all != NULL);
    CHECK(EVP_DigestInit_ex(all, EVP_sha256(), NULL) == 1);
    for (size_t i = 0; i < set->nfiles; i++) {
        const StFile *f = &set->files[i];
        CHECK(EVP_Digest(f->map, f->size, md, &len, EVP_sha256(), NULL) == 1);
        CHECK(EVP_DigestUpdate(all, md, len) == 1);
    }
    /* One file: its own digest, so it matches sha256sum. */
    if (set->nfiles != 1) CHECK(EVP_DigestFinal_ex(all, md, &len) == 1);
    EVP_MD_CTX_free(all);
    CHECK(len == 32);
    for (unsigned i = 0; i < len; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}
