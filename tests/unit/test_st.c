/* test_st.c — safetensors loader: valid files, conversions, sharded
 * checkpoints, and a corpus of malformed files that must each be rejected
 * with a one-line message naming the file.
 *
 * Headers are written with ' for " to keep the tables readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st.h"

static char tmp_root[] = "/tmp/test_st.XXXXXX";

/* tmp_root/name, in a static buffer rotated so a few can be live at once. */
static const char *tmp_path(const char *fmt, ...)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    int n = snprintf(b, sizeof bufs[0], "%s/", tmp_root);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, sizeof bufs[0] - (size_t)n, fmt, ap);
    va_end(ap);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes a safetensors file: length field `hlen`, the header (' becomes "),
 * then `data` (or zeros when NULL) of `ndata` bytes; the whole cut to `trunc`
 * bytes when trunc != 0. */
static void write_st_full(const char *path, uint64_t hlen, const char *header, const void *data,
                          size_t ndata, size_t trunc)
{
    size_t nh = strlen(header), n = 8 + nh + ndata;
    unsigned char *buf = calloc(1, n);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    for (size_t i = 0; i < nh; i++) buf[8 + i] = header[i] == '\'' ? '"' : (unsigned char)header[i];
    if (data) memcpy(buf + 8 + nh, data, ndata);
    write_bytes(path, buf, trunc ? trunc : n);
    free(buf);
}

static void write_st(const char *path, const char *header, const void *data, size_t ndata)
{
    write_st_full(path, strlen(header), header, data, ndata, 0);
}

static void write_text(const char *path, const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    write_bytes(path, s, strlen(s));
    free(s);
}

/* Asserts that opening fails with a one-line message naming `path` and
 * containing `phrase`, and that nothing is returned. */
static void expect_error(int rc, StSet *set, const Err *err, const char *path, const char *phrase)
{
    if (rc != -1 || set != NULL || strstr(err->msg, path) == NULL ||
        strstr(err->msg, phrase) == NULL || strchr(err->msg, '\n') != NULL)
        fail_msg("expected error naming %s with \"%s\", got rc=%d msg \"%s\"", path, phrase, rc,
                 err->msg);
}

static void expect_file_error(const char *path, const char *phrase)
{
    StSet *set = (StSet *)1;
    Err err = {{0}};
    int rc = st_open_file(&set, path, &err);
    expect_error(rc, set, &err, path, phrase);
}

static void expect_dir_error(const char *dir, const char *path, const char *phrase)
{
    StSet *set = (StSet *)1;
    Err err = {{0}};
    int rc = st_open_dir(&set, dir, &err);
    expect_error(rc, set, &err, path, phrase);
}

static StSet *open_ok(const char *path)
{
    StSet *set = NULL;
    Err err = {{0}};
    if (st_open_file(&set, path, &err) != 0) fail_msg("%s", err.msg);
    return set;
}

static const float *get_ok(StSet *set, const char *name, const size_t *shape, size_t ndim)
{
    const float *p = NULL;
    Err err = {{0}};
    if (st_get_f32(set, name, shape, ndim, &p, &err) != 0) fail_msg("%s", err.msg);
    return p;
}

/* ---- valid files ---- */

static void test_f32_in_place(void **state)
{
    const float v[6] = {1, 2, 3, -4, 5.5f, 1e-30f};
    /* 64-byte header: data starts at offset 72, 4-byte aligned in the mapping. */
    const char *h = "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}       ";
    assert_int_equal(strlen(h) % 4, 0);
    write_st(tmp_path("f32.st"), h, v, sizeof v);
    StSet *set = open_ok(tmp_path("f32.st"));
    assert_int_equal(st_count(set), 1);
    const StTensor *t = st_find(set, "w");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->nbytes, 24);
    assert_string_equal(t->path, tmp_path("f32.st"));
    const float *p = get_ok(set, "w", (size_t[]){2, 3}, 2);
    assert_ptr_equal(p, t->data);
    assert_memory_equal(p, v, sizeof v);
    assert_null(st_find(set, "x"));
    assert_int_equal(st_file_count(set), 1);
    assert_string_equal(st_file_path(set, 0), tmp_path("f32.st"));
    st_close(set);
}

