#!/usr/bin/env bash
# Side-by-side comparison of rollout-guard builds (say, main and a branch), on one machine in
# one run, for figures that timing alone cannot settle on a noisy host.
#
#   bench/ab.sh icount BIN...      # instructions of one served audit run (valgrind, deterministic)
#   bench/ab.sh throughput BIN...  # wrk at full speed: req/s and server CPU per request, baseline first
#   bench/ab.sh p99 BIN...         # admission latency at a fixed 2000/s during back-to-back audits
#
# BIN: rollout-guard binaries (copy target/release/rollout-guard aside before rebuilding).
# icount runs `serve --objects DIR --audit` under callgrind over one bench-gen file of each kind
# (100 Deployments, Services, Ingresses, HTTPRoutes, ReplicaSets) and counts the instructions
# inside the audit's `run_cached` until the first run ends. throughput uses the 40k store and the
# mixed bodies of bench/run.sh, 10 s per binary after 3 s of warm-up, and prints VmRSS/VmHWM
# once the store is loaded and after the load. p99 serves the 40k store with `--audit-period
# 100ms` and, once the first run has ended, sends 2000 reviews/s of the mixed bodies for 10 s
# with bench-probe, for each binary in turn (the first binary also without the audit, as the
# reference), AB_ROUNDS times (default 3). Needs the release build's
# examples (cargo build --release --examples), valgrind and wrk (installed from Debian if
# missing). Uses ports 18443/19090 and 18444. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
mode=${1:?usage: bench/ab.sh icount|throughput|p99 BIN...}
shift
[ "$#" -ge 1 ] || { echo "give at least one rollout-guard binary" >&2; exit 2; }
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done
gen=$root/target/release/examples/bench-gen
baseline=$root/target/release/examples/baseline-webhook
probe=$root/target/release/examples/bench-probe
[ -x "$gen" ] && [ -x "$baseline" ] && [ -x "$probe" ] || cargo build --release --examples 2>&1 | tail -1

