/* test_safetensors.c — the safetensors reader and writer: bytes written by
 * hand per the format, bit-exact round trips, every malformed header the
 * reader must refuse (with the right code and a message naming the tensor),
 * and no crash on any truncation or single-byte corruption of a valid file. */
#include "check.h"
#include "safetensors.h"

#include <float.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "rng.h"

#define WHAT "test.safetensors"

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* A file from a header text and data_len bytes of data (given, or a ramp). */
static uint8_t *craft(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    uint8_t *buf = malloc(*len);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + i] = data ? ((const uint8_t *)data)[i] : (uint8_t)i;
    return buf;
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The format read from a file assembled byte by byte: the reader must not
 * depend on our writer's layout (here the header is unsorted, unpadded, and
 * the data order is the reverse of the header order). */
TEST(reads_hand_made_file)
{
    const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
                      "\"__metadata__\":{\"id\":\"cats\"},"
                      "\"a\":{\"shape\":[3,1],\"data_offsets\":[0,12],\"dtype\":\"F32\"}}";
    /* 1.0f = 0x3f800000, -2.0f = 0xc0000000, 0.5f = 0x3f000000,
     * 3.0f = 0x40400000, -0.0f = 0x80000000; little-endian. */
    const uint8_t data[20] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f,
                              0, 0, 0x40, 0x40, 0, 0, 0, 0x80};
    size_t len;
    uint8_t *buf = craft(hdr, data, sizeof data, &len);
    struct st_file f;
    char err[STRATA_ERR_LEN] = "";
    int rc = st_parse(&f, buf, len, WHAT, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(f.n, 2);
        CHECK(f.data_len == 20);
        const struct st_tensor *a = st_find(&f, "a"), *b = st_find(&f, "b");
        CHECK(a && b && !st_find(&f, "c"));
        CHECK(st_meta(&f, "id") && strcmp(st_meta(&f, "id"), "cats") == 0);
        CHECK(st_meta(&f, "nope") == NULL);
        if (a && b) {
            CHECK_EQ_INT(a->ndim, 2);
            CHECK(a->shape[0] == 3 && a->shape[1] == 1);
            CHECK(a->begin == 0 && a->end == 12 && b->begin == 12 && b->end == 20);
            struct st_spec want[2] = {{"a", 2, {3, 1}}, {"b", 1, {2}}};
            CHECK_EQ_INT(st_expect_f32(&f, want, 2, WHAT, err), 0);
            float va[3], vb[2];
            st_copy_f32(&f, a, va);
            st_copy_f32(&f, b, vb);
            CHECK(va[0] == 1.0f && va[1] == -2.0f && va[2] == 0.5f);
            CHECK(vb[0] == 3.0f && vb[1] == 0.0f && signbit(vb[1]));
        }
    }
    st_free(&f);
    st_free(&f); /* twice is safe */
    free(buf);
}

/* The writer's exact bytes for a tiny case, worked out by hand: sorted keys
 * (also inside each entry), compact JSON, header padded with spaces to a
 * multiple of 8, data in header order. */
TEST(writes_expected_bytes)
{
    const float a[2] = {1.0f, -2.0f}, z[1] = {0.5f};
    struct st_out t[2] = {{"z", 1, {1}, z}, {"a", 2, {1, 2}, a}};
    const char *mk[1] = {"id"}, *mv[1] = {"m"};
    uint8_t *buf;
    size_t len;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(st_encode_f32(t, 2, mk, mv, 1, &buf, &len, err), 0);
    const char *json = "{\"__metadata__\":{\"id\":\"m\"},"
                       "\"a\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[1,2]},"
                       "\"z\":{\"data_offsets\":[8,12],\"dtype\":\"F32\",\"shape\":[1]}}";
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    CHECK(len == 8 + padded + 12);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    CHECK(hl == padded);
    CHECK(memcmp(buf + 8, json, jl) == 0);
    for (size_t i = jl; i < padded; i++)
        CHECK(buf[8 + i] == ' ');
    const uint8_t data[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f};
    CHECK(memcmp(buf + 8 + padded, data, 12) == 0);
    free(buf);

    /* Two tensors with one name, or a reserved name, are the caller's error. */
    struct st_out dup[2] = {{"x", 1, {1}, z}, {"x", 1, {1}, z}};
    CHECK_EQ_INT(st_encode_f32(dup, 2, NULL, NULL, 0, &buf, &len, err), STRATA_E_ARG);
    CHECK(contains(err, "\"x\""));
    struct st_out res[1] = {{"__metadata__", 1, {1}, z}};
    CHECK_EQ_INT(st_encode_f32(res, 1, NULL, NULL, 0, &buf, &len, err), STRATA_E_ARG);
}

