#!/usr/bin/env bash
# bench_analysis.sh — the analysis of an imported ResNet-18 (224x224, random
# weights with BatchNorm statistics estimated on photos, exported by
# scripts/onnx/export_torchvision.py) over the felines test split (200 images)
# and over every photo of the three demo datasets, train and test together
# (5,511 images, 14 classes): seconds per stage (strata analyze --json) and
# peak memory (the process's maximum resident set size), next to the size of
# the per-layer feature matrices, which is all that should grow with the
# image count (the images are decoded and run batch by batch); then the same
# two models served by strata serve, its peak memory once the analyses and
# the doubt work are done.
#
# Usage: bench/bench_analysis.sh [--load N]   (N busy processes beside it)
# Needs python3-torch (scripts/setup --test) and ../shared/datasets.
# Prints a table and merges {"analysis_import": ...} into bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
load=0
[ "${1:-}" = "--load" ] && load=${2:-2}
bin=$PWD/build/server/strata
data=${STRATA_DATA:-$PWD/../shared/datasets}
python=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# the combined dataset: every photo, as <dataset>-<class>/ under one split
mkdir -p "$tmp/data/all/test"
for d in paysages transports felines; do
    for split in train test; do
        for cdir in "$data/$d/$split"/*/; do
            c=$(basename "$cdir")
            mkdir -p "$tmp/data/all/test/$d-$c"
            for f in "$cdir"*; do ln -s "$f" "$tmp/data/all/test/$d-$c/$split-$(basename "$f")"; done
        done
    done
done
ln -s "$data/felines" "$tmp/data/felines"
n_all=$(find "$tmp/data/all/test" -type l | wc -l)

export_r18() { # classes out
    "$python" scripts/onnx/export_torchvision.py --arch resnet18 --classes "$1" --out "$2" --data "$data" \
        >"$2.log" 2>&1 || { cat "$2.log"; exit 1; }
}
export_r18 4 "$tmp/k4"
export_r18 14 "$tmp/k14"
imagenet=(--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225)
"$bin" import "$tmp/k4/resnet18.onnx" --id r18-felines --models "$tmp/models" --dataset felines \
    --data "$tmp/data" "${imagenet[@]}" >/dev/null
classes=$(ls "$tmp/data/all/test" | sort | paste -sd, -)
"$bin" import "$tmp/k14/resnet18.onnx" --id r18-all --models "$tmp/models" --dataset all \
    --classes "$classes" "${imagenet[@]}" >/dev/null

for i in $(seq 1 "$load"); do (while :; do :; done) & pids+=($!); done

run() { # id -> JSON line {id, n, seconds, peak_kb, features_bytes}
    /usr/bin/time -f '%M' -o "$tmp/$1.rss" "$bin" analyze "$1" --models "$tmp/models" --data "$tmp/data" \
        --no-cache --threads 2 --json >"$tmp/$1.json" 2>"$tmp/$1.err" || { cat "$tmp/$1.err"; exit 1; }
    "$python" - "$tmp/$1.json" "$tmp/$1.rss" "$1" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
peak_kb = int(open(sys.argv[2]).read().split()[-1])
feat = sum(4 * a["n_images"] * L["feature_size"] for L in a["layers"] if L["same_as"] is None)
print(json.dumps({"id": sys.argv[3], "n_images": a["n_images"], "layers": len(a["layers"]),
                  "seconds": {k: round(v, 3) for k, v in a["computed_seconds"].items()},
                  "peak_rss_mb": round(peak_kb / 1024, 1), "features_mb": round(feat / 2**20, 1)}))
PY
}
small=$(run r18-felines)
big=$(run r18-all)

# The server doing the same: both analyses, the doubt calibration of
# r18-felines (its train split) and its evaluation (the combined photos as
# the unknown ones); the process's peak memory when all of it is done.
"$bin" serve --port 0 --models "$tmp/models" --data "$tmp/data" --workspace "$tmp/ws" --no-cache \
    --quiet >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 600); do
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\)\/.*/\1/p' "$tmp/serve.out")
    [ -n "$port" ] && break
    sleep 0.5
done
t0=$(date +%s.%N)
for _ in $(seq 1 3600); do
    done_=$("$python" - "$port" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/api/models"
ok = True
for m in json.load(urllib.request.urlopen(base))["models"]:
    d = json.load(urllib.request.urlopen(f"{base}/{m['id']}"))
    ok &= d["analysis"]["state"] in ("ready", "failed") and d["doubt"]["state"] != "pending" \
        and d["doubt"]["evaluation"] != "pending"
print(1 if ok else 0)
PY
)
    [ "$done_" = 1 ] && break
    sleep 1
done
server_s=$(echo "$(date +%s.%N) - $t0" | bc)
server_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' /proc/$spid/status)
kill "$spid"

"$python" - "$small" "$big" "$load" "$n_all" "$server_kb" "$server_s" <<'PY'
import json, subprocess, sys
small, big, load, n_all = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
server_mb, server_s = int(sys.argv[5]) / 1024, float(sys.argv[6])
stages = [k for k in small["seconds"] if k != "total"] + ["total"]
print(f"ResNet-18 224x224 imported, analysis ({load} busy processes beside it)")
print(f"{'':14}" + "".join(f"{s:>12}" for s in stages) + f"{'peak RSS':>12}{'features':>12}")
for r in (small, big):
    print(f"{r['n_images']:>6} images " + "".join(f"{r['seconds'][s]:>11.2f}s" for s in stages)
          + f"{r['peak_rss_mb']:>9.0f} MB{r['features_mb']:>9.0f} MB")
growth = big["peak_rss_mb"] - small["peak_rss_mb"]
feat_growth = big["features_mb"] - small["features_mb"]
print(f"peak memory grows {growth:.0f} MB from {small['n_images']} to {big['n_images']} images; "
      f"the feature matrices grow {feat_growth:.0f} MB")
print(f"strata serve with both models: analyses, doubt calibration and evaluation done in "
      f"{server_s:.0f} s, peak memory {server_mb:.0f} MB")
key = "analysis_import" if load == 0 else f"analysis_import_load_{load}"
path = "bench/results.json"
res = json.load(open(path))
res[key] = {"model": "resnet18 224x224 (torchvision, random weights, BatchNorm from photos), imported",
            "threads": 2, "runs": [small, big], "rss_growth_mb": round(growth, 1),
            "features_growth_mb": round(feat_growth, 1),
            "server": {"peak_rss_mb": round(server_mb, 1), "seconds": round(server_s, 1),
                       "what": "both analyses, r18-felines' doubt calibration and evaluation"}}
json.dump(res, open(path, "w"), indent=2)
open(path, "a").write("\n")
PY
