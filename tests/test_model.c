/* test_model.c — strata's own models: model.json parsing with shapes worked
 * out by hand, every validation error naming its file and JSON path (layers
 * that name their inputs among them), a forward pass on the graph the model
 * runs on (model_forward) checked layer by layer against hand-computed
 * values (and a weight change reaching it once the graph is rebuilt), the
 * gradient that a training step on that graph (train_graph_backward) gives
 * every trainable tensor against central finite differences of the same
 * loss (train_graph_forward), with batch statistics and with the running
 * ones — for a chain with relu and max-pool, and for a model of residual
 * adds and concats whose values are read several times — weights saved and
 * loaded bit-identical, input normalisation, and the workspace's layout. */
#include "check.h"
#include "graph.h"
#include "model.h"
#include "model_graph.h"
#include "train_graph.h"

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static struct shape sh(int h, int w, int c)
{
    return (struct shape){h, w, c};
}

static int same_shape(struct shape a, struct shape b)
{
    return a.h == b.h && a.w == b.w && a.c == b.c;
}

/* Every layer type, with defaults left out where the format allows. */
static const char *big_json =
    "{\"title\": \"Big cats\", \"description\": \"shapes\","
    " \"input\": {\"height\": 150, \"width\": 150, \"channels\": 3},"
    " \"normalization\": {\"mean\": [0.5, 0.4, 0.3], \"std\": [0.25, 0.2, 0.1]},"
    " \"classes\": [\"cheetah\", \"jaguar\", \"leopard\"],"
    " \"layers\": ["
    "  {\"type\": \"conv2d\", \"filters\": 32, \"kernel_size\": 3},"
    "  {\"type\": \"maxpool2d\"},"
    "  {\"type\": \"conv2d\", \"name\": \"c2\", \"filters\": 64, \"kernel_size\": 3,"
    "   \"strides\": 2, \"padding\": \"same\", \"activation\": \"relu\"},"
    "  {\"type\": \"batch_norm\", \"activation\": \"relu\"},"
    "  {\"type\": \"maxpool2d\", \"pool_size\": 3, \"strides\": 2, \"padding\": \"valid\"},"
    "  {\"type\": \"dropout\", \"rate\": 0.25},"
    "  {\"type\": \"conv2d\", \"filters\": 16, \"kernel_size\": 1, \"use_bias\": false},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool2d\", \"pool_size\": 2, \"padding\": \"same\"},"
    "  {\"type\": \"flatten\"},"
    "  {\"type\": \"dense\", \"units\": 10, \"activation\": \"relu\"},"
    "  {\"type\": \"sigmoid\"},"
    "  {\"type\": \"dense\", \"units\": 3},"
    "  {\"type\": \"softmax\", \"name\": \"probs\"}"
    " ],"
    " \"training\": {\"epochs\": 3, \"optimizer\": \"adam\"}}";

TEST(parse_shapes_defaults_and_slab)
{
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, big_json, "models/felines-seed/model.json", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK(strcmp(m.id, "felines-seed") == 0);     /* the folder name */
    CHECK(strcmp(m.dataset, "felines") == 0);     /* the id without -seed */
    CHECK(strcmp(m.title, "Big cats") == 0);
    CHECK(m.dir[0] == 0);
    CHECK(same_shape(m.input, sh(150, 150, 3)));
    CHECK(m.mean[1] == 0.4f && m.std[2] == 0.1f);
    CHECK_EQ_INT(m.n_classes, 3);
    CHECK_EQ_INT(model_class_index(&m, "leopard"), 2);
    CHECK_EQ_INT(model_class_index(&m, "lion"), -1);
    CHECK(json_object_get(m.json, "training") != NULL);
    CHECK(json_is_string(json_object_get(m.json, "description")));

    /* By hand: 150 -conv3 valid-> 148 -pool2-> 74 -conv3 same stride 2-> 37
     * -bn-> 37 -pool3 stride 2 valid-> (37-3)/2+1 = 18 -dropout-> 18 -conv1->
     * 18 -relu-> 18 -pool2 same-> ceil(18/2) = 9 -flatten-> 9·9·16 = 1296. */
    struct shape want[14] = {sh(148, 148, 32), sh(74, 74, 32), sh(37, 37, 64), sh(37, 37, 64),
                             sh(18, 18, 64),   sh(18, 18, 64), sh(18, 18, 16), sh(18, 18, 16),
                             sh(9, 9, 16),     sh(1, 1, 1296), sh(1, 1, 10),   sh(1, 1, 10),
                             sh(1, 1, 3),      sh(1, 1, 3)};
    CHECK_EQ_INT(m.n_layers, 14);
    for (int i = 0; i < m.n_layers && i < 14; i++) {
        char a[32], b[32];
        CHECK_MSG(same_shape(m.layers[i].out, want[i]), "layer %d: %s, expected %s", i,
                  shape_format(m.layers[i].out, a, sizeof a), shape_format(want[i], b, sizeof b));
        if (i)
            CHECK(same_shape(m.layers[i].in, m.layers[i - 1].out));
    }
    CHECK(same_shape(m.layers[0].in, m.input));
    /* Defaults. */
    CHECK(strcmp(m.layers[0].cfg.name, "conv2d_0") == 0);
    CHECK(strcmp(m.layers[2].cfg.name, "c2") == 0);
    CHECK(strcmp(m.layers[13].cfg.name, "probs") == 0);
    CHECK(strcmp(m.layers[9].cfg.name, "flatten_9") == 0);
    CHECK_EQ_INT(m.layers[0].cfg.stride, 1);
    CHECK_EQ_INT(m.layers[0].cfg.padding, PADDING_VALID);
    CHECK_EQ_INT(m.layers[0].cfg.activation, ACT_NONE);
    CHECK_EQ_INT(m.layers[0].cfg.use_bias, 1);
    CHECK_EQ_INT(m.layers[1].cfg.pool, 2);
    CHECK_EQ_INT(m.layers[1].cfg.stride, 2);      /* = pool_size */
    CHECK_EQ_INT(m.layers[2].cfg.activation, ACT_RELU);
    CHECK_NEAR(m.layers[3].cfg.epsilon, 0.001, 1e-9);
    CHECK_NEAR(m.layers[3].cfg.momentum, 0.99, 1e-7);
    CHECK_NEAR(m.layers[5].cfg.rate, 0.25, 0);
    CHECK_EQ_INT(m.layers[6].cfg.use_bias, 0);

    /* Parameters: conv 3·3·3·32+32 = 896, conv 3·3·32·64+64 = 18496,
     * bn 4·64 = 256 (128 trainable), conv 1·1·64·16 = 1024 (no bias),
     * dense 1296·10+10 = 12970, dense 10·3+3 = 33. */
    CHECK(m.n_params == 896 + 18496 + 256 + 1024 + 12970 + 33);
    CHECK(model_trainable_count(&m) == m.n_params - 128);
    /* The slab is laid out layer by layer, tensors in params() order. */
    CHECK(m.layers[0].w.kernel == m.params);
    CHECK(m.layers[0].w.bias == m.params + 864);
    CHECK(m.layers[2].w.kernel == m.params + 896);
    CHECK(m.layers[3].w.gamma == m.params + 896 + 18496);
    CHECK(m.layers[3].w.beta == m.layers[3].w.gamma + 64);
    CHECK(m.layers[3].w.moving_mean == m.layers[3].w.beta + 64);
    CHECK(m.layers[3].w.moving_var == m.layers[3].w.moving_mean + 64);
    CHECK(m.layers[6].w.kernel == m.layers[3].w.moving_var + 64 && !m.layers[6].w.bias);
    CHECK(m.layers[12].w.bias + 3 == m.params + m.n_params);
    CHECK(m.layers[1].w.kernel == NULL && m.layers[9].w.kernel == NULL);
    CHECK(m.graph == NULL); /* built when a workspace first needs it */
    model_free(&m);
    CHECK(m.layers == NULL && m.params == NULL && m.json == NULL);
    model_free(&m); /* twice is safe */
}