/* Random values salted with the awkward ones: ±0, denormals, the extremes,
 * infinities and NaNs with payloads (compared as bits, never as floats). */
static void fill_awkward(float *v, size_t n, struct rng *r)
{
    static const uint32_t special[] = {
        0x80000000u, 0x00000000u, 0x00000001u, 0x807fffffu, 0x00400000u, 0x7f7fffffu,
        0xff7fffffu, 0x00800000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffbfffffu,
    };
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)rng_next(r);
        if (i < sizeof special / sizeof special[0])
            u = special[i];
        v[i] = bits_to_float(u);
    }
}

TEST(round_trip_bit_identical)
{
    struct rng r;
    rng_seed(&r, 11);
    enum { NT = 5 };
    const char *names[NT] = {"layers.10.kernel", "layers.2.bias", "layers.0.kernel",
                             "layers.2.kernel", "empty"};
    int64_t shapes[NT][4] = {{3, 3, 4, 5}, {7}, {2, 9}, {13, 7}, {0, 3}};
    int ndims[NT] = {4, 1, 2, 2, 2};
    struct st_out out[NT];
    struct st_spec spec[NT];
    float *data[NT];
    size_t counts[NT];
    for (int i = 0; i < NT; i++) {
        size_t c = 1;
        for (int d = 0; d < ndims[i]; d++)
            c *= (size_t)shapes[i][d];
        counts[i] = c;
        data[i] = malloc((c ? c : 1) * sizeof(float));
        fill_awkward(data[i], c, &r);
        out[i] = (struct st_out){names[i], ndims[i], {0}, data[i]};
        spec[i] = (struct st_spec){names[i], ndims[i], {0}};
        memcpy(out[i].shape, shapes[i], sizeof shapes[i]);
        memcpy(spec[i].shape, shapes[i], sizeof shapes[i]);
    }
    char path[] = "/tmp/strata_st_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char err[STRATA_ERR_LEN] = "";
    const char *mk[2] = {"id", "note"}, *mv[2] = {"felines", "ünïcode ok"};
    int rc = st_write_f32(path, out, NT, mk, mv, 2, err);
    CHECK_MSG(rc == 0, "%s", err);

    struct st_file f;
    rc = st_read(&f, path, 1 << 20, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(st_expect_f32(&f, spec, NT, path, err), 0);
        CHECK(strcmp(st_meta(&f, "note"), "ünïcode ok") == 0);
        CHECK(strcmp(st_meta(&f, "id"), "felines") == 0);
        /* Data starts 8-byte aligned in the file. */
        CHECK((f.data - f.owned) % 8 == 0);
        /* Header order is sorted, and offsets follow it. */
        for (int i = 1; i < f.n; i++) {
            CHECK(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
            CHECK(f.tensors[i - 1].end == f.tensors[i].begin);
        }
        for (int i = 0; i < NT; i++) {
            const struct st_tensor *t = st_find(&f, names[i]);
            CHECK(t && t->end - t->begin == counts[i] * 4);
            float *back = malloc((counts[i] ? counts[i] : 1) * sizeof(float));
            if (t)
                st_copy_f32(&f, t, back);
            CHECK_MSG(memcmp(back, data[i], counts[i] * 4) == 0, "tensor %s differs", names[i]);
            free(back);
        }
    }
    st_free(&f);

    /* Re-encoding what was read gives the same bytes. */
    uint8_t *a, *b;
    size_t la, lb;
    CHECK_EQ_INT(st_encode_f32(out, NT, mk, mv, 2, &a, &la, err), 0);
    CHECK_EQ_INT(st_read(&f, path, 1 << 20, err), 0);
    float *copies[NT];
    struct st_out again[NT];
    for (int i = 0; i < NT; i++) {
        copies[i] = malloc((counts[i] ? counts[i] : 1) * sizeof(float));
        st_copy_f32(&f, st_find(&f, names[i]), copies[i]);
        again[NT - 1 - i] = out[i]; /* given in another order */
        again[NT - 1 - i].data = copies[i];
    }
    CHECK_EQ_INT(st_encode_f32(again, NT, mk, mv, 2, &b, &lb, err), 0);
    CHECK(la == lb && memcmp(a, b, la) == 0);
    st_free(&f);
    free(a);
    free(b);
    for (int i = 0; i < NT; i++) {
        free(data[i]);
        free(copies[i]);
    }
    unlink(path);
}

struct bad_case {
    const char *label;
    const char *header;
    size_t data_len;
    int code;
    const char *needles[3];
};

/* The expectation every case is checked against: w F32 [2, 3] (24 bytes) and
 * b F32 [3] (12 bytes). */
static const struct st_spec expect_wb[2] = {{"w", 2, {2, 3}}, {"b", 1, {3}}};

#define HDR_W "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define HDR_B "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

static const struct bad_case bad_cases[] = {
    {"duplicate tensor", "{" HDR_W "," HDR_B "," HDR_W "}", 36, STRATA_E_FORMAT,
     {"\"w\"", "twice"}},
    {"missing tensor", "{" HDR_W "}", 24, STRATA_E_FORMAT, {"\"b\"", "missing", "[3]"}},
    {"wrong dtype", "{" HDR_W ",\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]}}",
     30, STRATA_E_UNSUPPORTED, {"\"b\"", "F16", "F32"}},
    {"unknown dtype", "{" HDR_W ",\"b\":{\"dtype\":\"F33\",\"shape\":[3],\"data_offsets\":[24,36]}}",
     36, STRATA_E_FORMAT, {"\"b\"", "dtype"}},
    {"dtype not a string", "{" HDR_W ",\"b\":{\"dtype\":4,\"shape\":[3],\"data_offsets\":[24,36]}}",
     36, STRATA_E_FORMAT, {"\"b\"", "dtype"}},
    {"missing dtype", "{" HDR_W ",\"b\":{\"shape\":[3],\"data_offsets\":[24,36]}}", 36,
     STRATA_E_FORMAT, {"\"b\"", "missing dtype"}},
    {"wrong shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," HDR_B "}",
     36, STRATA_E_FORMAT, {"\"w\"", "[3, 2]", "expected [2, 3]"}},
    {"wrong rank", "{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}," HDR_B "}",
     36, STRATA_E_FORMAT, {"\"w\"", "[6]", "expected [2, 3]"}},
    {"offsets reversed", "{" HDR_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[36,24]}}",
     36, STRATA_E_FORMAT, {"\"b\"", "not in order"}},
    {"offsets overlap", "{" HDR_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]}}",
     36, STRATA_E_FORMAT, {"\"b\"", "overlap", "\"w\""}},
    {"offsets out of range", "{" HDR_W "," HDR_B "}", 30, STRATA_E_FORMAT,
     {"\"b\"", "past the end", "30 bytes"}},
    {"gap in the data", "{" HDR_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[28,40]}}",
     40, STRATA_E_FORMAT, {"\"b\"", "no tensor", "[24, 28)"}},
    {"data size vs shape", "{" HDR_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,32]}}",
     32, STRATA_E_FORMAT, {"\"b\"", "span 8 bytes", "needs 12"}},
    {"unexpected tensor",
     "{" HDR_W "," HDR_B ",\"zzz\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}", 40,
     STRATA_E_FORMAT, {"unexpected tensor \"zzz\""}},
    {"trailing bytes", "{" HDR_W "," HDR_B "}", 40, STRATA_E_FORMAT,
     {"4 trailing bytes", "\"b\""}},
    {"trailing bytes, no tensor", "{}", 4, STRATA_E_FORMAT, {"4 trailing bytes"}},
    {"unknown field", "{" HDR_W ",\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36],"
     "\"stride\":1}}", 36, STRATA_E_FORMAT, {"\"b\"", "unknown field \"stride\""}},
    {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}," HDR_B "}",
     36, STRATA_E_FORMAT, {"\"w\"", "shape[0]"}},
    {"real dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3.0],\"data_offsets\":[0,24]}," HDR_B "}",
     36, STRATA_E_FORMAT, {"\"w\"", "shape[1]"}},
    {"too many dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],"
     "\"data_offsets\":[0,24]}," HDR_B "}", 36, STRATA_E_FORMAT, {"\"w\"", "at most 8"}},
    {"huge shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
     "\"data_offsets\":[0,24]}," HDR_B "}", 36, STRATA_E_FORMAT, {"\"w\"", "too large"}},
    {"offsets not a pair", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0]}," HDR_B
     "}", 36, STRATA_E_FORMAT, {"\"w\"", "data_offsets"}},
    {"negative offset", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[-24,0]}," HDR_B
     "}", 36, STRATA_E_FORMAT, {"\"w\"", "data_offsets"}},
    {"missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}," HDR_B "}", 36,
     STRATA_E_FORMAT, {"\"w\"", "missing data_offsets"}},
    {"entry not an object", "{\"w\":[1,2]," HDR_B "}", 36, STRATA_E_FORMAT, {"\"w\"", "object"}},
    {"metadata not strings", "{\"__metadata__\":{\"epochs\":3}," HDR_W "," HDR_B "}", 36,
     STRATA_E_FORMAT, {"__metadata__.epochs", "string"}},
    {"metadata not an object", "{\"__metadata__\":\"x\"," HDR_W "," HDR_B "}", 36,
     STRATA_E_FORMAT, {"__metadata__"}},
    {"header not JSON", "{\"w\":{\"dtype\":", 0, STRATA_E_FORMAT, {"not valid JSON"}},
    {"header an array", "[1,2,3]", 0, STRATA_E_FORMAT, {"not a JSON object"}},
    {"empty header", "", 0, STRATA_E_FORMAT, {"not valid JSON"}},
};

