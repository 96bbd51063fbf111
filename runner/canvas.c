/* canvas.c — RGB raster, built-in bitmap font, PNG output (see include/canvas.h). */
#include "canvas.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the font -----------------------------------------------------------------
 *
 * Drawn for this project: printable ASCII (32..126) plus CANVAS_VISIBLE_SPACE
 * (127), each 5 columns x 9 rows, '#' = ink. Rows 0-6 stand on the baseline
 * (capitals are 7 high, lower case 5), rows 7-8 hold descenders. Rows not
 * listed are blank.
 */
enum { FONT_COLS = 5, FONT_ROWS = 9, FONT_FIRST = 32, FONT_LAST = 127 };
#define G(ch) [(ch) - FONT_FIRST]

static const char *const font[FONT_LAST - FONT_FIRST + 1][FONT_ROWS] = {
    G(' ') = {0},
    G('!') = {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "     ", "  #  "},
    G('"') = {" # # ", " # # ", " # # "},
    G('#') = {" # # ", " # # ", "#####", " # # ", "#####", " # # ", " # # "},
    G('$') = {"  #  ", " ####", "# #  ", " ### ", "  # #", "#### ", "  #  "},
    G('%') = {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"},
    G('&') = {" ##  ", "#  # ", "# #  ", " #   ", "# # #", "#  # ", " ## #"},
    G('\'') = {"  #  ", "  #  ", " #   "},
    G('(') = {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "},
    G(')') = {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "},
    G('*') = {"     ", "  #  ", "# # #", " ### ", "# # #", "  #  "},
    G('+') = {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  "},
    G(',') = {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ", "  #  ", " #   "},
    G('-') = {"     ", "     ", "     ", " ### "},
    G('.') = {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "},
    G('/') = {"     ", "    #", "   # ", "  #  ", " #   ", "#    "},
    G('0') = {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
    G('1') = {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
    G('2') = {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
    G('3') = {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "},
    G('4') = {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
    G('5') = {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
    G('6') = {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "},
    G('7') = {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
    G('8') = {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
    G('9') = {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "},
    G(':') = {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  "},
    G(';') = {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "  #  ", " #   "},
    G('<') = {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "},
    G('=') = {"     ", "     ", "#####", "     ", "#####"},
    G('>') = {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "},
    G('?') = {" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "},
    G('@') = {" ### ", "#   #", "    #", " ## #", "# # #", "# # #", " ### "},
    G('A') = {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
    G('B') = {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "},
    G('C') = {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "},
    G('D') = {"###  ", "#  # ", "#   #", "#   #", "#   #", "#  # ", "###  "},
    G('E') = {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"},
    G('F') = {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "},
    G('G') = {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"},
    G('H') = {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
    G('I') = {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
    G('J') = {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
    G('K') = {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"},
    G('L') = {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"},
    G('M') = {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"},
    G('N') = {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"},
    G('O') = {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
    G('P') = {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "},
    G('Q') = {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"},
    G('R') = {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"},
    G('S') = {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "},
    G('T') = {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
    G('U') = {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
    G('V') = {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "},
    G('W') = {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "},
    G('X') = {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"},
    G('Y') = {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "},
    G('Z') = {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"},
    G('[') = {" ### ", " #   ", " #   ", " #   ", " #   ", " #   ", " ### "},
    G('\\') = {"     ", "#    ", " #   ", "  #  ", "   # ", "    #"},
    G(']') = {" ### ", "   # ", "   # ", "   # ", "   # ", "   # ", " ### "},
    G('^') = {"  #  ", " # # ", "#   #"},
    G('_') = {"     ", "     ", "     ", "     ", "     ", "     ", "     ", "#####"},
    G('`') = {" #   ", "  #  "},
    G('a') = {"     ", "     ", " ### ", "    #", " ####", "#   #", " ####"},
    G('b') = {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### "},
    G('c') = {"     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "},
    G('d') = {"    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"},
    G('e') = {"     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "},
    G('f') = {"  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   "},
    G('g') = {"     ", "     ", " ####", "#   #", "#   #", "#   #", " ####", "    #", " ### "},
    G('h') = {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #"},
    G('i') = {"  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "},
    G('j') = {"   # ", "     ", "  ## ", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
    G('k') = {"#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # "},
    G('l') = {" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
    G('m') = {"     ", "     ", "## # ", "# # #", "# # #", "# # #", "# # #"},
    G('n') = {"     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"},
    G('o') = {"     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "},
    G('p') = {"     ", "     ", "#### ", "#   #", "#   #", "#   #", "#### ", "#    ", "#    "},
    G('q') = {"     ", "     ", " ####", "#   #", "#   #", "#   #", " ####", "    #", "    #"},
    G('r') = {"     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "},
    G('s') = {"     ", "     ", " ####", "#    ", " ### ", "    #", "#### "},
    G('t') = {" #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## "},
    G('u') = {"     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"},
    G('v') = {"     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  "},
    G('w') = {"     ", "     ", "#   #", "#   #", "# # #", "# # #", " # # "},
    G('x') = {"     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #"},
    G('y') = {"     ", "     ", "#   #", "#   #", "#   #", "#   #", " ####", "    #", " ### "},
    G('z') = {"     ", "     ", "#####", "   # ", "  #  ", " #   ", "#####"},
    G('{') = {"   ##", "  #  ", "  #  ", "##   ", "  #  ", "  #  ", "   ##"},
    G('|') = {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
    G('}') = {"##   ", "  #  ", "  #  ", "   ##", "  #  ", "  #  ", "##   "},
    G('~') = {"     ", "     ", " #   ", "# # #", "   # "},
    G(CANVAS_VISIBLE_SPACE) = {"     ", "     ", "     ", "  #  ", "     "},
};
#undef G

/* The glyph at s (advancing *s past it): its index in font[]. A UTF-8
 * sequence, or any byte the font lacks, is '?'. */
static size_t next_glyph(const char **s)
{
    unsigned char b = (unsigned char)**s;
    (*s)++;
    if (b >= FONT_FIRST && b <= FONT_LAST) return (size_t)(b - FONT_FIRST);
    if (b >= 0xC0) /* a lead byte: skip its continuation bytes */
        while (((unsigned char)**s & 0xC0) == 0x80) (*s)++;
    return (size_t)('?' - FONT_FIRST);
}

size_t canvas_text_glyphs(const char *s)
{
    size_t n = 0;
    while (*s) {
        next_glyph(&s);
        n++;
    }
    return n;
}

long canvas_text_len(const char *s, int scale)
{
    return (long)canvas_text_glyphs(s) * CANVAS_GLYPH_W * scale;
}

char *canvas_text_fit(char *out, size_t out_size, const char *s, size_t max_glyphs)
{
    CHECK(out_size >= 3);
    size_t total = canvas_text_glyphs(s), keep = total;
    if (total > max_glyphs) keep = max_glyphs >= 2 ? max_glyphs - 2 : 0;
    const char *p = s;
    for (size_t i = 0; i < keep; i++) next_glyph(&p);
    size_t n = (size_t)(p - s);
    if (n > out_size - 3) n = out_size - 3; /* room for ".." and the NUL */
    memcpy(out, s, n);
    out[n] = '\0';
    if (total > max_glyphs) strcat(out, max_glyphs >= 2 ? ".." : "");
    return out;
}

/* ---- the raster ------------------------------------------------------------------ */

Canvas *canvas_new(size_t width, size_t height, Rgb background)
{
    CHECK(width >= 1 && height >= 1 && width <= (1u << 15) && height <= (1u << 15));
    Canvas *c = xmalloc(sizeof *c);
    c->width = width;
    c->height = height;
    c->rgb = xmalloc(xmul(xmul(width, height), 3));
    for (size_t i = 0; i < width * height; i++) {
        c->rgb[3 * i] = background.r;
        c->rgb[3 * i + 1] = background.g;
        c->rgb[3 * i + 2] = background.b;
    }
    return c;
}

void canvas_free(Canvas *c)
{
    if (c == NULL) return;
    free(c->rgb);
    free(c);
}

Rgb canvas_get(const Canvas *c, size_t x, size_t y)
{
    CHECK(x < c->width && y < c->height);
    const uint8_t *p = c->rgb + 3 * (y * c->width + x);
    return (Rgb){p[0], p[1], p[2]};
}

void canvas_set(Canvas *c, long x, long y, Rgb color)
{
    if (x < 0 || y < 0 || (size_t)x >= c->width || (size_t)y >= c->height) return;
    uint8_t *p = c->rgb + 3 * ((size_t)y * c->width + (size_t)x);
    p[0] = color.r;
    p[1] = color.g;
    p[2] = color.b;
}

void canvas_fill(Canvas *c, long x, long y, long w, long h, Rgb color)
{
    long x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    long x1 = x + w, y1 = y + h;
    if (x1 > (long)c->width) x1 = (long)c->width;
    if (y1 > (long)c->height) y1 = (long)c->height;
    for (long yy = y0; yy < y1; yy++)
        for (long xx = x0; xx < x1; xx++) canvas_set(c, xx, yy, color);
}

void canvas_frame(Canvas *c, long x, long y, long w, long h, Rgb color)
{
    canvas_fill(c, x, y, w, 1, color);
    canvas_fill(c, x, y + h - 1, w, 1, color);
    canvas_fill(c, x, y, 1, h, color);
    canvas_fill(c, x + w - 1, y, 1, h, color);
}

void canvas_text(Canvas *c, long x, long y, const char *s, int scale, CanvasDir dir, Rgb color)
{
    CHECK(scale >= 1);
    long pen = 0; /* along the reading direction, in pixels */
    while (*s) {
        const char *const *rows = font[next_glyph(&s)];
        for (long r = 0; r < FONT_ROWS; r++) {
            if (rows[r] == NULL) continue;
            for (long col = 0; col < FONT_COLS; col++) {
                if (rows[r][col] != '#') continue;
                long u = pen + col * scale, v = r * scale; /* in the text's own frame */
                if (dir == CANVAS_RIGHT)
                    canvas_fill(c, x + u, y + v, scale, scale, color);
                else /* a quarter turn counter-clockwise: the glyph's top faces left */
                    canvas_fill(c, x + v, y - u - scale, scale, scale, color);
            }
        }
        pen += CANVAS_GLYPH_W * scale;
    }
}

/* ---- PNG ---------------------------------------------------------------------------- */

/* libpng reports errors by longjmp; the message is kept for the Err. */
typedef struct PngJmp {
    jmp_buf jmp;
    char msg[200];
} PngJmp;

static void png_error_fn(png_structp png, png_const_charp msg)
{
    PngJmp *pj = png_get_error_ptr(png);
    snprintf(pj->msg, sizeof pj->msg, "%s", msg);
    longjmp(pj->jmp, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int canvas_write_png(const Canvas *c, const char *path, const char *const *text, size_t n_text,
                     Err *err)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) return err_set(err, "%s: cannot write: %s", path, strerror(errno));
    PngJmp pj; /* in memory (its address is taken), so longjmp leaves it intact */
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &pj, png_error_fn, png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_textp chunks = xcalloc(n_text ? n_text : 1, sizeof *chunks);
    png_bytep *rows = xmalloc(c->height * sizeof *rows);
    int rc = -1;
    if (png == NULL || info == NULL) {
        err_set(err, "%s: cannot write: libpng could not start", path);
        goto out;
    }
    if (setjmp(pj.jmp)) {
        err_set(err, "%s: cannot write PNG: %s", path, pj.msg);
        goto out;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)c->width, (png_uint_32)c->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (size_t i = 0; i < n_text; i++) {
        chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
        chunks[i].key = (png_charp)text[2 * i];
        chunks[i].text = (png_charp)text[2 * i + 1];
    }
    if (n_text) png_set_text(png, info, chunks, (int)n_text);
    for (size_t y = 0; y < c->height; y++) rows[y] = c->rgb + 3 * y * c->width;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    rc = 0;
out:
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(chunks);
    if (fclose(f) != 0 && rc == 0) rc = err_set(err, "%s: cannot write: %s", path, strerror(errno));
    if (rc != 0) remove(path);
    return rc;
}
