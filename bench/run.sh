#!/usr/bin/env bash
# Benchmark: rollout-guard against a no-op webhook on the same stack, in one run.
#
#   bench/run.sh            # about 5 minutes after the release build
#   BENCH_SECONDS=30 bench/run.sh
#   BENCH_ONLY=audit bench/run.sh   # only the background audit figures (build, inputs, audit)
#
# Prints every figure (and keeps a copy in bench/out/run.txt); bench/RESULTS.md records a run.
# Needs wrk (installed from Debian if missing). Uses ports 18443/19090 (rollout-guard) and
# 18444 (baseline) on 127.0.0.1. Not part of the test suite: no timed assertions anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/bench/out
seconds=${BENCH_SECONDS:-15}
only=${BENCH_ONLY:-}
mkdir -p "$out"
exec > >(tee "$out/run.txt") 2>&1

say() { printf '\n== %s\n' "$*"; }

if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi

say "build (release)"
cargo build --release --bins --examples 2>&1 | tail -1
bin=$root/target/release/rollout-guard
gen=$root/target/release/examples/bench-gen
probe=$root/target/release/examples/bench-probe
baseline=$root/target/release/examples/baseline-webhook

say "machine"
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "rustc: $(rustc --version)"
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ local changes)')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

say "inputs"
rm -rf "$out/bodies" "$out/objects-"* "$out/policies" "$out/certs"
"$gen" bodies "$out/bodies"
[ "$only" = audit ] || "$gen" objects "$out/objects-100" 25 >/dev/null
"$gen" objects "$out/objects-40k" 10000
[ "$only" = audit ] || "$gen" objects "$out/objects-100k" 25000 >/dev/null
for d in objects-100 objects-40k objects-100k; do if [ -d "$out/$d" ]; then echo "$d: $(du -sh "$out/$d" | cut -f1) of JSON manifests"; fi; done
"$bin" certs generate --out "$out/certs" --service rollout-guard --namespace bench --days 2 >/dev/null
mkdir -p "$out/policies" && cp policies/*.yaml "$out/policies/"
host=rollout-guard.bench.svc
ca=$out/certs/ca.pem
cert=$out/certs/tls.crt
key=$out/certs/tls.key
mixed=(/mutate="$out/bodies/deployment-update.json" /validate="$out/bodies/ingress-canary-create.json"
       /validate="$out/bodies/httproute-update.json" /validate="$out/bodies/service-update.json")
cross="/validate=$out/bodies/ingress-canary-create.json,/validate=$out/bodies/service-update.json,/validate=$out/bodies/httproute-update.json"

server_pid=""
# rollout-guard gets SIGINT: drain and exit at once (SIGTERM would keep accepting for
# --shutdown-delay-seconds). The baseline gets SIGTERM: background jobs of a script ignore SIGINT.
server_signal=INT
stop() { if [ -n "$server_pid" ]; then kill -"$server_signal" "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; fi; }
trap stop EXIT

# start_rg OBJECTS_DIR [SERVE_ARGS...]: rollout-guard with the repository's policies and that store.
start_rg() {
  local started_ns objects=$1
  shift
  server_signal=INT
  started_ns=$(date +%s%N)
  KUBECONFIG=/nonexistent RUST_LOG=info "$bin" --log-format json serve --policies "$out/policies" \
    --tls-cert "$cert" --tls-key "$key" --addr 127.0.0.1:18443 --metrics-addr 127.0.0.1:19090 \
    --namespace rollout-guard --objects "$objects" --reload-interval-ms 10 "$@" >"$out/rg.stdout" 2>"$out/rg.log" &
  server_pid=$!
  until curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/rg.log"; exit 1; }
    sleep 0.02
  done
  echo "ready with $(basename "$objects") after $(( ($(date +%s%N) - started_ns) / 1000000 )) ms (store load included)"
}

start_baseline() {
  server_signal=TERM
  "$baseline" 127.0.0.1:18444 "$cert" "$key" >"$out/baseline.log" 2>&1 &
  server_pid=$!
  until curl -fsk --resolve $host:18444:127.0.0.1 https://$host:18444/readyz >/dev/null 2>&1; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/baseline.log"; exit 1; }
    sleep 0.02
  done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Time the hypervisor ran someone else on this machine's vCPUs (ticks of 10 ms, all CPUs): a
# p99 measured while it grew by hundreds of milliseconds measured the host, not the server.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
steal_ms_since() { echo $(( ($(steal_ticks) - $1) * 10 )); }
mem() { awk '/VmHWM|VmRSS|RssAnon|RssFile/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$1/status"; }

# load NAME PORT: wrk at full speed with the mixed bodies; prints and records figures.
load() {
  local name=$1 port=$2 before after requests
  wrk -t1 -c16 -d3s -s bench/post.lua "https://127.0.0.1:$port" -- "${mixed[@]}" >/dev/null
  before=$(cpu_ticks "$server_pid")
  wrk -t1 -c16 -d"${seconds}s" --latency -s bench/post.lua "https://127.0.0.1:$port" -- "${mixed[@]}" >"$out/wrk-$name.txt"
  after=$(cpu_ticks "$server_pid")
  requests=$(sed -n 's/^bench: requests=\([0-9]*\).*/\1/p' "$out/wrk-$name.txt")
  grep -E '^bench:|Non-2xx|Socket errors' "$out/wrk-$name.txt" | sed "s/^/$name /"
  awk -v t=$((after - before)) -v r="$requests" 'BEGIN {printf "%.1f", t * 10000 / (r > 0 ? r : 1)}' >"$out/cpu-$name"
  awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server_pid/status" >"$out/hwm-$name"
  echo "$name cpu_per_request_us=$(cat "$out/cpu-$name")  (server utime+stime $(( (after - before) * 10 )) ms over $requests requests)"
  echo "$name memory: $(mem "$server_pid")"
}

