/*
 * test_image.c — decoding, encoding and resizing of RGB8 images.
 *
 * PNG variants are written here with libpng directly (every colour type and
 * depth strata must read) and compared with expected RGB worked out by hand;
 * hostile inputs (truncation at every offset, random and mutated bytes,
 * headers claiming huge sizes, crafted with a correct CRC) must fail cleanly;
 * resizing is checked on hand-worked cases and against a direct double-
 * precision reference that integrates pixel coverage.
 */
#include "check.h"
#include "image.h"
#include "rng.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

/* ------------------------------------------------------------- helpers */

static struct image make_image(int w, int h, uint64_t seed, int smooth)
{
    struct image img;
    char err[STRATA_ERR_LEN];
    int rc = image_alloc(&img, w, h, err);
    if (rc) {
        printf("# image_alloc: %s\n", err);
        abort();
    }
    struct rng r;
    rng_seed(&r, seed);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *p = &img.rgb[(y * w + x) * 3 + c];
                if (smooth) /* gentle gradients: what JPEG is made for */
                    *p = (uint8_t)(40 + (x * 150) / w + (y * 50) / h + 10 * c);
                else
                    *p = (uint8_t)rng_below(&r, 256);
            }
    return img;
}

struct buf {
    uint8_t *data;
    size_t len, cap;
};

static void buf_put(png_structp png, png_bytep data, size_t n)
{
    struct buf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void buf_flush(png_structp png)
{
    (void)png;
}

/* A PNG written with libpng itself, rows given in PNG's own layout (16-bit
 * samples big-endian, sub-byte samples packed from the high bit). */
struct png_spec {
    int w, h, depth, ctype, interlace;
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha */
    int ntrns;
    const png_color_16 *trns_color; /* grey/RGB transparent colour */
    const uint8_t *data;
};

static size_t png_spec_rowbytes(const struct png_spec *s)
{
    int ch = s->ctype == PNG_COLOR_TYPE_GRAY || s->ctype == PNG_COLOR_TYPE_PALETTE ? 1
             : s->ctype == PNG_COLOR_TYPE_GRAY_ALPHA                             ? 2
             : s->ctype == PNG_COLOR_TYPE_RGB                                    ? 3
                                                                                 : 4;
    return ((size_t)s->w * ch * s->depth + 7) / 8;
}

static struct buf write_png_spec(const struct png_spec *s)
{
    struct buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc(sizeof *rows * s->h);
    if (setjmp(png_jmpbuf(png)))
        abort();
    png_set_write_fn(png, &b, buf_put, buf_flush);
    png_set_IHDR(png, info, s->w, s->h, s->depth, s->ctype, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->pal)
        png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trns_color)
        png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
    png_write_info(png, info);
    size_t rb = png_spec_rowbytes(s);
    for (int y = 0; y < s->h; y++)
        rows[y] = (png_bytep)s->data + y * rb;
    png_write_image(png, rows); /* interlaces itself when asked */
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* Decodes a spec'd PNG and compares with expected RGB; returns mismatches. */
static int check_png_spec(const struct png_spec *s, const uint8_t *expect_rgb)
{
    struct buf b = write_png_spec(s);
    struct image img;
    char err[STRATA_ERR_LEN];
    int rc = image_decode(b.data, b.len, &img, err);
    free(b.data);
    if (rc) {
        printf("#   decode failed: %s\n", err);
        return 1;
    }
    int bad = 0;
    if (img.w != s->w || img.h != s->h) {
        bad = 1;
    } else {
        for (int i = 0; i < s->w * s->h * 3; i++)
            if (img.rgb[i] != expect_rgb[i]) {
                if (bad < 5)
                    printf("#   byte %d (pixel %d channel %d): got %d, expected %d\n", i, i / 3,
                           i % 3, img.rgb[i], expect_rgb[i]);
                bad++;
            }
    }
    image_free(&img);
    return bad;
}

/* Composite of colour c with alpha a (both 0..255) over white, as a real
 * number rounded: c*a/255 + 255*(1 - a/255). */
static uint8_t over_white(double c, double a)
{
    return (uint8_t)floor(c * a / 255.0 + 255.0 * (1.0 - a / 255.0) + 0.5);
}

static uint8_t scale16(unsigned v)
{
    return (uint8_t)floor(v * 255.0 / 65535.0 + 0.5);
}

/* ------------------------------------------------------------ the tests */

TEST(sniff)
{
    const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0};
    const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK(image_sniff(jpg, sizeof jpg) == IMAGE_JPEG);
    CHECK(image_sniff(png, sizeof png) == IMAGE_PNG);
    CHECK(image_sniff(png, 7) == IMAGE_UNKNOWN);
    CHECK(image_sniff(jpg, 2) == IMAGE_UNKNOWN);
    CHECK(image_sniff((const uint8_t *)"GIF89a", 6) == IMAGE_UNKNOWN);
    CHECK(image_sniff(NULL, 0) == IMAGE_UNKNOWN);
}

TEST(png_round_trip_is_exact)
{
    const int sizes[][2] = {{1, 1}, {37, 23}, {64, 1}, {1, 50}, {160, 160}};
    for (int s = 0; s < 5; s++) {
        struct image a = make_image(sizes[s][0], sizes[s][1], 100 + s, 0), b;
        uint8_t *png;
        size_t len;
        char err[STRATA_ERR_LEN];
        CHECK_EQ_INT(image_encode_png(&a, &png, &len, err), STRATA_OK);
        CHECK(image_sniff(png, len) == IMAGE_PNG);
        CHECK_EQ_INT(image_decode(png, len, &b, err), STRATA_OK);
        CHECK_EQ_INT(b.w, a.w);
        CHECK_EQ_INT(b.h, a.h);
        CHECK(b.rgb && memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3) == 0);
        free(png);
        image_free(&a);
        image_free(&b);
    }
}

static double mean_abs_diff(const struct image *a, const struct image *b)
{
    double s = 0;
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++)
        s += abs((int)a->rgb[i] - (int)b->rgb[i]);
    return s / n;
}

