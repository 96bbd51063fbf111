/* fuzz_st.c — libFuzzer target for the safetensors loader (see README.md).
 *
 * Each input is a whole .safetensors file, served from a memfd so that the
 * loader's real open/fstat/mmap path runs. Beyond "no crash, no sanitizer
 * report" it checks what the contract promises: an error is one line that
 * starts with the path; an accepted file has tensors whose sizes agree and
 * whose bytes can all be read, and float tensors convert.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_st", MFD_CLOEXEC);
        CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

    StSet *set = NULL;
    Err err = {{0}};
    if (st_open_file(&set, path, &err) != 0) {
        CHECK(set == NULL);
        CHECK(strncmp(err.msg, path, strlen(path)) == 0);
        CHECK(strchr(err.msg, '\n') == NULL);
        return 0;
    }
    volatile unsigned sink = 0;
    for (size_t i = 0; i < st_count(set); i++) {
        const StTensor *t = st_tensor(set, i);
        CHECK(st_find(set, t->name) == t);
        CHECK(t->nbytes == t->numel * st_dtype_size(t->dtype));
        for (size_t b = 0; b < t->nbytes; b++) sink += ((const unsigned char *)t->data)[b];
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64) {
            const float *f = NULL;
            CHECK(st_get_f32(set, t->name, t->shape, t->ndim, &f, &err) == 0);
            for (size_t k = 0; k < t->numel; k++) sink += (unsigned)(f[k] == f[k]);
        }
    }
    char hex[65];
    st_sha256_hex(set, hex);
    CHECK(strlen(hex) == 64);
    st_close(set);
    return 0;
}
