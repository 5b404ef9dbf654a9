/*
 * image.c — JPEG/PNG decoding and encoding (libjpeg-turbo, libpng) and
 * resizing of RGB8 images.
 *
 * Decoders face bytes from anywhere (uploads, dataset folders), so:
 *  - both libraries report errors through a longjmp into our own handler,
 *    never through exit(); every jump lands in a function whose locals are not
 *    modified after setjmp (all mutable state lives in a context struct owned
 *    by the caller), so nothing is clobbered;
 *  - dimensions are checked against IMAGE_MAX_SIDE / IMAGE_MAX_PIXELS from the
 *    header, before any pixel buffer exists; libpng gets its own user limits
 *    and a cap on ancillary-chunk allocations, libjpeg a memory cap and a scan
 *    limit, so a hostile header cannot make either library allocate much;
 *  - a truncated or corrupt entropy stream is an error: libjpeg only *warns*
 *    about those and pads with grey, so those warnings are promoted to errors.
 *
 * Resizing is separable with per-axis weight tables computed once per call:
 * bilinear with half-pixel centres when an axis grows (or keeps its size),
 * exact area averaging when it shrinks.
 */
#include "image.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* jpeglib.h first: it pulls in jconfig.h, whose macros decide which message
 * codes jerror.h's enum contains. */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "readfile.h"

/* image_load refuses files larger than this before reading them. No sane
 * JPEG/PNG within the pixel limits needs more. */
#define IMAGE_MAX_FILE_BYTES (64L << 20)

/* Caps on what the libraries may allocate for one image beyond our pixel
 * buffer: libjpeg's coefficient buffers for a progressive 40 MP image need
 * ~240 MB; a PNG's ancillary chunks (ICC profiles, text) are small. */
#define JPEG_MAX_MEMORY (512L << 20)
#define JPEG_MAX_SCANS 256 /* real progressive files use ~10; thousands is a CPU bomb */
#define PNG_MAX_CHUNK_BYTES (8L << 20)
/* Largest single allocation libpng may make while decoding (png_dec_malloc). */
#define PNG_MAX_ALLOC ((png_alloc_size_t)16 << 20)
#define PNG_MAX_CHUNKS 512

/* Sizes an image may have: non-positive sides are the caller's mistake
 * (STRATA_E_ARG), sizes over the limits STRATA_E_LIMIT. Works on 64-bit
 * values so a header's 32-bit fields cannot overflow the product. */
static int check_dims(long long w, long long h, char *err)
{
    if (w <= 0 || h <= 0)
        return strata_fail(err, STRATA_E_ARG,
                           "an image of %lldx%lld pixels cannot be made; each side needs at "
                           "least one pixel",
                           w, h);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS)
        return strata_fail(err, STRATA_E_LIMIT,
                           "image is %lldx%lld pixels; the limit is %d on a side and %ld "
                           "megapixels",
                           w, h, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS / 1000000);
    return STRATA_OK;
}

/* The size a file's header claims: a side of 0 is a broken file
 * (STRATA_E_FORMAT), not one over the limits. */
static int check_header_dims(long long w, long long h, char *err)
{
    if (w <= 0 || h <= 0)
        return strata_fail(err, STRATA_E_FORMAT,
                           "the header says the image is %lldx%lld pixels; an image has at "
                           "least one pixel on each side",
                           w, h);
    return check_dims(w, h, err);
}

enum image_format image_sniff(const uint8_t *buf, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!buf)
        return IMAGE_UNKNOWN;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return IMAGE_JPEG;
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
        return IMAGE_PNG;
    return IMAGE_UNKNOWN;
}

int image_alloc(struct image *img, int w, int h, char *err)
{
    assert(img);
    img->w = img->h = 0;
    img->rgb = NULL;
    int rc = check_dims(w, h, err);
    if (rc)
        return rc;
    img->rgb = calloc((size_t)w * h * 3, 1);
    if (!img->rgb)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory allocating a %dx%d image", w, h);
    img->w = w;
    img->h = h;
    return STRATA_OK;
}

void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* ------------------------------------------------------------------ JPEG */

/* Everything the JPEG decoder changes after setjmp lives here. `pub` must be
 * first: libjpeg hands callbacks cinfo->err, which we cast back. */
struct jpeg_dec {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    jmp_buf jmp;
    int status;
    char msg[STRATA_ERR_LEN]; /* >= JMSG_LENGTH_MAX, what format_message needs */
    uint8_t *rgb;
    uint8_t *cmyk_row;
};