TEST(jpeg_round_trip_is_close)
{
    struct image a = make_image(96, 64, 1, 1), b;
    char err[STRATA_ERR_LEN];
    size_t lens[2];
    const int q[2] = {95, 40};
    const double tol[2] = {1.5, 4.0};
    for (int i = 0; i < 2; i++) {
        uint8_t *jpg;
        CHECK_EQ_INT(image_encode_jpeg(&a, q[i], &jpg, &lens[i], err), STRATA_OK);
        CHECK(image_sniff(jpg, lens[i]) == IMAGE_JPEG);
        CHECK_EQ_INT(image_decode(jpg, lens[i], &b, err), STRATA_OK);
        CHECK_EQ_INT(b.w, 96);
        CHECK_EQ_INT(b.h, 64);
        double mad = mean_abs_diff(&a, &b);
        printf("#   quality %d: %zu bytes, mean |error| %.3f\n", q[i], lens[i], mad);
        CHECK(mad < tol[i]);
        CHECK(mad > 0 || q[i] == 100);
        free(jpg);
        image_free(&b);
    }
    CHECK(lens[1] < lens[0]); /* lower quality, fewer bytes */

    uint8_t *jpg = (uint8_t *)1;
    size_t len = 7;
    CHECK_EQ_INT(image_encode_jpeg(&a, 0, &jpg, &len, err), STRATA_E_ARG);
    CHECK(jpg == NULL && len == 0);
    CHECK_EQ_INT(image_encode_jpeg(&a, 101, &jpg, &len, err), STRATA_E_ARG);
    image_free(&a);
}

TEST(jpeg_large_noisy_image_grows_the_output_buffer)
{
    /* Noise at quality 100 compresses badly: several hundred KB, so the
     * encoder's destination has to grow many times. */
    struct image a = make_image(512, 384, 5, 0), b;
    uint8_t *jpg;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_jpeg(&a, 100, &jpg, &len, err), STRATA_OK);
    CHECK(len > 200000);
    CHECK_EQ_INT(image_decode(jpg, len, &b, err), STRATA_OK);
    /* Chroma subsampling blurs noise, so only a loose bound. */
    CHECK(mean_abs_diff(&a, &b) < 60);
    free(jpg);
    image_free(&a);
    image_free(&b);
}

TEST(png_grey_8_and_low_bit_depths)
{
    /* 8-bit grey: v -> (v,v,v). */
    uint8_t g8[6] = {0, 1, 127, 128, 254, 255}, e8[18];
    for (int i = 0; i < 6; i++)
        e8[3 * i] = e8[3 * i + 1] = e8[3 * i + 2] = g8[i];
    struct png_spec s = {.w = 3, .h = 2, .depth = 8, .ctype = PNG_COLOR_TYPE_GRAY, .data = g8};
    CHECK_EQ_INT(check_png_spec(&s, e8), 0);

    /* 1, 2 and 4-bit grey scale to 8 bits by bit replication: 1 -> 255,
     * 2-bit v -> 85 v, 4-bit v -> 17 v. One row of 4 pixels each. */
    const uint8_t d1[] = {0xa0};       /* 1 0 1 0 */
    const uint8_t d2[] = {0x1b};       /* 0 1 2 3 */
    const uint8_t d4[] = {0x0f, 0x7a}; /* 0 15 7 10 */
    const int v1[] = {255, 0, 255, 0}, v2[] = {0, 85, 170, 255}, v4[] = {0, 255, 119, 170};
    const uint8_t *datas[] = {d1, d2, d4};
    const int *vals[] = {v1, v2, v4}, depths[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        uint8_t e[12];
        for (int i = 0; i < 4; i++)
            e[3 * i] = e[3 * i + 1] = e[3 * i + 2] = (uint8_t)vals[k][i];
        struct png_spec sk = {.w = 4, .h = 1, .depth = depths[k], .ctype = PNG_COLOR_TYPE_GRAY,
                              .data = datas[k]};
        CHECK_MSG(check_png_spec(&sk, e) == 0, "grey depth %d", depths[k]);
    }
}

TEST(png_grey_16)
{
    const unsigned v[] = {0, 65535, 257, 32767, 32768, 1000, 128, 129, 383, 384, 65407, 12345};
    uint8_t data[24], e[36];
    for (int i = 0; i < 12; i++) {
        data[2 * i] = (uint8_t)(v[i] >> 8);
        data[2 * i + 1] = (uint8_t)(v[i] & 0xff);
        e[3 * i] = e[3 * i + 1] = e[3 * i + 2] = scale16(v[i]);
    }
    CHECK_EQ_INT(scale16(257), 1); /* the hand-worked anchor: 257*255/65535 = 1 */
    CHECK_EQ_INT(scale16(32768), 128);
    struct png_spec s = {.w = 4, .h = 3, .depth = 16, .ctype = PNG_COLOR_TYPE_GRAY, .data = data};
    CHECK_EQ_INT(check_png_spec(&s, e), 0);
}

TEST(png_palette_and_palette_with_trns)
{
    const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}, {200, 100, 50}};
    const uint8_t idx[6] = {0, 1, 2, 3, 2, 0};
    uint8_t e[18];
    for (int i = 0; i < 6; i++) {
        e[3 * i] = pal[idx[i]].red;
        e[3 * i + 1] = pal[idx[i]].green;
        e[3 * i + 2] = pal[idx[i]].blue;
    }
    struct png_spec s = {.w = 3, .h = 2, .depth = 8, .ctype = PNG_COLOR_TYPE_PALETTE, .pal = pal,
                         .npal = 4, .data = idx};
    CHECK_EQ_INT(check_png_spec(&s, e), 0);

    /* tRNS gives entries 0..2 alpha 0, 128, 255; entry 3 has none (opaque).
     * Entry 0 (red, alpha 0) becomes white; entry 1 (green, alpha 128):
     * 0*128/255 + 255*127/255 = 127 -> (127, 255, 127). */
    const png_byte trns[3] = {0, 128, 255};
    uint8_t et[18];
    for (int i = 0; i < 6; i++) {
        double a = idx[i] < 3 ? trns[idx[i]] : 255;
        et[3 * i] = over_white(pal[idx[i]].red, a);
        et[3 * i + 1] = over_white(pal[idx[i]].green, a);
        et[3 * i + 2] = over_white(pal[idx[i]].blue, a);
    }
    CHECK_EQ_INT(et[0], 255);
    CHECK_EQ_INT(et[1], 255);
    CHECK_EQ_INT(et[2], 255);
    CHECK_EQ_INT(et[3], 127);
    CHECK_EQ_INT(et[4], 255);
    CHECK_EQ_INT(et[5], 127);
    s.trns = trns;
    s.ntrns = 3;
    CHECK_EQ_INT(check_png_spec(&s, et), 0);

    /* The same at 2 bits per index: 0 1 2 3 / 2 0 packed MSB first. */
    const uint8_t packed[1] = {0x1b};
    struct png_spec s2 = {.w = 4, .h = 1, .depth = 2, .ctype = PNG_COLOR_TYPE_PALETTE,
                          .pal = pal, .npal = 4, .trns = trns, .ntrns = 3, .data = packed};
    CHECK_EQ_INT(check_png_spec(&s2, et), 0); /* first 4 pixels are idx 0..3 */
}

