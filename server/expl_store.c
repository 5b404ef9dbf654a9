/*
 * expl_store.c — the two rings of explanations (see expl_store.h).
 */
#include "expl_store.h"

#include <pthread.h>
#include <stdlib.h>

#include "status.h"

struct expl_store {
    pthread_mutex_t mu; /* both rings and the slots their entries point from */
    int max_uploads, max_images;
    struct explanation **store; /* uploads: ring [max_uploads] */
    unsigned long long *store_num; /* [max_uploads] id number of each entry */
    unsigned long long store_next; /* ids e1, e2, ...: e<n> sits at store[(n-1) % cap] */
    struct explanation **img_ring; /* dataset images: ring [max_images] */
    size_t img_next;
};

void explanation_unref(struct explanation *e)
{
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    free(e->json);
    free(e->overlay);
    free(e->heatmap);
    free(e);
}

int expl_store_new(int max_uploads, int max_images, struct expl_store **out)
{
    *out = NULL;
    struct expl_store *s = calloc(1, sizeof *s);
    if (!s)
        return STRATA_E_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->max_uploads = max_uploads;
    s->max_images = max_images;
    s->store = calloc((size_t)max_uploads, sizeof *s->store);
    s->store_num = calloc((size_t)max_uploads, sizeof *s->store_num);
    s->img_ring = calloc((size_t)max_images, sizeof *s->img_ring);
    if (!s->store || !s->store_num || !s->img_ring) {
        expl_store_free(s);
        return STRATA_E_NOMEM;
    }
    *out = s;
    return 0;
}

void expl_store_free(struct expl_store *s)
{
    if (!s)
        return;
    if (s->store)
        for (int i = 0; i < s->max_uploads; i++)
            explanation_unref(s->store[i]);
    free(s->store);
    free(s->store_num);
    if (s->img_ring) /* the models' slots are gone already: only the ring owns these */
        for (int i = 0; i < s->max_images; i++)
            explanation_unref(s->img_ring[i]);
    free(s->img_ring);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

unsigned long long expl_store_reserve(struct expl_store *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long n = ++s->store_next;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void expl_store_put(struct expl_store *s, unsigned long long n, struct explanation *e)
{
    size_t slot = (size_t)((n - 1) % (unsigned long long)s->max_uploads);
    struct explanation *drop;
    pthread_mutex_lock(&s->mu);
    if (s->store[slot] && s->store_num[slot] > n) {
        drop = e; /* a newer one already took the slot */
    } else {
        drop = s->store[slot];
        s->store[slot] = e;
        s->store_num[slot] = n;
    }
    pthread_mutex_unlock(&s->mu);
    explanation_unref(drop);
}

struct explanation *expl_store_get(struct expl_store *s, unsigned long long n)
{
    struct explanation *e = NULL;
    size_t slot = (size_t)((n - 1) % (unsigned long long)s->max_uploads);
    pthread_mutex_lock(&s->mu);
    if (s->store[slot] && s->store_num[slot] == n) {
        e = s->store[slot];
        atomic_fetch_add(&e->refs, 1);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

struct explanation *expl_store_image_get(struct expl_store *s, struct explanation **slots, int i)
{
    pthread_mutex_lock(&s->mu);
    struct explanation *e = slots[i];
    if (e)
        atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return e;
}

struct explanation *expl_store_image_put(struct expl_store *s, struct explanation **slots, int i,
                                         struct explanation *e)
{
    struct explanation *drop = NULL, *serve;
    pthread_mutex_lock(&s->mu);
    if (slots[i]) {
        drop = e; /* computed twice at once: keep the first */
        serve = slots[i];
    } else {
        size_t slot = s->img_next++ % (size_t)s->max_images;
        drop = s->img_ring[slot];
        if (drop && drop->slots) /* NULL: its model was deleted */
            drop->slots[drop->index] = NULL;
        e->slots = slots;
        e->index = i;
        s->img_ring[slot] = e;
        slots[i] = e;
        serve = e;
    }
    atomic_fetch_add(&serve->refs, 1);
    pthread_mutex_unlock(&s->mu);
    explanation_unref(drop);
    return serve;
}

void expl_store_forget(struct expl_store *s, struct explanation **slots)
{
    if (!s || !slots)
        return;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->max_images; i++)
        if (s->img_ring[i] && s->img_ring[i]->slots == slots)
            s->img_ring[i]->slots = NULL;
    pthread_mutex_unlock(&s->mu);
}
