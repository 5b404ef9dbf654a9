/*
 * api_openapi.c — GET /api/openapi.json: an OpenAPI 3.0 description of the
 * API (docs/api.md in machine-readable form), built once at start.
 *
 * Schemas describe the shapes the pages rely on (field names and types);
 * docs/api.md remains the prose reference for what the numbers mean.
 */
#include "api.h"
#include "blob.h"
#include "json.h"
#include "state.h"

static json_t *ref(const char *kind, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "#/components/%s/%s", kind, name);
    return json_pack("{s:s}", "$ref", path);
}

static json_t *schema(const char *name)
{
    return ref("schemas", name);
}

static json_t *param(const char *name)
{
    return ref("parameters", name);
}

static json_t *error(const char *name)
{
    return ref("responses", name);
}

/* A 200 reply of one media type with a schema. */
static json_t *ok(const char *description, const char *media, json_t *sch)
{
    return json_pack("{s:s, s:{s:{s:o}}}", "description", description, "content", media,
                     "schema", sch);
}

static json_t *ok_json(const char *description, const char *schema_name)
{
    return ok(description, "application/json", schema(schema_name));
}

static json_t *binary(void)
{
    return json_pack("{s:s, s:s}", "type", "string", "format", "binary");
}

static json_t *get(const char *summary, const char *description, json_t *params, json_t *resp)
{
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "get", "summary", summary, "description",
                     description, "parameters", params, "responses", resp);
}

/* Responses every analysis-backed GET shares besides its 200. */
static json_t *analysis_errors(json_t *resp)
{
    json_object_set_new(resp, "404", error("NotFound"));
    json_object_set_new(resp, "409", error("NotReady"));
    return resp;
}

static json_t *image_params(int by_index)
{
    return by_index ? json_pack("[o, o]", param("ModelId"), param("ImageIndex"))
                    : json_pack("[o, o, o]", param("ModelId"), param("ImageClass"),
                                param("ImageFile"));
}

static json_t *image_paths(json_t *paths, int by_index)
{
    const char *base = by_index ? "/api/models/{id}/images/{image}"
                                : "/api/models/{id}/images/{class}/{file}";
    char p[128];
    const char *how = by_index ? " (by index)" : " (by id <class>/<file>)";
    char s1[160], s2[160], s3[160];
    snprintf(s1, sizeof s1, "A dataset image as stored%s", how);
    snprintf(s2, sizeof s2, "A 64x64 JPEG thumbnail%s", how);
    snprintf(s3, sizeof s3, "LIME explanation of the model's answer on a dataset image%s", how);
    json_object_set_new(paths, base,
                        get(s1, "The file of the analysed split, with its own MIME type.",
                            image_params(by_index),
                            analysis_errors(json_pack(
                                "{s:{s:s, s:{s:{s:o}, s:{s:o}}}}", "200", "description",
                                "the image", "content", "image/jpeg", "schema", binary(),
                                "image/png", "schema", binary()))));
    snprintf(p, sizeof p, "%s/thumb", base);
    json_object_set_new(paths, p,
                        get(s2, "Centre square of the image, 64x64, JPEG; computed once.",
                            image_params(by_index),
                            analysis_errors(json_pack("{s:o}", "200",
                                                      ok("the thumbnail", "image/jpeg",
                                                         binary())))));
    snprintf(p, sizeof p, "%s/explanation", base);
    json_object_set_new(paths, p,
                        get(s3, "Computed on the worker pool at the first request, then cached.",
                            image_params(by_index),
                            analysis_errors(json_pack("{s:o, s:o}", "200",
                                                      ok_json("the explanation", "Explanation"),
                                                      "503", error("Busy")))));
    return paths;
}

static json_t *obj(const char *description)
{
    return json_pack("{s:s, s:s}", "type", "object", "description", description);
}

