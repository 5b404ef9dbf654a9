/*
 * integrated_gradients.h — Integrated Gradients (Sundararajan et al. 2017).
 *
 * For a class logit f, an image x and a baseline x' (black, or a blurred
 * copy), the attribution of input i is
 *     (x_i − x'_i) · ∫₀¹ ∂f/∂x_i (x' + α(x − x')) dα,
 * the integral taken by the trapezoid rule on m steps (m + 1 points, run in
 * batches). Summed over the three channels of each pixel. Completeness: the
 * attributions sum to f(x) − f(x') up to the rule's error, reported.
 */
#ifndef STRATA_INTEGRATED_GRADIENTS_H
#define STRATA_INTEGRATED_GRADIENTS_H

#include "model_grad.h"

struct ig_result {
    double sum;            /* Σ of the attributions */
    double f_input, f_baseline; /* the logit at x and at x' */
    double completeness;   /* |sum − (f_input − f_baseline)| / |f_input − f_baseline| */
};

/* Attributions of class cls for the normalised image x[3][H][W] against the
 * normalised baseline[3][H][W] with `steps` >= 1 trapezoid steps: map[H][W]
 * (the caller's). Returns 0 or a negative status (model_grad_run's, memory). */
int ig_compute(struct model_grad *mg, const float *x, const float *baseline, int cls, int steps,
               float *map, struct ig_result *r, char *err);

#endif
