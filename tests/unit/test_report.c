/* test_report.c — the report's drawing: the diverging colour map, the bitmap
 * font's measuring and placement, PNG files read back with libpng, and the
 * heatmap's cells where its geometry says they are. (The report command
 * itself, on real results files, is tests/py/test_report.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canvas.h"
#include "heatmap.h"

static void assert_rgb(Rgb got, Rgb want)
{
    if (got.r != want.r || got.g != want.g || got.b != want.b)
        fail_msg("colour (%d, %d, %d), expected (%d, %d, %d)", got.r, got.g, got.b, want.r, want.g,
                 want.b);
}

static void test_colour_map(void **state)
{
    (void)state;
    assert_rgb(heatmap_color(0.0f, 1.0f), (Rgb){247, 247, 247});   /* white at 0 */
    assert_rgb(heatmap_color(1.0f, 1.0f), (Rgb){103, 0, 31});      /* dark red at +vmax */
    assert_rgb(heatmap_color(-1.0f, 1.0f), (Rgb){5, 48, 97});      /* dark blue at -vmax */
    assert_rgb(heatmap_color(5.0f, 1.0f), (Rgb){103, 0, 31});      /* clamped */
    assert_rgb(heatmap_color(-INFINITY, 1.0f), (Rgb){5, 48, 97});
    assert_rgb(heatmap_color(NAN, 1.0f), HEATMAP_NAN_RGB);
    assert_rgb(heatmap_color(2.0f, 4.0f), heatmap_color(0.5f, 1.0f)); /* only v / vmax matters */
    /* Red above 0, blue below, darker the further from 0 on either side. */
    for (int side = -1; side <= 1; side += 2) {
        double prev = 1e9;
        for (int i = 0; i <= 40; i++) {
            Rgb c = heatmap_color((float)(side * i) / 40.0f, 1.0f);
            double lum = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
            assert_true(lum <= prev);
            prev = lum;
            if (i > 0 && side > 0) assert_true(c.r > c.b);
            if (i > 0 && side < 0) assert_true(c.b > c.r);
        }
    }
}

static void test_text_measure(void **state)
{
    (void)state;
    assert_int_equal(canvas_text_glyphs("abc"), 3);
    assert_int_equal(canvas_text_glyphs("M\xc3\xa9t"), 3);     /* é is one glyph ('?') */
    assert_int_equal(canvas_text_glyphs("\xe2\x96\x81x"), 2);  /* a 3-byte sequence too */
    assert_int_equal(canvas_text_glyphs("\xff"), 1);           /* a stray byte */
    assert_int_equal(canvas_text_len("ab", 1), 2 * CANVAS_GLYPH_W);
    assert_int_equal(canvas_text_len("ab", 2), 4 * CANVAS_GLYPH_W);
    char buf[64];
    assert_string_equal(canvas_text_fit(buf, sizeof buf, "abcdefgh", 5), "abc..");
    assert_string_equal(canvas_text_fit(buf, sizeof buf, "abcde", 5), "abcde");
    assert_string_equal(canvas_text_fit(buf, sizeof buf, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4),
                        "\xc3\xa9\xc3\xa9..");                  /* never splits a sequence */
    assert_string_equal(canvas_text_fit(buf, sizeof buf, "abc", 0), "");
    assert_string_equal(canvas_text_fit(buf, 5, "abcdefgh", 100), "ab"); /* the buffer bounds it */
}

/* Ink (non-white) pixels of c: their bounding box and count. */
static size_t ink_box(const Canvas *c, long *x0, long *y0, long *x1, long *y1)
{
    size_t n = 0;
    *x0 = *y0 = 1 << 30;
    *x1 = *y1 = -1;
    for (size_t y = 0; y < c->height; y++)
        for (size_t x = 0; x < c->width; x++) {
            Rgb p = canvas_get(c, x, y);
            if (p.r == 255 && p.g == 255 && p.b == 255) continue;
            n++;
            if ((long)x < *x0) *x0 = (long)x;
            if ((long)y < *y0) *y0 = (long)y;
            if ((long)x > *x1) *x1 = (long)x;
            if ((long)y > *y1) *y1 = (long)y;
        }
    return n;
}

