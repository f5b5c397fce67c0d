#!/usr/bin/env bash
# Fuzzes every target in fuzz/fuzz_targets for FUZZ_SECONDS seconds each (default 45), then
# exits non-zero if any of them crashed or broke an invariant, printing the failing input's
# path. Used by .ci/run; see fuzz/README.md.
#
# - Installs cargo-fuzz if `cargo fuzz` is missing (CI machines start without it).
# - Works on the stable toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer,
#   -Cpasses=sancov-module options), so RUSTC_BOOTSTRAP=1 lets stable accept them. Stable ships
#   the AddressSanitizer runtime (librustc-stable_rt.asan.a), so ASan is tried first; without
#   it the targets are built with `--sanitizer none`, which still catches panics, failed
#   assertions and debug_assert!s, but not memory errors in unsafe code.
# - Builds with cargo-fuzz's default: --release plus -Cdebug-assertions (overflow checks and
#   payrelay's debug_assert!s fire under fuzzing).
# - Each run starts from a fresh temporary corpus seeded from fuzz/seeds/<target> and
#   fuzz/regressions/<target> (libFuzzer writes new inputs into the FIRST corpus directory
#   only), so the tree stays clean. Crashes go to fuzz/artifacts/<target>/ (git-ignored).
#
# Environment: FUZZ_SECONDS (per target, default 45), FUZZ_TARGETS (space-separated subset,
# default all), FUZZ_SANITIZER (address or none; default: address, else none).
set -euo pipefail
cd "$(dirname "$0")"

# The version `cargo info cargo-fuzz` gave as current when this was written; pinned so CI
# installs what was tested.
CARGO_FUZZ_VERSION=0.13.2
# Per target. 45 s × 4 targets keeps the step at a few minutes of CI's 90.
FUZZ_SECONDS=${FUZZ_SECONDS:-45}
# Largest input libFuzzer generates: 4 KiB covers a contest request with room to spare; the
# HTTP targets re-parse prefixes of each input, so larger inputs only slow them down.
MAX_LEN_BYTES=4096
# A single input taking this long is a hang (an infinite parse loop), reported as a failure.
INPUT_TIMEOUT_SECONDS=10

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    start=$SECONDS
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
    echo "fuzz: cargo-fuzz installed in $((SECONDS - start)) s"
fi
echo "fuzz: $(cargo fuzz --version)"

# The fuzz crate is its own workspace, so the root's fmt and clippy do not see it.
start=$SECONDS
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
echo "fuzz: fmt and clippy clean in $((SECONDS - start)) s"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}

start=$SECONDS
sanitizer=${FUZZ_SANITIZER:-}
if [[ -z $sanitizer ]]; then
    if cargo fuzz build --sanitizer address; then
        sanitizer=address
    else
        echo "fuzz: WARNING: the AddressSanitizer build failed; building without a sanitizer" >&2
        sanitizer=none
        cargo fuzz build --sanitizer none
    fi
else
    cargo fuzz build --sanitizer "$sanitizer"
fi
echo "fuzz: built $(echo $targets | wc -w) targets with --sanitizer $sanitizer in $((SECONDS - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dict_for() {
    case $1 in
        http_*) echo dict/http.dict ;;
        payment) echo dict/json.dict ;;
        summary) echo dict/summary.dict ;;
    esac
}

failed=()
for target in $targets; do
    corpus="$work/corpus-$target"
    mkdir -p "$corpus" "artifacts/$target"
    seeds=("seeds/$target")
    if [[ -d "regressions/$target" ]]; then
        seeds+=("regressions/$target")
    fi
    flags=(-max_total_time="$FUZZ_SECONDS" -max_len="$MAX_LEN_BYTES"
        -timeout="$INPUT_TIMEOUT_SECONDS" -print_final_stats=1)
    dict=$(dict_for "$target")
    if [[ -n $dict ]]; then
        flags+=(-dict="$dict")
    fi
    marker="$work/started-$target"
    touch "$marker"
    log="$work/$target.log"
    echo "fuzz: $target for ${FUZZ_SECONDS} s"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" "${seeds[@]}" -- "${flags[@]}" \
        >"$log" 2>&1; then
        # "Done N runs in S second(s)" and the final stats.
        grep -E '^Done |stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
            "$log" | sed "s/^/fuzz: $target: /"
    else
        tail -n 120 "$log"
        crashes=$(find "artifacts/$target" -type f -newer "$marker" -print)
        echo "fuzz: $target FAILED; failing input(s):" >&2
        for crash in $crashes; do
            echo "    fuzz/$crash" >&2
        done
        if [[ -z $crashes ]]; then
            echo "    (none written: see the log above)" >&2
        fi
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: failed targets: ${failed[*]} (see fuzz/README.md, 'When a target fails')" >&2
    exit 1
fi
echo "fuzz: all targets passed ($((SECONDS - start)) s including the build)"
