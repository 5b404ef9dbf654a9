/*
 * doubt.h — everything about the doubt score, for a caller that uses all of
 * it (the server's application state: it calibrates, scores, evaluates and
 * serialises). Each part has its own header; include the one you need:
 *
 *   doubt_score.h      the score of an image against a calibrated doubt model
 *   doubt_calibrate.h  fitting a doubt model from images or a dataset
 *   doubt_cache.h      doubt models kept on disk, calibrated once
 *   doubt_eval.h       the out-of-distribution evaluation and its metrics
 *   doubt_json.h       results and evaluations as JSON
 *
 * docs/doubt.md has the formula, the reasons for every term and the measured
 * results.
 */
#ifndef STRATA_DOUBT_H
#define STRATA_DOUBT_H

#include "doubt_cache.h"
#include "doubt_calibrate.h"
#include "doubt_eval.h"
#include "doubt_json.h"
#include "doubt_score.h"

#endif