TEST(png_rgba_and_grey_alpha_composite_on_white)
{
    /* RGBA: (200,100,50) at alpha 128 -> 200*128/255 + 127 = 227.39 -> 227,
     * 100*128/255 + 127 = 177.2 -> 177, 50*128/255 + 127 = 152.1 -> 152. */
    const uint8_t rgba[16] = {200, 100, 50, 128, 0, 0, 0, 0, 12, 34, 56, 255, 0, 0, 0, 1};
    const uint8_t e[12] = {227, 177, 152, 255, 255, 255, 12, 34, 56, 254, 254, 254};
    struct png_spec s = {.w = 2, .h = 2, .depth = 8, .ctype = PNG_COLOR_TYPE_RGB_ALPHA,
                         .data = rgba};
    CHECK_EQ_INT(check_png_spec(&s, e), 0);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            CHECK_EQ_INT(e[3 * i + c], over_white(rgba[4 * i + c], rgba[4 * i + 3]));

    /* Grey + alpha: (0, 64) -> 255*191/255 = 191; (100, 200) -> 78.43 + 55
     * = 133.43 -> 133. */
    const uint8_t ga[4] = {0, 64, 100, 200};
    const uint8_t eg[6] = {191, 191, 191, 133, 133, 133};
    struct png_spec g = {.w = 2, .h = 1, .depth = 8, .ctype = PNG_COLOR_TYPE_GRAY_ALPHA,
                         .data = ga};
    CHECK_EQ_INT(check_png_spec(&g, eg), 0);
}

TEST(png_16_bit_rgb_and_rgba)
{
    const unsigned v[6] = {0, 65535, 32768, 1000, 40000, 257};
    uint8_t data[12], e[6];
    for (int i = 0; i < 6; i++) {
        data[2 * i] = (uint8_t)(v[i] >> 8);
        data[2 * i + 1] = (uint8_t)v[i];
        e[i] = scale16(v[i]);
    }
    struct png_spec s = {.w = 2, .h = 1, .depth = 16, .ctype = PNG_COLOR_TYPE_RGB, .data = data};
    CHECK_EQ_INT(check_png_spec(&s, e), 0);

    /* RGBA 16: colour (65535, 0, 32768) at alpha 32768 (~128/255): each
     * sample scales to 8 bits first (255, 0, 128, a=128), then composites. */
    const unsigned px[4] = {65535, 0, 32768, 32768};
    uint8_t d16[8], e16[3];
    for (int i = 0; i < 4; i++) {
        d16[2 * i] = (uint8_t)(px[i] >> 8);
        d16[2 * i + 1] = (uint8_t)px[i];
    }
    for (int c = 0; c < 3; c++)
        e16[c] = over_white(scale16(px[c]), scale16(px[3]));
    CHECK_EQ_INT(e16[0], 255);
    CHECK_EQ_INT(e16[1], 127);
    CHECK_EQ_INT(e16[2], 191); /* 128*128/255 + 127 = 191.25 */
    struct png_spec s16 = {.w = 1, .h = 1, .depth = 16, .ctype = PNG_COLOR_TYPE_RGB_ALPHA,
                           .data = d16};
    CHECK_EQ_INT(check_png_spec(&s16, e16), 0);
}

TEST(png_rgb_with_transparent_colour)
{
    /* tRNS on an RGB image names one colour as fully transparent: it turns
     * white, everything else is untouched. */
    const uint8_t rgb[9] = {10, 20, 30, 40, 50, 60, 10, 20, 31};
    const uint8_t e[9] = {255, 255, 255, 40, 50, 60, 10, 20, 31};
    png_color_16 key = {.red = 10, .green = 20, .blue = 30};
    struct png_spec s = {.w = 3, .h = 1, .depth = 8, .ctype = PNG_COLOR_TYPE_RGB,
                         .trns_color = &key, .data = rgb};
    CHECK_EQ_INT(check_png_spec(&s, e), 0);
}

TEST(png_interlaced)
{
    /* Adam7 over an odd size exercises every pass, some of them partial. */
    struct image a = make_image(13, 11, 9, 0);
    struct png_spec s = {.w = 13, .h = 11, .depth = 8, .ctype = PNG_COLOR_TYPE_RGB,
                         .interlace = PNG_INTERLACE_ADAM7, .data = a.rgb};
    CHECK_EQ_INT(check_png_spec(&s, a.rgb), 0);

    /* Interlaced with alpha goes through the RGBA-then-composite path. */
    uint8_t rgba[13 * 11 * 4], e[13 * 11 * 3];
    for (int i = 0; i < 13 * 11; i++) {
        for (int c = 0; c < 3; c++)
            rgba[4 * i + c] = a.rgb[3 * i + c];
        rgba[4 * i + 3] = (uint8_t)(i * 7);
        for (int c = 0; c < 3; c++)
            e[3 * i + c] = over_white(a.rgb[3 * i + c], rgba[4 * i + 3]);
    }
    struct png_spec sa = {.w = 13, .h = 11, .depth = 8, .ctype = PNG_COLOR_TYPE_RGB_ALPHA,
                          .interlace = PNG_INTERLACE_ADAM7, .data = rgba};
    CHECK_EQ_INT(check_png_spec(&sa, e), 0);
    image_free(&a);
}

