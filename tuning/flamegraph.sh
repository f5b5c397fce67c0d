#!/usr/bin/env bash
# A CPU flamegraph of payrelay in one command (how to read it: tuning/profiling.md).
#
#   tuning/flamegraph.sh [--scenario benches/scenarios/preview.toml] [--out DIR]
#                        [--api-port 9999] [--default-port 8001] [--fallback-port 8002]
#   tuning/flamegraph.sh --pid N[,M...] [--seconds 30] [--out DIR]
#
# Without --pid: builds the lab contest with line tables (the release profile has no debug
# info), runs `cargo bench --bench contest -- --scenario FILE`, and records both payrelay
# instances from their start to the end of the run. With --pid: records the given running
# processes for --seconds (restart them after a rebuild, or symbols show as [unknown]).
#
# perf samples on cpu-clock (this VM has no hardware counters) at a fixed 999 Hz with DWARF
# call graphs; inferno folds the stacks and draws the SVG. Writes, in --out (default
# ${CARGO_TARGET_DIR:-target}/flamegraph-<UTC time>/): perf.data, stacks.folded, flamegraph.svg,
# and for a contest results.json and contest.log. Installs linux-perf (apt) and inferno (cargo)
# if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

FREQ_HZ=999
SCENARIO=benches/scenarios/preview.toml
PIDS=""
SECONDS_TO_RECORD=30
OUT=""
PORTS=()
while (($#)); do
    case $1 in
        --scenario) SCENARIO=$2; shift 2 ;;
        --pid) PIDS=$2; shift 2 ;;
        --seconds) SECONDS_TO_RECORD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --api-port | --default-port | --fallback-port) PORTS+=("$1" "$2"); shift 2 ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/flamegraph-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

# --- prerequisites -------------------------------------------------------------------------
if ! perf --version >/dev/null 2>&1; then
    echo "installing linux-perf" >&2
    apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    echo "installing inferno (cargo install, a few minutes)" >&2
    cargo install --quiet inferno
fi
# Let perf see kernel frames and every process (we run as root; harmless otherwise).
if [[ -w /proc/sys/kernel/perf_event_paranoid ]]; then
    echo -1 >/proc/sys/kernel/perf_event_paranoid
fi
if [[ -w /proc/sys/kernel/kptr_restrict ]]; then
    echo 0 >/proc/sys/kernel/kptr_restrict
fi

record() { # record PIDS [-- sleep N]
    local pids=$1
    shift
    perf record -F "$FREQ_HZ" -e cpu-clock -g --call-graph dwarf -p "$pids" \
        -o "$OUT/perf.data" "$@"
}

if [[ -n $PIDS ]]; then
    record "$PIDS" -- sleep "$SECONDS_TO_RECORD"
else
    # --- build: the contest's release build plus line tables, set here only ------------------
    export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_BENCH_DEBUG=line-tables-only
    cargo bench --bench contest --no-run >&2

    # --- run the contest and attach to both instances as soon as they exist ----------------
    cargo bench --bench contest -- --scenario "$SCENARIO" --json "$OUT/results.json" \
        ${PORTS[@]+"${PORTS[@]}"} >"$OUT/contest.log" 2>&1 &
    cargo_pid=$!
    pids=""
    for _ in $(seq 600); do
        bench=$(pgrep -P "$cargo_pid" | head -1 || true)
        if [[ -n $bench ]]; then
            pids=$(pgrep -P "$bench" -x payrelay | paste -sd, || true)
            [[ $pids == *,* ]] && break
        fi
        if ! kill -0 "$cargo_pid" 2>/dev/null; then
            echo "the contest ended before payrelay started: $OUT/contest.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    [[ $pids == *,* ]] || { echo "payrelay instances not found" >&2; exit 1; }
    echo "recording payrelay pids $pids at $FREQ_HZ Hz until the contest ends" >&2
    record "$pids" &
    perf_pid=$!
    contest_status=0
    wait "$cargo_pid" || contest_status=$?
    # perf stops by itself when both instances exit; make sure.
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
    tail -n 30 "$OUT/contest.log" >&2
    ((contest_status == 0)) || echo "contest exited with $contest_status (profile kept)" >&2
fi

# --- fold and draw ---------------------------------------------------------------------------
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/stacks.folded"
inferno-flamegraph --title "payrelay ($(basename "$SCENARIO" .toml), ${FREQ_HZ} Hz cpu-clock)" \
    <"$OUT/stacks.folded" >"$OUT/flamegraph.svg"
echo "flamegraph: $OUT/flamegraph.svg ($(awk '{ s += $NF } END { printf "%.1f", s / 1e9 }' "$OUT/stacks.folded") CPU seconds sampled)" >&2
