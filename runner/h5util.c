/* h5util.c — serial HDF5 writer with an atomic rename (see include/h5util.h). */
#include "h5util.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct H5Writer {
    hid_t file;
    char *path, *tmp;
};

static herr_t last_desc(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    snprintf((char *)data, 256, "%s", e->desc ? e->desc : "");
    return 0;
}

const char *h5_reason(char buf[256])
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, last_desc, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf[0] ? buf : "HDF5 error";
}

H5Writer *h5w_create(const char *path, Err *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5Writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = xmalloc(n);
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        char why[256];
        err_set(err, "%s: cannot create: %s", path, h5_reason(why));
        free(w->tmp);
        free(w->path);
        free(w);
        return NULL;
    }
    return w;
}

int h5w_group(H5Writer *w, const char *name, Err *err)
{
    hid_t g = H5Gcreate2(w->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        char why[256];
        return err_set(err, "%s: cannot create group %s: %s", w->path, name, h5_reason(why));
    }
    H5Gclose(g);
    return 0;
}

static int write_dataset(H5Writer *w, const char *name, hid_t type, const void *data,
                         const size_t *shape, size_t ndim, Err *err)
{
    hsize_t dims[8];
    CHECK(ndim <= 8);
    for (size_t i = 0; i < ndim; i++) dims[i] = shape[i];
    hid_t space = H5Screate_simple((int)ndim, dims, NULL);
    hid_t dset = space < 0 ? -1
                           : H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT,
                                        H5P_DEFAULT);
    int ok = dset >= 0 && H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        char why[256];
        return err_set(err, "%s: cannot write %s: %s", w->path, name, h5_reason(why));
    }
    return 0;
}

int h5w_float(H5Writer *w, const char *name, const float *data, const size_t *shape,
              size_t ndim, Err *err)
{
    return write_dataset(w, name, H5T_NATIVE_FLOAT, data, shape, ndim, err);
}

int h5w_int32(H5Writer *w, const char *name, const int32_t *data, const size_t *shape,
              size_t ndim, Err *err)
{
    return write_dataset(w, name, H5T_NATIVE_INT32, data, shape, ndim, err);
}

int h5w_attr_str(H5Writer *w, const char *name, const char *value, Err *err)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(w->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    if (!ok) {
        char why[256];
        return err_set(err, "%s: cannot write attribute %s: %s", w->path, name, h5_reason(why));
    }
    return 0;
}

int h5w_close(H5Writer *w, int commit, Err *err)
{
    if (w == NULL) return 0;
    int rc = 0;
    if (H5Fclose(w->file) < 0 && commit) {
        char why[256];
        rc = err_set(err, "%s: cannot close: %s", w->path, h5_reason(why));
    }
    if (commit && rc == 0 && rename(w->tmp, w->path) != 0)
        rc = err_set(err, "%s: cannot rename %s into place", w->path, w->tmp);
    if (!commit || rc != 0) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w);
    return rc;
}
