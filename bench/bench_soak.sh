#!/usr/bin/env bash
# bench_soak.sh — a bounded soak of `strata serve` on loopback (issue #19):
# three phases one after another, each --seconds long (default 60), of wrk
# from 127.0.0.1 against one deep model (felines):
#   1. get      cached GETs in turn: the model list and detail, paths,
#               misclassified, doubt, every layer's scatter and elbow (16 connections)
#   2. predict  POST predict?explain=0 with a test photo (4 connections)
#   3. lime     POST predict with LIME, the default (2 connections: the workers)
# while 300 slow clients from 10 loopback addresses (127.0.0.2 ... 127.0.0.11)
# trickle a byte every 2 s, for the whole run (bench/soak/slow_clients.py):
# half of them never finish their headers (the server cuts them at
# --header-timeout), half send a body a byte at a time (cut at
# --min-body-rate); each one reconnects when cut. They hold more connections
# than the server's 256 while well-behaved clients must still be served.
# Per phase: req/s, p50/p99, non-2xx, socket errors (goal: 0), the slow
# connections cut, and the server's RSS (VmRSS) at its start and end (goal: flat);
# and, since wrk opens its connections once, what a new visitor sees: every
# 0.5 s a new connection from 127.0.0.1 asking GET /api/health (goal: all 200).
#
# Usage: bench/bench_soak.sh [options]   (3 x seconds + 15 to 60 s in all)
#   --bin PATH      strata binary (default build/server/strata)
#   --model ID      model under --models (default felines)
#   --models DIR    models folder (default models)
#   --data DIR      datasets folder (default $STRATA_DATA or ../shared/datasets)
#   --seconds S     seconds per phase, 5..90 (default $SOAK_SECONDS or 60)
#   --slow N        slow clients (default 300), from --addresses A addresses (default 10)
# Needs wrk (installed with apt-get when missing), python3, curl.
# $STRATA_SOAK_DIR (default /tmp/strata-soak) keeps the analysis cache for the
# next run, and in last/ the last run's wrk reports, counts and server log.
# Prints a table and merges {"soak": ...} into bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/server/strata model=felines models=models data=${STRATA_DATA:-../shared/datasets}
seconds=${SOAK_SECONDS:-60} slow=300 addresses=10
while [ $# -gt 0 ]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --slow) slow=$2; shift 2 ;;
    --addresses) addresses=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_soak: unknown option $1" >&2; exit 2 ;;
    esac
done
fail() { echo "bench_soak: $*" >&2; exit 1; }
[[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -ge 5 ] && [ "$seconds" -le 90 ] ||
    fail "--seconds expects 5 to 90 (the soak must stay under 6 minutes), got '$seconds'"
[[ $addresses =~ ^[0-9]+$ ]] && [ "$addresses" -ge 1 ] && [ "$addresses" -le 250 ] ||
    fail "--addresses expects 1 to 250, got '$addresses'"
if ! command -v wrk >/dev/null; then
    echo "bench_soak: installing wrk" >&2
    { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; }; } ||
        fail "needs wrk (apt-get install -y wrk failed)"
fi
for c in python3 curl timeout; do command -v "$c" >/dev/null || fail "needs $c"; done
[ -x "$bin" ] || fail "no strata binary at $bin (scripts/build, or --bin)"
[ -f "$models/$model/model.json" ] || fail "no model $models/$model"
[ -d "$data" ] || fail "no datasets folder $data"

# Limits given explicitly (they are the defaults) so that the report names them.
per_ip=32 header_timeout=10 min_body_rate=4096 max_connections=256 wrk_timeout=10
conns_get=16 conns_predict=4 conns_lime=2 warmup=12
(( slow <= addresses * per_ip )) || fail "$slow slow clients over $addresses addresses exceed --per-ip $per_ip"