static json_t *components(void)
{
    json_t *s = json_object();
    json_object_set_new(
        s, "Error",
        json_pack("{s:s, s:[s], s:{s:{s:s, s:[s, s], s:{s:{s:s}, s:{s:s}}}}}", "type", "object",
                  "required", "error", "properties", "error", "type", "object", "required",
                  "code", "message", "properties", "code", "type", "string", "message", "type",
                  "string"));
    json_object_set_new(
        s, "Health",
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:{s:s, s:[s, s, s, s]}}}}",
                  "type", "object", "properties", "status", "type", "string", "version", "type",
                  "string", "models", "type", "integer", "analyses_ready", "type", "integer",
                  "analyses", "type", "object", "additionalProperties", "type", "string", "enum",
                  "queued", "analysing", "ready", "failed"));
    json_object_set_new(s, "ModelList",
                        json_pack("{s:s, s:{s:{s:s, s:o}}}", "type", "object", "properties",
                                  "models", "type", "array", "items", schema("ModelSummary")));
    json_object_set_new(s, "ModelSummary",
                        obj("id, title, description, dataset, classes, layers (count), input, "
                            "test_accuracy, parameters, seed_architecture, analysis (state), "
                            "cover (thumbnail URL or null), error (when failed), uploaded, "
                            "progress {stage, done, total} or null"));
    json_object_set_new(s, "ImportReply",
                        obj("id, model (as in the list), report {format, entries, bytes, images, "
                            "split, split_note, classes [{name, train, test}], skipped [{entry, "
                            "reason}], n_skipped}, from_metadata [title|classes|mean|std: what "
                            "the file's metadata gave], metadata_notes [sentences]"));
    json_object_set_new(s, "GraphValues",
                        obj("model, chosen (model.json's names or null), values [{name, value, "
                            "op, shape [h, w, c], shown (layer index or null), default}]"));
    json_object_set_new(s, "Features",
                        obj("model, layer {index, name, shape [h, w, c]}, input [h, w, 3], image "
                            "{width, height}, predicted, means [c], map_size {width, height}, "
                            "channels [{index, mean, min, max, map [0..1000] or null}]"));
    json_object_set_new(s, "DatasetList",
                        obj("datasets [{name, classes, train, test}]"));
    json_object_set_new(s, "ModelDetail",
                        obj("id, title, description, dataset, classes, input, normalization, "
                            "layers [{index, name, type, op (imported), inputs (the layers it "
                            "reads, -1 the image), activation, output_shape, parameters, "
                            "config}], card, analysis {state, split, n_images, accuracy, "
                            "distinct_paths, seconds | error}"));
    json_object_set_new(s, "Scatter",
                        obj("layer, k, k_auto, explained_variance_ratio, silhouette, purity, "
                            "ari, nmi, classes, points {id, x, y, true, pred, cluster}, centers "
                            "{x, y, size, majority}"));
    json_object_set_new(s, "Elbow", obj("layer, k_values, inertia, k, k_auto, silhouette"));
    json_object_set_new(s, "Paths",
                        obj("classes, dimensions [{label, kind, layer, k, purity, ari, nmi}], "
                            "images {id, true, pred, clusters, path}, distinct_paths"));
    json_object_set_new(s, "Misclassified",
                        obj("images [{index, id, true, pred, probability, true_probability, "
                            "left_at, thumb, image}]"));
    json_object_set_new(s, "DoubtEvaluation",
                        obj("model, n_id, n_ood, accuracy, sources [{name, ood, n}], auroc, "
                            "fpr95, auroc_errors (each {doubt, msp, energy}), levels {medium, "
                            "high}, histogram {edges, id, ood}"));
    json_object_set_new(s, "Prediction",
                        obj("model, predicted, label, probability, probabilities [{class, "
                            "probability}], layers [{index, name, cluster, distance, x, y, "
                            "cluster_majority}], path {clusters, pred}, doubt, explanation {id, "
                            "url, overlay, heatmap} | null, timings_ms {decode, forward, lime}"));
    json_object_set_new(s, "Attribution",
                        obj("model, image {index, id} | null, class, label, probability, "
                            "predicted, true, probabilities [{class, probability}], input [w, h], "
                            "methods [{method, title, map {width, height, scale, values (integers "
                            "-1000..1000 of scale)}, deletion_auc, insertion_auc, deletion [21], "
                            "insertion [21], ms, ms_faithfulness, details}], best, summary, "
                            "timings_ms {gradient_setup, total}"));
    json_object_set_new(s, "Explanation",
                        obj("id, model, image, class, probability, true, weights [{segment, "
                            "weight}], intercept, score, local_pred, segments, timings_ms, "
                            "overlay, heatmap, description"));

    json_t *p = json_object();
    json_object_set_new(p, "ModelId",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "id", "in", "path",
                                  "required", 1, "description", "model id (GET /api/models)",
                                  "schema", "type", "string"));
    json_object_set_new(p, "Layer",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "layer", "in", "path",
                                  "required", 1, "description", "layer name or index",
                                  "schema", "type", "string"));
    json_object_set_new(p, "ImageClass",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "class", "in", "path",
                                  "required", 1, "description",
                                  "first part of the image id <class>/<file>", "schema", "type",
                                  "string"));
    json_object_set_new(p, "ImageFile",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "file", "in", "path",
                                  "required", 1, "description",
                                  "second part of the image id <class>/<file>", "schema", "type",
                                  "string"));
    json_object_set_new(p, "ImageIndex",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:i}}", "name", "image", "in",
                                  "path", "required", 1, "description",
                                  "index of the image in the analysis", "schema", "type",
                                  "integer", "minimum", 0));
    json_object_set_new(p, "ExplanationId",
                        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "eid", "in", "path",
                                  "required", 1, "description",
                                  "explanation id from a predict reply or an image explanation",
                                  "schema", "type", "string"));

    json_t *r = json_object();
    const char *errs[][2] = {
        {"BadRequest", "bad input: a corrupt or undecodable image, a bad parameter"},
        {"NotFound", "unknown model, layer, image, explanation or route"},
        {"NotReady", "the analysis is not ready (code analysing) or failed (analysis_failed)"},
        {"TooLarge", "the body is over the upload limit"},
        {"Unsupported", "the body is not an image (PNG, JPEG) nor multipart/form-data"},
        {"Busy", "the worker queue is full (code busy, with Retry-After)"},
        {"Conflict", "the id is taken (code exists)"},
        {"Forbidden", "the model was not imported through the API (code not_deletable)"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        json_object_set_new(r, errs[i][0],
                            json_pack("{s:s, s:{s:{s:o}}}", "description", errs[i][1], "content",
                                      "application/json", "schema", schema("Error")));
    return json_pack("{s:o, s:o, s:o}", "schemas", s, "parameters", p, "responses", r);
}

static json_t *document(void)
{
    json_t *paths = json_object();
    json_object_set_new(paths, "/api/health",
                        get("Server status and each model's analysis state",
                            "Always answers, also while analyses are being built.", json_array(),
                            json_pack("{s:o}", "200", ok_json("status", "Health"))));
    json_t *models = get("The models", "Every model folder, including failed ones.", json_array(),
                         json_pack("{s:o}", "200", ok_json("the models", "ModelList")));
    json_t *form = json_pack(
        "{s:b, s:{s:{s:{s:s, s:[s, s], s:{s:{s:s, s:s}, s:o, s:o}}}}}", "required", 1, "content",
        "multipart/form-data", "schema", "type", "object", "required", "meta", "model",
        "properties", "meta", "type", "string", "description",
        "JSON: {title?, id?, classes?, dataset?, mean?, std?, input?: [h, w]}; what is left out "
        "is taken from the file's metadata when strata exported it (docs/api.md)",
        "model", binary(), "images", binary());
    json_object_set_new(
        models, "post",
        json_pack("{s:s, s:s, s:o, s:{s:{s:s, s:{s:{s:s}}, s:{s:{s:o}}}, s:o, s:o, s:o, s:o, "
                  "s:o}}",
                  "summary", "Import an ONNX classifier with its photos",
                  "description",
                  "The .onnx file, its metadata, and an archive of class folders (.zip, .tar, "
                  ".tar.gz) or a dataset of the server; analysed in the background.",
                  "requestBody", form, "responses", "201", "description",
                  "imported: the model and the archive's report", "headers", "Location",
                  "description", "/api/models/<id>", "content", "application/json", "schema",
                  schema("ImportReply"), "400", error("BadRequest"), "409", error("Conflict"),
                  "413", error("TooLarge"), "415", error("Unsupported"), "503",
                  error("Busy")));
    json_object_set_new(paths, "/api/models", models);
    json_t *model = get("One model", "Architecture, classes, training card, analysis state.",
                        json_pack("[o]", param("ModelId")),
                        json_pack("{s:o, s:o}", "200", ok_json("the model", "ModelDetail"),
                                  "404", error("NotFound")));
    json_object_set_new(model, "delete",
                        json_pack("{s:s, s:s, s:o, s:{s:{s:s}, s:o, s:o}}", "summary",
                                  "Delete an imported model",
                                  "description",
                                  "Only models made through POST /api/models; removes their "
                                  "folder and uploaded photos.",
                                  "parameters", json_pack("[o]", param("ModelId")), "responses",
                                  "204", "description", "deleted", "403", error("Forbidden"),
                                  "404", error("NotFound")));
    json_object_set_new(paths, "/api/models/{id}", model);
    json_object_set_new(paths, "/api/models/{id}/graph",
                        get("The values an imported model can show as layers",
                            "Every per-image value of its graph before the class scores: layer "
                            "name, ONNX value name, op, shape, whether shown now and by default.",
                            json_pack("[o]", param("ModelId")),
                            json_pack("{s:o, s:o, s:o}", "200", ok_json("the values", "GraphValues"),
                                      "400", error("BadRequest"), "404", error("NotFound"))));
    json_object_set_new(
        paths, "/api/models/{id}/layers",
        json_pack("{s:{s:s, s:s, s:o, s:{s:b, s:{s:{s:{s:s}}}}, s:{s:o, s:o, s:o}}}", "put",
                  "summary", "Choose the layers an imported model shows", "description",
                  "{\"shown\": [names]} or {\"shown\": null} (strata's choice); kept in its "
                  "model.json, the model is then analysed anew.",
                  "parameters", json_pack("[o]", param("ModelId")), "requestBody", "required", 1,
                  "content", "application/json", "schema", "type", "object", "responses", "200",
                  ok_json("the model", "ModelDetail"), "400", error("BadRequest"), "404",
                  error("NotFound")));
    json_object_set_new(paths, "/api/datasets",
                        get("The server's datasets", "Dataset folders with a train split, for "
                                                     "an import's photos.",
                            json_array(),
                            json_pack("{s:o}", "200", ok_json("the datasets", "DatasetList"))));
    json_t *k = json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}}", "name", "k", "in", "query",
                          "required", 0, "description",
                          "re-cluster the layer with k clusters (cached after the first call)",
                          "schema", "type", "integer", "minimum", 1, "maximum",
                          ANALYSIS_DEFAULT_K_MAX);
    json_object_set_new(paths, "/api/models/{id}/layers/{layer}/scatter",
                        get("A layer's images in its PCA plane, with clusters",
                            "k-means clusters (the elbow's k, or ?k=N) and PCA coordinates.",
                            json_pack("[o, o, o]", param("ModelId"), param("Layer"), k),
                            analysis_errors(json_pack("{s:o, s:o, s:o}", "200",
                                                      ok_json("the scatter", "Scatter"), "400",
                                                      error("BadRequest"), "503",
                                                      error("Busy")))));
    json_object_set_new(paths, "/api/models/{id}/layers/{layer}/elbow",
                        get("A layer's elbow curve", "Inertia for k = 1..10 and the chosen k.",
                            json_pack("[o, o]", param("ModelId"), param("Layer")),
                            analysis_errors(
                                json_pack("{s:o}", "200", ok_json("the curve", "Elbow")))));
    json_object_set_new(paths, "/api/models/{id}/paths",
                        get("Every image's path through the layers' clusters",
                            "Data for a parallel-categories plot.",
                            json_pack("[o]", param("ModelId")),
                            analysis_errors(
                                json_pack("{s:o}", "200", ok_json("the paths", "Paths")))));
    json_object_set_new(paths, "/api/models/{id}/misclassified",
                        get("The images the model gets wrong",
                            "With the layer from which each path left its true class.",
                            json_pack("[o]", param("ModelId")),
                            analysis_errors(json_pack(
                                "{s:o}", "200", ok_json("the images", "Misclassified")))));
    json_object_set_new(
        paths, "/api/models/{id}/doubt",
        get("How well the doubt score spots images of other datasets",
            "The test split (in-distribution) against the other datasets' test splits: AUROC, "
            "FPR at 95 % TPR and errors-AUROC of doubt, MSP and energy, and a histogram of the "
            "doubt. 409 while it is computed (after every analysis) or when the model has no "
            "doubt score.",
            json_pack("[o]", param("ModelId")),
            analysis_errors(json_pack("{s:o}", "200",
                                      ok_json("the evaluation", "DoubtEvaluation")))));
    image_paths(paths, 0);
    image_paths(paths, 1);
    json_t *body = json_pack(
        "{s:b, s:{s:{s:{s:s, s:{s:{s:o}}}}, s:{s:o}, s:{s:o}}}", "required", 1, "content",
        "multipart/form-data", "schema", "type", "object", "properties", "image", "schema",
        binary(), "image/jpeg", "schema", binary(), "image/png", "schema", binary());
    json_t *explain = json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:[i, i]}}", "name", "explain",
                                "in", "query", "required", 0, "description",
                                "0 skips LIME (default 1)", "schema", "type", "integer", "enum",
                                0, 1);
    json_object_set_new(
        paths, "/api/models/{id}/predict",
        json_pack("{s:{s:s, s:s, s:o, s:o, s:o}}", "post", "summary",
                  "Classify an uploaded image and place it in every layer",
                  "description",
                  "Probabilities, nearest cluster and PCA point per layer, the path, and a LIME "
                  "explanation (unless explain=0) kept in a bounded store; k<layer>=<k> query "
                  "parameters (e.g. k3=5) add the upload's cluster at that layer re-clustered "
                  "with k (clusters_at).",
                  "parameters", json_pack("[o, o]", param("ModelId"), explain), "requestBody",
                  body, "responses",
                  analysis_errors(json_pack(
                      "{s:o, s:o, s:o, s:o, s:o}", "200", ok_json("the prediction", "Prediction"),
                      "400", error("BadRequest"), "413", error("TooLarge"), "415",
                      error("Unsupported"), "503", error("Busy")))));
    json_t *q[7];
    static const char *const qdoc[7][2] = {
        {"image", "a test image of the analysed split (index or <class>/<file>) instead of a body"},
        {"method", "comma-separated gradcam, ig, occlusion, lime, or all (default); a random map "
                   "is always added for comparison"},
        {"class", "the class explained (default: the predicted one)"},
        {"layer", "Grad-CAM's layer (default: the last spatial one)"},
        {"steps", "Integrated Gradients' steps, 1..256 (default 32)"},
        {"baseline", "Integrated Gradients' baseline: black (default) or blur"},
        {"patch", "occlusion patch side in input pixels (stride: half of it)"}};
    for (int i = 0; i < 7; i++)
        q[i] = json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", qdoc[i][0], "in", "query",
                         "required", 0, "description", qdoc[i][1], "schema", "type",
                         i == 4 || i == 6 ? "integer" : "string");
    json_t *xbody = json_deep_copy(body);
    json_object_set_new(xbody, "required", json_false());
    json_object_set_new(
        paths, "/api/models/{id}/explain",
        json_pack("{s:{s:s, s:s, s:o, s:o, s:o}}", "post", "summary",
                  "Explain a prediction by several methods, each scored for faithfulness",
                  "description",
                  "Grad-CAM, Integrated Gradients, occlusion and LIME maps (and a random map) for "
                  "any class, of an uploaded image (the body) or a test image (?image=), each with "
                  "its deletion and insertion curves and areas (Petsiuk et al. 2018), and the "
                  "method the model's behaviour supports best.",
                  "parameters",
                  json_pack("[o, o, o, o, o, o, o, o]", param("ModelId"), q[0], q[1], q[2], q[3],
                            q[4], q[5], q[6]),
                  "requestBody", xbody, "responses",
                  analysis_errors(json_pack(
                      "{s:o, s:o, s:o, s:o, s:o, s:o}", "200",
                      ok_json("the explanations", "Attribution"), "400", error("BadRequest"),
                      "404", error("NotFound"), "413", error("TooLarge"), "415",
                      error("Unsupported"), "503", error("Busy")))));
    json_t *fq[2] = {
        json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", "layer", "in", "query", "required", 1,
                  "description", "the layer, by index or name", "schema", "type", "string"),
        json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}}", "name", "top", "in", "query",
                  "required", 0, "description", "channels mapped, 1..64 (default 12)", "schema",
                  "type", "integer", "minimum", 1, "maximum", 64)};
    json_t *fbody = json_deep_copy(xbody);
    json_object_set_new(
        paths, "/api/models/{id}/features",
        json_pack("{s:{s:s, s:s, s:o, s:o, s:o}}", "post", "summary",
                  "What one layer sees in one image",
                  "description",
                  "Every channel's mean activation, and the channels that respond most, each "
                  "with its map, for an uploaded image (the body) or a test image (?image=).",
                  "parameters",
                  json_pack("[o, o, o, o]", param("ModelId"), json_deep_copy(q[0]), fq[0], fq[1]),
                  "requestBody", fbody, "responses",
                  analysis_errors(json_pack(
                      "{s:o, s:o, s:o, s:o, s:o}", "200", ok_json("the layer's channels",
                                                               "Features"),
                      "400", error("BadRequest"), "413", error("TooLarge"), "415",
                      error("Unsupported"), "503", error("Busy")))));
    json_t *eid = json_pack("[o]", param("ExplanationId"));
    json_object_set_new(paths, "/api/explanations/{eid}",
                        get("An explanation", "An upload's (e<n>) or a dataset image's.",
                            json_deep_copy(eid),
                            json_pack("{s:o, s:o}", "200",
                                      ok_json("the explanation", "Explanation"), "404",
                                      error("NotFound"))));
    json_object_set_new(paths, "/api/explanations/{eid}/overlay.png",
                        get("The explanation's overlay", "The photo with the regions outlined.",
                            json_deep_copy(eid),
                            json_pack("{s:o, s:o}", "200", ok("PNG", "image/png", binary()),
                                      "404", error("NotFound"))));
    json_object_set_new(paths, "/api/explanations/{eid}/heatmap.png",
                        get("The explanation's heat map", "Each region coloured by its weight.",
                            eid,
                            json_pack("{s:o, s:o}", "200", ok("PNG", "image/png", binary()),
                                      "404", error("NotFound"))));
    json_object_set_new(paths, "/api/openapi.json",
                        get("This document", "OpenAPI 3.0.", json_array(),
                            json_pack("{s:o}", "200",
                                      ok("the document", "application/json",
                                         json_pack("{s:s}", "type", "object")))));
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:o}", "openapi", "3.0.3", "info", "title",
                     "strata API", "version", STRATA_VERSION, "description",
                     "See inside an image classifier: layers, clusters, paths, LIME. Errors are "
                     "{\"error\": {\"code\", \"message\"}}.",
                     "paths", paths, "components", components());
}

struct blob *api_openapi_blob(void)
{
    return blob_json_steal(document());
}

int handle_openapi(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    return blob_reply(req, res, app->openapi, "application/json", NULL);
}