static void jpeg_dec_error_exit(j_common_ptr cinfo)
{
    struct jpeg_dec *d = (struct jpeg_dec *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, d->msg);
    if (!d->status) {
        switch (cinfo->err->msg_code) {
        case JERR_OUT_OF_MEMORY:
            d->status = STRATA_E_NOMEM;
            break;
        case JERR_NO_BACKING_STORE: /* our memory cap was hit */
            snprintf(d->msg, sizeof d->msg, "decoding this JPEG needs more than %ld MB",
                     JPEG_MAX_MEMORY >> 20);
            d->status = STRATA_E_LIMIT;
            break;
        case JERR_BAD_PRECISION:     /* 12/16-bit samples */
        case JERR_SOF_UNSUPPORTED:   /* lossless and other rare processes */
        case JERR_CONVERSION_NOTIMPL: {
            char lib[JMSG_LENGTH_MAX];
            (*cinfo->err->format_message)(cinfo, lib);
            snprintf(d->msg, sizeof d->msg, "unsupported JPEG variant: %s", lib);
            d->status = STRATA_E_UNSUPPORTED;
            break;
        }
        case JERR_EMPTY_IMAGE:
            if (d->cinfo.image_width == 0) { /* a broken header */
                snprintf(d->msg, sizeof d->msg,
                         "the header says the image is 0x%u pixels; an image has at least "
                         "one pixel on each side",
                         d->cinfo.image_height);
                d->status = STRATA_E_FORMAT;
                break;
            }
            snprintf(d->msg, sizeof d->msg,
                     "JPEG declares a zero height (a DNL marker), which is not supported");
            d->status = STRATA_E_UNSUPPORTED;
            break;
        default:
            d->status = STRATA_E_FORMAT;
            break;
        }
    }
    longjmp(d->jmp, 1);
}

/* libjpeg pads missing or undecodable entropy data with zeros (a grey band),
 * or reads garbage as if it were data, and only warns. Those warnings mean
 * the pixels are not the image, so they become errors: premature end of
 * data, a marker inside the data, a bad Huffman or arithmetic code, a lost
 * restart marker, and bytes that are no marker where one must be
 * ("extraneous bytes before marker": whatever precedes it was read as part
 * of the scan). Warnings about metadata stay silent, the pixels being
 * intact: an unknown JFIF revision, a bad ICC profile, an Adobe transform
 * libjpeg does not know, a thumbnail of the wrong size. Trace messages are
 * ignored. */
static void jpeg_dec_emit_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level >= 0)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_EXTRANEOUS_DATA: {
        struct jpeg_dec *d = (struct jpeg_dec *)cinfo->err;
        (*cinfo->err->format_message)(cinfo, d->msg);
        d->status = STRATA_E_FORMAT;
        longjmp(d->jmp, 1);
    }
    default:
        break;
    }
}

static void jpeg_quiet_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* Called between chunks of work; a progressive file with an absurd number of
 * scans is refused rather than decoded for minutes. */
static void jpeg_dec_progress(j_common_ptr cinfo)
{
    struct jpeg_dec *d = (struct jpeg_dec *)cinfo->err;
    struct jpeg_decompress_struct *di = (struct jpeg_decompress_struct *)cinfo;
    if (di->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(d->msg, sizeof d->msg, "JPEG has more than %d scans", JPEG_MAX_SCANS);
        d->status = STRATA_E_LIMIT;
        longjmp(d->jmp, 1);
    }
}

/* Adobe CMYK JPEGs (the common kind) store inverted ink values; without the
 * Adobe marker the values are plain. Naive conversion, no ICC profile. */