static void test_f32_unaligned(void **state)
{
    const float v[3] = {1.25f, -7, 3e38f};
    const char *h = "{'w':{'dtype':'F32','shape':[3],'data_offsets':[0,12]}}  ";
    assert_int_not_equal(strlen(h) % 4, 0);
    write_st(tmp_path("f32u.st"), h, v, sizeof v);
    StSet *set = open_ok(tmp_path("f32u.st"));
    const float *p = get_ok(set, "w", (size_t[]){3}, 1);
    assert_ptr_not_equal(p, st_find(set, "w")->data);
    assert_int_equal((uintptr_t)p % 4, 0);
    assert_memory_equal(p, v, sizeof v);
    assert_ptr_equal(get_ok(set, "w", (size_t[]){3}, 1), p); /* converted once */
    st_close(set);
}

static void test_f16(void **state)
{
    const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                          0x7c00, 0xfc00, 0x8000, 0x0000, 0x3555, 0x7e00};
    const float want[] = {1, -2, 65504, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f,
                          INFINITY, -INFINITY, -0.0f, 0, 0x1.554p-2f};
    write_st(tmp_path("f16.st"), "{'h':{'dtype':'F16','shape':[12],'data_offsets':[0,24]}}", h,
             sizeof h);
    StSet *set = open_ok(tmp_path("f16.st"));
    const float *p = get_ok(set, "h", (size_t[]){12}, 1);
    for (size_t i = 0; i < 11; i++) {
        if (memcmp(&p[i], &want[i], 4) != 0)
            fail_msg("f16 %04x -> %a, want %a", h[i], (double)p[i], (double)want[i]);
    }
    assert_true(isnan(p[11]));
    assert_true(signbit(p[8]));
    st_close(set);
}

static void test_bf16_f64(void **state)
{
    struct { uint16_t b[4]; double d[3]; } data = {{0x3f80, 0xc040, 0x7f80, 0x0001},
                                                   {1.5, -1e-3, 1e300}};
    write_st(tmp_path("bf.st"),
             "{'b':{'dtype':'BF16','shape':[2,2],'data_offsets':[0,8]},"
             "'d':{'dtype':'F64','shape':[3],'data_offsets':[8,32]}}",
             &data, sizeof data);
    StSet *set = open_ok(tmp_path("bf.st"));
    const float *b = get_ok(set, "b", (size_t[]){2, 2}, 2);
    assert_true(b[0] == 1.0f && b[1] == -3.0f && isinf(b[2]) && b[2] > 0);
    uint32_t bits;
    memcpy(&bits, &b[3], 4);
    assert_int_equal(bits, 0x00010000u);
    const float *d = get_ok(set, "d", (size_t[]){3}, 1);
    assert_true(d[0] == 1.5f && d[1] == (float)-1e-3 && isinf(d[2]));
    st_close(set);
}