/* A GAP layer, an id given in the JSON, normalisation defaults. */
TEST(parse_gap_and_explicit_id)
{
    const char *text =
        "{\"id\": \"paysages\", \"dataset\": \"landscapes\","
        " \"input\": {\"height\": 20, \"width\": 12},"
        " \"classes\": [\"sea\", \"forest\"],"
        " \"layers\": [{\"type\": \"conv2d\", \"filters\": 5, \"kernel_size\": 5,"
        "   \"strides\": 3, \"padding\": \"same\"},"
        "  {\"type\": \"global_avg_pool\"},"
        "  {\"type\": \"dense\", \"units\": 2, \"activation\": \"softmax\"}]}";
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "/some/where/model.json", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK(strcmp(m.id, "paysages") == 0 && strcmp(m.title, "paysages") == 0);
    CHECK(strcmp(m.dataset, "landscapes") == 0);
    CHECK(same_shape(m.input, sh(20, 12, 3)));
    CHECK(m.mean[0] == 0 && m.mean[2] == 0 && m.std[0] == 1 && m.std[1] == 1);
    /* same, stride 3: ceil(20/3) = 7, ceil(12/3) = 4. */
    CHECK(same_shape(m.layers[0].out, sh(7, 4, 5)));
    CHECK(same_shape(m.layers[1].out, sh(1, 1, 5)));
    CHECK(same_shape(m.layers[2].out, sh(1, 1, 2)));
    CHECK(m.n_params == 5 * 5 * 3 * 5 + 5 + 5 * 2 + 2);
    model_free(&m);
}

struct bad_json {
    const char *label;
    const char *text;
    int code;
    const char *needles[2];
};

#define IN "\"input\": {\"height\": 8, \"width\": 8, \"channels\": 3}"
#define CL "\"classes\": [\"a\", \"b\"]"
#define OUT "{\"type\": \"dense\", \"units\": 2}"
/* A model whose only difference from a valid one is its layers. */
#define WITH_LAYERS(...) "{" IN ", " CL ", \"layers\": [" __VA_ARGS__ "]}"

static const struct bad_json bad_jsons[] = {
    {"unknown layer type", WITH_LAYERS("{\"type\": \"conv3d\", \"filters\": 2}, " OUT),
     STRATA_E_UNSUPPORTED, {"layers[0].type:", "conv3d"}},
    {"missing type", WITH_LAYERS("{\"filters\": 2}, " OUT), STRATA_E_ARG,
     {"layers[0].type:", "missing"}},
    {"missing filters", WITH_LAYERS("{\"type\": \"conv2d\", \"kernel_size\": 3}, " OUT),
     STRATA_E_ARG, {"layers[0].filters:", "missing"}},
    {"missing kernel_size", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 3}, " OUT),
     STRATA_E_ARG, {"layers[0].kernel_size:", "missing"}},
    {"missing units", WITH_LAYERS("{\"type\": \"flatten\"}, {\"type\": \"dense\"}"),
     STRATA_E_ARG, {"layers[1].units:", "missing"}},
    {"bad padding", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 2, \"kernel_size\": 3,"
                                " \"padding\": \"full\"}, " OUT),
     STRATA_E_ARG, {"layers[0].padding:", "\"same\""}},
    {"unknown layer key", WITH_LAYERS("{\"type\": \"flatten\"}, {\"type\": \"dense\","
                                      " \"units\": 2, \"unit\": 2}"),
     STRATA_E_ARG, {"layers[1].unit:", "unknown key"}},
    {"key of another type", WITH_LAYERS("{\"type\": \"maxpool2d\", \"activation\": \"relu\"}, "
                                        OUT),
     STRATA_E_ARG, {"layers[0].activation:", "maxpool2d"}},
    {"unknown top-level key", "{" IN ", " CL ", \"clases\": [], \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"clases: unknown key"}},
    {"class count vs units", WITH_LAYERS("{\"type\": \"dense\", \"units\": 3}"), STRATA_E_ARG,
     {"layers[0].units:", "3 values"}},
    {"class count vs conv", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 2, \"kernel_size\": 1}"),
     STRATA_E_ARG, {"layers[0]:", "2 classes"}},
    {"duplicate names", WITH_LAYERS("{\"type\": \"flatten\", \"name\": \"x\"},"
                                    " {\"type\": \"dense\", \"units\": 2, \"name\": \"x\"}"),
     STRATA_E_ARG, {"layers[1].name:", "\"x\""}},
    {"name clashes with a default", WITH_LAYERS("{\"type\": \"flatten\", \"name\": \"dense_1\"},"
                                                " {\"type\": \"dense\", \"units\": 2}"),
     STRATA_E_ARG, {"layers[1].name:", "dense_1"}},
    {"name too long", WITH_LAYERS("{\"type\": \"flatten\", \"name\": "
                                  "\"a123456789012345678901234567890123456789012345678\"}, " OUT),
     STRATA_E_ARG, {"layers[0].name:", "string"}},
    {"filters zero", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 0, \"kernel_size\": 3}, "
                                 OUT),
     STRATA_E_ARG, {"layers[0].filters:", "positive integer"}},
    {"filters a string", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": \"8\","
                                     " \"kernel_size\": 3}, " OUT),
     STRATA_E_ARG, {"layers[0].filters:", "positive integer"}},
    {"filters a real", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 8.5,"
                                   " \"kernel_size\": 3}, " OUT),
     STRATA_E_ARG, {"layers[0].filters:", "positive integer"}},
    {"kernel larger than input", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 2,"
                                             " \"kernel_size\": 9}, " OUT),
     STRATA_E_ARG, {"layers[0]:", "kernel_size"}},
    {"unknown activation", WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 2,"
                                       " \"kernel_size\": 3, \"activation\": \"tanh\"}, " OUT),
     STRATA_E_UNSUPPORTED, {"layers[0].activation:", "tanh"}},
    {"use_bias not boolean", WITH_LAYERS("{\"type\": \"flatten\"}, {\"type\": \"dense\","
                                         " \"units\": 2, \"use_bias\": 1}"),
     STRATA_E_ARG, {"layers[1].use_bias:", "true or false"}},
    {"dropout rate 1", WITH_LAYERS("{\"type\": \"dropout\", \"rate\": 1}, " OUT), STRATA_E_ARG,
     {"layers[0].rate:", "rate < 1"}},
    {"dropout without rate", WITH_LAYERS("{\"type\": \"dropout\"}, " OUT), STRATA_E_ARG,
     {"layers[0].rate:", "missing"}},
    {"momentum over 1", WITH_LAYERS("{\"type\": \"batch_norm\", \"momentum\": 1.5}, " OUT),
     STRATA_E_ARG, {"layers[0].momentum:", "[0, 1]"}},
    {"epsilon zero", WITH_LAYERS("{\"type\": \"batch_norm\", \"epsilon\": 0}, " OUT),
     STRATA_E_ARG, {"layers[0].epsilon:", "number"}},
    {"layer not an object", WITH_LAYERS("\"conv2d\", " OUT), STRATA_E_ARG, {"layers[0]:"}},
    {"no layers", WITH_LAYERS(""), STRATA_E_ARG, {"layers:", "1 to 64"}},
    {"layers missing", "{" IN ", " CL "}", STRATA_E_ARG, {"layers:", "missing"}},
    {"channels 1", "{\"input\": {\"height\": 8, \"width\": 8, \"channels\": 1}, " CL
                   ", \"layers\": [" OUT "]}",
     STRATA_E_UNSUPPORTED, {"input.channels:", "RGB"}},
    {"height zero", "{\"input\": {\"height\": 0, \"width\": 8}, " CL ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"input.height:", "positive integer"}},
    {"width missing", "{\"input\": {\"height\": 8}, " CL ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"input.width:", "missing"}},
    {"input key typo", "{\"input\": {\"height\": 8, \"widht\": 8}, " CL ", \"layers\": [" OUT
                       "]}",
     STRATA_E_ARG, {"input.widht:", "unknown key"}},
    {"input missing", "{" CL ", \"layers\": [" OUT "]}", STRATA_E_ARG, {"input:", "missing"}},
    {"std zero", "{" IN ", \"normalization\": {\"std\": [1, 0, 1]}, " CL ", \"layers\": [" OUT
                 "]}",
     STRATA_E_ARG, {"normalization.std[1]:", "positive"}},
    {"mean of two", "{" IN ", \"normalization\": {\"mean\": [0.5, 0.5]}, " CL
                    ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"normalization.mean:", "3 numbers"}},
    {"normalization typo", "{" IN ", \"normalization\": {\"stdev\": [1, 1, 1]}, " CL
                           ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"normalization.stdev:", "unknown key"}},
    {"duplicate class", "{" IN ", \"classes\": [\"a\", \"a\"], \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"classes[1]:", "\"a\""}},
    {"class not a string", "{" IN ", \"classes\": [\"a\", 2], \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"classes[1]:", "string"}},
    {"classes missing", "{" IN ", \"layers\": [" OUT "]}", STRATA_E_ARG, {"classes:", "missing"}},
    {"bad id", "{\"id\": \"../etc\", " IN ", " CL ", \"layers\": [" OUT "]}", STRATA_E_ARG,
     {"id:", "letters"}},
    {"title not a string", "{\"title\": 3, " IN ", " CL ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"title:", "string"}},
    {"description not a string", "{\"description\": [], " IN ", " CL ", \"layers\": [" OUT
                                 "]}",
     STRATA_E_ARG, {"description:", "string"}},
    {"training not an object", "{\"training\": 3, " IN ", " CL ", \"layers\": [" OUT "]}",
     STRATA_E_ARG, {"training:", "object"}},
    {"invalid JSON", "{" IN ", " CL ", \"layers\": [" OUT "}", STRATA_E_FORMAT,
     {"invalid JSON", "line 1"}},
    {"duplicate key", "{" IN ", " CL ", " CL ", \"layers\": [" OUT "]}", STRATA_E_FORMAT,
     {"duplicate", "classes"}},
    {"top level array", "[1, 2]", STRATA_E_FORMAT, {"JSON object"}},
    /* layers that name their inputs */
    {"add without inputs", WITH_LAYERS("{\"type\": \"add\"}, {\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[0].inputs:", "missing"}},
    {"add of one input", WITH_LAYERS("{\"type\": \"add\", \"inputs\": [\"input\"]}, "
                                     "{\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[0].inputs:", "2 to 8"}},
    {"a conv with two inputs",
     WITH_LAYERS("{\"type\": \"conv2d\", \"name\": \"c\", \"filters\": 3, \"kernel_size\": 1}, "
                 "{\"type\": \"conv2d\", \"filters\": 3, \"kernel_size\": 1, "
                 "\"inputs\": [\"c\", \"input\"]}, {\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[1].inputs:", "1 name"}},
    {"input not yet defined",
     WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 3, \"kernel_size\": 1, "
                 "\"inputs\": [\"later\"]}, {\"type\": \"flatten\", \"name\": \"later\"}, " OUT),
     STRATA_E_ARG, {"layers[0].inputs[0]:", "\"later\" is not the name of an earlier layer"}},
    {"inputs not a list", WITH_LAYERS("{\"type\": \"flatten\", \"inputs\": \"input\"}, " OUT),
     STRATA_E_ARG, {"layers[0].inputs:", "array"}},
    {"add of two shapes",
     WITH_LAYERS("{\"type\": \"conv2d\", \"name\": \"c\", \"filters\": 4, \"kernel_size\": 1}, "
                 "{\"type\": \"add\", \"inputs\": [\"c\", \"input\"]}, {\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[1]:", "input 2 is 8x8x3"}},
    {"concat of two sizes",
     WITH_LAYERS("{\"type\": \"maxpool2d\", \"name\": \"p\"}, "
                 "{\"type\": \"concat\", \"inputs\": [\"p\", \"input\"]}, {\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[1]:", "one height and width"}},
    {"a layer nothing reads",
     WITH_LAYERS("{\"type\": \"conv2d\", \"name\": \"lost\", \"filters\": 3, \"kernel_size\": 1}, "
                 "{\"type\": \"flatten\", \"inputs\": [\"input\"]}, " OUT),
     STRATA_E_ARG, {"layers[0]:", "no later layer reads \"lost\""}},
    {"groups that do not divide the channels",
     WITH_LAYERS("{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 1, \"groups\": 2}, "
                 "{\"type\": \"flatten\"}, " OUT),
     STRATA_E_ARG, {"layers[0]:", "groups is 2; it must divide both the 3 input channels"}},
    {"groups on a dense layer",
     WITH_LAYERS("{\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 2, \"groups\": 2}"),
     STRATA_E_ARG, {"layers[1].groups:", "unknown key"}},
    {"a convolution over a flat vector",
     WITH_LAYERS("{\"type\": \"global_avg_pool\", \"name\": \"g\"}, "
                 "{\"type\": \"conv2d\", \"filters\": 2, \"kernel_size\": 1}, "
                 "{\"type\": \"flatten\"}"),
     STRATA_E_ARG, {"layers[1]:", "conv2d needs a feature map, but \"g\" gives a flat vector"}},
    {"a layer named input",
     WITH_LAYERS("{\"type\": \"flatten\", \"name\": \"input\"}, " OUT),
     STRATA_E_ARG, {"layers[0].name:", "\"input\" names the image"}},
};