rps_of() { sed -n 's/^bench: .*rps=\([0-9.]*\).*/\1/p' "$out/wrk-$1.txt"; }

# paced NAME PORT TARGET_RPS: wrk with a 1 ms pause per request per connection, as many
# connections as make about TARGET_RPS; prints the rate reached and its latencies.
paced() {
  local name=$1 port=$2 target=$3 connections
  connections=$(( (target + 450) / 900 ))
  [ "$connections" -ge 1 ] || connections=1
  wrk -t1 -c"$connections" -d10s --latency -s bench/paced.lua "https://127.0.0.1:$port" -- "${mixed[@]}" >"$out/wrk-$name-paced.txt"
  echo "$name paced at ~$target/s ($connections connections, 1 ms pause each):"
  grep -E '^bench:|Non-2xx|Socket errors' "$out/wrk-$name-paced.txt" | sed "s/^/  /"
}

if [ "$only" != audit ]; then
say "max throughput: wrk -t1 -c16 -d${seconds}s, 4 bodies in turn (Deployment UPDATE → /mutate; Ingress canary CREATE, HTTPRoute UPDATE, Service UPDATE → /validate)"
start_baseline
load baseline 18444
half_baseline=$(awk -v r="$(rps_of baseline)" 'BEGIN {printf "%d", r / 2}')
say "latency at half of the baseline's max throughput"
paced baseline 18444 "$half_baseline"
stop

start_rg "$out/objects-40k"
load rollout-guard 18443
half_rg=$(awk -v r="$(rps_of rollout-guard)" 'BEGIN {printf "%d", r / 2}')
say "latency at half of rollout-guard's max throughput (store: 10k of each kind)"
paced rollout-guard 18443 "$half_rg"
echo "rollout-guard memory after all load: $(mem "$server_pid")"
echo "store: $(curl -s http://127.0.0.1:19090/metrics | grep -E '^rollout_guard_store_objects' | tr '\n' ' ')"

say "store size: live heap per kind (bench-store-memory: the same load, counted by the allocator)"
"$root/target/release/examples/bench-store-memory" "$out/objects-40k"

say "policy reload (policy dir edit → new digest in /readyz; reloader polls every 10 ms)"
"$probe" reload 127.0.0.1:19090 "$out/policies/default.yaml" 10
echo "inside the server (read + parse + validate + swap), reload_us per reload:"
grep -o '"reload_us":[0-9]*' "$out/rg.log" | cut -d: -f2 | tr '\n' ' '; echo
stop

say "cross-object latency: Ingress canary CREATE, Service UPDATE, HTTPRoute UPDATE at a fixed 1000/s"
for objects in objects-100 objects-100k; do
  start_rg "$out/$objects"
  "$probe" rate "https://127.0.0.1:18443" "$host" "$ca" "$cross" 1000 10 | sed "s/^/$objects: /"
  "$probe" rate "https://127.0.0.1:18443" "$host" "$ca" "$cross" 1000 10 | sed "s/^/$objects (again): /"
  echo "$objects memory: $(mem "$server_pid")"
  stop
done

