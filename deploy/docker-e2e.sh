#!/usr/bin/env bash
# The contest's path, end to end, in a real Docker engine (run by .ci/run):
#
#  1. an engine: Debian's docker.io, installed and started here when there is none (and stopped
#     again at the end);
#  2. the images: the base images (deploy/base-images.sh, when they cannot be pulled), payrelay
#     (the Dockerfile) and the lab (deploy/lab.Dockerfile);
#  3. the processors as the contest runs them: two containers on the external
#     `payment-processor` network, `payment-processor-default` and `-fallback`, port 8080
#     inside, published on 127.0.0.1:8001 and :8002 (the lab's emulator, Kestrel framing);
#  4. our docker-compose.yml, unchanged but for an override file (below), `up`;
#  5. readiness as the official harness probes it (GET /payments-summary until 2xx);
#  6. a short lab contest against localhost:9999 with those processors, `docker stats` sampled
#     every second meanwhile; then a second one during which one instance is killed;
#  7. `down -v`, and the processors and the network removed.
#
# It asserts: 0 inconsistencies and 0 failed POSTs, both instances served requests (their boot
# ids, on /metrics through 9999), each logged io_driver_used=io_uring under our seccomp profile,
# every container stayed inside its CPU and memory limits; and in the kill run (one instance's
# process SIGKILLed from the host, as a crash would), no failed POST but those in flight on the
# killed instance at that instant, the survivor answering on 9999 throughout, the killed one
# back by itself (restart: on-failure), and its books whole: 0 inconsistencies, and every
# accepted payment at a processor once the books are still (`--audit-ids`: the lab waits until
# they stop changing, then looks each accepted correlationId up; a lag left after that wait is a
# payment lost, not one on its way) (its journal on the shared volume: the survivor reads it
# while it is down, and it replays it).
#
# The override file changes only what this needs or a sandbox cannot grant: `image:` (the local
# build instead of the published one), the test's length and fees (the scenario's, as an operator
# sets them for the test they enter), and `ulimits: nofile` lowered to the hard limit when that
# is below compose's 65536 (a container cannot raise it; the contest machine allows 65536).
#
# Environment: SCENARIO (default benches/scenarios/ci-short.toml), KEEP=1 keeps the containers
# and the work folder for a look. Needs root, loopback ports 8001, 8002 and 9999 free, and
# Debian's package mirror (for docker.io and the base images).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIO=${SCENARIO:-benches/scenarios/ci-short.toml}
PROJECT=payrelay-e2e
# POSTs that may fail in the kill run: those in flight on the killed instance when it dies.
# At the short scenario's rate (~60 a second there at the kill) a request lasts ~1 ms, so
# rarely more than one is.
KILL_IN_FLIGHT_MAX=3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/payrelay-e2e.XXXXXX")
NAME=docker-e2e
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

ensure_engine
cleanup() {
    local status=$?
    if [[ ${KEEP:-0} == 1 ]]; then
        log "kept: containers of project $PROJECT, processors, $WORK"
    else
        # A failure keeps the instances' logs (restarts included) beside the results.
        [[ $status == 0 ]] || compose logs --no-color >"$WORK/compose.log" 2>&1 || true
        docker_cleanup
        [[ $status == 0 ]] && rm -rf "$WORK"
    fi
    [[ $status == 0 ]] || log "logs and results in $WORK"
}
trap cleanup EXIT
build_images
read -r duration_ms fee_default fee_fallback <<<"$(python3 -c "import tomllib; s = tomllib.load(open('$SCENARIO', 'rb')); print(round(s['duration_s'] * 1000), s['fee_default'], s['fee_fallback'])")"
start_processors "$fee_default" "$fee_fallback"
compose_up "$duration_ms" "$fee_default" "$fee_fallback"

# --- 5. Readiness, as the official harness probes it -------------------------------------
wait_ready
log "ready: $(http /payments-summary | cut -d' ' -f2-)"
for name in a b; do
    # Read whole, then matched: `compose logs | grep -q` under pipefail fails whenever grep
    # exits at its match before compose has written everything (SIGPIPE), as it once did here.
    logs=$(compose logs "payrelay-$name" 2>&1)
    [[ $logs == *io_driver_used=io_uring* ]] ||
        { echo "$logs" >&2; fail "payrelay-$name is not on io_uring"; }
done
log "both instances on io_uring under seccomp-io_uring.json"

# --- 6. The contest -----------------------------------------------------------------------
sample_stats() { # every second, until killed: name cpu% mem
    while true; do
        "$DOCKER" stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}' \
            $(compose ps -q) 2>/dev/null || true
        sleep 1
    done
}
# Exit 3 is a contest that ran to its end and found inconsistencies (the lab's --fail-on
# default): the JSON checks below name what it found, so only another failure stops here.
contest() { # contest NAME [extra lab args]
    local name=$1 status=0
    shift
    "$LAB" contest --target http://127.0.0.1:9999 --processors-running --default-port 8001 \
        --fallback-port 8002 --scenario "$SCENARIO" --json "$WORK/$name.json" --quiet "$@" \
        >"$WORK/$name.log" 2>&1 || status=$?
    ((status == 0 || status == 3)) || { cat "$WORK/$name.log" >&2; fail "contest $name"; }
}
key() { python3 -c "import json; print(json.load(open('$WORK/$1.json'))['$2'])"; }