TEST(validation_errors_name_the_field)
{
    const char *what = "models/t/model.json";
    for (size_t i = 0; i < sizeof bad_jsons / sizeof bad_jsons[0]; i++) {
        const struct bad_json *c = &bad_jsons[i];
        struct model m;
        memset(&m, 0xa5, sizeof m); /* parse must not depend on a zeroed struct */
        char err[STRATA_ERR_LEN] = "";
        int rc = model_parse_json(&m, c->text, what, err);
        if (getenv("MODEL_VERBOSE"))
            printf("# %s\n", err);
        CHECK_MSG(rc == c->code, "%s: got %s (%s), expected %s", c->label,
                  strata_status_name(rc), err, strata_status_name(c->code));
        CHECK_MSG(strncmp(err, "models/t/model.json: ", 21) == 0, "%s: %s", c->label, err);
        for (int k = 0; k < 2 && c->needles[k]; k++)
            CHECK_MSG(contains(err, c->needles[k]), "%s: '%s' not in: %s", c->label,
                      c->needles[k], err);
        /* A failed parse leaves nothing allocated behind. */
        CHECK(m.layers == NULL && m.classes == NULL && m.params == NULL && m.json == NULL);
        if (rc == 0)
            model_free(&m);
    }
    /* The base the cases vary is itself valid. */
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(model_parse_json(&m, WITH_LAYERS("{\"type\": \"flatten\"}, " OUT), what, err), 0);
    model_free(&m);
}

/* ---- forward ------------------------------------------------------------- */

/* The 4×4×3 test image: channel 0 counts 0..15 row by row, channel 1 is 1,
 * channel 2 is x − y. sign flips channel 0 for the batch's second sample. */
static void tiny_image(float *x, float sign)
{
    for (int y = 0; y < 4; y++)
        for (int xx = 0; xx < 4; xx++) {
            float *p = x + (y * 4 + xx) * 3;
            p[0] = sign * (float)(y * 4 + xx);
            p[1] = 1.0f;
            p[2] = (float)(xx - y);
        }
}