mkdir -p "$out/policies" && cp policies/*.yaml "$out/policies/"
[ -f "$out/certs/tls.crt" ] || "$1" certs generate --out "$out/certs" --service rollout-guard --namespace bench --days 2 >/dev/null
[ -d "$out/bodies" ] || "$gen" bodies "$out/bodies" >/dev/null
[ -d "$out/objects-40k" ] || "$gen" objects "$out/objects-40k" 10000 >/dev/null

server_pid=""
stop() { if [ -n "$server_pid" ]; then kill -INT "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; fi; }
trap stop EXIT
metric() { curl -s http://127.0.0.1:19090/metrics | awk -v m="$1" '$1==m {print $2}'; }
serve() { # BIN OBJECTS [ARGS...]: rollout-guard (under $wrapper, if set) with the repository's policies
  local bin=$1 objects=$2
  shift 2
  KUBECONFIG=/nonexistent ${wrapper:-} "$bin" --log-format json serve --policies "$out/policies" \
    --tls-cert "$out/certs/tls.crt" --tls-key "$out/certs/tls.key" --addr 127.0.0.1:18443 \
    --metrics-addr 127.0.0.1:19090 --namespace rollout-guard --objects "$objects" \
    --reload-interval-ms 1000 "$@" >"$out/ab-serve.log" 2>&1 &
  server_pid=$!
}

case "$mode" in
icount)
  small=$out/objects-small
  rm -rf "$small" && mkdir -p "$small"
  for kind in deployment service ingress httproute replicaset; do
    cp "$(ls "$out/objects-40k/$kind-"* | head -1)" "$small/"
  done
  cp "$out/objects-40k/ingressclass.json" "$small/"
  for bin in "$@"; do
    wrapper="valgrind --tool=callgrind --callgrind-out-file=$out/ab-callgrind.out --toggle-collect=rollout_guard::audit::cache::run_cached*"
    serve "$bin" "$small" --audit --audit-reports off --audit-period 600s
    until [ "$(metric 'rollout_guard_audit_runs_total{result="ok"}')" = 1 ]; do
      kill -0 "$server_pid" 2>/dev/null || { cat "$out/ab-serve.log"; exit 1; }
      sleep 0.2
    done
    stop
    echo "$bin: $(awk '/^summary:/ {print $2}' "$out/ab-callgrind.out") instructions in the first audit run"
  done
  ;;
throughput)
  mixed=(/mutate="$out/bodies/deployment-update.json" /validate="$out/bodies/ingress-canary-create.json"
         /validate="$out/bodies/httproute-update.json" /validate="$out/bodies/service-update.json")
  ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  mem() { awk '/VmHWM|VmRSS/ {printf "%s %.1f MiB ", $1, $2/1024}' "/proc/$1/status"; }
  load() { # NAME PORT
    wrk -t1 -c16 -d3s -s bench/post.lua "https://127.0.0.1:$2" -- "${mixed[@]}" >/dev/null
    local before after requests
    before=$(ticks "$server_pid")
    wrk -t1 -c16 -d10s -s bench/post.lua "https://127.0.0.1:$2" -- "${mixed[@]}" >"$out/ab-wrk.txt"
    after=$(ticks "$server_pid")
    requests=$(sed -n 's/^bench: requests=\([0-9]*\).*/\1/p' "$out/ab-wrk.txt")
    echo "$1: $(sed -n 's/^bench: .*rps=\([0-9.]*\).*/\1/p' "$out/ab-wrk.txt") req/s, $(awk -v t=$((after - before)) -v r="$requests" 'BEGIN {printf "%.1f", t * 10000 / (r > 0 ? r : 1)}') µs CPU per request, after the load $(mem "$server_pid")"
  }
  "$baseline" 127.0.0.1:18444 "$out/certs/tls.crt" "$out/certs/tls.key" >"$out/ab-baseline.log" 2>&1 &
  server_pid=$!
  until curl -fsk --resolve rollout-guard.bench.svc:18444:127.0.0.1 https://rollout-guard.bench.svc:18444/readyz >/dev/null 2>&1; do sleep 0.05; done
  load baseline 18444
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  for bin in "$@"; do
    serve "$bin" "$out/objects-40k"
    until curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1; do
      kill -0 "$server_pid" 2>/dev/null || { cat "$out/ab-serve.log"; exit 1; }
      sleep 0.05
    done
    sleep 1
    echo "$bin: ready with the 40k store, $(mem "$server_pid")"
    load "$bin" 18443
    stop
  done
  ;;
p99)
  mixed_csv="/mutate=$out/bodies/deployment-update.json,/validate=$out/bodies/ingress-canary-create.json,/validate=$out/bodies/httproute-update.json,/validate=$out/bodies/service-update.json"
  steal() { awk '/^cpu / {print $9}' /proc/stat; }
  rate() { # LABEL
    local before
    before=$(steal)
    "$probe" rate https://127.0.0.1:18443 rollout-guard.bench.svc "$out/certs/ca.pem" "$mixed_csv" 2000 10 |
      sed "s/^/$1: /"
    echo "$1: steal during the load $(( ($(steal) - before) * 10 )) ms"
  }
  for round in $(seq "${AB_ROUNDS:-3}"); do
    serve "$1" "$out/objects-40k"
    until curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1; do
      kill -0 "$server_pid" 2>/dev/null || { cat "$out/ab-serve.log"; exit 1; }
      sleep 0.05
    done
    rate "round $round, $1, no audit"
    stop
    for bin in "$@"; do
      serve "$bin" "$out/objects-40k" --audit --audit-reports off --audit-period 100ms
      until [ -n "$(metric rollout_guard_audit_last_cpu_seconds)" ]; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$out/ab-serve.log"; exit 1; }
        sleep 0.05
      done
      runs=$(metric 'rollout_guard_audit_runs_total{result="ok"}')
      rate "round $round, $bin, audits running"
      echo "round $round, $bin, audits running: audit runs completed during the load: $(( $(metric 'rollout_guard_audit_runs_total{result="ok"}') - runs ))"
      stop
    done
  done
  ;;
*) echo "unknown mode $mode: icount, throughput or p99" >&2; exit 2 ;;
esac