TEST(malformed_files_are_refused)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len;
        uint8_t *buf = craft(c->header, NULL, c->data_len, &len);
        struct st_file f;
        char err[STRATA_ERR_LEN] = "";
        int rc = st_parse(&f, buf, len, WHAT, err);
        if (rc == 0) {
            rc = st_expect_f32(&f, expect_wb, 2, WHAT, err);
            st_free(&f);
        }
        if (getenv("ST_VERBOSE")) printf("# %s\n", err);
        CHECK_MSG(rc == c->code, "%s: got %s (%s), expected %s", c->label,
                  strata_status_name(rc), err, strata_status_name(c->code));
        CHECK_MSG(strncmp(err, WHAT ": ", strlen(WHAT) + 2) == 0, "%s: %s", c->label, err);
        for (int k = 0; k < 3 && c->needles[k]; k++)
            CHECK_MSG(contains(err, c->needles[k]), "%s: '%s' not in: %s", c->label,
                      c->needles[k], err);
        CHECK(f.n == 0 && f.tensors == NULL); /* emptied on failure */
        free(buf);
    }
    /* And the valid file these cases are variations of passes. */
    size_t len;
    uint8_t *buf = craft("{" HDR_W "," HDR_B "}", NULL, 36, &len);
    struct st_file f;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(st_parse(&f, buf, len, WHAT, err), 0);
    CHECK_EQ_INT(st_expect_f32(&f, expect_wb, 2, WHAT, err), 0);
    st_free(&f);
    free(buf);
}

