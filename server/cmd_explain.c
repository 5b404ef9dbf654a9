/* cmd_explain.c — `strata explain <model> <image>`: LIME for one prediction,
 * or (--method) several explanation methods side by side with their
 * faithfulness. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "attribution.h"
#include "explain.h"
#include "heatmap.h"

static const char *const explain_help =
    "Usage: strata explain <model-id | model-dir> <image> [options]\n\n"
    "Explains the model's prediction for an image. Without --method, with LIME:\n"
    "the image (at the model's input size) is cut into superpixels, many copies\n"
    "with random superpixels hidden are classified, and a weighted linear model\n"
    "tells how much each superpixel pushed towards the class.\n\n"
    "With --method, by each method named, side by side, each map scored by how\n"
    "well the model's own behaviour agrees with it: deleting the pixels the map\n"
    "ranks first (black, 5 % at a time) should make the class's probability\n"
    "fall fast (deletion AUC: lower is better), revealing them on a blurred copy\n"
    "should make it rise fast (insertion AUC: higher is better).\n\n"
    "  --method LIST    comma-separated: gradcam, ig, occlusion, lime, random, or all\n"
    "                   gradcam: Grad-CAM at --layer (default: the last spatial one)\n"
    "                   ig: Integrated Gradients, --steps (32), --baseline black|blur\n"
    "                   occlusion: a patch of the mean colour, --patch, --stride\n"
    "                   random: uniform noise, the yardstick a map must beat\n"
    "  --layer NAME     Grad-CAM's layer (a layer name such as conv4, or an ONNX value)\n"
    "  --steps N        Integrated Gradients' steps (default 32)\n"
    "  --baseline B     Integrated Gradients' baseline: black (default) or blur\n"
    "  --patch N        occlusion patch side (default: a sixth of the input)\n"
    "  --stride N       occlusion stride (default: half the patch)\n"
    "  --class NAME     class to explain (default: the predicted one)\n"
    "  --samples N      perturbed samples (default 1000)\n"
    "  --segments N     superpixels asked for (default 50)\n"
    "  --features N     superpixels shown on the overlay (default 5)\n"
    "  --seed S         random seed (default 0)\n"
    "  --out FILE       write the overlay PNG (LIME: regions for the class, outlined;\n"
    "                   other methods: the photo dimmed outside the map's top 20 %)\n"
    "  --heatmap FILE   write the heat-map PNG (red for, blue against, white nothing;\n"
    "                   with --method, a colour bar under it from -scale to +scale)\n"
    "                   With several methods, each file gets the method's name:\n"
    "                   heat.png -> heat-gradcam.png, heat-ig.png, ...\n"
    "  --json           print JSON: class, probability, weights, intercept, score, timings;\n"
    "                   with --method: per method its scale, deletion and insertion\n"
    "                   curves and areas, timings, and the method the model supports best\n"
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

static int float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* path with "-<method>" before its extension, when several methods share it */
static void method_path(char *buf, size_t len, const char *path, const char *method, int several)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!several)
        snprintf(buf, len, "%s", path);
    else if (dot && (!slash || dot > slash))
        snprintf(buf, len, "%.*s-%s%s", (int)(dot - path), path, method, dot);
    else
        snprintf(buf, len, "%s-%s", path, method);
}

