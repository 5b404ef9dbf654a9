/*
 * model_import.h — what making an ONNX file a strata model takes, shared by
 * `strata import` (cmd_import.c) and POST /api/models (api_import.c): the
 * id rules, the input size, and the model.json beside the file, checked by
 * opening the folder as every command will.
 */
#ifndef STRATA_MODEL_IMPORT_H
#define STRATA_MODEL_IMPORT_H

#include <jansson.h>

#include "status.h"

/* Whether s is a usable model id: 1 to 63 characters of letters, digits,
 * '-', '_' and '.', not starting with '.'. */
int import_id_ok(const char *s);

/* The input height and width of an ONNX classifier: the file's own, or
 * want_h x want_w when the file leaves them open (want 0: not given; given
 * and different from the file's: refused). what names the file in
 * messages. Returns 0, or STRATA_E_ARG / STRATA_E_UNSUPPORTED / the ONNX
 * reader's status with err. */
int import_input_size(const char *onnx_path, const char *what, int want_h, int want_w, int *h,
                      int *w, char *err);

/* What model.json says about an imported file. */
struct import_meta {
    const char *id, *title;  /* title NULL: the id */
    const json_t *classes;   /* array of class names, in the order of the outputs */
    const char *dataset;     /* the images' dataset name, NULL: the id */
    double mean[3], std[3];  /* x = (pixel/255 - mean) / std */
    int height, width;
};

/* Writes <folder>/model.json for the ONNX file <folder>/model.onnx, then
 * opens the folder as a model to check that strata can run it (its output
 * count must be the number of classes). On success, *n_layers is the
 * number of layers the analysis will show. Returns 0 or the status of what
 * failed, with err. */
int import_write_and_check(const char *folder, const struct import_meta *meta, int *n_layers,
                           char *err);

/* A class name list from a comma-separated string, each name trimmed, 1 to
 * 255 bytes. Appends to arr; returns 0 or STRATA_E_ARG with err. */
int import_classes_from_list(json_t *arr, const char *list, char *err);

/* Validates a JSON array of class names (strings of 1 to 255 bytes, no
 * duplicates, at least 2). Returns 0 or STRATA_E_ARG with err. */
int import_classes_check(const json_t *arr, char *err);

/* Three numbers of a JSON array [r, g, b] into out: each within ±1e6, and
 * above 0 when `positive` (a standard deviation). Returns 0, or -1 with out
 * untouched. */
int import_triple(const json_t *j, double out[3], int positive);

/* What a file strata exported says about itself, in its metadata_props:
 * strata.title, strata.classes (a JSON array of names), strata.mean and
 * strata.std (JSON arrays of three numbers). Each is checked as the
 * import's own values are: a title of 1 to 200 bytes of UTF-8, class names
 * as import_classes_check wants them, finite means, finite positive
 * standard deviations. */
struct import_file_meta {
    char title[256];   /* "" when the file gives no usable title */
    json_t *classes;   /* NULL when it gives no usable names; owned */
    double mean[3], std[3];
    int has_mean, has_std;
    json_t *ignored;   /* {"title"|"classes"|"mean"|"std": sentence} for entries
                          present but unusable; owned */
    int readable;      /* 0: the file is no ONNX model whose metadata could be read */
};

/* Reads the metadata of the ONNX file at path into *fm (initialised by the
 * call). An entry that is absent leaves its field empty; one that is
 * present but unusable leaves it empty too and says why in fm->ignored —
 * bad metadata never stops an import, the caller's own values or defaults
 * are used instead. A file whose metadata cannot be read at all (not an
 * ONNX model) gives an empty *fm: opening the file as a model later says
 * what is wrong with it. This function can't fail. Free with
 * import_file_meta_deinit. */
void import_file_meta_read(struct import_file_meta *fm, const char *path);
void import_file_meta_deinit(struct import_file_meta *fm);

/* Sets which graph values an imported model shows as layers: writes
 * "shown" (names: value, node or layer names, see model_graph.h) into
 * <dir>/model.json, or removes it (names NULL: strata's own choice), then
 * opens the model to check; a choice it refuses (a name that is no value
 * of the graph) puts the previous file back. The file is replaced whole
 * (written beside it, then renamed). Returns 0, or the model's status
 * (STRATA_E_NOTFOUND for an unknown name), STRATA_E_IO, STRATA_E_FORMAT
 * (model.json unreadable) or STRATA_E_ARG (not an imported model) with err. */
int import_set_shown(const char *dir, const json_t *names, char *err);

#endif