TEST(header_length_checked_first)
{
    struct st_file f;
    char err[STRATA_ERR_LEN] = "";
    uint8_t small[5] = {1, 0, 0, 0, 0};
    CHECK_EQ_INT(st_parse(&f, small, sizeof small, WHAT, err), STRATA_E_FORMAT);
    CHECK(contains(err, "too short"));

    /* 100 MB + 1: refused as a limit before anything else is looked at. */
    uint8_t big[16] = {0};
    uint64_t hl = ST_HEADER_MAX + 1;
    for (int i = 0; i < 8; i++)
        big[i] = (uint8_t)(hl >> (8 * i));
    CHECK_EQ_INT(st_parse(&f, big, sizeof big, WHAT, err), STRATA_E_LIMIT);
    CHECK(contains(err, "header length"));

    /* All ones: the largest possible length; must not wrap around. */
    memset(big, 0xff, 8);
    CHECK_EQ_INT(st_parse(&f, big, sizeof big, WHAT, err), STRATA_E_LIMIT);

    /* Longer than the file. */
    memset(big, 0, sizeof big);
    big[0] = 9;
    memcpy(big + 8, "{}      ", 8);
    CHECK_EQ_INT(st_parse(&f, big, sizeof big, WHAT, err), STRATA_E_FORMAT);
    CHECK(contains(err, "runs past the end"));
}