TEST(forward_hand_computed)
{
    const char *text =
        "{\"input\": {\"height\": 4, \"width\": 4, \"channels\": 3},"
        " \"classes\": [\"yes\", \"no\"],"
        " \"layers\": [{\"type\": \"conv2d\", \"filters\": 2, \"kernel_size\": 3},"
        "  {\"type\": \"relu\"}, {\"type\": \"global_avg_pool\"},"
        "  {\"type\": \"dense\", \"units\": 2}, {\"type\": \"softmax\"}]}";
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "tiny", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    /* Kernel HWIO [3][3][3][2]. Filter 0: the centre of channel 0 plus twice
     * the top-right of channel 0, bias −5. Filter 1: −0.5 × every channel-1
     * value, plus the centre and the bottom-left of channel 2, bias 5. */
    float *k = m.layers[0].w.kernel;
#define KI(ky, kx, ci, f) ((((ky) * 3 + (kx)) * 3 + (ci)) * 2 + (f))
    k[KI(1, 1, 0, 0)] = 1.0f;
    k[KI(0, 2, 0, 0)] = 2.0f;
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            k[KI(ky, kx, 1, 1)] = -0.5f;
    k[KI(1, 1, 2, 1)] = 1.0f;
    k[KI(2, 0, 2, 1)] = 1.0f;
    m.layers[0].w.bias[0] = -5.0f;
    m.layers[0].w.bias[1] = 5.0f;
    /* Dense kernel [in 2][units 2]. */
    float *d = m.layers[3].w.kernel;
    d[0] = 0.1f, d[1] = -0.2f, d[2] = 2.0f, d[3] = 4.0f;
    m.layers[3].w.bias[0] = 0.3f;
    m.layers[3].w.bias[1] = -0.1f;

    struct model_workspace ws;
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 2, err), 0);
    CHECK(m.graph != NULL && m.graph->own && ws.graph != NULL); /* built by the workspace */
    tiny_image(ws.input, 1.0f);
    tiny_image(ws.input + 48, -1.0f);
    model_forward(&m, &ws, ws.input, 2);

    /* Sample 0, output (oy, ox):
     *  filter 0 = x0[oy+1][ox+1] + 2·x0[oy][ox+2] − 5:
     *    (0,0) 5+4−5 = 4, (0,1) 6+6−5 = 7, (1,0) 9+12−5 = 16, (1,1) 10+14−5 = 19
     *  filter 1 = −4.5 + (ox − oy) + (ox − oy − 2) + 5:
     *    (0,0) −1.5, (0,1) 0.5, (1,0) −3.5, (1,1) −1.5
     * Sample 1 (channel 0 negated): filter 0 = −(5+4)−5 = −14, −(6+6)−5 = −17,
     *    −26, −29; filter 1 unchanged. */
    const float conv[2][8] = {{4, -1.5f, 7, 0.5f, 16, -3.5f, 19, -1.5f},
                              {-14, -1.5f, -17, 0.5f, -26, -3.5f, -29, -1.5f}};
    const float *o0 = model_output(&ws, 0), *o1 = model_output(&ws, 1);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 8; i++) {
            CHECK_NEAR(o0[s * 8 + i], conv[s][i], 1e-5);
            CHECK_NEAR(o1[s * 8 + i], conv[s][i] > 0 ? conv[s][i] : 0, 1e-5);
        }
    /* GAP: (4+7+16+19)/4 = 11.5 and 0.5/4 = 0.125; sample 1: 0 and 0.125. */
    const float *g = model_output(&ws, 2);
    CHECK_NEAR(g[0], 11.5, 1e-5);
    CHECK_NEAR(g[1], 0.125, 1e-6);
    CHECK_NEAR(g[2], 0.0, 1e-6);
    CHECK_NEAR(g[3], 0.125, 1e-6);
    /* Dense: 11.5·0.1 + 0.125·2 + 0.3 = 1.7, 11.5·(−0.2) + 0.125·4 − 0.1 = −1.9;
     * sample 1: 0.25 + 0.3 = 0.55 and 0.5 − 0.1 = 0.4. */
    const float *z = model_output(&ws, 3);
    CHECK_NEAR(z[0], 1.7, 1e-5);
    CHECK_NEAR(z[1], -1.9, 1e-5);
    CHECK_NEAR(z[2], 0.55, 1e-6);
    CHECK_NEAR(z[3], 0.4, 1e-6);
    /* Softmax of two values: p0 = 1 / (1 + e^(z1 − z0)). */
    const float *p = model_output(&ws, 4);
    CHECK_NEAR(p[0], 1.0 / (1.0 + exp(-3.6)), 1e-6);
    CHECK_NEAR(p[1], 1.0 / (1.0 + exp(3.6)), 1e-6);
    CHECK_NEAR(p[2], 1.0 / (1.0 + exp(-0.15)), 1e-6);
    CHECK_NEAR(p[3], 1.0 / (1.0 + exp(0.15)), 1e-6);

    /* The same input from the caller's own buffer, one sample at a time,
     * gives the same outputs (the batch rows are independent). */
    float one[48];
    tiny_image(one, -1.0f);
    model_forward(&m, &ws, one, 1);
    CHECK_NEAR(model_output(&ws, 4)[0], 1.0 / (1.0 + exp(-0.15)), 1e-6);
    model_workspace_free(&ws);
    model_workspace_free(&ws); /* twice is safe */

    /* The graph holds a copy of the weights: after a change to m.params,
     * model_graph_close makes the next workspace build it from the new
     * values. Dense bias 0 + 1: sample 1's logits 1.55 and 0.4. */
    m.layers[3].w.bias[0] += 1.0f;
    model_graph_close(&m);
    CHECK(m.graph == NULL);
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 1, err), 0);
    model_forward(&m, &ws, one, 1);
    CHECK_NEAR(model_output(&ws, 3)[0], 1.55, 1e-6);
    CHECK_NEAR(model_output(&ws, 4)[0], 1.0 / (1.0 + exp(-1.15)), 1e-6);
    model_workspace_free(&ws);
    model_free(&m);
}

/* Inference with max-pool, batch norm on its running statistics, flatten,
 * dropout (the identity at inference) and a dense layer with fused
 * sigmoid. */
TEST(forward_pool_bn_dropout_inference)
{
    const char *text =
        "{\"input\": {\"height\": 4, \"width\": 4, \"channels\": 3},"
        " \"classes\": [\"a\", \"b\"],"
        " \"layers\": [{\"type\": \"maxpool2d\"},"
        "  {\"type\": \"batch_norm\", \"epsilon\": 0.01},"
        "  {\"type\": \"flatten\"}, {\"type\": \"dropout\", \"rate\": 0.5},"
        "  {\"type\": \"dense\", \"units\": 2, \"activation\": \"sigmoid\"}]}";
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "tiny", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    const float gamma[3] = {1, 2, 0.5f}, beta[3] = {0, 1, -1}, mm[3] = {1, 2, 3},
                mv[3] = {4, 1, 0.25f};
    memcpy(m.layers[1].w.gamma, gamma, sizeof gamma);
    memcpy(m.layers[1].w.beta, beta, sizeof beta);
    memcpy(m.layers[1].w.moving_mean, mm, sizeof mm);
    memcpy(m.layers[1].w.moving_var, mv, sizeof mv);
    float *dk = m.layers[4].w.kernel; /* [12][2] */
    for (int i = 0; i < 12; i++) {
        dk[2 * i] = 0.01f * (float)(i + 1);
        dk[2 * i + 1] = i % 2 ? -0.05f : 0.05f;
    }
    m.layers[4].w.bias[0] = -1.0f;

    struct model_workspace ws;
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 1, err), 0);
    tiny_image(ws.input, 1.0f);
    model_forward(&m, &ws, ws.input, 1);
    /* 2×2 max-pool: channel 0 takes the bottom-right of each window
     * (5, 7, 13, 15), channel 1 is 1, channel 2 (x − y) the top-right
     * (1, 3, −1, 1). */
    const float pool[12] = {5, 1, 1, 7, 1, 3, 13, 1, -1, 15, 1, 1};
    const float *o = model_output(&ws, 0);
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(o[i], pool[i], 0);
    float bn[12];
    for (int i = 0; i < 12; i++) {
        int c = i % 3;
        bn[i] = (float)(gamma[c] * (pool[i] - mm[c]) / sqrt(mv[c] + 0.01) + beta[c]);
        CHECK_NEAR(model_output(&ws, 1)[i], bn[i], 1e-5);
        CHECK_NEAR(model_output(&ws, 2)[i], bn[i], 1e-5);
        CHECK_NEAR(model_output(&ws, 3)[i], bn[i], 1e-5);
    }
    double z0 = -1.0, z1 = 0.0;
    for (int i = 0; i < 12; i++) {
        z0 += bn[i] * 0.01 * (i + 1);
        z1 += bn[i] * (i % 2 ? -0.05 : 0.05);
    }
    CHECK_NEAR(model_output(&ws, 4)[0], 1.0 / (1.0 + exp(-z0)), 1e-6);
    CHECK_NEAR(model_output(&ws, 4)[1], 1.0 / (1.0 + exp(-z1)), 1e-6);
    model_workspace_free(&ws);
    model_free(&m);
}

/* ---- backward ------------------------------------------------------------ */

static const char *grad_json =
    "{\"input\": {\"height\": 6, \"width\": 6, \"channels\": 3},"
    " \"classes\": [\"a\", \"b\", \"c\"],"
    " \"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3,"
    "   \"padding\": \"same\"},"
    "  {\"type\": \"batch_norm\", \"activation\": \"relu\"},"
    "  {\"type\": \"maxpool2d\"}, {\"type\": \"flatten\"},"
    "  {\"type\": \"dense\", \"units\": 3, \"activation\": \"softmax\"}]}";