static void test_text_placement(void **state)
{
    (void)state;
    const Rgb white = {255, 255, 255}, ink = {0, 0, 0};
    long x0, y0, x1, y1;
    /* "Hg": H from the top row of the cell, g down into the descender rows. */
    Canvas *c = canvas_new(100, 80, white);
    canvas_text(c, 10, 5, "Hg", 1, CANVAS_RIGHT, ink);
    assert_true(ink_box(c, &x0, &y0, &x1, &y1) > 20);
    assert_int_equal(x0, 10);
    assert_int_equal(y0, 5);
    assert_true(x1 < 10 + 2 * CANVAS_GLYPH_W);
    assert_int_equal(y1, 5 + 8); /* 9 rows: the g's tail */
    canvas_free(c);

    /* Upright: reads bottom to top from (x, y), the glyphs' tops facing left. */
    c = canvas_new(100, 80, white);
    canvas_text(c, 50, 60, "Hg", 1, CANVAS_UP, ink);
    assert_true(ink_box(c, &x0, &y0, &x1, &y1) > 20);
    assert_int_equal(x0, 50);
    assert_int_equal(x1, 50 + 8);
    assert_int_equal(y1, 59);
    assert_true(y0 >= 60 - 2 * CANVAS_GLYPH_W);
    canvas_free(c);

    /* Scale 2 doubles every pixel; drawing off the canvas is clipped. */
    c = canvas_new(100, 80, white);
    canvas_text(c, 0, 0, "H", 2, CANVAS_RIGHT, ink);
    assert_int_equal(ink_box(c, &x0, &y0, &x1, &y1), 4 * 17); /* H has 17 ink pixels */
    assert_int_equal(x1, 9);
    assert_int_equal(y1, 13);
    canvas_text(c, -30, -30, "WWWWWWWWWWWWWWWWWWWWWWWW", 3, CANVAS_RIGHT, ink);
    canvas_text(c, 95, 200, "WWWWWWWWWWWWWWWWWWWWWWWW", 3, CANVAS_UP, ink);
    canvas_free(c);
}

/* Reads a PNG back with libpng: 8-bit RGB rows, and the value of a tEXt key. */
static uint8_t *read_png(const char *path, size_t *w, size_t *h, const char *key, char *value,
                         size_t value_size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("%s: libpng could not read it", path);
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    *w = png_get_image_width(png, info);
    *h = png_get_image_height(png, info);
    png_bytepp rows = png_get_rows(png, info);
    uint8_t *rgb = malloc(*w * *h * 3);
    for (size_t y = 0; y < *h; y++) memcpy(rgb + y * *w * 3, rows[y], *w * 3);
    value[0] = '\0';
    png_textp text;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(text[i].key, key) == 0) snprintf(value, value_size, "%s", text[i].text);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return rgb;
}

static void test_png_round_trip(void **state)
{
    (void)state;
    Canvas *c = canvas_new(7, 5, (Rgb){1, 2, 3});
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 7; x++) canvas_set(c, (long)x, (long)y, (Rgb){(uint8_t)(x * 30), (uint8_t)(y * 50), 200});
    char path[] = "/tmp/test_report_XXXXXX.png";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    close(fd);
    const char *text[] = {"Title", "a title", "patchgrid:test", "x0=1 y0=2"};
    Err err = {{0}};
    assert_int_equal(canvas_write_png(c, path, text, 2, &err), 0);
    size_t w, h;
    char value[64];
    uint8_t *rgb = read_png(path, &w, &h, "patchgrid:test", value, sizeof value);
    assert_int_equal(w, 7);
    assert_int_equal(h, 5);
    assert_memory_equal(rgb, c->rgb, 7 * 5 * 3);
    assert_string_equal(value, "x0=1 y0=2");
    free(rgb);
    canvas_free(c);
    unlink(path);
}