fi
# metric NAME: the value of one unlabelled (or fully labelled) series on the admin port.
metric() { curl -s http://127.0.0.1:19090/metrics | awk -v n="$1" '$1 == n {print $2}'; }

say "background audit: two runs over the 40k-object store (serve --objects --audit --audit-reports off --audit-period 2s; the audit re-reads the manifests file by file on its SCHED_IDLE thread; the first run judges every object, the second reuses the verdicts of objects, policies and consulted kinds that did not change)"
start_rg "$out/objects-40k" --audit --audit-reports off --audit-period 2s
ticks_ready=$(cpu_ticks "$server_pid")
for run in 1 2; do
  until [ "$(metric 'rollout_guard_audit_runs_total{result="ok"}')" = "$run" ]; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/rg.log"; exit 1; }
    sleep 0.05
  done
  [ "$run" = 1 ] && ticks_done=$(cpu_ticks "$server_pid")
  echo "audit run $run: objects=$(metric rollout_guard_audit_last_objects) evaluation_cpu_s=$(metric rollout_guard_audit_last_cpu_seconds) wall_s=$(metric rollout_guard_audit_last_duration_seconds) rss=$(mem "$server_pid")"
done
echo "audit: process CPU from ready to the first run's end $(( (ticks_done - ticks_ready) * 10 )) ms (evaluation + reading and parsing the 425 MB of manifests)"
grep '"audit run complete"' "$out/rg.log" | head -2 | sed 's/^/audit log: /' || true
stop

say "admission latency with and without audits running: fixed 2000/s, the 4 mixed bodies, 40k-object store; with: --audit-period 100ms (back-to-back audits)"
mixed_csv=$(IFS=,; echo "${mixed[*]}")
for round in 1 2 3; do
  start_rg "$out/objects-40k"
  steal_before=$(steal_ticks)
  "$probe" rate "https://127.0.0.1:18443" "$host" "$ca" "$mixed_csv" 2000 10 | sed "s/^/no audit (round $round): /"
  echo "no audit (round $round): steal during the load $(steal_ms_since "$steal_before") ms"
  stop
  start_rg "$out/objects-40k" --audit --audit-reports off --audit-period 100ms
  until [ -n "$(metric rollout_guard_audit_last_cpu_seconds)" ] || ! kill -0 "$server_pid" 2>/dev/null; do sleep 0.05; done
  runs_before=$(metric 'rollout_guard_audit_runs_total{result="ok"}')
  ticks_before=$(cpu_ticks "$server_pid")
  steal_before=$(steal_ticks)
  "$probe" rate "https://127.0.0.1:18443" "$host" "$ca" "$mixed_csv" 2000 10 | sed "s/^/audit running (round $round): /"
  echo "audit running (round $round): audit runs completed during the load: $(( $(metric 'rollout_guard_audit_runs_total{result="ok"}') - runs_before )) (+ the one in progress); server CPU $(( ($(cpu_ticks "$server_pid") - ticks_before) * 10 )) ms over 10 s; steal $(steal_ms_since "$steal_before") ms"
  stop
done

[ "$only" = audit ] && exit 0
say "cold start without a cluster (spawn → /readyz 200 on the admin port; embedded policy, no --objects)"
KUBECONFIG=/nonexistent "$probe" ready 127.0.0.1:19090 10 -- "$bin" serve --tls-cert "$cert" --tls-key "$key" \
  --addr 127.0.0.1:18443 --metrics-addr 127.0.0.1:19090 --namespace rollout-guard

say "ratios (rollout-guard / baseline)"
awk -v rg="$(rps_of rollout-guard)" -v b="$(rps_of baseline)" 'BEGIN {printf "throughput: %.0f / %.0f = %.2f\n", rg, b, rg / b}'
for p in p50_us p99_us p999_us; do
  rgv=$(grep -o "$p=[0-9]*" "$out/wrk-rollout-guard.txt" | cut -d= -f2)
  bv=$(grep -o "$p=[0-9]*" "$out/wrk-baseline.txt" | cut -d= -f2)
  awk -v n="$p" -v rg="$rgv" -v b="$bv" 'BEGIN {printf "latency %s at max load: %d / %d = %.2f\n", n, rg, b, rg / b}'
done
awk -v rg="$(cat "$out/cpu-rollout-guard")" -v b="$(cat "$out/cpu-baseline")" 'BEGIN {printf "CPU per request: %.1f us / %.1f us = %.2f\n", rg, b, rg / b}'
awk -v rg="$(cat "$out/hwm-rollout-guard")" -v b="$(cat "$out/hwm-baseline")" 'BEGIN {printf "peak RSS (VmHWM) after max load: %.1f MiB (store: 10k of each kind) / %.1f MiB = %.2f\n", rg, b, rg / b}'
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