/* Every proper prefix of a valid file must fail and leave img empty. */
static int count_truncation_successes(const uint8_t *data, size_t len)
{
    int ok = 0;
    for (size_t cut = 0; cut < len; cut++) {
        struct image img = {.w = 99, .h = 99, .rgb = (uint8_t *)1};
        char err[STRATA_ERR_LEN] = "";
        int rc = image_decode(data, cut, &img, err);
        if (rc == STRATA_OK) {
            if (ok < 3)
                printf("#   a %zu-byte prefix of %zu decoded as %dx%d\n", cut, len, img.w,
                       img.h);
            ok++;
            image_free(&img);
        } else if (img.rgb || img.w || img.h || err[0] == 0) {
            printf("#   failed prefix %zu left img dirty or no message\n", cut);
            ok++;
        }
    }
    return ok;
}

TEST(truncated_png_fails_at_every_offset)
{
    struct image a = make_image(24, 20, 3, 0);
    uint8_t *png;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_png(&a, &png, &len, err), STRATA_OK);
    CHECK_EQ_INT(count_truncation_successes(png, len), 0);
    struct image b;
    CHECK_EQ_INT(image_decode(png, len, &b, err), STRATA_OK); /* the whole file is fine */
    image_free(&b);
    free(png);

    /* Interlaced, palette with tRNS: a different code path in libpng. */
    const png_color pal[2] = {{1, 2, 3}, {250, 240, 230}};
    const png_byte trns[1] = {100};
    uint8_t idx[30 * 20];
    for (int i = 0; i < 30 * 20; i++)
        idx[i] = (uint8_t)((i * 31 / 7) & 1);
    struct png_spec s = {.w = 30, .h = 20, .depth = 8, .ctype = PNG_COLOR_TYPE_PALETTE,
                         .interlace = PNG_INTERLACE_ADAM7, .pal = pal, .npal = 2, .trns = trns,
                         .ntrns = 1, .data = idx};
    struct buf bb = write_png_spec(&s);
    CHECK_EQ_INT(count_truncation_successes(bb.data, bb.len), 0);
    free(bb.data);
    image_free(&a);
}

/* A JPEG written with libjpeg directly: progressive or baseline, RGB,
 * greyscale or CMYK. */
static struct buf write_jpeg_raw(int w, int h, int comps, J_COLOR_SPACE cs, int progressive,
                                 const uint8_t *px)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&ci, &out, &len);
    ci.image_width = w;
    ci.image_height = h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    struct buf b = {.data = out, .len = len, .cap = len};
    return b;
}

TEST(truncated_jpeg_fails_at_every_offset)
{
    struct image a = make_image(48, 40, 2, 1);
    uint8_t *jpg;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_jpeg(&a, 90, &jpg, &len, err), STRATA_OK);
    CHECK_EQ_INT(count_truncation_successes(jpg, len), 0);
    /* The message says what is wrong. */
    struct image b;
    CHECK_EQ_INT(image_decode(jpg, len - 100, &b, err), STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "Premature end") || strstr(err, "premature end"), "%s", err);
    free(jpg);

    /* Progressive: truncation lands inside a refinement scan too. */
    struct buf p = write_jpeg_raw(48, 40, 3, JCS_RGB, 1, a.rgb);
    CHECK_EQ_INT(image_decode(p.data, p.len, &b, err), STRATA_OK);
    CHECK(b.w == 48 && b.h == 40 && mean_abs_diff(&a, &b) < 2);
    image_free(&b);
    CHECK_EQ_INT(count_truncation_successes(p.data, p.len), 0);
    free(p.data);
    image_free(&a);
}

/* Garbage before a marker ("extraneous bytes before marker") means the scan
 * read it as data: refused, as corrupt, not decoded into a garbled photo. */
TEST(jpeg_with_extraneous_bytes_is_corrupt)
{
    struct image img;
    char err[STRATA_ERR_LEN];
    CHECK(image_alloc(&img, 24, 16, err) == 0);
    for (int i = 0; i < 24 * 16 * 3; i++)
        img.rgb[i] = (uint8_t)(i * 7);
    uint8_t *jpg;
    size_t len;
    CHECK(image_encode_jpeg(&img, 90, &jpg, &len, err) == 0);
    image_free(&img);
    struct image out;
    CHECK(image_decode(jpg, len, &out, err) == 0); /* the file as written decodes */
    image_free(&out);
    /* 5 bytes of garbage before the end-of-image marker */
    CHECK(len > 2 && jpg[len - 2] == 0xff && jpg[len - 1] == 0xd9);
    uint8_t *bad = malloc(len + 5);
    memcpy(bad, jpg, len - 2);
    memcpy(bad + len - 2, "\x12\x34\x56\x78\x9a", 5);
    bad[len + 3] = 0xff;
    bad[len + 4] = 0xd9;
    CHECK_EQ_INT(image_decode(bad, len + 5, &out, err), STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "xtraneous") != NULL, "%s", err);
    CHECK(out.rgb == NULL);
    free(bad);
    free(jpg);
}

/* Found by fuzz_image: 42 bytes whose sPLT chunk claims 2 GB, which libpng
 * allocated before reading. Refused as corrupt, without the allocation. */
TEST(png_chunk_claiming_gigabytes_is_refused)
{
    static const uint8_t png[42] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x06, 0x08, 0x03, 0x00, 0x00,
        0x00, 0xc9, 0xdb, 0x2f, 0xc9, 0x7e, 0x00, 0x03, 0x00, 0x73, 0x50, 0x4c, 0x54, 0x04};
    struct image img;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_decode(png, sizeof png, &img, err), STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "chunk asks for 2016 MB") != NULL, "%s", err);
    CHECK(img.rgb == NULL);
}