keep=${STRATA_SOAK_DIR:-/tmp/strata-soak}
mkdir -p "$keep/cache"
tmp=$(mktemp -d)
spid="" slowpid="" samplerpid="" wrkpid=""
cleanup() {
    for p in "$wrkpid" "$slowpid" "$samplerpid"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "$wrkpid" "$slowpid" "$samplerpid"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
        kill -TERM "$spid"
        for _ in $(seq 1 40); do kill -0 "$spid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Only the model under test, so that the server analyses nothing else.
mkdir -p "$tmp/models"
ln -s "$(realpath "$models/$model")" "$tmp/models/$model"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
uptime_start=$(uptime)
"$bin" serve --port 0 --models "$tmp/models" --data "$data" --cache "$keep/cache" \
    --workspace "$tmp/workspace" --per-ip "$per_ip" --header-timeout "$header_timeout" \
    --min-body-rate "$min_body_rate" --quiet >"$tmp/server.out" 2>"$tmp/server.log" &
spid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\)\/.*/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    kill -0 "$spid" 2>/dev/null || { cat "$tmp/server.log" >&2; fail "the server did not start"; }
    sleep 0.2
done
[ -n "$port" ] || fail "the server printed no port"
base=http://127.0.0.1:$port

# Measure once the analysis, the doubt calibration and its evaluation are done
# (they compete for the CPU).
state=""
for _ in $(seq 1 240); do
    state=$(curl -sf "$base/api/models/$model" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["analysis"]["state"], d["doubt"]["state"], d["doubt"].get("evaluation"))' || true)
    case $state in
    "ready "*pending*|"") ;;
    ready*) break ;;
    failed*) fail "the analysis of $model failed: $(curl -s "$base/api/models/$model")" ;;
    esac
    sleep 0.5
done
[[ $state == ready* && $state != *pending* ]] || fail "$model not ready after 120 s (state: $state)"

# The cached GETs, each checked once; a test photo for the POSTs.
n_layers=$(curl -sf "$base/api/models/$model" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))')
paths="/api/models /api/models/$model /api/models/$model/paths /api/models/$model/misclassified"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/models/$model/doubt")" = 200 ] &&
    paths="$paths /api/models/$model/doubt"
for i in $(seq 0 $((n_layers - 1))); do
    paths="$paths /api/models/$model/layers/$i/scatter /api/models/$model/layers/$i/elbow"
done
for p in $paths; do
    curl -sf -o /dev/null "$base$p" || fail "GET $p does not answer 200"
