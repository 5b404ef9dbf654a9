/*
 * expl_store.h — the bounded store of LIME explanations.
 *
 * Explanations are the exception to "never freed before the server stops":
 * they weigh ~100 KB each, so they live in two rings, oldest evicted first
 * — one of uploads (ids "e1", "e2", ...: e<n> sits at slot (n-1) % its
 * size) and one of dataset images. A dataset image's explanation is also
 * pointed to by its model's slot for that image (struct app_model's expl,
 * state.h), which the store clears when it evicts the entry; both rings and
 * those slots are guarded by the store's lock. An entry is
 * reference-counted because a GET may still be sending its PNG when a newer
 * one evicts it.
 *
 * Threading: every function may be called from any thread, except
 * expl_store_new and expl_store_free.
 */
#ifndef STRATA_EXPL_STORE_H
#define STRATA_EXPL_STORE_H

#include <stdatomic.h>

struct blob;

struct explanation {
    atomic_int refs;
    char id[96];
    struct blob *json, *overlay, *heatmap; /* owned */
    /* A dataset image's: the model's slots that point here and the index
     * in them (the store clears slots[index] on eviction); NULL for an
     * upload, and once the model is gone. */
    struct explanation **slots;
    int index;
};

/* Drops a reference; the last one frees the explanation. NULL-safe. */
void explanation_unref(struct explanation *e);

struct expl_store;

/* A store of max_uploads upload and max_images dataset image explanations
 * (both >= 1). Returns 0 and *out, or STRATA_E_NOMEM. Free with
 * expl_store_free. */
int expl_store_new(int max_uploads, int max_images, struct expl_store **out);

/* Drops the store's references. Call it after expl_store_forget for every
 * slots array still in use. NULL-safe. */
void expl_store_free(struct expl_store *s);

/* Upload explanations: reserve the next id number n (the explanation's id
 * is "e<n>", needed in its JSON before it is stored), then store it there,
 * handing over the caller's reference; the oldest entry is evicted when the
 * ring is full (an entry that a newer one has already displaced is dropped
 * at once). Can't fail. */
unsigned long long expl_store_reserve(struct expl_store *s);
void expl_store_put(struct expl_store *s, unsigned long long n, struct explanation *e);

/* The upload explanation "e<n>" with a new reference (explanation_unref), or
 * NULL when it was never stored or has been evicted. */
struct explanation *expl_store_get(struct expl_store *s, unsigned long long n);

/* The explanation in slots[i] (a model's slots of its dataset images) with
 * a new reference, or NULL when it has not been computed (or was evicted). */
struct explanation *expl_store_image_get(struct expl_store *s, struct explanation **slots, int i);

/* Keeps e (the caller's reference moves to the store) in slots[i],
 * evicting the oldest dataset explanation when full, and returns the
 * explanation to serve with a new reference: e, or the one another request
 * stored meanwhile (then e is dropped). Can't fail. */
struct explanation *expl_store_image_put(struct expl_store *s, struct explanation **slots, int i,
                                         struct explanation *e);

/* The slots array is going (its model is freed): the entries that point
 * into it stay in the ring, pointing nowhere. NULL-safe (both). */
void expl_store_forget(struct expl_store *s, struct explanation **slots);

#endif