TEST(random_and_tiny_inputs_fail_cleanly)
{
    char err[STRATA_ERR_LEN];
    struct image img;
    CHECK_EQ_INT(image_decode(NULL, 0, &img, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "empty") != NULL);
    const uint8_t one = 0xff;
    CHECK_EQ_INT(image_decode(&one, 1, &img, err), STRATA_E_FORMAT);
    CHECK(img.rgb == NULL);

    struct rng r;
    rng_seed(&r, 77);
    uint8_t buf[3000];
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int successes = 0;
    for (int t = 0; t < 600; t++) {
        size_t len = (size_t)rng_below(&r, sizeof buf + 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next(&r);
        /* A third plain noise, a third behind a JPEG SOI, a third behind the
         * PNG signature, so both decoders chew on garbage. */
        if (t % 3 == 1 && len >= 3) {
            buf[0] = 0xff, buf[1] = 0xd8, buf[2] = 0xff;
        } else if (t % 3 == 2 && len >= 8) {
            memcpy(buf, png_sig, 8);
        }
        int rc = image_decode(buf, len, &img, err);
        if (rc == STRATA_OK) {
            successes++;
            image_free(&img);
        } else {
            CHECK(rc < 0 && img.rgb == NULL && err[0]);
        }
    }
    CHECK_EQ_INT(successes, 0);
}

TEST(mutated_files_never_crash)
{
    /* Valid files with a few bytes changed may decode or fail, but must
     * never crash or return an inconsistent image (ASan checks the rest). */
    struct image a = make_image(40, 32, 4, 1);
    uint8_t *enc[2];
    size_t len[2];
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_png(&a, &enc[0], &len[0], err), STRATA_OK);
    CHECK_EQ_INT(image_encode_jpeg(&a, 80, &enc[1], &len[1], err), STRATA_OK);
    struct rng r;
    rng_seed(&r, 12);
    int decoded = 0, failed = 0;
    for (int f = 0; f < 2; f++) {
        uint8_t *m = malloc(len[f]);
        for (int t = 0; t < 400; t++) {
            memcpy(m, enc[f], len[f]);
            int k = 1 + (int)rng_below(&r, 4);
            for (int j = 0; j < k; j++)
                m[rng_below(&r, len[f])] = (uint8_t)rng_next(&r);
            struct image img;
            int rc = image_decode(m, len[f], &img, err);
            if (rc == STRATA_OK) {
                CHECK(img.rgb && img.w > 0 && img.h > 0);
                CHECK((long)img.w * img.h <= IMAGE_MAX_PIXELS);
                decoded++;
                image_free(&img);
            } else {
                CHECK(rc < 0 && img.rgb == NULL);
                failed++;
            }
        }
        free(m);
        free(enc[f]);
    }
    printf("#   mutations: %d decoded, %d refused\n", decoded, failed);
    CHECK(failed > 0);
    image_free(&a);
}

/* CRC-32 (ISO 3309, as PNG uses), bitwise: an independent check value. */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* Signature, IHDR (8-bit RGB, w x h) with a correct CRC, then IEND. */
static size_t craft_png_header(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    put32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    put32(out + 16, w);
    put32(out + 20, h);
    out[24] = 8, out[25] = 2, out[26] = 0, out[27] = 0, out[28] = 0;
    put32(out + 29, crc32_png(out + 12, 17));
    put32(out + 33, 0);
    memcpy(out + 37, "IEND", 4);
    put32(out + 41, crc32_png(out + 37, 4));
    return 45;
}

TEST(png_claiming_huge_size_is_refused_before_allocation)
{
    /* The CRC routine agrees with the standard check value. */
    CHECK_EQ_INT(crc32_png((const uint8_t *)"123456789", 9), 0xcbf43926u);
    uint8_t f[64];
    char err[STRATA_ERR_LEN];
    struct image img;
    size_t n = craft_png_header(f, 100000, 100000);
    CHECK_EQ_INT(image_decode(f, n, &img, err), STRATA_E_LIMIT);
    CHECK_MSG(strstr(err, "100000x100000") && strstr(err, "8192"), "%s", err);
    CHECK(img.rgb == NULL);
    n = craft_png_header(f, 8000, 8000); /* under the side limit, 64 MP */
    CHECK_EQ_INT(image_decode(f, n, &img, err), STRATA_E_LIMIT);
    n = craft_png_header(f, 0xffffffffu, 1);
    CHECK_EQ_INT(image_decode(f, n, &img, err), STRATA_E_LIMIT);
    /* Within the limits this header is simply missing its pixels. */
    n = craft_png_header(f, 100, 100);
    CHECK_EQ_INT(image_decode(f, n, &img, err), STRATA_E_FORMAT);
}

TEST(png_claiming_a_zero_side_is_corrupt_not_too_large)
{
    /* A side of 0 is a broken header (bad_image for the API), not an image
     * over the limits, and the message does not talk about limits. */
    uint8_t f[64];
    char err[STRATA_ERR_LEN];
    struct image img;
    static const uint32_t sizes[][2] = {{0, 10}, {10, 0}, {0, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = craft_png_header(f, sizes[i][0], sizes[i][1]);
        err[0] = '\0';
        CHECK_EQ_INT(image_decode(f, n, &img, err), STRATA_E_FORMAT);
        char want[32];
        snprintf(want, sizeof want, "%ux%u", sizes[i][0], sizes[i][1]);
        CHECK_MSG(strstr(err, want) && !strstr(err, "limit"), "%s", err);
        CHECK(img.rgb == NULL);
    }
}

/* Finds the SOF0 marker of a baseline JPEG and rewrites its dimensions. */
static int patch_jpeg_size(uint8_t *j, size_t len, unsigned w, unsigned h)
{
    for (size_t i = 2; i + 9 < len; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            j[i + 5] = (uint8_t)(h >> 8), j[i + 6] = (uint8_t)h;
            j[i + 7] = (uint8_t)(w >> 8), j[i + 8] = (uint8_t)w;
            return 1;
        }
    return 0;
}

TEST(jpeg_claiming_huge_size_is_refused_before_allocation)
{
    struct image a = make_image(16, 16, 1, 1), img;
    uint8_t *jpg;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_jpeg(&a, 90, &jpg, &len, err), STRATA_OK);
    CHECK(patch_jpeg_size(jpg, len, 50000, 60000));
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_LIMIT);
    CHECK_MSG(strstr(err, "50000x60000") != NULL, "%s", err);
    CHECK(img.rgb == NULL);
    CHECK(patch_jpeg_size(jpg, len, 8000, 6000)); /* 48 MP */
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_LIMIT);
    /* A width of 0 is a broken file, not one over the limits; a height of
     * 0 announces a DNL marker, which the decoder does not support. */
    CHECK(patch_jpeg_size(jpg, len, 0, 16));
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "0x16") && !strstr(err, "limit"), "%s", err);
    CHECK(patch_jpeg_size(jpg, len, 16, 0));
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_UNSUPPORTED);
    /* Inside the limits the same file is just short of data. */
    CHECK(patch_jpeg_size(jpg, len, 64, 64));
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_FORMAT);
    free(jpg);
    image_free(&a);
}

