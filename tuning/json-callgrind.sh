#!/usr/bin/env bash
# Instructions per JSON parse, by input, counted by callgrind (benches/json.rs).
#
#   tuning/json-callgrind.sh [RUNS]        # RUNS per count, 100000 by default
#
# Builds the bench (release profile: LTO, one codegen unit, as shipped; RUSTFLAGS as you set
# them, e.g. the target CPU), then runs each parse RUNS times under
# `valgrind --tool=callgrind --toggle-collect` on the function that repeats it, and prints the
# count over RUNS: start-up and argument parsing are not counted. Instruction counts repeat to
# the instruction from run to run, where this shared machine's clock varies by tens of
# percent. Installs valgrind (apt) if missing. About 2 s per count. The script and bench at
# f9e3820 count sonic-rs beside serde_json.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-100000}
if ! valgrind --version >/dev/null 2>&1; then
    echo "installing valgrind" >&2
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
cargo bench --quiet --bench json --no-run >&2

# cargo runs the bench through this runner (the host's triple: the project builds for x86-64).
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind \
--toggle-collect=*json::repeat* --callgrind-out-file=/dev/null"
printf '%-14s %s\n' input instructions
for input in contest extra-fields uppercase-id string-amount health peer; do
    collected=$(cargo bench --quiet --bench json -- "$input" "$RUNS" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    printf '%-14s %s\n' "$input" "$((collected / RUNS))"
done
