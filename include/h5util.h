/* h5util.h — a small serial HDF5 writer for whole-file outputs (cache).
 *
 * The file is written under a temporary name next to the target and renamed
 * into place only by a successful h5w_close(w, 1, ...), so a failed or
 * interrupted command never leaves a partial file under the final name and an
 * existing file is untouched until the new one is complete.
 */
#ifndef PATCHGRID_H5UTIL_H
#define PATCHGRID_H5UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct H5Writer H5Writer;

/* The innermost (most specific) message on HDF5's error stack, which is then
 * cleared; buf holds at least 256 bytes. Turn off HDF5's own printing first
 * with H5Eset_auto2(H5E_DEFAULT, NULL, NULL). */
const char *h5_reason(char buf[256]);

H5Writer *h5w_create(const char *path, Err *err); /* NULL on error */
int h5w_group(H5Writer *w, const char *name, Err *err);
int h5w_float(H5Writer *w, const char *name, const float *data, const size_t *shape,
              size_t ndim, Err *err);
int h5w_int32(H5Writer *w, const char *name, const int32_t *data, const size_t *shape,
              size_t ndim, Err *err);
/* A string attribute on the root group. */
int h5w_attr_str(H5Writer *w, const char *name, const char *value, Err *err);
/* Closes; with commit renames the file into place, else deletes it. Frees w
 * (accepts NULL). Returns -1 if committing failed. */
int h5w_close(H5Writer *w, int commit, Err *err);

#endif