enum { GB = 4 };

/* The forward's discrete choices: which batch-norm outputs the relu passes
 * (layer 1's output > 0, [GB][4][6][6] in the graph's NCHW) and which of
 * its four inputs each 2×2 max-pool window picks (the first largest, found
 * here from layer 1's output). */
enum { RELU_UNITS = GB * 4 * 6 * 6, POOL_UNITS = GB * 4 * 3 * 3 };
enum { KINK_BYTES = RELU_UNITS + POOL_UNITS };

static void record_kinks(const struct train_graph *t, uint8_t *kinks)
{
    const float *a = tview_f(graph_value_view(&t->ws, t->mg->shown[1]));
    for (int i = 0; i < RELU_UNITS; i++)
        kinks[i] = a[i] > 0;
    for (int w = 0; w < POOL_UNITS; w++) {
        const float *plane = a + (size_t)(w / 9) * 36;
        const int oy = w % 9 / 3, ox = w % 3;
        int best = 0;
        for (int k = 1; k < 4; k++)
            if (plane[(2 * oy + k / 2) * 6 + 2 * ox + k % 2] >
                plane[(2 * oy + best / 2) * 6 + 2 * ox + best % 2])
                best = k;
        kinks[RELU_UNITS + w] = (uint8_t)best;
    }
}

/* Mean cross-entropy of a graph forward (training: with the batch's
 * statistics), in double; its probabilities into p[GB × 3] and its discrete
 * choices into kinks (may be NULL). Returns -1 if the forward failed. */
static double graph_loss(struct train_graph *t, const float *x, const int *y, int training,
                         float *p, uint8_t *kinks)
{
    char err[STRATA_ERR_LEN] = "";
    const float *probs = train_graph_forward(t, x, GB, training, err);
    if (!probs) {
        printf("# %s\n", err);
        return -1;
    }
    double loss = 0;
    for (int s = 0; s < GB; s++)
        loss -= log((double)probs[s * 3 + y[s]]);
    if (p)
        memcpy(p, probs, GB * 3 * sizeof(float));
    if (kinks)
        record_kinks(t, kinks);
    return loss / GB;
}

/* The gradient a training step computes for every trainable tensor of a
 * strata model — train_graph_backward of dL/dlogits = (p − onehot)/GB, the
 * softmax cross-entropy's — against central differences of the same loss
 * from train_graph_forward, perturbing the graph's own weights through the
 * pointers train_graph_optim_tensors gives. Twice: in training mode (batch
 * norm on the batch's statistics, as training runs) and in inference mode
 * (on the running statistics, set away from 0 and 1 here).
 *
 * The loss is piecewise smooth: relu and max-pool make discrete choices, and a
 * difference quotient taken across such a kink measures nothing. So each
 * difference is taken only where θ ± h make the same choices as θ (checked
 * unit by unit), halving h from 1e-2 (down to 3e-4) until they do; the few
 * parameters whose every step crosses a kink are skipped (at most 10%).
 * With a float32 forward, rounding contributes about 1e-7 · |L| / h ≤ 3e-4
 * and truncation O(h²) ≤ 1e-4; we allow 5e-4 + 1% of the value. */
