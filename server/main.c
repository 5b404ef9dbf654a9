/*
 * main.c — the `strata` command: a table of sub-commands.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

const struct command strata_commands[] = {
    {"train", cmd_train, "train a model on an image folder"},
    {"eval", cmd_eval, "accuracy and confusion matrix of a model on a dataset split"},
    {"predict", cmd_predict, "classify one image"},
    {"explain", cmd_explain, "LIME explanation of one prediction"},
    {"analyze", cmd_analyze, "cluster every layer's activations, project them, follow paths"},
    {"doubt-eval", cmd_doubt_eval, "how well the doubt score separates unknown images"},
    {"import", cmd_import, "import an ONNX model as a strata model"},
    {"onnx-test", cmd_onnx_test, "run ONNX backend test cases against strata's graph executor"},
    {"bench", cmd_bench, "time the forward pass of a model or an .onnx file"},
    {"export", cmd_export, "write one of strata's own models as an ONNX file"},
    {"serve", cmd_serve, "run the web server with the API and the pages"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "strata %s — see inside an image classifier, and know when to doubt it\n\n"
            "Usage: strata <command> [options]\n\nCommands:\n",
            STRATA_VERSION);
    for (const struct command *c = strata_commands; c->name; c++)
        if (c->run)
            fprintf(out, "  %-11s %s\n", c->name, c->summary);
    fprintf(out,
            "\nRun 'strata <command> --help' for a command's options.\n"
            "Models are looked up in --models DIR, $STRATA_MODELS or ./models;\n"
            "datasets in --data DIR, $STRATA_DATA or %s.\n",
            DATASET_DEFAULT_ROOT);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("strata %s\n", STRATA_VERSION);
        return EXIT_OK;
    }
    for (const struct command *c = strata_commands; c->name; c++)
        if (c->run && strcmp(c->name, argv[1]) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "strata: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
