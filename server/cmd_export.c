/* cmd_export.c — `strata export <model> --out FILE.onnx`: one of strata's own
 * models as an ONNX file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "onnx_export.h"

static const char *const export_help =
    "Usage: strata export <model-id | model-dir> --out FILE.onnx [options]\n\n"
    "Writes one of strata's own models as an ONNX file (opset 13) that any ONNX\n"
    "runtime can run: input \"input\" [batch, 3, H, W], the image normalised as the\n"
    "model's card says, (pixel/255 - mean)/std, channels first; output\n"
    "\"probabilities\" [batch, classes]. An imported model's export is the .onnx\n"
    "file it was imported from.\n\n"
    "  --out FILE     where to write (created or replaced)\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"models", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *models = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': models = optarg; break;
        case 'h': fputs(export_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("export", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("export", "expected one model");
    if (!out)
        return cli_usage_error("export", "--out FILE.onnx is required");

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    int rc = EXIT_FAIL;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0 ||
        onnx_export(&m, out, err) < 0)
        cli_fail("export", "%s", err);
    else {
        printf("%s: %d layers, %d classes, input 3x%dx%d -> %s\n", m.id, m.n_layers, m.n_classes,
               m.input.h, m.input.w, out);
        rc = EXIT_OK;
    }
    model_free(&m);
    return rc;
}