static void test_png_write_error(void **state)
{
    (void)state;
    Canvas *c = canvas_new(3, 3, (Rgb){0, 0, 0});
    Err err = {{0}};
    const char *path = "/nonexistent-dir/x.png";
    assert_int_equal(canvas_write_png(c, path, NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(access(path, F_OK), -1);
    canvas_free(c);
}

static void test_heatmap_cells(void **state)
{
    (void)state;
    /* Two panels of 2 x 3: panel 1 is panel 0 negated, one NaN each. */
    const float v[2 * 2 * 3] = {2.0f, -2.0f, 0.0f, NAN, 1.0f, -0.5f,
                                -2.0f, 2.0f, 0.0f, NAN, -1.0f, 0.5f};
    const char *rows[] = {"0", "1"}, *cols[] = {"0 \x7fMary", "1 \x7fJohn", "IO \x7fto"},
               *panels[] = {"pos A", "pos B"};
    Heatmap hm = {.title = "exp: logit_diff", .subtitle = "sub", .x_name = "pos", .y_name = "layer",
                  .value_name = "logit_diff", .panels = 2, .rows = 2, .cols = 3, .values = v,
                  .row_labels = rows, .col_labels = cols, .panel_labels = panels};
    HeatmapGeometry g;
    Err err = {{0}};
    assert_true(heatmap_fits(&hm));
    Canvas *c = heatmap_render(&hm, &g, &err);
    assert_non_null(c);
    assert_true(g.vmax == 2.0f);
    assert_true(g.cell_w >= 12 && g.cell_h >= 14);
    assert_true(g.panel_step > 3 * g.cell_w); /* a gap between panels */
    for (size_t p = 0; p < 2; p++)
        for (size_t r = 0; r < 2; r++)
            for (size_t col = 0; col < 3; col++) {
                float x = v[(p * 2 + r) * 3 + col];
                /* A corner pixel: printed values are centred, away from it. */
                size_t px = (size_t)(g.x0 + (long)p * g.panel_step + (long)col * g.cell_w + 1);
                size_t py = (size_t)(g.y0 + (long)r * g.cell_h + 1);
                if (isnan(x)) {
                    assert_rgb(canvas_get(c, px, py), HEATMAP_NAN_RGB);        /* (1+1) % 5 != 0 */
                    assert_rgb(canvas_get(c, px - 1, py - 1), HEATMAP_HATCH_RGB); /* the hatch line */
                } else {
                    assert_rgb(canvas_get(c, px, py), heatmap_color(x, 2.0f));
                }
            }
    canvas_free(c);

    /* The PNG carries the geometry. */
    char path[] = "/tmp/test_report_XXXXXX.png";
    int fd = mkstemps(path, 4);
    close(fd);
    assert_int_equal(heatmap_write_png(&hm, path, &err), 0);
    size_t w, h;
    char value[256], want[256];
    free(read_png(path, &w, &h, "patchgrid:heatmap", value, sizeof value));
    snprintf(want, sizeof want, "x0=%ld y0=%ld cell_w=%ld cell_h=%ld panel_step=%ld panels=2 rows=2 cols=3 vmax=2",
             g.x0, g.y0, g.cell_w, g.cell_h, g.panel_step);
    assert_string_equal(value, want);
    unlink(path);
}

static void test_heatmap_edges(void **state)
{
    (void)state;
    /* All NaN, and all zero: drawn, with a usable scale. */
    const float nan1[1] = {NAN}, zero2[2] = {0, 0};
    const char *one[] = {"0"}, *two[] = {"0", "1"};
    Heatmap hm = {.title = "t", .x_name = "head", .y_name = "layer", .value_name = "kl",
                  .panels = 1, .rows = 1, .cols = 1, .values = nan1, .row_labels = one, .col_labels = one};
    HeatmapGeometry g;
    Err err = {{0}};
    Canvas *c = heatmap_render(&hm, &g, &err);
    assert_non_null(c);
    assert_true(g.vmax == 1.0f);
    canvas_free(c);
    hm.cols = 2;
    hm.values = zero2;
    hm.col_labels = two;
    c = heatmap_render(&hm, &g, &err);
    assert_non_null(c);
    assert_rgb(canvas_get(c, (size_t)g.x0 + 1, (size_t)g.y0 + 1), (Rgb){247, 247, 247});
    canvas_free(c);

    /* Thousands of columns: narrower cells; beyond what fits, an error. */
    size_t n = 5000;
    float *many = calloc(n, sizeof *many);
    const char **labels = calloc(n, sizeof *labels);
    for (size_t i = 0; i < n; i++) labels[i] = "tok";
    hm.cols = n;
    hm.values = many;
    hm.col_labels = labels;
    c = heatmap_render(&hm, &g, &err);
    assert_non_null(c);
    assert_true(g.cell_w >= 1 && g.cell_w < 12);
    canvas_free(c);
    hm.cols = 1;
    hm.panels = 2000; /* panels of one column, with gaps between */
    hm.values = many;
    hm.panel_labels = labels;
    assert_true(heatmap_fits(&hm));
    hm.panels = n;
    hm.cols = 4; /* 20000 columns */
    float *more = calloc(4 * n, sizeof *more);
    hm.values = more;
    assert_false(heatmap_fits(&hm));
    assert_null(heatmap_render(&hm, &g, &err));
    assert_non_null(strstr(err.msg, "too many"));
    free(more);
    free(many);
    free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colour_map),    cmocka_unit_test(test_text_measure),
        cmocka_unit_test(test_text_placement), cmocka_unit_test(test_png_round_trip),
        cmocka_unit_test(test_png_write_error), cmocka_unit_test(test_heatmap_cells),
        cmocka_unit_test(test_heatmap_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