static void test_empty_scalar_metadata(void **state)
{
    const float one = 42;
    write_st(tmp_path("misc.st"),
             "{'__metadata__':{'format':'pt','note':''},"
             "'z':{'dtype':'F16','shape':[0,3],'data_offsets':[4,4]},"
             "'s':{'dtype':'F32','shape':[],'data_offsets':[0,4]},"
             "'a':{'dtype':'I32','shape':[0],'data_offsets':[0,0]}}",
             &one, 4);
    StSet *set = open_ok(tmp_path("misc.st"));
    assert_int_equal(st_count(set), 3);
    assert_string_equal(st_tensor(set, 0)->name, "a"); /* sorted by name */
    assert_string_equal(st_tensor(set, 1)->name, "s");
    assert_string_equal(st_tensor(set, 2)->name, "z");
    const StTensor *s = st_find(set, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    assert_true(get_ok(set, "s", NULL, 0)[0] == 42.0f);
    const StTensor *z = st_find(set, "z");
    assert_int_equal(z->numel, 0);
    assert_int_equal(z->nbytes, 0);
    assert_non_null(get_ok(set, "z", (size_t[]){0, 3}, 2));
    st_close(set);
}

static void test_empty_checkpoint(void **state)
{
    write_st(tmp_path("none.st"), "{}", NULL, 0);
    StSet *set = open_ok(tmp_path("none.st"));
    assert_int_equal(st_count(set), 0);
    assert_null(st_find(set, "w"));
    st_close(set);
    st_close(NULL);
}

static void test_sha256(void **state)
{
    /* sha256sum of the 8 + 2 bytes "\x02\0\0\0\0\0\0\0{}". */
    write_st(tmp_path("sha.st"), "{}", NULL, 0);
    StSet *set = open_ok(tmp_path("sha.st"));
    char hex[65];
    st_sha256_hex(set, hex);
    assert_string_equal(hex, "411a485216e432ece6b9af94fa32154cf79a2a56d4f81266baa50063f45092bd");
    st_close(set);
}

static void test_get_f32_errors(void **state)
{
    const int32_t iv[2] = {1, 2};
    const char *path = tmp_path("i32.st");
    write_st(path, "{'i':{'dtype':'I32','shape':[2],'data_offsets':[0,8]}}", iv, sizeof iv);
    StSet *set = open_ok(path);
    struct { const char *name; size_t shape[2]; size_t ndim; const char *phrase; } cases[] = {
        {"i", {2}, 1, "dtype I32 cannot be read as float32"},
        {"missing", {2}, 1, "no tensor 'missing'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const float *p = (const float *)1;
        Err err = {{0}};
        assert_int_equal(st_get_f32(set, cases[i].name, cases[i].shape, cases[i].ndim, &p, &err), -1);
        assert_null(p);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, cases[i].phrase));
    }
    st_close(set);

    const float v[6] = {0};
    path = tmp_path("shape.st");
    write_st(path, "{'w':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]}}", v, sizeof v);
    set = open_ok(path);
    struct { size_t shape[3]; size_t ndim; } wrong[] = {{{3, 2}, 2}, {{6}, 1}, {{2, 3, 1}, 3}};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        const float *p = NULL;
        Err err = {{0}};
        assert_int_equal(st_get_f32(set, "w", wrong[i].shape, wrong[i].ndim, &p, &err), -1);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, "tensor 'w': shape [2, 3], expected ["));
    }
    st_close(set);
}

/* ---- malformed single files ---- */

typedef struct BadCase {
    const char *header;
    size_t ndata;    /* zero bytes after the header */
    int fix_hlen;    /* write `hlen` instead of the header's length */
    uint64_t hlen;
    size_t trunc;    /* cut the file to this many bytes (0: don't) */
    const char *phrase;
} BadCase;