TEST(jpeg_grey_and_cmyk)
{
    /* Greyscale JPEG: every pixel comes back with equal channels. */
    uint8_t g[32 * 16];
    for (int i = 0; i < 32 * 16; i++)
        g[i] = (uint8_t)(50 + (i % 32) * 4);
    struct buf jg = write_jpeg_raw(32, 16, 1, JCS_GRAYSCALE, 0, g);
    struct image img;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_decode(jg.data, jg.len, &img, err), STRATA_OK);
    double e = 0;
    for (int i = 0; i < 32 * 16; i++) {
        CHECK(img.rgb[3 * i] == img.rgb[3 * i + 1] && img.rgb[3 * i] == img.rgb[3 * i + 2]);
        e += fabs(img.rgb[3 * i] - (double)g[i]);
    }
    CHECK(e / (32 * 16) < 1.5);
    image_free(&img);
    free(jg.data);

    /* CMYK as Adobe writes it (libjpeg adds the Adobe marker for CMYK):
     * stored values are inverted, so R = C*K/255. Flat patches survive JPEG
     * almost exactly. Left half (C,M,Y,K) = (255,128,0,255) -> (255,128,0);
     * right half (200,200,200,128) -> 200*128/255 = 100.4 -> 100. */
    uint8_t cmyk[16 * 16 * 4];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            uint8_t *p = cmyk + (y * 16 + x) * 4;
            if (x < 8)
                p[0] = 255, p[1] = 128, p[2] = 0, p[3] = 255;
            else
                p[0] = 200, p[1] = 200, p[2] = 200, p[3] = 128;
        }
    struct buf jc = write_jpeg_raw(16, 16, 4, JCS_CMYK, 0, cmyk);
    CHECK_EQ_INT(image_decode(jc.data, jc.len, &img, err), STRATA_OK);
    const int left[3] = {255, 128, 0}, right[3] = {100, 100, 100};
    for (int c = 0; c < 3; c++) {
        CHECK_NEAR(img.rgb[(8 * 16 + 2) * 3 + c], left[c], 3);
        CHECK_NEAR(img.rgb[(8 * 16 + 13) * 3 + c], right[c], 3);
    }
    image_free(&img);
    free(jc.data);
}

TEST(jpeg_unsupported_variants_are_refused_clearly)
{
    struct image a = make_image(16, 16, 1, 1), img;
    char err[STRATA_ERR_LEN];
    uint8_t *jpg;
    size_t len;
    CHECK_EQ_INT(image_encode_jpeg(&a, 90, &jpg, &len, err), STRATA_OK);
    size_t sof = 0;
    for (size_t i = 2; i + 1 < len && !sof; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0)
            sof = i;
    CHECK(sof > 0);
    /* 12-bit samples. */
    jpg[sof + 4] = 12;
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_UNSUPPORTED);
    CHECK_MSG(strstr(err, "unsupported JPEG") != NULL, "%s", err);
    jpg[sof + 4] = 8;
    /* SOF3: lossless. */
    jpg[sof + 1] = 0xc3;
    CHECK_EQ_INT(image_decode(jpg, len, &img, err), STRATA_E_UNSUPPORTED);
    CHECK(img.rgb == NULL);
    free(jpg);

    /* Two components: no colour space strata could map to RGB. */
    uint8_t two[8 * 8 * 2];
    for (int i = 0; i < 128; i++)
        two[i] = (uint8_t)(i * 2);
    struct buf j2 = write_jpeg_raw(8, 8, 2, JCS_UNKNOWN, 0, two);
    CHECK_EQ_INT(image_decode(j2.data, j2.len, &img, err), STRATA_E_UNSUPPORTED);
    CHECK_MSG(strstr(err, "2 components") != NULL, "%s", err);
    free(j2.data);
    image_free(&a);
}

TEST(alloc_limits)
{
    struct image img;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_alloc(&img, 3, 2, err), STRATA_OK);
    int zero = 1;
    for (int i = 0; i < 18; i++)
        zero &= img.rgb[i] == 0;
    CHECK(zero);
    image_free(&img);
    CHECK(img.rgb == NULL && img.w == 0);
    image_free(&img); /* twice is harmless */
    CHECK_EQ_INT(image_alloc(&img, 0, 5, err), STRATA_E_ARG);
    CHECK_EQ_INT(image_alloc(&img, 5, -1, err), STRATA_E_ARG);
    CHECK_EQ_INT(image_alloc(&img, 8193, 1, err), STRATA_E_LIMIT);
    CHECK_EQ_INT(image_alloc(&img, 8000, 8000, err), STRATA_E_LIMIT);
    CHECK(img.rgb == NULL);
}

/* ----------------------------------------------------------------- resize */

static struct image from_values(int w, int h, const uint8_t *v)
{
    struct image img;
    image_alloc(&img, w, h, NULL);
    memcpy(img.rgb, v, (size_t)w * h * 3);
    return img;
}

