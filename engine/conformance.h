/*
 * conformance.h — runs one of ONNX's backend test cases (a folder holding
 * model.onnx and test_data_set_0/{input_N,output_N}.pb) and compares every
 * output with ONNX's reference at the suite's tolerance:
 * |got - want| <= atol + rtol * |want|, rtol 1e-3, atol 1e-7.
 *
 * A case strata cannot run for a stated reason — an op it does not support,
 * a 1-D or 3-D convolution, training-mode dropout, a non-tensor or non-float
 * input — is skipped with that reason; any other failure fails the case.
 */
#ifndef STRATA_CONFORMANCE_H
#define STRATA_CONFORMANCE_H

#include "status.h"

#define CONFORMANCE_RTOL 1e-3
#define CONFORMANCE_ATOL 1e-7

enum conformance_verdict { CONFORMANCE_PASS, CONFORMANCE_FAIL, CONFORMANCE_SKIP };

struct conformance_result {
    enum conformance_verdict verdict;
    char reason[STRATA_ERR_LEN];   /* why it failed or was skipped ("" on a pass) */
    double max_error;              /* largest |got - want| over the outputs */
    char ops[256];                 /* the op types the model uses, comma-separated, sorted */
};

/* Runs the case in `dir`. Can't fail: problems are the verdict. */
void conformance_run(const char *dir, struct conformance_result *r);

#endif