static void cmyk_to_rgb(uint8_t *rgb, const uint8_t *cmyk, int w, int inverted)
{
    for (int x = 0; x < w; x++) {
        unsigned c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        rgb[3 * x] = (uint8_t)((c * k + 127) / 255);
        rgb[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
        rgb[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* Decodes into d->rgb. Only `d`, `buf` and `len` are used after setjmp, and
 * none of them is modified. Returns a status; the message is in d->msg. */
static int jpeg_dec_run(struct jpeg_dec *d, const uint8_t *buf, size_t len)
{
    struct jpeg_decompress_struct *ci = &d->cinfo;
    ci->err = jpeg_std_error(&d->pub);
    d->pub.error_exit = jpeg_dec_error_exit;
    d->pub.emit_message = jpeg_dec_emit_message;
    d->pub.output_message = jpeg_quiet_output;
    if (setjmp(d->jmp))
        goto fail;

    jpeg_create_decompress(ci);
    ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    d->progress.progress_monitor = jpeg_dec_progress;
    ci->progress = &d->progress;
    jpeg_mem_src(ci, buf, (unsigned long)len);
    if (jpeg_read_header(ci, TRUE) != JPEG_HEADER_OK) {
        snprintf(d->msg, sizeof d->msg, "JPEG holds no image");
        d->status = STRATA_E_FORMAT;
        goto fail;
    }
    d->status = check_header_dims(ci->image_width, ci->image_height, d->msg);
    if (d->status)
        goto fail;

    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB; /* libjpeg replicates grey itself */
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK; /* libjpeg has no CMYK->RGB; we do it */
        cmyk = 1;
        break;
    default:
        snprintf(d->msg, sizeof d->msg,
                 "JPEG colour space %d with %d components is not supported (only grey, "
                 "YCbCr, RGB and CMYK)",
                 (int)ci->jpeg_color_space, ci->num_components);
        d->status = STRATA_E_UNSUPPORTED;
        goto fail;
    }

    jpeg_start_decompress(ci);
    size_t w = ci->output_width, h = ci->output_height;
    if (w != ci->image_width || h != ci->image_height ||
        ci->output_components != (cmyk ? 4 : 3)) {
        snprintf(d->msg, sizeof d->msg, "JPEG decoder produced an unexpected layout");
        d->status = STRATA_E_FORMAT;
        goto fail;
    }
    d->rgb = malloc(w * h * 3);
    if (cmyk)
        d->cmyk_row = malloc(w * 4);
    if (!d->rgb || (cmyk && !d->cmyk_row)) {
        snprintf(d->msg, sizeof d->msg, "out of memory for a %zux%zu image", w, h);
        d->status = STRATA_E_NOMEM;
        goto fail;
    }
    int inverted = ci->saw_Adobe_marker;
    while (ci->output_scanline < h) {
        size_t y = ci->output_scanline;
        JSAMPROW rows[4];
        JDIMENSION want = 1;
        if (cmyk) {
            rows[0] = d->cmyk_row;
        } else {
            /* Several rows per call lets libjpeg emit a whole MCU row of
             * upsampled output at once. */
            want = (JDIMENSION)(h - y < 4 ? h - y : 4);
            for (JDIMENSION k = 0; k < want; k++)
                rows[k] = d->rgb + (y + k) * w * 3;
        }
        JDIMENSION got = jpeg_read_scanlines(ci, rows, want);
        if (got == 0) {
            snprintf(d->msg, sizeof d->msg, "JPEG data ends early");
            d->status = STRATA_E_FORMAT;
            goto fail;
        }
        if (cmyk)
            cmyk_to_rgb(d->rgb + y * w * 3, d->cmyk_row, (int)w, inverted);
    }
    /* Reads up to EOI, so a file cut just before its end is caught too. */
    jpeg_finish_decompress(ci);
    jpeg_destroy_decompress(ci);
    free(d->cmyk_row);
    d->cmyk_row = NULL;
    return STRATA_OK;

fail:
    if (!d->status)
        d->status = STRATA_E_FORMAT;
    jpeg_destroy_decompress(ci);
    free(d->rgb);
    free(d->cmyk_row);
    d->rgb = d->cmyk_row = NULL;
    return d->status;
}

static int decode_jpeg(const uint8_t *buf, size_t len, struct image *img, char *err)
{
    struct jpeg_dec *d = calloc(1, sizeof *d);
    if (!d)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the JPEG decoder");
    int rc = jpeg_dec_run(d, buf, len);
    if (rc == STRATA_OK) {
        img->w = (int)d->cinfo.image_width;
        img->h = (int)d->cinfo.image_height;
        img->rgb = d->rgb;
    } else if (rc == STRATA_E_LIMIT || rc == STRATA_E_UNSUPPORTED) {
        strata_fail(err, rc, "%s", d->msg); /* written by us as a complete sentence */
    } else if (rc == STRATA_E_NOMEM) {
        strata_fail(err, rc, "out of memory decoding a JPEG: %s", d->msg);
    } else {
        strata_fail(err, rc, "not a readable JPEG: %s", d->msg);
    }
    free(d);
    return rc;
}

/* ------------------------------------------------------------------- PNG */

/* Everything the PNG decoder changes after setjmp lives here. */
struct png_dec {
    jmp_buf jmp;
    const uint8_t *buf;
    size_t len, pos;
    int status;
    char msg[STRATA_ERR_LEN];
    png_structp png;
    png_infop info;
    uint8_t *pix;
    png_bytep *rows;
    int w, h;
};

static void png_dec_error(png_structp png, png_const_charp msg)
{
    struct png_dec *d = png_get_error_ptr(png);
    if (!d->status) { /* else png_dec_malloc said why */
        snprintf(d->msg, sizeof d->msg, "%s", msg);
        d->status = STRATA_E_FORMAT;
    }
    longjmp(d->jmp, 1);
}

static void png_dec_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* benign (an ancillary chunk's CRC, extra zlib data): decode on */
}

/* libpng reports its own allocation failures as a generic error; this tells
 * them apart so they come back as STRATA_E_NOMEM. And it refuses what no
 * image needs: libpng's own buffers (rows, zlib's window, a chunk's data,
 * itself capped at PNG_MAX_CHUNK_BYTES) stay far below PNG_MAX_ALLOC, but
 * some ancillary chunks (sPLT) are read into a buffer of the length their
 * header claims — 2 GB from a 42-byte file. */
static png_voidp png_dec_malloc(png_structp png, png_alloc_size_t size)
{
    struct png_dec *d = png_get_mem_ptr(png);
    if (size > PNG_MAX_ALLOC) {
        snprintf(d->msg, sizeof d->msg,
                 "a PNG chunk asks for %zu MB, more than any image here needs: the file is "
                 "corrupt",
                 (size_t)(size >> 20));
        d->status = STRATA_E_FORMAT;
        return NULL;
    }
    void *p = malloc(size);
    if (!p) {
        snprintf(d->msg, sizeof d->msg, "out of memory decoding a PNG");
        d->status = STRATA_E_NOMEM;
    }
    return p;
}

static void png_dec_free(png_structp png, png_voidp p)
{
    (void)png;
    free(p);
}

static void png_dec_read(png_structp png, png_bytep out, size_t n)
{
    struct png_dec *d = png_get_io_ptr(png);
    if (n > d->len - d->pos)
        png_error(png, "the data ends early (truncated file)");
    memcpy(out, d->buf + d->pos, n);
    d->pos += n;
}

/* Decodes into d->pix (RGB8, w*h*3). Only `d` is used after setjmp, and it is
 * not modified. */
static int png_dec_run(struct png_dec *d)
{
    d->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, d, png_dec_error, png_dec_warning, d,
                                      png_dec_malloc, png_dec_free);
    if (!d->png)
        return STRATA_E_NOMEM;
    d->info = png_create_info_struct(d->png);
    if (!d->info) {
        png_destroy_read_struct(&d->png, NULL, NULL);
        return STRATA_E_NOMEM;
    }
    if (setjmp(d->jmp))
        goto fail;

    png_set_user_limits(d->png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(d->png, PNG_MAX_CHUNK_BYTES);
    png_set_chunk_cache_max(d->png, PNG_MAX_CHUNKS);
    png_set_read_fn(d->png, d, png_dec_read);
    png_read_info(d->png, d->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(d->png, d->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    d->status = check_header_dims(w, h, d->msg);
    if (d->status)
        goto fail;

    /* Every colour type and depth becomes 8-bit RGB or RGBA: palettes and
     * low-bit grey expand, tRNS becomes an alpha channel, 16-bit samples are
     * scaled with rounding (v*255/65535), grey is replicated. */
    png_set_expand(d->png);
    png_set_scale_16(d->png);
    if (!(ctype & PNG_COLOR_MASK_COLOR))
        png_set_gray_to_rgb(d->png);
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    int ch = png_get_channels(d->png, d->info);
    if ((ch != 3 && ch != 4) || png_get_bit_depth(d->png, d->info) != 8 ||
        png_get_rowbytes(d->png, d->info) != (size_t)w * ch) {
        snprintf(d->msg, sizeof d->msg, "unexpected PNG layout after conversion");
        d->status = STRATA_E_FORMAT;
        goto fail;
    }

    /* With alpha the rows are read as RGBA into the final buffer, then
     * composited and packed to RGB in place (3i <= 4i, so forward is safe). */
    d->pix = malloc((size_t)w * h * ch);
    d->rows = malloc((size_t)h * sizeof *d->rows);
    if (!d->pix || !d->rows) {
        snprintf(d->msg, sizeof d->msg, "out of memory for a %ux%u image", (unsigned)w,
                 (unsigned)h);
        d->status = STRATA_E_NOMEM;
        goto fail;
    }
    for (png_uint_32 y = 0; y < h; y++)
        d->rows[y] = d->pix + (size_t)y * w * ch;
    png_read_image(d->png, d->rows);
    /* Reads the trailing chunks up to IEND, so truncation anywhere is seen. */
    png_read_end(d->png, NULL);
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d->rows);
    d->rows = NULL;

    if (ch == 4) {
        /* Composite on white: out = (c*a + 255*(255-a)) / 255, rounded. */
        size_t n = (size_t)w * h;
        uint8_t *p = d->pix;
        for (size_t i = 0; i < n; i++) {
            unsigned a = p[4 * i + 3], bg = 255 * (255 - a);
            p[3 * i] = (uint8_t)((p[4 * i] * a + bg + 127) / 255);
            p[3 * i + 1] = (uint8_t)((p[4 * i + 1] * a + bg + 127) / 255);
            p[3 * i + 2] = (uint8_t)((p[4 * i + 2] * a + bg + 127) / 255);
        }
        uint8_t *shrunk = realloc(d->pix, n * 3);
        if (shrunk) /* on failure the larger block is still valid */
            d->pix = shrunk;
    }
    d->w = (int)w;
    d->h = (int)h;
    return STRATA_OK;

fail:
    if (!d->status)
        d->status = STRATA_E_FORMAT;
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d->pix);
    free(d->rows);
    d->pix = NULL;
    d->rows = NULL;
    return d->status;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int decode_png(const uint8_t *buf, size_t len, struct image *img, char *err)
{
    /* Read IHDR's size ourselves first so that an oversized image gets a
     * STRATA_E_LIMIT and a clear message rather than libpng's generic error
     * from its own (identical) user limits. */
    if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
        int rc = check_header_dims(be32(buf + 16), be32(buf + 20), err);
        if (rc)
            return rc;
    }
    struct png_dec *d = calloc(1, sizeof *d);
    if (!d)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the PNG decoder");
    d->buf = buf;
    d->len = len;
    int rc = png_dec_run(d);
    if (rc == STRATA_OK) {
        img->w = d->w;
        img->h = d->h;
        img->rgb = d->pix;
    } else if (rc == STRATA_E_LIMIT) {
        strata_fail(err, rc, "%s", d->msg);
    } else if (rc == STRATA_E_NOMEM) {
        strata_fail(err, rc, "out of memory decoding a PNG%s%s", d->msg[0] ? ": " : "", d->msg);
    } else {
        strata_fail(err, rc, "not a readable PNG: %s", d->msg);
    }
    free(d);
    return rc;
}

int image_decode(const uint8_t *buf, size_t len, struct image *img, char *err)
{
    assert(img);
    img->w = img->h = 0;
    img->rgb = NULL;
    if (!buf || len == 0)
        return strata_fail(err, STRATA_E_FORMAT, "the image is empty (0 bytes)");
    switch (image_sniff(buf, len)) {
    case IMAGE_JPEG: return decode_jpeg(buf, len, img, err);
    case IMAGE_PNG: return decode_png(buf, len, img, err);
    case IMAGE_UNKNOWN: break;
    }
    return strata_fail(err, STRATA_E_FORMAT,
                       "not a JPEG or PNG image (%zu bytes starting %02x %02x %02x %02x)", len,
                       buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
}

int image_load(const char *path, struct image *img, char *err)
{
    assert(path && img);
    img->w = img->h = 0;
    img->rgb = NULL;
    uint8_t *buf;
    size_t len;
    int rc = read_whole_file(path, IMAGE_MAX_FILE_BYTES, &buf, &len, err);
    if (rc)
        /* Callers (the dataset images of the API, the CLI) have always
         * treated a missing image file as an I/O error. */
        return rc == STRATA_E_NOTFOUND ? STRATA_E_IO : rc;
    char why[STRATA_ERR_LEN];
    rc = image_decode(buf, len, img, why);
    free(buf);
    if (rc)
        return strata_fail(err, rc, "%s: %s", path, why);
    return STRATA_OK;
}

/* -------------------------------------------------------------- encoding */

/* A growing output buffer shared by both encoders. */
struct membuf {
    uint8_t *data;
    size_t len, cap;
};

static int membuf_reserve(struct membuf *m, size_t extra)
{
    if (m->cap - m->len >= extra)
        return 0;
    size_t cap = m->cap ? m->cap : 16384;
    while (cap - m->len < extra)
        cap *= 2;
    uint8_t *p = realloc(m->data, cap);
    if (!p)
        return -1;
    m->data = p;
    m->cap = cap;
    return 0;
}

struct png_enc {
    jmp_buf jmp;
    int status;
    char msg[200];
    struct membuf out;
    png_structp png;
    png_infop info;
};

static void png_enc_error(png_structp png, png_const_charp msg)
{
    struct png_enc *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    if (!e->status)
        e->status = STRATA_E_FORMAT;
    longjmp(e->jmp, 1);
}

static void png_enc_write(png_structp png, png_bytep data, size_t n)
{
    struct png_enc *e = png_get_io_ptr(png);
    if (membuf_reserve(&e->out, n)) {
        e->status = STRATA_E_NOMEM;
        png_error(png, "out of memory");
    }
    memcpy(e->out.data + e->out.len, data, n);
    e->out.len += n;
}

static void png_enc_flush(png_structp png)
{
    (void)png;
}

/* Only `e` and `img` are used after setjmp; neither is modified. */
static int png_enc_run(struct png_enc *e, const struct image *img)
{
    e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e, png_enc_error, png_dec_warning);
    if (!e->png)
        return STRATA_E_NOMEM;
    e->info = png_create_info_struct(e->png);
    if (!e->info) {
        png_destroy_write_struct(&e->png, NULL);
        return STRATA_E_NOMEM;
    }
    if (setjmp(e->jmp)) {
        png_destroy_write_struct(&e->png, &e->info);
        return e->status ? e->status : STRATA_E_FORMAT;
    }
    png_set_write_fn(e->png, e, png_enc_write, png_enc_flush);
    /* PNGs are encoded live (overlays, thumbnails). On 160x160 photographs
     * zlib level 3 takes about half the time of the default 6 for the same
     * size (measured: 2.5 vs 4.1 ms, 63 vs 64 KB). */
    png_set_compression_level(e->png, 3);
    png_set_IHDR(e->png, e->info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(e->png, e->info);
    for (int y = 0; y < img->h; y++)
        png_write_row(e->png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(e->png, e->info);
    png_destroy_write_struct(&e->png, &e->info);
    return STRATA_OK;
}

int image_encode_png(const struct image *img, uint8_t **out, size_t *out_len, char *err)
{
    assert(img && img->rgb && img->w > 0 && img->h > 0 && out && out_len);
    *out = NULL;
    *out_len = 0;
    struct png_enc *e = calloc(1, sizeof *e);
    if (!e)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the PNG encoder");
    int rc = png_enc_run(e, img);
    if (rc == STRATA_OK) {
        *out = e->out.data;
        *out_len = e->out.len;
    } else {
        free(e->out.data);
        if (rc == STRATA_E_NOMEM)
            strata_fail(err, rc, "out of memory encoding a %dx%d PNG", img->w, img->h);
        else
            strata_fail(err, rc, "PNG encoding failed: %s", e->msg);
    }
    free(e);
    return rc;
}

/* JPEG encoder: our own destination manager writing into a membuf, so the
 * buffer is ours to free on any error (jpeg_mem_dest's is not reachable). */
struct jpeg_enc {
    struct jpeg_error_mgr pub; /* first: callbacks cast cinfo->err back */
    struct jpeg_destination_mgr dest;
    struct jpeg_compress_struct cinfo;
    jmp_buf jmp;
    int status;
    char msg[JMSG_LENGTH_MAX];
    struct membuf out;
};

static void jpeg_enc_error_exit(j_common_ptr cinfo)
{
    struct jpeg_enc *e = (struct jpeg_enc *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    if (!e->status)
        e->status = cinfo->err->msg_code == JERR_OUT_OF_MEMORY ? STRATA_E_NOMEM : STRATA_E_FORMAT;
    longjmp(e->jmp, 1);
}

static void jpeg_enc_ignore_message(j_common_ptr cinfo, int level)
{
    (void)cinfo;
    (void)level;
}

/* The destination hands libjpeg the free tail of the membuf; when it fills,
 * the whole tail counts as written and the buffer grows. */
static void jpeg_enc_dest_init(j_compress_ptr cinfo)
{
    struct jpeg_enc *e = (struct jpeg_enc *)cinfo->err;
    if (membuf_reserve(&e->out, 16384)) {
        e->status = STRATA_E_NOMEM;
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    }
    e->dest.next_output_byte = e->out.data + e->out.len;
    e->dest.free_in_buffer = e->out.cap - e->out.len;
}

static boolean jpeg_enc_dest_empty(j_compress_ptr cinfo)
{
    struct jpeg_enc *e = (struct jpeg_enc *)cinfo->err;
    e->out.len = e->out.cap; /* libjpeg filled everything it was given */
    if (membuf_reserve(&e->out, e->out.cap)) {
        e->status = STRATA_E_NOMEM;
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    }
    e->dest.next_output_byte = e->out.data + e->out.len;
    e->dest.free_in_buffer = e->out.cap - e->out.len;
    return TRUE;
}

static void jpeg_enc_dest_term(j_compress_ptr cinfo)
{
    struct jpeg_enc *e = (struct jpeg_enc *)cinfo->err;
    e->out.len = e->out.cap - e->dest.free_in_buffer;
}

/* Only `e`, `img` and `quality` are used after setjmp; none is modified. */
static int jpeg_enc_run(struct jpeg_enc *e, const struct image *img, int quality)
{
    struct jpeg_compress_struct *ci = &e->cinfo;
    ci->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = jpeg_enc_error_exit;
    e->pub.emit_message = jpeg_enc_ignore_message;
    e->pub.output_message = jpeg_quiet_output;
    if (setjmp(e->jmp)) {
        jpeg_destroy_compress(ci);
        return e->status ? e->status : STRATA_E_FORMAT;
    }
    jpeg_create_compress(ci);
    e->dest.init_destination = jpeg_enc_dest_init;
    e->dest.empty_output_buffer = jpeg_enc_dest_empty;
    e->dest.term_destination = jpeg_enc_dest_term;
    ci->dest = &e->dest;
    ci->image_width = (JDIMENSION)img->w;
    ci->image_height = (JDIMENSION)img->h;
    ci->input_components = 3;
    ci->in_color_space = JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    jpeg_start_compress(ci, TRUE);
    while (ci->next_scanline < ci->image_height) {
        /* libjpeg takes non-const rows but only reads them. */
        JSAMPROW row = (JSAMPROW)(img->rgb + (size_t)ci->next_scanline * img->w * 3);
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    jpeg_destroy_compress(ci);
    return STRATA_OK;
}

int image_encode_jpeg(const struct image *img, int quality, uint8_t **out, size_t *out_len,
                      char *err)
{
    assert(img && img->rgb && img->w > 0 && img->h > 0 && out && out_len);
    *out = NULL;
    *out_len = 0;
    if (quality < 1 || quality > 100)
        return strata_fail(err, STRATA_E_ARG, "JPEG quality %d is out of range (1 to 100)",
                           quality);
    struct jpeg_enc *e = calloc(1, sizeof *e);
    if (!e)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the JPEG encoder");
    int rc = jpeg_enc_run(e, img, quality);
    if (rc == STRATA_OK) {
        *out = e->out.data;
        *out_len = e->out.len;
    } else {
        free(e->out.data);
        if (rc == STRATA_E_NOMEM)
            strata_fail(err, rc, "out of memory encoding a %dx%d JPEG", img->w, img->h);
        else
            strata_fail(err, rc, "JPEG encoding failed: %s", e->msg);
    }
    free(e);
    return rc;
}

int image_write_file(const char *path, const uint8_t *buf, size_t len, char *err)
{
    assert(path && (buf || len == 0));
    /* Write a sibling temporary and rename it over the target, so a reader
     * never sees half a file and a failed write leaves the old one intact. */
    static unsigned counter;
    unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    if (!tmp)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory writing %s", path);
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return strata_fail(err, STRATA_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    size_t done = 0;
    int e = 0;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return strata_fail(err, STRATA_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return STRATA_OK;
}

/* ---------------------------------------------------------------- resize */

/* Per-axis resampling table: output i reads `count[i]` inputs starting at
 * `start[i]` with weights w[i*taps ...]. Weights of one output sum to 1. */
struct axis {
    int taps;
    int *start, *count;
    float *w;
};

static int axis_taps(int in, int out)
{
    return out >= in ? 2 : (in + out - 1) / out + 1;
}

/* Bilinear, align-corners=false: output centre i+0.5 maps to input
 * coordinate (i+0.5)*in/out - 0.5; beyond the first/last centre the edge
 * pixel is repeated (as PIL and OpenCV INTER_LINEAR do). out == in gives
 * exactly the identity. */
static void axis_bilinear(struct axis *a, int in, int out)
{
    double scale = (double)in / out;
    for (int i = 0; i < out; i++) {
        double s = (i + 0.5) * scale - 0.5;
        int x0 = (int)floor(s);
        double f = s - x0;
        if (x0 < 0) {
            x0 = 0;
            f = 0;
        }
        if (x0 >= in - 1) {
            x0 = in - 1;
            f = 0;
        }
        a->start[i] = x0;
        a->count[i] = f > 0 ? 2 : 1;
        a->w[i * a->taps] = (float)(1 - f);
        a->w[i * a->taps + 1] = (float)f;
    }
}

/* Area averaging: output i covers [i*in/out, (i+1)*in/out) in input pixels.
 * In units of 1/out of an input pixel both ends are integers — output i spans
 * [i*in, (i+1)*in) and input j spans [j*out, (j+1)*out) — so each weight is
 * an exact integer overlap divided by in. */
static void axis_area(struct axis *a, int in, int out)
{
    for (int i = 0; i < out; i++) {
        long long lo = (long long)i * in, hi = lo + in;
        int j0 = (int)(lo / out), j1 = (int)((hi - 1) / out);
        a->start[i] = j0;
        a->count[i] = j1 - j0 + 1;
        assert(a->count[i] <= a->taps);
        for (int j = j0; j <= j1; j++) {
            long long s = (long long)j * out, e = s + out;
            long long ov = (e < hi ? e : hi) - (s > lo ? s : lo);
            a->w[i * a->taps + (j - j0)] = (float)((double)ov / in);
        }
    }
}

static uint8_t round_u8(float v)
{
    v += 0.5f;
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

int image_resize(const struct image *src, int w, int h, struct image *dst, char *err)
{
    assert(src && src->rgb && src->w > 0 && src->h > 0 && dst && dst != src);
    int rc = image_alloc(dst, w, h, err);
    if (rc)
        return rc;
    if (w == src->w && h == src->h) {
        memcpy(dst->rgb, src->rgb, (size_t)w * h * 3);
        return STRATA_OK;
    }
    int sw = src->w, sh = src->h;
    struct axis ax = {.taps = axis_taps(sw, w)}, ay = {.taps = axis_taps(sh, h)};

    /* One block: the two tables, the horizontally resampled rows (sh x w x 3
     * floats) and one accumulator row. */
    size_t tmp_n = (size_t)sh * w * 3, acc_n = (size_t)w * 3;
    size_t wx_n = (size_t)w * ax.taps, wy_n = (size_t)h * ay.taps;
    size_t bytes = (tmp_n + acc_n + wx_n + wy_n) * sizeof(float) +
                   (size_t)(2 * w + 2 * h) * sizeof(int);
    float *block = malloc(bytes);
    if (!block) {
        image_free(dst);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory resizing %dx%d to %dx%d", sw, sh,
                           w, h);
    }
    float *tmp = block, *acc = tmp + tmp_n;
    ax.w = acc + acc_n;
    ay.w = ax.w + wx_n;
    int *ints = (int *)(ay.w + wy_n);
    ax.start = ints;
    ax.count = ax.start + w;
    ay.start = ax.count + w;
    ay.count = ay.start + h;
    if (w >= sw)
        axis_bilinear(&ax, sw, w);
    else
        axis_area(&ax, sw, w);
    if (h >= sh)
        axis_bilinear(&ay, sh, h);
    else
        axis_area(&ay, sh, h);

    /* Horizontal pass over every source row into float rows (unrounded, so
     * the two passes round once). */
    for (int y = 0; y < sh; y++) {
        const uint8_t *srow = src->rgb + (size_t)y * sw * 3;
        float *trow = tmp + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            const uint8_t *p = srow + (size_t)ax.start[x] * 3;
            const float *wt = ax.w + (size_t)x * ax.taps;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < ax.count[x]; k++) {
                r += wt[k] * p[3 * k];
                g += wt[k] * p[3 * k + 1];
                b += wt[k] * p[3 * k + 2];
            }
            trow[3 * x] = r;
            trow[3 * x + 1] = g;
            trow[3 * x + 2] = b;
        }
    }
    /* Vertical pass: whole rows at a time, a contiguous multiply-add the
     * compiler vectorises. */
    for (int y = 0; y < h; y++) {
        const float *wt = ay.w + (size_t)y * ay.taps;
        const float *t0 = tmp + (size_t)ay.start[y] * acc_n;
        for (size_t j = 0; j < acc_n; j++)
            acc[j] = wt[0] * t0[j];
        for (int k = 1; k < ay.count[y]; k++) {
            const float *tk = t0 + (size_t)k * acc_n;
            float wk = wt[k];
            for (size_t j = 0; j < acc_n; j++)
                acc[j] += wk * tk[j];
        }
        uint8_t *drow = dst->rgb + (size_t)y * acc_n;
        for (size_t j = 0; j < acc_n; j++)
            drow[j] = round_u8(acc[j]);
    }
    free(block);
    return STRATA_OK;
}

int image_blur(const struct image *src, float sigma, struct image *dst, char *err)
{
    const int w = src->w, h = src->h;
    int r = (int)ceilf(3 * sigma);
    if (r < 1)
        r = 1;
    int rc = image_alloc(dst, w, h, err);
    float *k = malloc((size_t)(2 * r + 1) * sizeof *k);
    float *tmp = malloc((size_t)w * h * 3 * sizeof *tmp);
    if (rc < 0 || !k || !tmp) {
        free(k);
        free(tmp);
        image_free(dst);
        return rc < 0 ? rc : strata_fail(err, STRATA_E_NOMEM, "out of memory blurring an image");
    }
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = expf(-(float)(i * i) / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] = (float)(k[i] / sum);
    for (int y = 0; y < h; y++) /* along rows */
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float acc = 0;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    acc += k[i + r] * src->rgb[((size_t)y * w + xx) * 3 + c];
                }
                tmp[((size_t)y * w + x) * 3 + c] = acc;
            }
    for (int y = 0; y < h; y++) /* along columns */
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float acc = 0;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    acc += k[i + r] * tmp[((size_t)yy * w + x) * 3 + c];
                }
                dst->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)lrintf(fminf(fmaxf(acc, 0), 255));
            }
    free(k);
    free(tmp);
    return 0;
}