TEST(resize_constant_stays_constant)
{
    const int sizes[][4] = {{10, 7, 3, 2},  {3, 2, 10, 7},  {10, 7, 10, 3},
                            {7, 10, 13, 4}, {1, 1, 17, 9},  {160, 160, 64, 64},
                            {17, 9, 1, 1},  {64, 48, 63, 49}};
    char err[STRATA_ERR_LEN];
    for (int s = 0; s < 8; s++) {
        struct image a, b;
        image_alloc(&a, sizes[s][0], sizes[s][1], NULL);
        for (int i = 0; i < a.w * a.h; i++)
            a.rgb[3 * i] = 37, a.rgb[3 * i + 1] = 200, a.rgb[3 * i + 2] = 255;
        CHECK_EQ_INT(image_resize(&a, sizes[s][2], sizes[s][3], &b, err), STRATA_OK);
        CHECK(b.w == sizes[s][2] && b.h == sizes[s][3]);
        int bad = 0;
        for (int i = 0; i < b.w * b.h; i++)
            bad += b.rgb[3 * i] != 37 || b.rgb[3 * i + 1] != 200 || b.rgb[3 * i + 2] != 255;
        CHECK_MSG(bad == 0, "%dx%d -> %dx%d: %d pixels changed", sizes[s][0], sizes[s][1],
                  sizes[s][2], sizes[s][3], bad);
        image_free(&a);
        image_free(&b);
    }
}

TEST(resize_halving_is_the_block_mean)
{
    /* 4x4 -> 2x2: each output is the mean of a 2x2 block, rounded half up.
     * Channel 0 blocks: {0,1,4,5} mean 2.5 -> 3; {2,3,6,7} 4.5 -> 5;
     * {8,9,12,13} 10.5 -> 11; {10,11,14,15} 12.5 -> 13. Channel 1 = 10*v:
     * means 25, 45, 105, 125. Channel 2 = a 0/255 checkerboard: 127.5 -> 128. */
    uint8_t v[48];
    for (int i = 0; i < 16; i++) {
        v[3 * i] = (uint8_t)i;
        v[3 * i + 1] = (uint8_t)(10 * i);
        v[3 * i + 2] = ((i % 4) + (i / 4)) % 2 ? 255 : 0;
    }
    struct image a = from_values(4, 4, v), b;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_resize(&a, 2, 2, &b, err), STRATA_OK);
    const uint8_t e[12] = {3, 25, 128, 5, 45, 128, 11, 105, 128, 13, 125, 128};
    for (int i = 0; i < 12; i++)
        CHECK_EQ_INT(b.rgb[i], e[i]);
    image_free(&b);

    /* 3 -> 2 along x: output 0 covers pixel 0 and half of pixel 1, so
     * (0*1 + 90*0.5)/1.5 = 30 and (90*0.5 + 180*1)/1.5 = 150. */
    const uint8_t row[9] = {0, 0, 0, 90, 90, 90, 180, 180, 180};
    struct image c = from_values(3, 1, row);
    CHECK_EQ_INT(image_resize(&c, 2, 1, &b, err), STRATA_OK);
    CHECK_EQ_INT(b.rgb[0], 30);
    CHECK_EQ_INT(b.rgb[3], 150);
    image_free(&b);
    image_free(&c);
    image_free(&a);
}

TEST(resize_upscale_is_bilinear_with_half_pixel_centres)
{
    /* 2x1 [0, 100] -> 4x1: output centres map to x = -0.25, 0.25, 0.75, 1.25;
     * clamped at the ends: 0, 25, 75, 100. To 8x1: x = -0.375 ... 1.375 by
     * 0.25: 0, 0, 12.5, 37.5, 62.5, 87.5, 100, 100 (halves round up). */
    const uint8_t v[6] = {0, 0, 0, 100, 100, 100};
    struct image a = from_values(2, 1, v), b;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_resize(&a, 4, 1, &b, err), STRATA_OK);
    const int e4[4] = {0, 25, 75, 100};
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            CHECK_EQ_INT(b.rgb[3 * i + c], e4[i]);
    image_free(&b);
    CHECK_EQ_INT(image_resize(&a, 8, 1, &b, err), STRATA_OK);
    const int e8[8] = {0, 0, 13, 38, 63, 88, 100, 100};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(b.rgb[3 * i], e8[i]);
    image_free(&b);
    /* Growing the other axis only: every row is a copy. */
    CHECK_EQ_INT(image_resize(&a, 2, 3, &b, err), STRATA_OK);
    for (int y = 0; y < 3; y++)
        CHECK(b.rgb[y * 6] == 0 && b.rgb[y * 6 + 3] == 100);
    image_free(&b);
    image_free(&a);
}

TEST(resize_same_size_is_identity)
{
    struct image a = make_image(31, 16, 8, 0), b;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_resize(&a, 31, 16, &b, err), STRATA_OK);
    CHECK(memcmp(a.rgb, b.rgb, 31 * 16 * 3) == 0);
    image_free(&b);
    /* One axis unchanged while the other changes: that axis is untouched,
     * so halving the height gives exact means of row pairs. */
    CHECK_EQ_INT(image_resize(&a, 31, 8, &b, err), STRATA_OK);
    int bad = 0;
    for (int y = 0; y < 8; y++)
        for (int i = 0; i < 31 * 3; i++) {
            int s = a.rgb[(2 * y) * 93 + i] + a.rgb[(2 * y + 1) * 93 + i];
            bad += b.rgb[y * 93 + i] != (s + 1) / 2; /* (s/2 rounded half up) */
        }
    CHECK_EQ_INT(bad, 0);
    image_free(&b);
    image_free(&a);
}

/* Reference: one output sample along one axis, by definition, in double.
 * Area: integrate the piecewise-constant input over the output's footprint.
 * Bilinear: interpolate at the mapped centre, clamped to the end pixels. */
static double ref_axis_weight(int in, int out, int i, int j)
{
    if (out < in) {
        double lo = (double)i * in / out, hi = (double)(i + 1) * in / out;
        double a = fmax(lo, j), b = fmin(hi, j + 1.0);
        return b > a ? (b - a) / ((double)in / out) : 0;
    }
    double s = (i + 0.5) * in / out - 0.5;
    s = fmin(fmax(s, 0), in - 1);
    double d = fabs(s - j);
    return d < 1 ? 1 - d : 0;
}

