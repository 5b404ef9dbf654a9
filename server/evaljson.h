/*
 * evaljson.h — an evaluation as JSON, the one shape `strata eval --json`,
 * card.json and the API share: {accuracy, balanced_accuracy, n, classes,
 * per_class: {class: accuracy}, confusion: [[...]]}.
 */
#ifndef STRATA_EVALJSON_H
#define STRATA_EVALJSON_H

#include <jansson.h>

#include "evaluate.h"

/* New reference; the caller owns it. */
json_t *evaluation_to_json(const struct evaluation *ev, const struct model *m);

#endif
