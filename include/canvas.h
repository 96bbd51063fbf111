/* canvas.h — an RGB raster with rectangles and bitmap text, saved as PNG.
 *
 * Just what the report's figures need: integer pixel coordinates, no
 * anti-aliasing, every drawing call clipped to the canvas. Text uses a font
 * built into canvas.c: printable ASCII in 5x9-pixel glyphs (7 above the
 * baseline, 2 for descenders) on a CANVAS_GLYPH_W x CANVAS_GLYPH_H cell, drawn
 * at an integer scale. Other bytes cannot be drawn: a UTF-8 sequence (or a
 * stray byte) shows as one '?', except CANVAS_VISIBLE_SPACE, a centred dot
 * that labels use to make a token's spaces visible. PNG files are written
 * with libpng.
 */
#ifndef PATCHGRID_CANVAS_H
#define PATCHGRID_CANVAS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { CANVAS_GLYPH_W = 6, CANVAS_GLYPH_H = 10 }; /* advance and line height at scale 1 */
#define CANVAS_VISIBLE_SPACE '\x7f'

typedef struct Rgb {
    uint8_t r, g, b;
} Rgb;

typedef struct Canvas {
    size_t width, height;
    uint8_t *rgb; /* (height, width, 3), rows top to bottom */
} Canvas;

/* Text direction: CANVAS_RIGHT is ordinary text and (x, y) its top-left
 * corner; CANVAS_UP is rotated a quarter turn counter-clockwise, reading
 * bottom to top, and (x, y) is the bottom-left corner of its box. */
typedef enum CanvasDir { CANVAS_RIGHT, CANVAS_UP } CanvasDir;

/* A width x height canvas filled with background (both at least 1 and at
 * most 1<<15). The caller frees it with canvas_free (which accepts NULL). */
Canvas *canvas_new(size_t width, size_t height, Rgb background);
void canvas_free(Canvas *c);

Rgb canvas_get(const Canvas *c, size_t x, size_t y); /* (x, y) must be inside */
void canvas_set(Canvas *c, long x, long y, Rgb color);
void canvas_fill(Canvas *c, long x, long y, long w, long h, Rgb color);
void canvas_frame(Canvas *c, long x, long y, long w, long h, Rgb color); /* 1-pixel outline */

/* Glyphs that text s draws (a UTF-8 sequence counts as one), and the
 * length in pixels of its box along the reading direction at a scale. */
size_t canvas_text_glyphs(const char *s);
long canvas_text_len(const char *s, int scale);
/* Draws s (see CanvasDir for where). */
void canvas_text(Canvas *c, long x, long y, const char *s, int scale, CanvasDir dir, Rgb color);
/* Copies s into out (out_size bytes), cut to at most max_glyphs glyphs; a
 * cut text ends in "..". Returns out. */
char *canvas_text_fit(char *out, size_t out_size, const char *s, size_t max_glyphs);

/* Writes c as an 8-bit RGB PNG at path, with n_text tEXt chunks
 * (text[2i] = keyword of at most 79 Latin-1 characters, text[2i+1] = value).
 * On error returns -1 with "path: what went wrong" in err; a partly written
 * file is removed. */
int canvas_write_png(const Canvas *c, const char *path, const char *const *text, size_t n_text,
                     Err *err);

#endif