TEST(resize_matches_direct_reference)
{
    const int cases[][4] = {{37, 29, 11, 7}, {11, 7, 37, 29}, {37, 29, 50, 9},
                            {20, 20, 7, 33}, {160, 120, 64, 64}, {5, 3, 12, 12}};
    char err[STRATA_ERR_LEN];
    for (int t = 0; t < 6; t++) {
        int sw = cases[t][0], sh = cases[t][1], w = cases[t][2], h = cases[t][3];
        struct image a = make_image(sw, sh, 50 + t, 0), b;
        CHECK_EQ_INT(image_resize(&a, w, h, &b, err), STRATA_OK);
        int worst = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    double s = 0;
                    for (int j = 0; j < sh; j++) {
                        double wy = ref_axis_weight(sh, h, y, j);
                        if (wy == 0)
                            continue;
                        for (int i = 0; i < sw; i++)
                            s += wy * ref_axis_weight(sw, w, x, i) * a.rgb[(j * sw + i) * 3 + c];
                    }
                    int d = abs(b.rgb[(y * w + x) * 3 + c] - (int)floor(s + 0.5));
                    if (d > worst)
                        worst = d;
                }
        /* Float vs double may land on either side of a .5. */
        CHECK_MSG(worst <= 1, "%dx%d -> %dx%d: worst difference %d", sw, sh, w, h, worst);
        image_free(&a);
        image_free(&b);
    }
}

TEST(resize_refuses_bad_sizes)
{
    struct image a = make_image(4, 4, 1, 0), b;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_resize(&a, 0, 4, &b, err), STRATA_E_ARG);
    CHECK(b.rgb == NULL);
    CHECK_EQ_INT(image_resize(&a, 4, 9000, &b, err), STRATA_E_LIMIT);
    image_free(&a);
}

/* ------------------------------------------------------------------ files */

TEST(write_then_load_a_file)
{
    char dir[] = "/tmp/strata-test-image-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    char path[256], big[256], missing[256];
    snprintf(path, sizeof path, "%s/a.png", dir);
    snprintf(big, sizeof big, "%s/big.jpg", dir);
    snprintf(missing, sizeof missing, "%s/nope/a.png", dir);
    struct image a = make_image(20, 10, 3, 0), b;
    uint8_t *png;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(image_encode_png(&a, &png, &len, err), STRATA_OK);
    CHECK_EQ_INT(image_write_file(path, png, len, err), STRATA_OK);
    CHECK_EQ_INT(image_load(path, &b, err), STRATA_OK);
    CHECK(b.w == 20 && b.h == 10 && memcmp(a.rgb, b.rgb, 600) == 0);
    image_free(&b);
    /* Overwriting replaces the content and leaves no temporary behind. */
    CHECK_EQ_INT(image_write_file(path, png, 10, err), STRATA_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 10);
    CHECK_EQ_INT(image_load(path, &b, err), STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, path) != NULL, "%s", err);
    /* A missing folder is an I/O error naming the path. */
    CHECK_EQ_INT(image_write_file(missing, png, len, err), STRATA_E_IO);
    CHECK_MSG(strstr(err, missing) != NULL, "%s", err);
    CHECK_EQ_INT(image_load(missing, &b, err), STRATA_E_IO);
    CHECK_MSG(strstr(err, missing) != NULL, "%s", err);
    /* A directory is not an image. */
    CHECK_EQ_INT(image_load(dir, &b, err), STRATA_E_IO);
    /* An oversized file is refused from its size (sparse: costs no disk). */
    int fd = open(big, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 65L << 20) == 0);
    close(fd);
    CHECK_EQ_INT(image_load(big, &b, err), STRATA_E_LIMIT);
    CHECK_MSG(strstr(err, big) != NULL, "%s", err);
    CHECK(b.rgb == NULL);
    free(png);
    image_free(&a);
    unlink(path);
    unlink(big);
    CHECK(rmdir(dir) == 0); /* empty: no stray temporaries */
}

TEST(real_dataset_images_decode)
{
    /* Not the primary check (the tests above build their own files); just
     * that the demo photographs decode as documented: 160x160 RGB. */
    const char *paths[] = {"../shared/datasets/felines/train/cheetah/0000.jpg",
                           "../shared/datasets/paysages/test/sea/0000.jpg"};
    for (int i = 0; i < 2; i++) {
        struct image img;
        char err[STRATA_ERR_LEN];
        CHECK_EQ_INT(image_load(paths[i], &img, err), STRATA_OK);
        CHECK(img.w == 160 && img.h == 160);
        image_free(&img);
    }
}

int main(void)
{
    RUN(sniff);
    RUN(png_round_trip_is_exact);
    RUN(jpeg_round_trip_is_close);
    RUN(jpeg_large_noisy_image_grows_the_output_buffer);
    RUN(png_grey_8_and_low_bit_depths);
    RUN(png_grey_16);
    RUN(png_palette_and_palette_with_trns);
    RUN(png_rgba_and_grey_alpha_composite_on_white);
    RUN(png_16_bit_rgb_and_rgba);
    RUN(png_rgb_with_transparent_colour);
    RUN(png_interlaced);
    RUN(truncated_png_fails_at_every_offset);
    RUN(truncated_jpeg_fails_at_every_offset);
    RUN(jpeg_with_extraneous_bytes_is_corrupt);
    RUN(png_chunk_claiming_gigabytes_is_refused);
    RUN(random_and_tiny_inputs_fail_cleanly);
    RUN(mutated_files_never_crash);
    RUN(png_claiming_huge_size_is_refused_before_allocation);
    RUN(png_claiming_a_zero_side_is_corrupt_not_too_large);
    RUN(jpeg_claiming_huge_size_is_refused_before_allocation);
    RUN(jpeg_grey_and_cmyk);
    RUN(jpeg_unsupported_variants_are_refused_clearly);
    RUN(alloc_limits);
    RUN(resize_constant_stays_constant);
    RUN(resize_halving_is_the_block_mean);
    RUN(resize_upscale_is_bilinear_with_half_pixel_centres);
    RUN(resize_same_size_is_identity);
    RUN(resize_matches_direct_reference);
    RUN(resize_refuses_bad_sizes);
    RUN(write_then_load_a_file);
    if (access("../shared/datasets/felines/train/cheetah/0000.jpg", R_OK) == 0)
        RUN(real_dataset_images_decode);
    else
        SKIP(real_dataset_images_decode, "../shared/datasets not present");
    return check_done();
}
