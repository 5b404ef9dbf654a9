/*
 * slic.h — SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to
 * State-of-the-Art Superpixel Methods", TPAMI 2012) for LIME.
 *
 * The image is converted to CIELAB (sRGB, D65). K seeds are placed on a
 * regular grid of step S ≈ sqrt(N/K) and each is moved to the lowest-gradient
 * pixel of its 3×3 neighbourhood. Ten rounds of local k-means follow: every
 * centre claims the pixels of its 2S×2S window that are closer to it than to
 * any other centre under
 *     D = sqrt(dc² + (ds/S)²·m²),
 * dc the Lab distance, ds the pixel distance and m the compactness
 * (scikit-image's default 10; larger m gives squarer segments). The labels
 * are then made connected: each 4-connected piece of a label becomes its own
 * segment, and a piece smaller than a quarter of the expected size N/K is
 * merged into the adjacent segment of closest mean colour (the original
 * merges into the previously scanned neighbour; choosing by colour keeps
 * fragments on their side of an edge). Finally segments are numbered
 * 0..n-1 in raster order of their first pixel. Every returned segment is
 * 4-connected and the result depends only on the input.
 */
#ifndef STRATA_SLIC_H
#define STRATA_SLIC_H

#include <stdint.h>

#include "status.h"

/* Converts n RGB8 pixels (sRGB) to CIELAB under D65, lab[3*i + {0,1,2}] =
 * L* in [0, 100], a*, b*. Pure white is (100, 0, 0). Can't fail. */
void slic_rgb_to_lab(const uint8_t *rgb, int n, float *lab);

/* Segments the w×h RGB8 image rgb (pixel (x, y) at rgb[3*(y*w + x)]) into
 * about n_segments superpixels with the given compactness (> 0; 10 is the
 * usual value). Writes a label per pixel into labels (w*h ints, caller-owned)
 * and the number of segments into *n_out; labels cover 0..*n_out-1. The
 * segment count may differ from n_segments (the grid is rounded and small
 * fragments are merged). Allocates scratch internally and frees it.
 * Fails with STRATA_E_ARG when w or h < 2, n_segments < 1 or more than
 * w*h/4 (a superpixel needs a few pixels), or compactness is not > 0;
 * STRATA_E_NOMEM when scratch cannot be allocated. */
int slic_segment(const uint8_t *rgb, int w, int h, int n_segments, float compactness,
                 int *labels, int *n_out, char *err);

#endif
