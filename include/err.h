/* err.h — error reporting shared by every module.
 *
 * Functions that can fail on user input take an `Err *` as their last
 * argument and return 0 on success, -1 on failure with a one-line message in
 * err->msg that names the file (and line:col for YAML) and what is wrong.
 * The message has no trailing newline and no program-name prefix: the CLI
 * prints it as is, so a user sees e.g.
 *     configs/x.yaml:3:5: unknown key 'modle'
 *
 * Invariants (programming errors) are checked with CHECK(), which stays on in
 * release builds and aborts. Out-of-memory aborts through the x*alloc helpers.
 */
#ifndef PATCHGRID_ERR_H
#define PATCHGRID_ERR_H

#include <stddef.h>

typedef struct Err {
    char msg[1024];
} Err;

/* Sets err->msg (err may be NULL) and returns -1, so callers can write
 * `return err_set(err, "%s: bad header", path);`. */
int err_set(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes err->msg with the formatted text (e.g. a file name), returns -1. */
int err_prefix(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Abort with file:line and the formatted message. */
_Noreturn void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) die_at(__FILE__, __LINE__, "check failed: %s", #cond);   \
    } while (0)

/* Allocation that never returns NULL: out of memory ends the process with a
 * message naming the size. Zeroed memory (xcalloc) or not (xmalloc). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* Allocation aligned to 64 bytes, zeroed; free with free(). */
void *xaligned(size_t size);

/* a * b, or die if it overflows size_t (sizes of user-controlled shapes are
 * checked separately with st_mul_ok-style functions that return errors). */
size_t xmul(size_t a, size_t b);

#endif