TEST(read_file_limits)
{
    struct st_file f;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(st_read(&f, "/nonexistent/strata/w.safetensors", 1000, err), STRATA_E_NOTFOUND);
    CHECK(contains(err, "/nonexistent/strata/w.safetensors"));

    char path[] = "/tmp/strata_st_XXXXXX";
    int fd = mkstemp(path);
    size_t len;
    uint8_t *buf = craft("{" HDR_W "," HDR_B "}", NULL, 36, &len);
    CHECK(write(fd, buf, len) == (ssize_t)len);
    close(fd);
    CHECK_EQ_INT(st_read(&f, path, len - 1, err), STRATA_E_LIMIT);
    CHECK(contains(err, path));
    CHECK_EQ_INT(st_read(&f, path, len, err), 0);
    CHECK(f.owned && f.n == 2);
    st_free(&f);
    CHECK_EQ_INT(st_read(&f, "/tmp", 1000, err), STRATA_E_IO);
    free(buf);
    unlink(path);
}

/* Every prefix of a valid file fails cleanly (each is an exact-size heap
 * copy, so the sanitizer build sees any read past the end). */
TEST(every_truncation_fails_cleanly)
{
    float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, -2, -3};
    struct st_out t[2] = {{"w", 2, {2, 3}, w}, {"b", 1, {3}, b}};
    const char *mk[1] = {"id"}, *mv[1] = {"x"};
    uint8_t *full;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(st_encode_f32(t, 2, mk, mv, 1, &full, &len, err), 0);
    int failures = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, full, cut);
        struct st_file f;
        err[0] = 0;
        int rc = st_parse(&f, p, cut, WHAT, err);
        failures += rc == STRATA_E_FORMAT && err[0] != 0;
        if (rc == 0)
            st_free(&f);
        free(p);
    }
    CHECK_EQ_INT(failures, (long long)len);
    free(full);
}

/* Any single corrupted byte in the header either fails with a message or
 * still describes a data section the parse result stays inside. */
TEST(corrupted_bytes_never_crash)
{
    float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, -2, -3};
    struct st_out t[2] = {{"w", 2, {2, 3}, w}, {"b", 1, {3}, b}};
    uint8_t *full;
    size_t len;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(st_encode_f32(t, 2, NULL, NULL, 0, &full, &len, err), 0);
    const uint8_t values[] = {0, '{', '}', '"', '[', ']', ',', ':', '0', '9', '-', 'e', ' ', 0xff};
    size_t header_end = len - 36;
    int parsed = 0, refused = 0;
    for (size_t pos = 0; pos < header_end; pos++) {
        for (size_t k = 0; k < sizeof values; k++) {
            uint8_t *p = malloc(len);
            memcpy(p, full, len);
            p[pos] = values[k];
            struct st_file f;
            err[0] = 0;
            int rc = st_parse(&f, p, len, WHAT, err);
            if (rc == 0) {
                parsed++;
                size_t total = 0;
                for (int i = 0; i < f.n; i++) {
                    CHECK(f.tensors[i].end <= f.data_len);
                    total += f.tensors[i].end - f.tensors[i].begin;
                }
                CHECK(total == f.data_len);
                CHECK(f.data + f.data_len == p + len);
                st_free(&f);
            } else {
                refused++;
                CHECK(rc < 0 && err[0] != 0);
            }
            free(p);
        }
    }
    CHECK(refused > 0 && parsed > 0); /* e.g. a digit changed in a spacer is harmless */
    free(full);
}

int main(void)
{
    RUN(reads_hand_made_file);
    RUN(writes_expected_bytes);
    RUN(round_trip_bit_identical);
    RUN(malformed_files_are_refused);
    RUN(header_length_checked_first);
    RUN(read_file_limits);
    RUN(every_truncation_fails_cleanly);
    RUN(corrupted_bytes_never_crash);
    return check_done();
}