sample_stats >"$WORK/stats.txt" &
stats_pid=$!
contest run
kill "$stats_pid" && wait "$stats_pid" 2>/dev/null || true
[[ $(key run inconsistencies) == 0 ]] || fail "$(key run inconsistencies) inconsistencies"
[[ $(key run posts_failed) == 0 ]] || fail "$(key run posts_failed) failed POSTs"
log "contest: score_ratio $(key run score_ratio), p99 $(key run p99_ms) ms, 0 inconsistencies, 0 failed, lag $(key run lag), default/fallback $(key run default_count)/$(key run fallback_count)"

# Both instances served: each one's metrics (reached through 9999 on fresh connections; the
# boot id tells them apart, every pid being 1) count accepted payments.
python3 - <<'EOF' || fail "both instances must have served payments"
import re, sys, urllib.request
served = {}
for _ in range(200):
    text = urllib.request.urlopen("http://127.0.0.1:9999/metrics", timeout=3).read().decode()
    boot = re.search(r'payrelay_instance_info\{[^}]*boot="(\d+)"', text).group(1)
    # One series per core, no total: the instance's count is their sum.
    accepted = re.findall(r'payrelay_payments_received_total\{core="\d+",result="accepted"\} (\d+)', text)
    served[boot] = sum(int(n) for n in accepted)
    if len(served) == 2:
        break
print("docker-e2e: accepted per instance:", served, file=sys.stderr)
sys.exit(0 if len(served) == 2 and all(n > 0 for n in served.values()) else 1)
EOF

# Limits: docker stats' CPU % is against one CPU; the quota is the service's `cpus`.
python3 - "$WORK/stats.txt" <<'EOF' || fail "a container went over its limits"
import sys
limits = {"payrelay-net": (2.0, 10.0), "payrelay-a": (74.0, 170.0), "payrelay-b": (74.0, 170.0)}
unit = {"B": 1e-6, "KiB": 1024 / 1e6, "MiB": 1024**2 / 1e6, "GiB": 1024**3 / 1e6}
peak = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 3:
        continue
    name = next((n for n in limits if n in parts[0]), None)
    if not name:
        continue
    cpu = float(parts[1].rstrip("%"))
    used = parts[2]
    number = used.rstrip("BKMGi")
    mb = float(number) * unit[used[len(number):]]
    cpu0, mb0 = peak.get(name, (0.0, 0.0))
    peak[name] = (max(cpu0, cpu), max(mb0, mb))
ok = True
for name, (cpu, mb) in sorted(peak.items()):
    cpu_max, mb_max = limits[name]
    # One sample's CPU % can read a little over the quota (the sampling window and the CFS
    # period do not line up); 10% of slack, none on memory.
    within = cpu <= cpu_max * 1.1 and mb <= mb_max
    ok &= within
    print(f"docker-e2e: {name}: peak CPU {cpu:.1f}% (limit {cpu_max}%), peak memory {mb:.1f} MB (limit {mb_max} MB)", file=sys.stderr)
sys.exit(0 if ok and len(peak) == 3 else 1)
EOF

# --- The kill run: either instance can die -------------------------------------------------
start_processors "$fee_default" "$fee_fallback"
victim=$(compose ps -q payrelay-b)
restarts_before=$("$DOCKER" inspect -f '{{.RestartCount}}' "$victim")
contest kill-run --audit-ids &
contest_pid=$!
sleep 8
# SIGKILL to the container's process from the host, as a crash or the OOM killer would: the
# engine sees it die and restarts it. (`docker kill` is an operator's stop, which Docker never
# undoes by a restart policy.)
kill -KILL "$("$DOCKER" inspect -f '{{.State.Pid}}' "$victim")"
log "killed payrelay-b (SIGKILL to its process)"
survived=1
for _ in $(seq 1 20); do
    [[ $(http /health | cut -d' ' -f1) == 200 ]] || survived=
    sleep 0.2
done
wait "$contest_pid" || fail "the kill run"
[[ -n $survived ]] || fail "9999 stopped answering after the kill"
# A POST in flight on the killed instance at the instant of the kill can only fail (its
# connection is reset; k6's client would not retry a POST it has written either): those, and
# nothing else, are allowed. No timeout, no error status.
killed_failed=$(key kill-run posts_failed)
[[ $(key kill-run posts_failed_timeout) == 0 && $(key kill-run posts_failed_status) == 0 ]] ||
    fail "timeouts or error statuses in the kill run: $(cat "$WORK/kill-run.json")"
((killed_failed <= KILL_IN_FLIGHT_MAX)) || fail "$killed_failed failed POSTs in the kill run"
[[ $(key kill-run inconsistencies) == 0 ]] ||
    fail "$(key kill-run inconsistencies) inconsistencies in the kill run"
# Every accepted payment at a processor once the books are still. The lag may go below 0 by
# the POSTs that failed at the kill: one the killed life had journaled before it could answer
# is forwarded by the next life, as it should be.
audit=$(grep '^audit: ' "$WORK/kill-run.log" || true)
lag=$(key kill-run lag)
log "kill run: ${audit%%$'\n'*}"
[[ $audit == "audit: 0 of "* ]] && ((lag <= 0 && lag >= -killed_failed)) ||
    fail "lag $lag in the kill run once the books were still; $audit"
state=$("$DOCKER" inspect -f '{{.State.Status}} {{.RestartCount}}' "$victim")
[[ $state == "running $((restarts_before + 1))" ]] || fail "payrelay-b did not come back: $state"
log "kill run: payrelay-b killed and back ($state), 9999 answered throughout, $killed_failed failed POSTs (in flight at the kill), inconsistencies $(key kill-run inconsistencies), lag $lag"
log "passed"
