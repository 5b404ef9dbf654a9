#!/usr/bin/env bash
# bench_http.sh — throughput and latency of `strata serve` on loopback:
#   1. GET  /api/models/<id>/paths             (a precomputed reply: target >= 10,000 req/s)
#   2. POST /api/models/<id>/predict?explain=0 (decode + forward + clusters: target p99 < 100 ms)
# and the server's resident memory once every model is analysed (target < 500 MB
# with the six demo models), and again after the load.
#
# Load generator: wrk (Debian package `wrk`: apt-get install -y wrk), this
# benchmark's own dependency; strata itself does not need it.
#
# Usage: bench/bench_http.sh [options]
#   --bin PATH         strata binary (default build/server/strata)
#   --model ID         model to load (default: the first trained *-seed model)
#   --models DIR       models folder (default models)
#   --data DIR         datasets folder (default $STRATA_DATA or ../shared/datasets)
#   --duration S       seconds per measurement (default 10)
#   --get-conns N      connections for the GET run (default 16)
#   --post-conns N     connections for the predict run (default: the worker count)
#   --threads N        server worker threads (default: CPUs)
# When no *-seed model has weights yet, a copy of models/felines-seed is trained
# for one epoch into $STRATA_BENCH_DIR (default /tmp/strata-bench, kept for the
# next run): predict latency does not depend on how well the weights are trained.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/server/strata model="" models=models data=${STRATA_DATA:-../shared/datasets} cache=()
duration=10 get_conns=16 post_conns="" threads=""
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --get-conns) get_conns=$2; shift 2 ;;
    --post-conns) post_conns=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_http: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "bench_http: needs wrk (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$bin" ] || { echo "bench_http: no strata binary at $bin" >&2; exit 1; }
cpus=$(nproc)
threads=${threads:-$cpus}
post_conns=${post_conns:-$threads}

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$model" ]; then
    for d in "$models"/*-seed; do
        if [ -f "$d/weights.safetensors" ]; then model=$(basename "$d"); break; fi
    done
fi
if [ -z "$model" ]; then
    spare=${STRATA_BENCH_DIR:-/tmp/strata-bench}/models
    if [ ! -f "$spare/felines-seed/weights.safetensors" ]; then
        echo "bench_http: no trained seed model; training a copy of felines-seed for 1 epoch into $spare" >&2
        mkdir -p "$spare/felines-seed"
        cp models/felines-seed/model.json "$spare/felines-seed/"
        "$bin" train "$spare/felines-seed" --data "$data" --epochs 1 >/dev/null 2>&1
    fi
    models=$spare model=felines-seed
    cache=(--cache "$spare/../cache") # not the repo's cache: these weights are throw-away
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --port "$port" --models "$models" --data "$data" --threads "$threads" "${cache[@]}" \
    >"$work/stdout" 2>"$work/stderr" &
pid=$!
base=http://127.0.0.1:$port

# Wait until no analysis is queued or running.
for _ in $(seq 1 1200); do
    h=$(curl -sf "$base/api/health" || true)
    if [ -n "$h" ] && ! grep -qE ':"(queued|analysing)"' <<<"$h"; then break; fi
    sleep 0.5
done
grep -q "\"$model\":\"ready\"" <<<"$h" || { echo "bench_http: $model is not ready: $h" >&2; tail "$work/stderr" >&2; exit 1; }
# ... and until no doubt model is still being calibrated (it competes for the CPU).
ids=$(python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])["analyses"]))' "$h")
for id in $ids; do
    for _ in $(seq 1 1200); do
        curl -sf "$base/api/models/$id" | grep -q '"doubt":{"state":"pending"' || break
        sleep 0.5
    done
done
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
n_models=$(grep -o '"models":[0-9]*' <<<"$h" | cut -d: -f2)
ready=$(grep -o '"analyses_ready":[0-9]*' <<<"$h" | cut -d: -f2)
rss_ready=$(rss)

# A test image of the model's dataset, posted as raw JPEG.
image=$(curl -sf "$base/api/models/$model/paths" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"]["id"][0])')
curl -sf -o "$work/image.jpg" "$base/api/models/$model/images/$image"
cat >"$work/post.lua" <<EOF
local f = assert(io.open("$work/image.jpg", "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
EOF

# Prints "req/s p50 p99" from wrk's --latency report (latencies in ms).
summarise() {
    python3 -c '
import re, sys
t = sys.stdin.read()
def ms(v, u): return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
rps = re.search(r"Requests/sec:\s*([\d.]+)", t).group(1)
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s*(50|99)\.000%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)}
if not lat:
    lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)}
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print("%.0f %.2f %.2f %s" % (float(rps), lat["50"], lat["99"], errs.group(1) if errs else 0))'
}

curl -sf -o /dev/null "$base/api/models/$model/paths"
wrk -t2 -c"$get_conns" -d2s "$base/api/models/$model/paths" >/dev/null # warm-up
read -r get_rps get_p50 get_p99 get_err < <(wrk -t2 -c"$get_conns" -d"${duration}s" --latency \
    "$base/api/models/$model/paths" | summarise)
wrk -t1 -c"$post_conns" -d2s -s "$work/post.lua" "$base/api/models/$model/predict?explain=0" >/dev/null
read -r post_rps post_p50 post_p99 post_err < <(wrk -t1 -c"$post_conns" -d"${duration}s" --latency \
    -s "$work/post.lua" "$base/api/models/$model/predict?explain=0" | summarise)
rss_after=$(rss)
bytes=$(curl -sf "$base/api/models/$model/paths" | wc -c)

echo "strata serve on loopback, $cpus CPUs, $threads workers, model $model ($n_models models, $ready analysed)"
printf "%-44s %10s %9s %9s %6s\n" "request" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf "%-44s %10s %9s %9s %6s\n" "GET paths ($bytes B, $get_conns connections)" "$get_rps" "$get_p50" "$get_p99" "$get_err"
printf "%-44s %10s %9s %9s %6s\n" "POST predict?explain=0 ($post_conns connections)" "$post_rps" "$post_p50" "$post_p99" "$post_err"
echo "server RSS: $rss_ready MB with every analysis and doubt model ready, $rss_after MB after the load"