TEST(backward_matches_finite_differences)
{
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, grad_json, "grad", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    model_init_params(&m, 5);
    /* Give gamma, beta, the biases and the running statistics values away
     * from their initial 1 / 0 so that their gradients are exercised at a
     * generic point. */
    struct rng r;
    rng_seed(&r, 99);
    for (int c = 0; c < 4; c++) {
        m.layers[1].w.gamma[c] = (float)(0.5 + rng_uniform(&r));
        m.layers[1].w.beta[c] = (float)(rng_uniform(&r) - 0.3);
        m.layers[0].w.bias[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[1].w.moving_mean[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[1].w.moving_var[c] = (float)(0.5 + 2 * rng_uniform(&r));
    }
    for (int u = 0; u < 3; u++)
        m.layers[4].w.bias[u] = (float)(rng_uniform(&r) - 0.5);

    struct train_graph t;
    rc = train_graph_init(&t, &m, GB, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return;
    }
    /* The trainable tensors, in the model's order: conv kernel and bias,
     * gamma, beta, dense kernel and bias — not the running statistics,
     * which the graph also holds. */
    static const char *const names[6] = {"conv.kernel", "conv.bias", "bn.gamma",
                                         "bn.beta",     "dense.kernel", "dense.bias"};
    static const size_t lens[6] = {108, 4, 4, 4, 36 * 3, 3};
    struct optim_tensor ot[8];
    const int nt = train_graph_optim_tensors(&t, ot);
    CHECK_EQ_INT(nt, 6);
    size_t total = 0;
    for (int i = 0; i < nt && i < 6; i++) {
        CHECK_MSG(ot[i].len == lens[i], "%s: %zu values", names[i], ot[i].len);
        CHECK_EQ_INT(ot[i].decay, i == 0 || i == 4);
        total += ot[i].len;
    }
    CHECK(total == model_trainable_count(&m));
    CHECK(t.state_len == m.n_params); /* the running statistics are kept, not trained */
    if (nt != 6) {
        train_graph_free(&t);
        model_free(&m);
        return;
    }
    float *state = malloc(t.state_len * sizeof(float));
    float *grads = malloc(total * sizeof(float));
    train_graph_save(&t, state);

    float x[GB * 108];
    for (int i = 0; i < GB * 108; i++)
        x[i] = (float)rng_normal(&r);
    const int y[GB] = {0, 2, 1, 2};
    static uint8_t k0[KINK_BYTES], kp[KINK_BYTES], km[KINK_BYTES];

    for (int training = 1; training >= 0; training--) {
        const char *mode = training ? "batch statistics" : "running statistics";
        train_graph_restore(&t, state);
        float p[GB * 3], dlogits[GB * 3];
        CHECK(graph_loss(&t, x, y, training, p, k0) > 0);
        for (int s = 0; s < GB; s++)
            for (int k = 0; k < 3; k++)
                dlogits[s * 3 + k] = (p[s * 3 + k] - (k == y[s])) / GB;
        rc = train_graph_backward(&t, dlogits, err);
        CHECK_MSG(rc == 0, "%s", err);
        float *g[6];
        for (int i = 0, off = 0; i < 6; off += (int)ot[i].len, i++) {
            g[i] = grads + off;
            memcpy(g[i], ot[i].grad, ot[i].len * sizeof(float));
        }
        /* Not accumulated: the same step again leaves the same gradients. */
        graph_loss(&t, x, y, training, NULL, NULL);
        CHECK(train_graph_backward(&t, dlogits, err) == 0);
        for (int i = 0; i < 6; i++)
            CHECK_MSG(memcmp(g[i], ot[i].grad, ot[i].len * sizeof(float)) == 0,
                      "%s, %s: a second backward changed the gradient", mode, names[i]);

        int checked = 0, nonzero = 0, skipped = 0;
        double worst = 0;
        for (int i = 0; i < 6; i++) {
            const int n = (int)ot[i].len;
            for (int j = 0; j < n; j += n > 20 ? 5 : 1) {
                float *w = &ot[i].param[j];
                const float keep = *w;
                double fd = 0;
                int smooth = 0;
                for (double h = 1e-2; h >= 2e-4 && !smooth; h /= 2) {
                    *w = (float)(keep + h);
                    const double lp = graph_loss(&t, x, y, training, NULL, kp);
                    *w = (float)(keep - h);
                    const double lm = graph_loss(&t, x, y, training, NULL, km);
                    *w = keep;
                    smooth = !memcmp(k0, kp, KINK_BYTES) && !memcmp(k0, km, KINK_BYTES);
                    fd = (lp - lm) / (2 * h);
                }
                if (!smooth) {
                    skipped++;
                    continue;
                }
                const double an = g[i][j], tol = 5e-4 + 0.01 * fabs(fd);
                CHECK_MSG(fabs(an - fd) <= tol, "%s, %s[%d]: analytic %.6g, numeric %.6g", mode,
                          names[i], j, an, fd);
                worst = fmax(worst, fabs(an - fd));
                checked++;
                nonzero += fabs(fd) > 1e-3;
            }
        }
        printf("# %s: %d parameters checked (%d with |gradient| > 1e-3, %d skipped at a "
               "kink), max |analytic - numeric| %.2g\n",
               mode, checked, nonzero, skipped, worst);
        CHECK(nonzero > checked / 2); /* the check is not vacuous */
        CHECK(skipped <= checked / 10);
    }
    free(state);
    free(grads);
    train_graph_free(&t);
    model_free(&m);
}

/* A model whose layers name their inputs, smooth everywhere (sigmoid
 * activations, no relu or max-pool): a residual add of the stem and a
 * depthwise convolution + batch norm branch, an add of three inputs, a concat with the
 * image, then a global pool and a dense softmax. Per image 5x4x3 -> stem,
 * c, bn, res, tri 5x4x3 -> cat 5x4x6 -> gap 6 -> out 3. */
static const char residual_grad_json[] =
    "{\"input\": {\"height\": 5, \"width\": 4, \"channels\": 3},"
    " \"classes\": [\"a\", \"b\", \"c\"], \"layers\": ["
    "{\"type\": \"conv2d\", \"name\": \"stem\", \"filters\": 3, \"kernel_size\": 3,"
    " \"padding\": \"same\", \"activation\": \"sigmoid\"},"
    "{\"type\": \"conv2d\", \"name\": \"c\", \"filters\": 3, \"kernel_size\": 3,"
    " \"padding\": \"same\", \"groups\": 3},"
    "{\"type\": \"batch_norm\", \"name\": \"bn\", \"activation\": \"sigmoid\"},"
    "{\"type\": \"add\", \"name\": \"res\", \"inputs\": [\"stem\", \"bn\"],"
    " \"activation\": \"sigmoid\"},"
    "{\"type\": \"add\", \"name\": \"tri\", \"inputs\": [\"res\", \"input\", \"stem\"]},"
    "{\"type\": \"concat\", \"name\": \"cat\", \"inputs\": [\"tri\", \"input\"]},"
    "{\"type\": \"global_avg_pool\", \"name\": \"gap\"},"
    "{\"type\": \"dense\", \"name\": \"out\", \"units\": 3, \"activation\": \"softmax\"}]}";

/* Every trainable value of the residual model: train_graph_backward against
 * central differences of the loss (h = 1e-3; the loss is smooth, so no value
 * is skipped), with the batch's statistics and with the running ones. The
 * skip connections make a value's gradient the sum of what each of its
 * readers sends back: a gradient that missed one reader, or counted one
 * twice, is off by that reader's share. */
TEST(residual_gradients_match_finite_differences)
{
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, residual_grad_json, "residual", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    model_init_params(&m, 17);
    struct rng r;
    rng_seed(&r, 23);
    for (int c = 0; c < 3; c++) {
        m.layers[2].w.gamma[c] = (float)(0.5 + rng_uniform(&r));
        m.layers[2].w.beta[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[2].w.moving_mean[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[2].w.moving_var[c] = (float)(0.5 + rng_uniform(&r));
        m.layers[0].w.bias[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[1].w.bias[c] = (float)(rng_uniform(&r) - 0.5);
        m.layers[7].w.bias[c] = (float)(rng_uniform(&r) - 0.5);
    }
    struct train_graph t;
    rc = train_graph_init(&t, &m, GB, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return;
    }
    struct optim_tensor ot[16];
    const int nt = train_graph_optim_tensors(&t, ot);
    /* stem kernel and bias, c kernel (depthwise: 3×3×1×3) and bias, gamma,
     * beta, dense kernel and bias */
    CHECK_EQ_INT(nt, 8);
    CHECK(nt == 8 && ot[2].len == 27);
    float *state = malloc(t.state_len * sizeof(float));
    train_graph_save(&t, state);
    float x[GB * 60];
    for (int i = 0; i < GB * 60; i++)
        x[i] = (float)rng_normal(&r);
    const int y[GB] = {2, 0, 1, 0};
    for (int training = 1; training >= 0; training--) {
        train_graph_restore(&t, state);
        float p[GB * 3], dlogits[GB * 3];
        CHECK(graph_loss(&t, x, y, training, p, NULL) > 0);
        for (int s = 0; s < GB; s++)
            for (int k = 0; k < 3; k++)
                dlogits[s * 3 + k] = (p[s * 3 + k] - (k == y[s])) / GB;
        CHECK(train_graph_backward(&t, dlogits, err) == 0);
        int checked = 0, nonzero = 0;
        double worst = 0;
        for (int i = 0; i < nt; i++) {
            float *g = malloc(ot[i].len * sizeof *g);
            memcpy(g, ot[i].grad, ot[i].len * sizeof *g);
            for (size_t j = 0; j < ot[i].len; j++) {
                float *w = &ot[i].param[j];
                const float keep = *w;
                const double h = 1e-3;
                *w = (float)(keep + h);
                const double lp = graph_loss(&t, x, y, training, NULL, NULL);
                *w = (float)(keep - h);
                const double lm = graph_loss(&t, x, y, training, NULL, NULL);
                *w = keep;
                const double fd = (lp - lm) / (2 * h), tol = 3e-4 + 0.01 * fabs(fd);
                CHECK_MSG(fabs(g[j] - fd) <= tol, "%s, tensor %d[%zu]: analytic %.6g, "
                          "numeric %.6g", training ? "batch statistics" : "running statistics",
                          i, j, g[j], fd);
                worst = fmax(worst, fabs(g[j] - fd));
                checked++;
                nonzero += fabs(fd) > 1e-3;
            }
            free(g);
        }
        printf("# residual, %s: %d values checked (%d with |gradient| > 1e-3), max |analytic - "
               "numeric| %.2g\n",
               training ? "batch statistics" : "running statistics", checked, nonzero, worst);
        CHECK(nonzero > checked / 2);
    }
    free(state);
    train_graph_free(&t);
    model_free(&m);
}

/* ---- parameters and weights ---------------------------------------------- */

TEST(init_params_deterministic)
{
    struct model a, b;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(model_parse_json(&a, grad_json, "a", err), 0);
    CHECK_EQ_INT(model_parse_json(&b, grad_json, "b", err), 0);
    model_init_params(&a, 42);
    model_init_params(&b, 42);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    model_init_params(&b, 43);
    CHECK(memcmp(a.layers[0].w.kernel, b.layers[0].w.kernel, 108 * sizeof(float)) != 0);
    int nonzero = 0;
    for (int i = 0; i < 108; i++)
        nonzero += a.layers[0].w.kernel[i] != 0;
    CHECK(nonzero == 108);
    for (int c = 0; c < 4; c++) {
        CHECK(a.layers[0].w.bias[c] == 0);
        CHECK(a.layers[1].w.gamma[c] == 1 && a.layers[1].w.beta[c] == 0);
        CHECK(a.layers[1].w.moving_mean[c] == 0 && a.layers[1].w.moving_var[c] == 1);
    }
    model_free(&a);
    model_free(&b);
}

static char tmpdir[64];

static const char *tmp_path(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

TEST(weights_round_trip_and_errors)
{
    struct model a, b;
    char err[STRATA_ERR_LEN] = "", path[256];
    CHECK_EQ_INT(model_parse_json(&a, grad_json, "a", err), 0);
    model_init_params(&a, 7);
    /* Awkward values survive bit for bit. */
    /* −0, the smallest denormal, 1e30 and a negative denormal: large but
     * not so large that the forward below overflows. */
    uint32_t bits[4] = {0x80000000u, 0x00000001u, 0x7149f2cau, 0x807fffffu};
    memcpy(a.layers[4].w.kernel, bits, sizeof bits);
    a.layers[1].w.moving_var[2] = 3.25f;
    tmp_path("w.safetensors", path, sizeof path);
    int rc = model_save_weights(&a, path, err);
    CHECK_MSG(rc == 0, "%s", err);

    CHECK_EQ_INT(model_parse_json(&b, grad_json, "b", err), 0);
    rc = model_load_weights(&b, path, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);

    struct model_workspace wa, wb;
    CHECK_EQ_INT(model_workspace_init(&wa, &a, 3, err), 0);
    CHECK_EQ_INT(model_workspace_init(&wb, &b, 3, err), 0);
    struct rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < 3 * 108; i++)
        wa.input[i] = wb.input[i] = (float)rng_normal(&r);
    model_forward(&a, &wa, wa.input, 3);
    model_forward(&b, &wb, wb.input, 3);
    for (int l = 0; l < a.n_layers; l++)
        CHECK(memcmp(model_output(&wa, l), model_output(&wb, l),
                     3 * shape_size(a.layers[l].out) * sizeof(float)) == 0);
    model_workspace_free(&wa);
    model_workspace_free(&wb);

    /* A model with another shape refuses the file and keeps its values. */
    struct model c;
    const char *other =
        "{\"input\": {\"height\": 6, \"width\": 6, \"channels\": 3},"
        " \"classes\": [\"a\", \"b\", \"c\"],"
        " \"layers\": [{\"type\": \"conv2d\", \"filters\": 5, \"kernel_size\": 3,"
        "   \"padding\": \"same\"},"
        "  {\"type\": \"batch_norm\", \"activation\": \"relu\"},"
        "  {\"type\": \"maxpool2d\"}, {\"type\": \"flatten\"},"
        "  {\"type\": \"dense\", \"units\": 3, \"activation\": \"softmax\"}]}";
    CHECK_EQ_INT(model_parse_json(&c, other, "c", err), 0);
    model_init_params(&c, 3);
    float *before = malloc(c.n_params * sizeof(float));
    memcpy(before, c.params, c.n_params * sizeof(float));
    CHECK_EQ_INT(model_load_weights(&c, path, err), STRATA_E_FORMAT);
    CHECK_MSG(contains(err, path) && contains(err, "layers.0.kernel") &&
                  contains(err, "[3, 3, 3, 4], expected [3, 3, 3, 5]"),
              "%s", err);
    CHECK(memcmp(before, c.params, c.n_params * sizeof(float)) == 0);
    free(before);
    model_free(&c);

    /* A model without the batch norm: the file has tensors it does not want. */
    const char *nobn =
        "{\"input\": {\"height\": 6, \"width\": 6, \"channels\": 3},"
        " \"classes\": [\"a\", \"b\", \"c\"],"
        " \"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3,"
        "   \"padding\": \"same\"},"
        "  {\"type\": \"relu\"},"
        "  {\"type\": \"maxpool2d\"}, {\"type\": \"flatten\"},"
        "  {\"type\": \"dense\", \"units\": 3, \"activation\": \"softmax\"}]}";
    CHECK_EQ_INT(model_parse_json(&c, nobn, "c", err), 0);
    CHECK_EQ_INT(model_load_weights(&c, path, err), STRATA_E_FORMAT);
    CHECK_MSG(contains(err, "unexpected tensor \"layers.1.beta\""), "%s", err);
    model_free(&c);

    /* A file far larger than the model needs is refused unread. */
    char big[256];
    tmp_path("big.safetensors", big, sizeof big);
    FILE *fp = fopen(big, "wb");
    for (int i = 0; i < 3 << 20; i += 4096) {
        static const char zeros[4096];
        fwrite(zeros, 1, sizeof zeros, fp);
    }
    fclose(fp);
    CHECK_EQ_INT(model_load_weights(&b, big, err), STRATA_E_LIMIT);
    CHECK(contains(err, big));
    unlink(big);

    /* Weights holding a NaN or an infinity are refused by name; the model
     * keeps its values. */
    const uint32_t nonfinite[2] = {0x7fc00000u /* NaN */, 0xff800000u /* -inf */};
    for (int k = 0; k < 2; k++) {
        float keep = a.layers[4].w.kernel[5];
        memcpy(&a.layers[4].w.kernel[5], &nonfinite[k], sizeof(float));
        tmp_path("nan.safetensors", big, sizeof big);
        CHECK_EQ_INT(model_save_weights(&a, big, err), 0);
        a.layers[4].w.kernel[5] = keep;
        float *before_b = malloc(b.n_params * sizeof(float));
        memcpy(before_b, b.params, b.n_params * sizeof(float));
        CHECK_EQ_INT(model_load_weights(&b, big, err), STRATA_E_FORMAT);
        CHECK_MSG(contains(err, "layers.4.kernel") && contains(err, "not finite") &&
                      contains(err, "index 5"),
                  "%s", err);
        CHECK(memcmp(before_b, b.params, b.n_params * sizeof(float)) == 0);
        free(before_b);
        unlink(big);
    }

    tmp_path("none.safetensors", big, sizeof big);
    CHECK_EQ_INT(model_load_weights(&b, big, err), STRATA_E_NOTFOUND);
    CHECK(contains(err, big));
    unlink(path);
    model_free(&a);
    model_free(&b);
}

TEST(open_by_id_and_by_folder)
{
    char dir[256], path[300], err[STRATA_ERR_LEN] = "";
    tmp_path("felines-seed", dir, sizeof dir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/model.json", dir);
    write_text(path, grad_json);

    struct model m;
    /* No weights yet: a clear error naming the file, nothing left allocated. */
    CHECK_EQ_INT(model_open(&m, tmpdir, "felines-seed", err), STRATA_E_NOTFOUND);
    CHECK_MSG(contains(err, "felines-seed/weights.safetensors") && contains(err, "no weights"),
              "%s", err);
    CHECK(m.layers == NULL && m.json == NULL);

    /* model_load_json: the id and dataset default from the folder. */
    CHECK_EQ_INT(model_load_json(&m, path, err), 0);
    CHECK(strcmp(m.id, "felines-seed") == 0 && strcmp(m.dataset, "felines") == 0);
    CHECK(strcmp(m.dir, dir) == 0);
    model_init_params(&m, 1);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    CHECK_EQ_INT(model_save_weights(&m, path, err), 0);

    struct model byid, bydir;
    int rc = model_open(&byid, tmpdir, "felines-seed", err);
    CHECK_MSG(rc == 0, "%s", err);
    rc = model_open(&bydir, "/nonexistent", dir, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (byid.params && bydir.params) {
        CHECK(strcmp(byid.id, "felines-seed") == 0 && strcmp(bydir.id, "felines-seed") == 0);
        CHECK(strcmp(byid.dir, dir) == 0 && strcmp(bydir.dir, dir) == 0);
        CHECK(memcmp(byid.params, m.params, m.n_params * sizeof(float)) == 0);
        CHECK(memcmp(bydir.params, m.params, m.n_params * sizeof(float)) == 0);
    }
    model_free(&byid);
    model_free(&bydir);
    CHECK_EQ_INT(model_open(&byid, tmpdir, "lions", err), STRATA_E_NOTFOUND);
    CHECK(contains(err, "lions"));

    /* A broken model.json fails with its path in the message. */
    snprintf(path, sizeof path, "%s/model.json", dir);
    write_text(path, "{\"input\": {\"height\": 6, \"width\": 6}, \"classes\": [\"a\"],"
                     " \"layers\": [{\"type\": \"dense\", \"units\": 1, \"bias\": true}]}");
    CHECK_EQ_INT(model_open(&byid, tmpdir, "felines-seed", err), STRATA_E_ARG);
    CHECK_MSG(contains(err, "felines-seed/model.json: layers[0].bias: unknown key"), "%s", err);

    unlink(path);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    unlink(path);
    rmdir(dir);
    model_free(&m);
}

/* ---- preprocessing ------------------------------------------------------- */

TEST(normalise_by_hand)
{
    const char *text =
        "{\"input\": {\"height\": 2, \"width\": 2},"
        " \"normalization\": {\"mean\": [0.5, 0.25, 0], \"std\": [0.5, 0.25, 2]},"
        " \"classes\": [\"a\"], \"layers\": [{\"type\": \"flatten\"},"
        " {\"type\": \"dense\", \"units\": 1}]}";
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "norm", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    /* (p/255 − mean)/std:  255 → (1 − 0.5)/0.5 = 1,  0 → −1,  51 → (0.2 − 0.25)/0.25
     * = −0.2,  255 → (1 − 0)/2 = 0.5,  102 → (0.4 − 0.5)/0.5 = −0.2, ... */
    const uint8_t rgb[12] = {255, 51, 255, 0, 0, 0, 102, 255, 51, 153, 204, 102};
    const float want[12] = {1, -0.2f, 0.5f, -1, -1, 0, -0.2f, 3, 0.1f, 0.2f, 2.2f, 0.2f};
    float out[12];
    model_normalise(&m, rgb, out);
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(out[i], want[i], 1e-6);

    struct image img = {2, 2, (uint8_t *)rgb};
    memset(out, 0, sizeof out);
    CHECK_EQ_INT(model_preprocess(&m, &img, out, err), 0);
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(out[i], want[i], 1e-6);

    /* A 5×3 image of one colour resizes to 2×2 of the same colour. */
    struct image big;
    CHECK_EQ_INT(image_alloc(&big, 5, 3, err), 0);
    for (int i = 0; i < 15; i++) {
        big.rgb[3 * i] = 255;
        big.rgb[3 * i + 1] = 51;
        big.rgb[3 * i + 2] = 102;
    }
    rc = model_preprocess(&m, &big, out, err);
    CHECK_MSG(rc == 0, "%s", err);
    for (int p = 0; p < 4; p++) {
        CHECK_NEAR(out[3 * p], 1, 1e-6);
        CHECK_NEAR(out[3 * p + 1], -0.2, 1e-6);
        CHECK_NEAR(out[3 * p + 2], 0.2, 1e-6);
    }
    image_free(&big);
    model_free(&m);
}

TEST(workspace_layout)
{
    struct model m;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(model_parse_json(&m, big_json, "big", err), 0);
    model_init_params(&m, 1);
    struct model_workspace ws;
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 3, err), 0);
    CHECK(ws.max_batch == 3 && ws.input && ws.graph && ws.nchw && ws.stale && ws.layer_value);
    /* The graph was built from the layers, one shown value per layer. */
    CHECK(m.graph != NULL && m.graph->own && m.graph->n_shown == m.n_layers);
    CHECK_EQ_INT(ws.graph_n, 0);
    for (int i = 0; i < m.n_layers; i++) {
        CHECK((uintptr_t)ws.outputs[i] % 64 == 0);
        if (i) /* no overlap between consecutive layers' outputs */
            CHECK(ws.outputs[i] >= ws.outputs[i - 1] + 3 * shape_size(m.layers[i - 1].out));
        CHECK(ws.stale[i] == 0);
        CHECK(ws.layer_value[i] == m.graph->shown[i]);
        for (int j = 0; j < i; j++) /* each layer its own value */
            CHECK(ws.layer_value[i] != ws.layer_value[j]);
    }
    /* After a forward every layer's output is in the graph alone (NCHW)
     * until model_output copies it, NHWC, into ws.outputs. */
    struct rng r;
    rng_seed(&r, 4);
    const size_t in_len = 2 * shape_size(m.input);
    for (size_t i = 0; i < in_len; i++)
        ws.input[i] = (float)rng_normal(&r);
    model_forward(&m, &ws, ws.input, 2);
    CHECK_EQ_INT(ws.graph_n, 2);
    for (int i = 0; i < m.n_layers; i++)
        CHECK(ws.stale[i] == 1);
    const struct shape s = m.layers[2].out; /* 37 × 37 × 64 */
    const float *nchw = model_output_nchw(&ws, 2);
    CHECK(nchw != NULL);
    const float *nhwc = model_output(&ws, 2);
    CHECK(nhwc == ws.outputs[2] && ws.stale[2] == 0 && ws.stale[3] == 1);
    size_t wrong = 0;
    for (int n = 0; nchw && n < 2; n++)
        for (int c = 0; c < s.c; c++)
            for (int p = 0; p < s.h * s.w; p++)
                wrong += memcmp(&nhwc[((size_t)n * s.h * s.w + p) * s.c + c],
                                &nchw[((size_t)n * s.c + c) * s.h * s.w + p], sizeof(float)) != 0;
    CHECK_EQ_INT(wrong, 0);
    model_workspace_free(&ws);
    CHECK(ws.graph == NULL && ws.outputs == NULL);
    struct model_workspace zero = {0};
    model_workspace_free(&zero);
    model_free(&m);
    CHECK(m.graph == NULL);
    struct model empty = {0};
    model_free(&empty);
}

/* A workspace that serves the probabilities alone folds each batch
 * normalisation into the convolution before it (with the ReLU and the max
 * pooling after it) and gives the probabilities of a workspace that keeps
 * every layer, to rounding. */
TEST(probabilities_only_folds_batch_norm)
{
    const char *text =
        "{\"input\": {\"height\": 12, \"width\": 12, \"channels\": 3},"
        " \"classes\": [\"a\", \"b\", \"c\"],"
        " \"layers\": ["
        "  {\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3, \"padding\": \"same\","
        "   \"use_bias\": false},"
        "  {\"type\": \"batch_norm\", \"activation\": \"relu\"},"
        "  {\"type\": \"maxpool2d\"},"
        "  {\"type\": \"conv2d\", \"filters\": 16, \"kernel_size\": 3, \"padding\": \"same\"},"
        "  {\"type\": \"batch_norm\", \"activation\": \"relu\"},"
        "  {\"type\": \"global_avg_pool\"},"
        "  {\"type\": \"dense\", \"units\": 3, \"activation\": \"softmax\"}]}";
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "folded", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    model_init_params(&m, 3);
    struct rng r;
    rng_seed(&r, 11);
    for (int l = 1; l <= 4; l += 3) /* statistics far from the initial 0 and 1 */
        for (int c = 0; c < m.layers[l].out.c; c++) {
            m.layers[l].w.gamma[c] = 1.0f + 0.3f * (float)rng_normal(&r);
            m.layers[l].w.beta[c] = 0.3f * (float)rng_normal(&r);
            m.layers[l].w.moving_mean[c] = 0.5f * (float)rng_normal(&r);
            m.layers[l].w.moving_var[c] = 0.3f + (float)rng_uniform(&r);
        }
    enum { N = 4 };
    struct model_workspace all, probs;
    CHECK_EQ_INT(model_workspace_init(&all, &m, N, err), 0);
    CHECK_EQ_INT(model_workspace_init(&probs, &m, N, err), 0);
    CHECK_EQ_INT(model_workspace_probabilities_only(&probs, &m, err), 0);
    int folded = 0, folded_all = 0, pooled = 0;
    for (int i = 0; i < m.graph->g.n_nodes; i++) {
        const int chain = probs.graph->fuse_next ? probs.graph->fuse_next[i] : 0;
        folded += (chain & ~GRAPH_FUSE_POOL) == GRAPH_FUSE_BN_CLAMP;
        pooled += (chain & GRAPH_FUSE_POOL) != 0;
        folded_all += all.graph->fuse_next && all.graph->fuse_next[i] != GRAPH_FUSE_NONE;
    }
    CHECK_EQ_INT(folded, 2);
    CHECK_EQ_INT(pooled, 1); /* the first chain takes the max pooling too */
    CHECK_EQ_INT(folded_all, 0); /* every layer is shown there */
    const size_t in_len = N * shape_size(m.input);
    for (size_t i = 0; i < in_len; i++)
        all.input[i] = probs.input[i] = (float)rng_normal(&r);
    model_forward(&m, &all, all.input, N);
    model_forward(&m, &probs, probs.input, N);
    const float *a = model_output(&all, m.n_layers - 1), *p = model_output(&probs, m.n_layers - 1);
    double worst = 0, spread = 0;
    for (int i = 0; i < N * 3; i++) {
        worst = fabs(a[i] - p[i]) > worst ? fabs(a[i] - p[i]) : worst;
        spread = fabs(a[i] - a[i % 3]) > spread ? fabs(a[i] - a[i % 3]) : spread;
    }
    CHECK_MSG(worst < 1e-5, "probabilities differ by %g", worst);
    CHECK_MSG(spread > 1e-3, "the images' probabilities hardly differ: the test shows nothing");
    model_workspace_free(&all);
    model_workspace_free(&probs);
    model_free(&m);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/strata_model_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(parse_shapes_defaults_and_slab);
    RUN(parse_gap_and_explicit_id);
    RUN(validation_errors_name_the_field);
    RUN(forward_hand_computed);
    RUN(forward_pool_bn_dropout_inference);
    RUN(backward_matches_finite_differences);
    RUN(residual_gradients_match_finite_differences);
    RUN(init_params_deterministic);
    RUN(weights_round_trip_and_errors);
    RUN(open_by_id_and_by_folder);
    RUN(normalise_by_hand);
    RUN(workspace_layout);
    RUN(probabilities_only_folds_batch_norm);
    rmdir(tmpdir);
    return check_done();
}