done
image=$(curl -sf "$base/api/models/$model/paths" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"]["id"][0])')
curl -sf -o "$tmp/image.jpg" "$base/api/models/$model/images/$image"
curl -sf -o /dev/null -H 'Content-Type: image/jpeg' --data-binary @"$tmp/image.jpg" \
    "$base/api/models/$model/predict?explain=0" || fail "POST predict does not answer 200"

# The server's memory and threads, once a second for the whole soak.
status() { awk '/^VmRSS/ {r = $2} /^Threads/ {t = $2} END {print r, t}' "/proc/$spid/status"; }
(while kill -0 "$spid" 2>/dev/null; do echo "$(date +%s.%N) $(status)"; sleep 1; done) \
    >"$tmp/rss.log" 2>/dev/null &
samplerpid=$!
read -r rss_start thr_start < <(status)
t_start=$(date +%s.%N)

# The slow clients, for the whole soak; they reach their steady state (the
# first cuts) during the warm-up.
python3 bench/soak/slow_clients.py --port "$port" --clients "$slow" --addresses "$addresses" \
    --first 127.0.0.2 --interval 2 --body-path "/api/models/$model/predict?explain=0" --probe-every 0.5 \
    --seconds $((3 * seconds + warmup + 60)) --stats "$tmp/slow.json" 2>"$tmp/slow.err" &
slowpid=$!
sleep "$warmup"
kill -0 "$slowpid" 2>/dev/null || { cat "$tmp/slow.err" >&2; fail "the slow clients stopped"; }

phase() { # name connections wrk-threads url [VAR=value...] -> one line in phases.txt
    local name=$1 conns=$2 threads=$3 url=$4
    shift 4
    local t0 t1 rss0 rss1 thr0 thr1 log0 log1 load
    load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
    cp "$tmp/slow.json" "$tmp/$name.slow0"
    log0=$(wc -l <"$tmp/server.log")
    read -r rss0 thr0 < <(status)
    t0=$(date +%s.%N)
    env "$@" timeout $((seconds + 30)) wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout "${wrk_timeout}s" \
        --latency -s bench/soak/soak.lua "$url" >"$tmp/$name.wrk" 2>&1 &
    wrkpid=$!
    wait "$wrkpid" || { cat "$tmp/$name.wrk" >&2; fail "wrk failed in phase $name"; }
    wrkpid=""
    t1=$(date +%s.%N)
    read -r rss1 thr1 < <(status)
    log1=$(wc -l <"$tmp/server.log")
    cp "$tmp/slow.json" "$tmp/$name.slow1"
    grep -q '^SOAK_JSON ' "$tmp/$name.wrk" || { cat "$tmp/$name.wrk" >&2; fail "no summary from wrk in phase $name"; }
    echo "$name $conns $t0 $t1 $rss0 $rss1 $thr0 $thr1 $log0 $log1 $load" >>"$tmp/phases.txt"
}
phase get "$conns_get" 2 "$base/api/models" SOAK_PATHS="$paths"
phase predict "$conns_predict" 1 "$base/api/models/$model/predict?explain=0" SOAK_BODY="$tmp/image.jpg"
phase lime "$conns_lime" 1 "$base/api/models/$model/predict" SOAK_BODY="$tmp/image.jpg"

read -r rss_end thr_end < <(status)
t_end=$(date +%s.%N)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$spid/status")
kill "$slowpid" && wait "$slowpid" || true
slowpid=""
# Once the slow clients are gone and the last jobs done: what the server keeps.
for _ in $(seq 1 30); do
    curl -sf "$base/api/health" | grep -q '"queued":0,"running":0' && break
    sleep 0.5
done
sleep 2
read -r rss_idle thr_idle < <(status)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The last run's evidence, for a look afterwards (the server log without its
# one line per connection refused at the limit, which are counted below).
rm -rf "$keep/last" && mkdir -p "$keep/last"
cp "$tmp"/*.wrk "$tmp"/slow.json "$tmp"/rss.log "$tmp"/phases.txt "$keep/last/"
grep -v 'reached connection limit' "$tmp/server.log" >"$keep/last/server.log" || true

python3 - "$tmp" "$model" "$seconds" "$slow" "$addresses" "$load_start" "$load_end" "$uptime_start" \
    "$rss_start" "$rss_end" "$rss_idle" "$thr_start" "$thr_end" "$thr_idle" "$hwm" "$t_start" "$t_end" "$(nproc)" \
    "$per_ip" "$header_timeout" "$min_body_rate" "$max_connections" "$wrk_timeout" "$warmup" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)" <<'PY'
import datetime, json, re, sys
(tmp, model, seconds, slow, addresses, load_start, load_end, uptime_start, rss_start, rss_end,
 rss_idle, thr_start, thr_end, thr_idle, hwm, t_start, t_end, cores, per_ip, header_timeout, min_body_rate,
 max_connections, wrk_timeout, warmup, commit, wrk_version) = sys.argv[1:]
mb = lambda kb: round(int(kb) / 1024, 1)
samples = [tuple(map(float, l.split())) for l in open(f"{tmp}/rss.log") if len(l.split()) == 3]
log = open(f"{tmp}/server.log", errors="replace").read().splitlines()
def log_counts(lines):
    return {"cut_headers": sum("headers did not arrive in time" in l for l in lines),
            "cut_body": sum("body came slower than the minimum rate" in l for l in lines),
            "connection_limit": sum("reached connection limit" in l for l in lines)}
what = {"get": "cached GETs in turn (model list and detail, paths, misclassified, doubt, "
               "every layer's scatter and elbow)",
        "predict": "POST predict?explain=0, a test photo as image/jpeg",
        "lime": "POST predict with LIME (1000 samples), a test photo as image/jpeg"}
def probe_summary(probes):
    ok = sorted(ms for _, ms in probes if not isinstance(ms, str))
    failed = {}
    for _, r in probes:
        if isinstance(r, str):
            failed[r] = failed.get(r, 0) + 1
    pct = lambda q: round(ok[min(len(ok) - 1, int(q * len(ok)))], 2) if ok else None
    return {"probes": len(probes), "ok": len(ok), "failed": sum(failed.values()), "failures": failed,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": ok[-1] if ok else None}
slow_keys = ["connects", "cut_headers", "cut_body", "closed_at_once", "connect_errors", "answered"]
phases = []
for line in open(f"{tmp}/phases.txt"):
    name, conns, t0, t1, rss0, rss1, thr0, thr1, log0, log1, load = line.split()
    t0, t1 = float(t0), float(t1)
    w = json.loads(next(l for l in open(f"{tmp}/{name}.wrk") if l.startswith("SOAK_JSON "))[10:])
    s0, s1 = (json.load(open(f"{tmp}/{name}.slow{i}")) for i in (0, 1))
    sl = {k: s1[k] - s0[k] for k in slow_keys}
    n_cut = sl["cut_headers"] + sl["cut_body"]
    sl["mean_held_s"] = round((s1["held_s_sum"] - s0["held_s_sum"]) / n_cut, 1) if n_cut else None
    sl["statuses"] = {k: v - s0["statuses"].get(k, 0) for k, v in s1["statuses"].items()
                      if v != s0["statuses"].get(k, 0)}
    window = [s for s in samples if t0 <= s[0] <= t1]
    phases.append({
        "phase": name, "what": what[name], "connections": int(conns), "load_avg_start": load.split(","),
        "requests": w["requests"], "req_per_s": round(w["requests"] / w["seconds"], 1),
        "p50_ms": round(w["p50_ms"], 2), "p99_ms": round(w["p99_ms"], 2), "max_ms": round(w["max_ms"], 1),
        "non_2xx": w["non_2xx"],
        "socket_errors": {k: w[k] for k in ("connect", "read", "write", "timeout")},
        "rss_mb": {"start": mb(rss0),
                   "middle": mb(min(window, key=lambda s: abs(s[0] - (t0 + t1) / 2))[1]) if window else None,
                   "end": mb(rss1),
                   "peak_sampled": mb(max([int(rss0), int(rss1)] + [s[1] for s in window]))},
        "threads": {"start": int(thr0), "end": int(thr1),
                    "peak_sampled": int(max([int(thr0), int(thr1)] + [s[2] for s in window]))},
        "slow_clients": sl, "server_log": log_counts(log[int(log0):int(log1)]),
        "new_connections": probe_summary([p for p in s1["probes"] if t0 <= p[0] <= t1])})
slow_all = json.load(open(f"{tmp}/slow.json"))
soak = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "commit": commit,
    "cores": int(cores), "load_avg_start": load_start.split(), "load_avg_end": load_end.split(),
    "uptime_start": uptime_start.strip(), "model": model, "seconds_per_phase": int(seconds),
    "wrk": {"version": wrk_version, "source": "127.0.0.1", "timeout_s": int(wrk_timeout)},
    "server": {"workers": int(cores), "max_connections": int(max_connections), "per_ip": int(per_ip),
               "header_timeout_s": int(header_timeout), "min_body_rate": int(min_body_rate),
               "threading": "thread per connection"},
    "slow": {"clients": int(slow), "addresses": f"127.0.0.2-127.0.0.{1 + int(addresses)}",
             "byte_every_s": 2, "warmup_s": int(warmup),
             "kinds": "half never finish their headers (GET), half send a 100 kB body a byte at a time "
                      "(POST predict); each reconnects 0.1-0.5 s after losing its connection",
             "whole_run": {k: slow_all[k] for k in slow_keys + ["statuses"]}},
    "phases": phases,
    "new_connections": dict(probe_summary(slow_all["probes"]),
                            what="every 0.5 s a new connection from 127.0.0.1: GET /api/health, "
                                 "Connection: close, 10 s to answer 200"),
    "rss_mb": {"start": mb(rss_start), "end": mb(rss_end), "growth": round(mb(rss_end) - mb(rss_start), 1),
               "idle_after": mb(rss_idle),
               "peak_sampled": mb(max([int(rss_start), int(rss_end)] + [s[1] for s in samples])),
               "hwm": mb(hwm)},
    "threads": {"start": int(thr_start), "end": int(thr_end), "idle_after": int(thr_idle)},
    "seconds": round(float(t_end) - float(t_start), 1),
    "note": "bench/bench_soak.sh; RSS is /proc/<pid>/status VmRSS at the phase's start and end "
            "(peak_sampled: once a second), the slow clients counted by bench/soak/slow_clients.py",
}

print(f"strata soak: {model}, {seconds} s per phase, {cores} cores, load average at start {load_start} "
      f"(end {load_end})")
print(f"  {slow} slow clients from {soak['slow']['addresses']} (a byte every 2 s; --per-ip {per_ip}, "
      f"--header-timeout {header_timeout} s, --min-body-rate {min_body_rate} B/s, {max_connections} "
      f"connections in all); wrk from 127.0.0.1, --timeout {wrk_timeout} s")
print(f"{'':<8} {'wrk, keep-alive connections from 127.0.0.1':^75} | {'new connections (2/s)':^26}")
print(f"{'phase':<8} {'conns':>5} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
      f"{'non-2xx':>7} {'sock err c/r/w/t':>16} | {'ok/failed':>10} {'p50 ms':>7} {'p99 ms':>7}")
for p in phases:
    e, nc = p["socket_errors"], p["new_connections"]
    print(f"{p['phase']:<8} {p['connections']:>5} {p['requests']:>9} {p['req_per_s']:>9.1f} "
          f"{p['p50_ms']:>8.2f} {p['p99_ms']:>8.2f} {p['max_ms']:>8.1f} {p['non_2xx']:>7} "
          f"{'%d/%d/%d/%d' % (e['connect'], e['read'], e['write'], e['timeout']):>16} | "
          f"{'%d/%d' % (nc['ok'], nc['failed']):>10} {nc['p50_ms'] or 0:>7.2f} {nc['p99_ms'] or 0:>7.2f}")
print()
print(f"{'phase':<8} {'RSS MB start/middle/end':>24} {'peak':>6} {'threads':>9} "
      f"{'slow: connects':>14} {'cut hdr/body':>12} {'held s':>6} {'refused':>7} {'limit log':>9} {'load at start':>15}")
for p in phases:
    sl, rm = p["slow_clients"], p["rss_mb"]
    print(f"{p['phase']:<8} {'%.1f / %.1f / %.1f' % (rm['start'], rm['middle'] or 0, rm['end']):>24} "
          f"{rm['peak_sampled']:>6.0f} {'%d→%d' % (p['threads']['start'], p['threads']['end']):>9} "
          f"{sl['connects']:>14} {'%d/%d' % (sl['cut_headers'], sl['cut_body']):>12} "
          f"{sl['mean_held_s'] or 0:>6.1f} {sl['closed_at_once']:>7} {p['server_log']['connection_limit']:>9} "
          f"{' '.join(p['load_avg_start']):>15}")
r, wa, nc = soak["rss_mb"], soak["slow"]["whole_run"], soak["new_connections"]
print(f"whole soak ({soak['seconds']} s with the {warmup} s warm-up): RSS {r['start']} → {r['end']} MB "
      f"({r['growth']:+.1f}), {r['idle_after']} MB once idle, sampled peak {r['peak_sampled']} MB, "
      f"high-water mark {r['hwm']} MB; threads {soak['threads']['start']} → {soak['threads']['end']}, "
      f"{soak['threads']['idle_after']} once idle")
print(f"slow clients: {wa['connects']} connections, cut {wa['cut_headers']} in their headers and "
      f"{wa['cut_body']} in their body, {wa['closed_at_once']} closed within a second of connecting (refused), "
      f"{wa['connect_errors']} failed to connect, {wa['answered']} got a reply "
      f"{json.dumps(wa['statuses']) if wa['statuses'] else ''}")
print(f"new connections: {nc['ok']} of {nc['probes']} answered 200 (p50 {nc['p50_ms']} ms, p99 {nc['p99_ms']} ms), "
      f"failures {json.dumps(nc['failures'])}")

path = "bench/results.json"
res = json.load(open(path))
res["soak"] = soak
json.dump(res, open(path, "w"), indent=2)
open(path, "a").write("\n")
PY