#define T1(x) "{'t':{" x "}}"
static const BadCase bad_cases[] = {
    {"{}", 0, 0, 0, 5, "truncated: 5 bytes"},
    {"{}", 0, 1, 1ull << 40, 0, "exceeds the limit"},
    {"{}", 0, 1, 1000, 0, "exceeds the file size"},
    {"{}", 0, 1, 0, 0, "header length 0 too small"},
    {"{}", 0, 1, 1, 0, "header length 1 too small"},
    {"{not json}", 0, 0, 0, 0, "header is not valid JSON"},
    {"{'a':1,", 0, 0, 0, 0, "header is not valid JSON"},
    {"[1, 2]", 0, 0, 0, 0, "header is not a JSON object"},
    {"'abc'", 0, 0, 0, 0, "header is not a JSON object"},
    {"{'t':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
     "'t':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}", 8, 0, 0, 0, "duplicate object key"},
    {"{'t':[1]}", 0, 0, 0, 0, "tensor 't': entry is not a JSON object"},
    {T1("'shape':[1],'data_offsets':[0,4]"), 4, 0, 0, 0, "missing field 'dtype'"},
    {T1("'dtype':'F32','data_offsets':[0,4]"), 4, 0, 0, 0, "missing field 'shape'"},
    {T1("'dtype':'F32','shape':[1]"), 4, 0, 0, 0, "missing field 'data_offsets'"},
    {T1("'dtype':'F17','shape':[1],'data_offsets':[0,4]"), 4, 0, 0, 0, "unknown dtype 'F17'"},
    {T1("'dtype':4,'shape':[1],'data_offsets':[0,4]"), 4, 0, 0, 0, "dtype is not a string"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0,4],'x':1"), 4, 0, 0, 0,
     "unknown field 'x'"},
    {T1("'dtype':'F32','shape':[-1],'data_offsets':[0,4]"), 4, 0, 0, 0,
     "shape[0] is not a non-negative integer"},
    {T1("'dtype':'F32','shape':[1,2.0],'data_offsets':[0,8]"), 8, 0, 0, 0,
     "shape[1] is not a non-negative integer"},
    {T1("'dtype':'F32','shape':['1'],'data_offsets':[0,4]"), 4, 0, 0, 0,
     "shape[0] is not a non-negative integer"},
    {T1("'dtype':'F32','shape':3,'data_offsets':[0,4]"), 4, 0, 0, 0, "shape is not an array"},
    {T1("'dtype':'F32','shape':[1,1,1,1,1,1,1,1,1],'data_offsets':[0,4]"), 4, 0, 0, 0,
     "too many dims"},
    {T1("'dtype':'U8','shape':[4294967296,4294967296],'data_offsets':[0,4]"), 4, 0, 0, 0,
     "shape product overflows"},
    {T1("'dtype':'F64','shape':[4611686018427387904],'data_offsets':[0,4]"), 4, 0, 0, 0,
     "shape product overflows"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[4,0]"), 4, 0, 0, 0,
     "data_offsets [4, 0] are reversed"},
    {T1("'dtype':'F32','shape':[2],'data_offsets':[0,8]"), 4, 0, 0, 0, "out of the data buffer"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[1.5,4]"), 4, 0, 0, 0,
     "not a pair of non-negative integers"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0,99999999999999999999]"), 4, 0, 0, 0,
     "too big integer"},
    {T1("'dtype':'F32','shape':[3],'data_offsets':[0,8]"), 8, 0, 0, 0, "size mismatch"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0]"), 4, 0, 0, 0,
     "data_offsets is not a pair"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0,4,4]"), 4, 0, 0, 0,
     "data_offsets is not a pair"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0,-4]"), 4, 0, 0, 0,
     "data_offsets is not a pair"},
    {"{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
     "'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}", 12, 0, 0, 0,
     "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"},
    {"{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
     "'b':{'dtype':'F32','shape':[0],'data_offsets':[4,4]}}", 8, 0, 0, 0, "overlap tensor 'a'"},
    {"{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
     "'b':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}}", 12, 0, 0, 0,
     "hole in the data buffer: bytes [4, 8) before tensor 'b'"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[4,8]"), 8, 0, 0, 0,
     "hole in the data buffer: bytes [0, 4)"},
    {T1("'dtype':'F32','shape':[1],'data_offsets':[0,4]"), 8, 0, 0, 0,
     "4 trailing bytes after the last tensor"},
    {"{}", 3, 0, 0, 0, "3 trailing bytes"},
    {"{'t\xff':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4, 0, 0, 0,
     "header is not valid JSON: unable to decode byte 0xff"},
    {"{'__metadata__':{'k':1}}", 0, 0, 0, 0, "__metadata__ value of 'k' is not a string"},
    {"{'__metadata__':['k']}", 0, 0, 0, 0, "__metadata__ is not a JSON object"},
    {"{'a\\nb':3}", 0, 0, 0, 0, "tensor 'a?b': entry is not a JSON object"},
    {"{'a\\u0000b':3}", 0, 0, 0, 0, "NUL byte in object key"},
};