/* The photo dimmed (a third of its brightness) outside the map's top 20 %. */
static int render_top(const float *map, const struct image *photo, struct image *out, char *err)
{
    const int n = photo->w * photo->h;
    int rc = image_alloc(out, photo->w, photo->h, err);
    float *sorted = rc == 0 ? malloc((size_t)n * sizeof *sorted) : NULL;
    if (rc == 0 && !sorted) {
        image_free(out);
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    if (rc < 0)
        return rc;
    memcpy(sorted, map, (size_t)n * sizeof *sorted);
    /* the value at rank n/5 from the top: a partial order is enough, but a
     * sort of one image's pixels is quick */
    qsort(sorted, (size_t)n, sizeof *sorted, float_desc);
    float cut = sorted[n / 5 < n ? n / 5 : n - 1];
    for (int q = 0; q < n; q++)
        for (int c = 0; c < 3; c++) {
            uint8_t v = photo->rgb[3 * (size_t)q + c];
            out->rgb[3 * (size_t)q + c] = map[q] > cut ? v : (uint8_t)(v / 3);
        }
    free(sorted);
    return 0;
}

static int explain_methods(struct model *m, const struct image *img,
                           const struct attribution_params *ap, const char *image_name, int json,
                           const char *out, const char *heat)
{
    char err[STRATA_ERR_LEN];
    struct attribution_result r;
    if (attribution_explain(m, img, ap, &r, err) < 0) {
        cli_fail("explain", "%s", err);
        return EXIT_FAIL;
    }
    int several = 0, rc = EXIT_OK;
    for (int k = 0; k < ATTR_N_METHODS; k++)
        several += r.maps[k].done;
    several = several > 1;
    const int H = m->input.h, W = m->input.w;
    for (int k = 0; k < ATTR_N_METHODS && rc == EXIT_OK; k++) {
        const struct attribution_map *am = &r.maps[k];
        if (!am->done)
            continue;
        char path[1200];
        struct image pic = {0};
        const char *name = attribution_method_name(k);
        if (heat) {
            method_path(path, sizeof path, heat, name, several);
            struct image with_bar = {0};
            if (heatmap_render(am->map, r.resized.rgb, W, H, &pic, err) < 0 ||
                heatmap_add_legend(&pic, &with_bar, err) < 0 || write_png(&with_bar, path, err) < 0)
                rc = EXIT_FAIL;
            image_free(&pic);
            image_free(&with_bar);
        }
        if (out && rc == EXIT_OK) {
            method_path(path, sizeof path, out, name, several);
            if (render_top(am->map, &r.resized, &pic, err) < 0 || write_png(&pic, path, err) < 0)
                rc = EXIT_FAIL;
            image_free(&pic);
        }
    }
    if (rc != EXIT_OK) {
        cli_fail("explain", "%s", err);
        attribution_result_free(&r);
        return rc;
    }
    if (json) {
        json_t *list = json_array();
        for (int k = 0; k < ATTR_N_METHODS; k++) {
            const struct attribution_map *am = &r.maps[k];
            if (!am->done)
                continue;
            json_t *o = json_pack("{s:s, s:f, s:f}", "method", attribution_method_name(k), "scale",
                                  (double)am->scale, "ms", am->ms);
            if (ap->faithfulness) {
                json_t *del = json_array(), *ins = json_array();
                for (int i = 0; i <= FAITH_STEPS; i++) {
                    json_array_append_new(del, json_real(am->faith.deletion[i]));
                    json_array_append_new(ins, json_real(am->faith.insertion[i]));
                }
                json_object_set_new(o, "deletion_auc", json_real(am->faith.deletion_auc));
                json_object_set_new(o, "insertion_auc", json_real(am->faith.insertion_auc));
                json_object_set_new(o, "deletion", del);
                json_object_set_new(o, "insertion", ins);
                json_object_set_new(o, "ms_faithfulness", json_real(am->ms_faith));
            }
            if (k == ATTR_GRADCAM)
                json_object_set_new(o, "layer", json_pack("{s:s, s:i, s:i}", "name", am->layer,
                                                          "height", am->layer_h, "width", am->layer_w));
            if (k == ATTR_IG)
                json_object_set_new(o, "integrated_gradients",
                                    json_pack("{s:i, s:s, s:f, s:f, s:f, s:f}", "steps", am->steps,
                                              "baseline", ap->ig_blurred ? "blur" : "black", "sum",
                                              am->ig.sum, "logit", am->ig.f_input, "logit_baseline",
                                              am->ig.f_baseline, "completeness_error",
                                              am->ig.completeness));
            if (k == ATTR_OCCLUSION)
                json_object_set_new(o, "occlusion", json_pack("{s:i, s:i}", "patch", am->patch,
                                                              "stride", am->stride));
            if (k == ATTR_LIME)
                json_object_set_new(o, "lime", json_pack("{s:f, s:i, s:i}", "score", am->lime_score,
                                                         "segments", am->lime_segments, "samples",
                                                         ap->lime.num_samples));
            json_array_append_new(list, o);
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s, s:o, s:o, s:f}", "model", m->id,
                              "image", image_name, "class", m->classes[r.label], "label", r.label,
                              "probability", (double)r.probs[r.label], "predicted",
                              m->classes[r.predicted], "methods", list, "best",
                              r.best >= 0 ? json_string(attribution_method_name(r.best)) : json_null(),
                              "ms_total", r.ms_total);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        printf("%s: %s (%.1f %%); explained for %s (%.1f %%)\n", image_name, m->classes[r.predicted],
               100.0 * r.probs[r.predicted], m->classes[r.label], 100.0 * r.probs[r.label]);
        printf("%-10s %9s %10s %9s  %s\n", "method", "deletion", "insertion", "time", "details");
        for (int k = 0; k < ATTR_N_METHODS; k++) {
            const struct attribution_map *am = &r.maps[k];
            if (!am->done)
                continue;
            char details[256] = "";
            if (k == ATTR_GRADCAM)
                snprintf(details, sizeof details, "layer %.120s (%d×%d)", am->layer, am->layer_h, am->layer_w);
            else if (k == ATTR_IG)
                snprintf(details, sizeof details, "%d steps, completeness error %.2f %%", am->steps,
                         100 * am->ig.completeness);
            else if (k == ATTR_OCCLUSION)
                snprintf(details, sizeof details, "patch %d, stride %d", am->patch, am->stride);
            else if (k == ATTR_LIME)
                snprintf(details, sizeof details, "%d superpixels, R² %.3f", am->lime_segments,
                         am->lime_score);
            printf("%-10s %9.3f %10.3f %6.0f ms  %s%sscale ±%.3g\n", attribution_method_name(k),
                   am->faith.deletion_auc, am->faith.insertion_auc, am->ms, details,
                   details[0] ? ", " : "", am->scale);
        }
        if (r.best >= 0)
            printf("The model's own behaviour supports %s best here (insertion %.3f, deletion %.3f; "
                   "deletion: lower is better, insertion: higher).\n",
                   attribution_method_name(r.best), r.maps[r.best].faith.insertion_auc,
                   r.maps[r.best].faith.deletion_auc);
    }
    attribution_result_free(&r);
    return EXIT_OK;
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
                                         {"method", required_argument, 0, 'M'},
                                         {"layer", required_argument, 0, 'L'},
                                         {"steps", required_argument, 0, 'S'},
                                         {"baseline", required_argument, 0, 'B'},
                                         {"patch", required_argument, 0, 'P'},
                                         {"stride", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct lime_params lp;
    lime_params_default(&lp);
    lp.batch_size = 32;
    const char *class_name = NULL, *out = NULL, *heat = NULL, *models = NULL;
    int json = 0, threads = 0, features = 5, seed = 0, c;
    struct attribution_params ap;
    attribution_params_default(&ap);
    int methods_given = 0;
    char perr[STRATA_ERR_LEN];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
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
        case 'M':
            if (attribution_parse_methods(optarg, &ap.methods, perr) < 0)
                return cli_usage_error("explain", "%s", perr);
            methods_given = 1;
            break;
        case 'L': ap.layer = optarg; break;
        case 'S':
            if (cli_parse_int(optarg, 1, 1024, &ap.ig_steps))
                return cli_usage_error("explain", "--steps expects an integer from 1 to 1024, got '%s'", optarg);
            break;
        case 'B':
            if (strcmp(optarg, "black") && strcmp(optarg, "blur"))
                return cli_usage_error("explain", "--baseline expects black or blur, got '%s'", optarg);
            ap.ig_blurred = strcmp(optarg, "blur") == 0;
            break;
        case 'P':
            if (cli_parse_int(optarg, 1, 4096, &ap.occlusion_patch))
                return cli_usage_error("explain", "--patch expects a positive integer, got '%s'", optarg);
            break;
        case 'R':
            if (cli_parse_int(optarg, 1, 4096, &ap.occlusion_stride))
                return cli_usage_error("explain", "--stride expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(explain_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("explain", "option '%s' needs a value", argv[optind - 1]);
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
    if (methods_given) {
        ap.lime = lp;
        ap.label = label;
        ap.seed = lp.seed;
        rc = explain_methods(&m, &img, &ap, argv[optind + 1], json, out, heat);
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
