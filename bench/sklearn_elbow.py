#!/usr/bin/python3
"""sklearn_elbow.py — scikit-learn's elbow sweep on the matrix bench_kmeans wrote,
compared with strata's numbers from bench_kmeans' JSON.

    bench_kmeans [--npy X.npy --json C.json]        # writes both files
    /usr/bin/python3 bench/sklearn_elbow.py [X.npy] [C.json] [--runs 3]

Runs KMeans(n_clusters=k, init='k-means++', n_init=10, random_state=0) for
k = 1..10 (scikit-learn's defaults otherwise: lloyd, max_iter 300, tol 1e-4),
takes the median wall time of `runs` whole sweeps, and prints per k the
inertia ratio strata / scikit-learn and the overall speed ratio. Exits 1 when a
ratio exceeds 1.01. Uses Debian's python3-sklearn (hence /usr/bin/python3).
"""
import json
import statistics
import sys
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans


def main():
    args = [a for a in sys.argv[1:]]
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    npy = args[0] if len(args) > 0 else "/tmp/strata_bench_kmeans.npy"
    cjson = args[1] if len(args) > 1 else "/tmp/strata_bench_kmeans.json"

    X = np.load(npy)
    with open(cjson) as f:
        c = json.load(f)
    assert X.shape == (c["n"], c["d"]), (X.shape, c["n"], c["d"])
    k_max = len(c["per_k"])

    sweeps, per_k_times = [], {k: [] for k in range(1, k_max + 1)}
    inertia = {}
    for _ in range(runs):
        t0 = time.perf_counter()
        for k in range(1, k_max + 1):
            t1 = time.perf_counter()
            km = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=0).fit(X)
            per_k_times[k].append(time.perf_counter() - t1)
            inertia[k] = (float(km.inertia_), int(km.n_iter_))
        sweeps.append(time.perf_counter() - t0)
    sk_sweep = statistics.median(sweeps)
    c_sweep = c["sweep_seconds_median"]

    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, X {X.shape} {X.dtype}")
    print(f"{'k':>3} {'strata inertia':>16} {'sklearn inertia':>16} {'ratio':>9} "
          f"{'iter C/sk':>9} {'C s':>8} {'sk s':>8}")
    worst = 0.0
    for row in c["per_k"]:
        k = row["k"]
        sk_in, sk_it = inertia[k]
        ratio = row["inertia"] / sk_in if sk_in > 0 else (1.0 if row["inertia"] == 0 else float("inf"))
        worst = max(worst, ratio)
        print(f"{k:>3} {row['inertia']:>16.2f} {sk_in:>16.2f} {ratio:>9.5f} "
              f"{row['n_iter']:>4}/{sk_it:<4} {row['seconds']:>8.4f} "
              f"{statistics.median(per_k_times[k]):>8.4f}")
    print(f"sweep k=1..{k_max}: strata {c_sweep:.4f} s (median of {c['runs']}, "
          f"threads {c['threads']}), scikit-learn {sk_sweep:.4f} s (median of {runs}) "
          f"-> strata is {sk_sweep / c_sweep:.1f}x faster")
    print(f"worst inertia ratio strata/sklearn: {worst:.5f}; strata chose k = {c['chosen_k']}")
    return 0 if worst <= 1.01 else 1


if __name__ == "__main__":
    sys.exit(main())