static void test_bad_files(void **state)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const BadCase *c = &bad_cases[i];
        const char *path = tmp_path("bad%02zu.safetensors", i);
        write_st_full(path, c->fix_hlen ? c->hlen : strlen(c->header), c->header, NULL, c->ndata,
                      c->trunc);
        expect_file_error(path, c->phrase);
    }
    assert_true(sizeof bad_cases / sizeof bad_cases[0] >= 20);
}

static void test_bad_paths(void **state)
{
    write_bytes(tmp_path("empty.st"), "", 0);
    expect_file_error(tmp_path("empty.st"), "empty file");
    expect_file_error(tmp_path("nope.st"), "No such file or directory");
    expect_file_error(tmp_root, "is a directory");
    assert_int_equal(mkfifo(tmp_path("fifo"), 0600), 0);
    expect_file_error(tmp_path("fifo"), "not a regular file");
    expect_dir_error(tmp_path("empty.st"), tmp_path("empty.st"), "not a directory");
    expect_dir_error(tmp_path("nodir"), tmp_path("nodir"), "No such file or directory");
    assert_int_equal(mkdir(tmp_path("emptydir"), 0700), 0);
    expect_dir_error(tmp_path("emptydir"), tmp_path("emptydir"),
                     "no model.safetensors or model.safetensors.index.json");
    /* model.safetensors that is a directory is reported, not skipped for an index. */
    assert_int_equal(mkdir(tmp_path("dirmodel"), 0700), 0);
    assert_int_equal(mkdir(tmp_path("dirmodel/model.safetensors"), 0700), 0);
    expect_dir_error(tmp_path("dirmodel"), tmp_path("dirmodel/model.safetensors"),
                     "is a directory");
}

/* ---- sharded checkpoints ---- */

static const float shard_a[2] = {1, 2}, shard_b[3] = {3, 4, 5};
#define HDR_A "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}      "
#define HDR_B "{'b':{'dtype':'F32','shape':[3],'data_offsets':[0,12]}}     "

/* tmp_root/name/ with shards s1 (tensor a) and s2 (tensor b) and the given
 * index; its path goes to dir[1024]. */
