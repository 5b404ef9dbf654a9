/* cmd_explain.c — `strata explain <model> <image>`: LIME for one prediction. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "explain.h"

static const char *const explain_help =
    "Usage: strata explain <model-id | model-dir> <image> [options]\n\n"
    "Explains the model's prediction for an image with LIME: the image (at the\n"
    "model's input size) is cut into superpixels, many copies with random\n"
    "superpixels hidden are classified, and a weighted linear model tells how\n"
    "much each superpixel pushed towards the class.\n\n"
    "  --class NAME     class to explain (default: the predicted one)\n"
    "  --samples N      perturbed samples (default 1000)\n"
    "  --segments N     superpixels asked for (default 50)\n"
    "  --features N     superpixels shown on the overlay (default 5)\n"
    "  --seed S         random seed (default 0)\n"
    "  --out FILE       write the overlay PNG (regions for the class, outlined)\n"
    "  --heatmap FILE   write the heat-map PNG (red for, blue against)\n"
    "  --json           print JSON: class, probability, weights, intercept, score, timings\n"
    "  --models DIR     folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N      BLAS threads\n";

static int write_png(const struct image *img, const char *path, char *err)
{
    uint8_t *buf;
    size_t len;
    int rc = image_encode_png(img, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = image_write_file(path, buf, len, err);
    free(buf);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    static const struct option opts[] = {{"class", required_argument, 0, 'c'},
                                         {"samples", required_argument, 0, 'n'},
                                         {"segments", required_argument, 0, 'g'},
                                         {"features", required_argument, 0, 'f'},
                                         {"seed", required_argument, 0, 's'},
                                         {"out", required_argument, 0, 'o'},
                                         {"heatmap", required_argument, 0, 'H'},
                                         {"json", no_argument, 0, 'j'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct lime_params lp;
    lime_params_default(&lp);
    lp.batch_size = 32;
    const char *class_name = NULL, *out = NULL, *heat = NULL, *models = NULL;
    int json = 0, threads = 0, features = 5, seed = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': class_name = optarg; break;
        case 'n':
            if (cli_parse_int(optarg, 2, 100000, &lp.num_samples))
                return cli_usage_error("explain", "--samples expects an integer from 2 to 100000, got '%s'", optarg);
            break;
        case 'g':
            if (cli_parse_int(optarg, 2, 2000, &lp.n_segments))
                return cli_usage_error("explain", "--segments expects an integer from 2 to 2000, got '%s'", optarg);
            break;
        case 'f':
            if (cli_parse_int(optarg, 1, 2000, &features))
                return cli_usage_error("explain", "--features expects a positive integer, got '%s'", optarg);
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 2147483647, &seed))
                return cli_usage_error("explain", "--seed expects a non-negative integer, got '%s'", optarg);
            lp.seed = (uint64_t)seed;
            break;
        case 'o': out = optarg; break;
        case 'H': heat = optarg; break;
        case 'j': json = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("explain", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(explain_help, stdout); return EXIT_OK;
        default: return cli_usage_error("explain", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("explain", "expected a model and an image");
    cli_set_threads(threads);

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    struct image img = {0}, small = {0}, overlay = {0}, heatmap = {0};
    struct lime_result res = {0};
    int rc = EXIT_FAIL, label = -1;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0 ||
        image_load(argv[optind + 1], &img, err) < 0) {
        cli_fail("explain", "%s", err);
        goto done;
    }
    if (class_name && (label = model_class_index(&m, class_name)) < 0) {
        cli_fail("explain", "model %s has no class '%s'", m.id, class_name);
        goto done;
    }
    if (explain_image(&m, &img, &lp, label >= 0 ? &label : NULL, label >= 0, &res, &small, err) < 0) {
        cli_fail("explain", "%s", err);
        goto done;
    }
    const struct lime_class *lc = &res.classes[0];
    struct lime_overlay_opts oo;
    lime_overlay_opts_default(&oo);
    oo.num_features = features;
    if ((out && (lime_render_overlay(&res, small.rgb, lc->label, &oo, &overlay, NULL, err) < 0 ||
                 write_png(&overlay, out, err) < 0)) ||
        (heat && (lime_render_heatmap(&res, small.rgb, lc->label, &heatmap, err) < 0 ||
                  write_png(&heatmap, heat, err) < 0))) {
        cli_fail("explain", "%s", err);
        goto done;
    }
    if (json) {
        json_t *weights = json_array();
        for (int i = 0; i < lc->n_features; i++)
            json_array_append_new(weights, json_pack("{s:i, s:f}", "segment", lc->features[i].segment,
                                                     "weight", lc->features[i].weight));
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:f, s:o, s:f, s:f, s:f, s:i, s:i, s:{s:f, s:f, s:f, s:f, s:f}}", "model", m.id,
            "image", argv[optind + 1], "class", m.classes[lc->label], "probability", (double)lc->prob,
            "weights", weights, "intercept", lc->intercept, "score", lc->score, "local_pred", lc->local_pred,
            "segments", res.n_segments, "samples", res.num_samples, "timings_ms", "segmentation",
            res.ms_segment, "perturbation", res.ms_perturb, "inference", res.ms_classify, "regression",
            res.ms_regression, "total", res.ms_total);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        printf("%s: %s (%.1f %%), %d superpixels, %d samples, R² %.3f\n", argv[optind + 1],
               m.classes[lc->label], 100.0 * lc->prob, res.n_segments, res.num_samples, lc->score);
        printf("%-9s %10s\n", "segment", "weight");
        for (int i = 0; i < lc->n_features && i < 10; i++)
            printf("%-9d %+10.4f\n", lc->features[i].segment, lc->features[i].weight);
        printf("time: segmentation %.0f ms, perturbation %.0f ms, inference %.0f ms, regression %.0f ms, "
               "total %.0f ms\n",
               res.ms_segment, res.ms_perturb, res.ms_classify, res.ms_regression, res.ms_total);
    }
    rc = EXIT_OK;
done:
    lime_result_free(&res);
    image_free(&overlay);
    image_free(&heatmap);
    image_free(&small);
    image_free(&img);
    model_free(&m);
    return rc;
}