static void make_sharded(char *dir, const char *name, const char *index)
{
    snprintf(dir, 1024, "%s/%s", tmp_root, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_st(tmp_path("%s/s1.safetensors", name), HDR_A, shard_a, sizeof shard_a);
    write_st(tmp_path("%s/s2.safetensors", name), HDR_B, shard_b, sizeof shard_b);
    write_text(tmp_path("%s/model.safetensors.index.json", name), index);
}

static void test_sharded(void **state)
{
    char dir[1024];
    make_sharded(dir, "sharded", "{'metadata':{'total_size':20},'weight_map':"
                                   "{'b':'s2.safetensors','a':'s1.safetensors'}}");
    StSet *set = NULL;
    Err err = {{0}};
    if (st_open_dir(&set, dir, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(st_count(set), 2);
    assert_int_equal(st_file_count(set), 2);
    assert_string_equal(st_file_path(set, 0), tmp_path("sharded/s1.safetensors"));
    assert_string_equal(st_file_path(set, 1), tmp_path("sharded/s2.safetensors"));
    assert_string_equal(st_find(set, "b")->path, tmp_path("sharded/s2.safetensors"));
    assert_memory_equal(get_ok(set, "a", (size_t[]){2}, 1), shard_a, sizeof shard_a);
    assert_memory_equal(get_ok(set, "b", (size_t[]){3}, 1), shard_b, sizeof shard_b);
    char hex[65];
    st_sha256_hex(set, hex); /* sha256(sha256(s1) || sha256(s2)), computed with hashlib */
    assert_string_equal(hex, "a15e8dfaab9b24147dc86cb0f4f2048c96511d8fe82e807058f440efa999b1a2");
    st_close(set);

    /* A single model.safetensors wins over an index. */
    write_st(tmp_path("sharded/model.safetensors"), HDR_A, shard_a, sizeof shard_a);
    if (st_open_dir(&set, dir, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(st_file_count(set), 1);
    st_close(set);
}

static void test_bad_sharded(void **state)
{
    static const struct { const char *index; const char *file; const char *phrase; } cases[] = {
        {"{'weight_map':{'a':'../s1.safetensors'}}", "model.safetensors.index.json",
         "tensor 'a': shard must be a file name inside"},
        {"{'weight_map':{'a':'/etc/passwd'}}", "model.safetensors.index.json",
         "shard must be a file name inside"},
        {"{'weight_map':{'a':'..'}}", "model.safetensors.index.json", "must be a file name"},
        {"{'weight_map':{'a':''}}", "model.safetensors.index.json", "must be a file name"},
        {"{'weight_map':{'a':3}}", "model.safetensors.index.json", "must be a file name"},
        {"{'weight_map':{'a':'s1.safetensors','b':'s3.safetensors'}}", "model.safetensors.index.json",
         "weight_map names a missing shard"},
        {"{'weight_map':{'a':'s1.safetensors','c':'s2.safetensors'}}",
         "model.safetensors.index.json", "tensor 'c' is not in its shard"},
        {"{'weight_map':{'a':'s2.safetensors','b':'s2.safetensors'}}",
         "model.safetensors.index.json", "tensor 'a' is not in its shard"},
        {"{'weight_map':{'a':'s1.safetensors','b':'s1.safetensors','x':'s2.safetensors'}}",
         "model.safetensors.index.json", "; it is in "},
        {"{'weight_map':{}}", "model.safetensors.index.json", "non-empty \"weight_map\""},
        {"{'weight_map':[]}", "model.safetensors.index.json", "non-empty \"weight_map\""},
        {"[]", "model.safetensors.index.json", "non-empty \"weight_map\""},
        {"{'weight_map':{'a':'s1.safetensors'},'metadata':3}", "model.safetensors.index.json",
         "\"metadata\" is not an object"},
        {"{'weight_map':{'a':'s1.safetensors','a':'s2.safetensors'}}",
         "model.safetensors.index.json", "duplicate object key"},
        {"{'weight_map'", "model.safetensors.index.json", "index is not valid JSON"},
        {"", "model.safetensors.index.json", "empty file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64], dir[1024], path[1200];
        snprintf(name, sizeof name, "badidx%02zu", i);
        make_sharded(dir, name, cases[i].index);
        snprintf(path, sizeof path, "%s/%s", dir, cases[i].file);
        expect_dir_error(dir, path, cases[i].phrase);
    }

    /* The same tensor in two shards. */
    char dir[1024];
    make_sharded(dir, "twice", "{'weight_map':{'a':'s1.safetensors',"
                                   "'b':'s2.safetensors','c':'s3.safetensors'}}");
    write_st(tmp_path("twice/s3.safetensors"), HDR_A, shard_a, sizeof shard_a);
    expect_dir_error(dir, tmp_path("twice/s3.safetensors"), "tensor 'a' is also in");

    /* A bad shard's own error names the shard. */
    make_sharded(dir, "badshard", "{'weight_map':{'a':'s1.safetensors','b':'s2.safetensors'}}");
    write_st(tmp_path("badshard/s2.safetensors"), "{'b':{}}", NULL, 0);
    expect_dir_error(dir, tmp_path("badshard/s2.safetensors"), "missing field 'dtype'");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    if (mkdtemp(tmp_root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_in_place),  cmocka_unit_test(test_f32_unaligned),
        cmocka_unit_test(test_f16),           cmocka_unit_test(test_bf16_f64),
        cmocka_unit_test(test_empty_scalar_metadata), cmocka_unit_test(test_empty_checkpoint),
        cmocka_unit_test(test_sha256),        cmocka_unit_test(test_get_f32_errors),
        cmocka_unit_test(test_bad_files),     cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_sharded),       cmocka_unit_test(test_bad_sharded),
    };
    int failed = cmocka_run_group_tests_name("st", tests, NULL, NULL);
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed != 0;
}
