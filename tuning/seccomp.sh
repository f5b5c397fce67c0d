#!/usr/bin/env bash
# The seccomp profile beside the compose file (seccomp-io_uring.json): record, generate, check.
#
#   tuning/seccomp.sh record    strace two payrelay instances through a short lab contest, once
#                               with IO_DRIVER=io_uring and once with epoll, SIGTERM them (so
#                               the drain is traced too), write tuning/seccomp-syscalls.txt
#   tuning/seccomp.sh generate  Docker's own default profile, with the three io_uring calls
#                               allowed -> seccomp-io_uring.json
#   tuning/seccomp.sh check     start the image (IMAGE, default payrelay:ci) in the real engine
#                               under the profile with IO_DRIVER=io_uring: it must start, log
#                               io_driver_used=io_uring, and drain and exit 0 on docker stop
#   tuning/seccomp.sh all       record and generate (check needs an image: deploy/docker-e2e.sh)
#
# Why Docker's default profile: the container runtime (runc) runs code of its own between
# loading the filter and execve (it checks /proc/self/fd with fstatfs, closes descriptors,
# ...), and which calls that takes changes with runc's version. A profile made of payrelay's
# own calls misses them: it refused runc's fstatfs, and no container started. Docker's default
# is made to let any container start; Docker >= 25 took the io_uring calls out of it, and this
# puts them back, nothing else. The default comes from Debian's golang-github-docker-docker-dev
# (Docker's source, profiles/seccomp/default.json; installed when missing), or DOCKER_PROFILE.
#
# Options (environment): PAYRELAY=path LAB=path (built with cargo otherwise, as the Dockerfile
# builds), PORT_BASE=27000 (API on +999, processors +1/+2, peer links +101/+102; pick free
# ones), SCENARIO=benches/scenarios/ci-short.toml, DOCKER (default docker), IMAGE. Needs root
# for apt-get (strace, the profile's package). How the profile is meant to be read:
# tuning/README.md, "Seccomp".
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
PORT_BASE=${PORT_BASE:-27000}
SCENARIO=${SCENARIO:-benches/scenarios/ci-short.toml}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/payrelay-seccomp.XXXXXX")
RECORDED=tuning/seccomp-syscalls.txt
PROFILE=seccomp-io_uring.json
DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-payrelay:ci}
DOCKER_PROFILE=${DOCKER_PROFILE:-/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json}

need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2" >&2
    apt-get install -y -qq "$2" >/dev/null
}

build() {
    if [[ -z ${PAYRELAY:-} ]]; then
        # The Dockerfile's build, so the recording sees the binary the container runs.
        cargo build --release --locked -p payrelay --bin payrelay >&2
        PAYRELAY=$TARGET_DIR/release/payrelay
    fi
    if [[ -z ${LAB:-} ]]; then
        cargo build --release -p rinha-lab >&2
        LAB=$TARGET_DIR/release/rinha-lab
    fi
}

# run_pair DRIVER WRAPPER... : both instances started through WRAPPER (with %s = instance
# name), load from the lab with its processors, then SIGTERM and wait. Fails if the contest
# fails or an instance exits non-zero.
run_pair() {
    local driver=$1
    shift
    local api=$((PORT_BASE + 999)) dflt=$((PORT_BASE + 1)) fb=$((PORT_BASE + 2))
    local pa=$((PORT_BASE + 101)) pb=$((PORT_BASE + 102))
    local pids=() status=0
    for name in a b; do
        local own=$pa peer=$pb cpu=0
        [[ $name == b ]] && own=$pb peer=$pa cpu=1
        local wrapper=("${@//%s/$name}")
        (
            set -a
            # shellcheck disable=SC1091
            . tuning/contest.env
            set +a
            export IO_DRIVER=$driver API_BIND_ADDR=0.0.0.0:$api PEER_BIND_ADDR=127.0.0.1:$own \
                PEER_ADDR=127.0.0.1:$peer WORKER_CPU_FIRST=$cpu \
                PROCESSOR_DEFAULT_URL=http://127.0.0.1:$dflt \
                PROCESSOR_FALLBACK_URL=http://127.0.0.1:$fb
            exec "${wrapper[@]}" "$PAYRELAY"
        ) >"$WORK/payrelay-$driver-$name.log" 2>&1 &
        pids+=($!)
    done
    if ! "$LAB" contest --target "http://127.0.0.1:$api" --scenario "$SCENARIO" \
        --default-port "$dflt" --fallback-port "$fb" --quiet --fail-on none \
        --json "$WORK/results-$driver.json" >"$WORK/contest-$driver.log" 2>&1; then
        echo "contest failed ($driver): $WORK/contest-$driver.log" >&2
        status=1
    fi
    for pid in "${pids[@]}"; do
        # The wrapper (strace) has payrelay as its child; otherwise the pid is payrelay.
        pkill -TERM -P "$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || { echo "an instance exited with $? ($driver), see $WORK" >&2; status=1; }
    done
    grep -h io_driver_used "$WORK"/payrelay-"$driver"-*.log | sed 's/.* io_driver_used=/io_driver_used=/' >&2
    return $status
}

record() {
    need strace strace
    build
    for driver in io_uring epoll; do
        run_pair "$driver" strace -f -qq -o "$WORK/strace-$driver-%s.txt"
    done
    {
        cat <<EOF
# Syscalls payrelay made under strace during a lab contest (tuning/seccomp.sh record): two
# instances, IO_DRIVER=io_uring and IO_DRIVER=epoll, $(basename "$SCENARIO"), then
# SIGTERM and drain. One name per line; regenerate with \`tuning/seccomp.sh record\`.
# Recorded $(date -u +%F): payrelay release build (as the Dockerfile), $(rustc --version | cut -d' ' -f1-2),
# glibc $(ldd --version | head -1 | awk '{print $NF}'), kernel $(uname -r | cut -d- -f1).
EOF
        cat "$WORK"/strace-*.txt | grep -oE '^[0-9]+ +[a-z_0-9]+\(' | awk '{print $2}' |
            tr -d '(' | sort -u
    } >"$RECORDED"
    echo "wrote $RECORDED ($(grep -vc '^#' "$RECORDED") syscalls); traces in $WORK" >&2
}

generate() {
    if [[ ! -f $DOCKER_PROFILE ]]; then
        echo "installing golang-github-docker-docker-dev (Docker's default seccomp profile)" >&2
        apt-get install -y -qq --no-install-recommends golang-github-docker-docker-dev >/dev/null
    fi
    python3 - "$DOCKER_PROFILE" "$PROFILE" <<'EOF'
# Docker's default profile, unchanged but for the io_uring calls: allowed, unconditionally.
import json, sys
source, target = sys.argv[1], sys.argv[2]
profile = json.load(open(source))
uring = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
rules = profile["syscalls"]
# Newer profiles may refuse them in a rule of their own: keep only rules that allow them.
rules[:] = [r for r in rules if r["action"] == "SCMP_ACT_ALLOW" or not set(r["names"]) & set(uring)]
first = rules[0]
unconditional = not any(first.get(k) for k in ("args", "includes", "excludes"))
assert first["action"] == "SCMP_ACT_ALLOW" and unconditional, "the first rule is the plain allowlist"
first["names"] = sorted(set(first["names"]) | set(uring))
with open(target, "w") as out:
    json.dump(profile, out, indent=2)
    out.write("\n")
print(f"wrote {target}: {source} with {', '.join(uring)} allowed", file=sys.stderr)
EOF
}

check() {
    local name=payrelay-seccomp-check-$$ status=0
    "$DOCKER" run -d --name "$name" --security-opt "seccomp=$ROOT/$PROFILE" \
        -e IO_DRIVER=io_uring -e WORKER_COUNT=1 -e WORKER_PIN=0 \
        -e PROCESSOR_DEFAULT_URL=http://127.0.0.1:8001 \
        -e PROCESSOR_FALLBACK_URL=http://127.0.0.1:8002 \
        "$IMAGE" >/dev/null
    # Logs read whole, then matched: `docker logs | grep -q` under pipefail fails whenever grep
    # exits at its match before docker has written everything (SIGPIPE).
    for _ in $(seq 1 100); do
        [[ $("$DOCKER" logs "$name" 2>&1) == *" core=main ready, "* ]] && break
        sleep 0.1
    done
    if [[ $("$DOCKER" logs "$name" 2>&1) != *io_driver_used=io_uring* ]]; then
        echo "under $PROFILE the image did not start on io_uring:" >&2
        "$DOCKER" logs "$name" >&2 || true
        status=1
    fi
    "$DOCKER" stop -t 10 "$name" >/dev/null
    local exit_code
    exit_code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$name")
    "$DOCKER" rm "$name" >/dev/null
    if [[ $exit_code != 0 ]]; then
        echo "the instance exited $exit_code on docker stop" >&2
        status=1
    fi
    if [[ $status == 0 ]]; then
        echo "$IMAGE under $PROFILE: started on io_uring, drained, exited 0" >&2
    fi
    return $status
}

case ${1:-} in
    record) record ;;
    generate) generate ;;
    check) check ;;
    all) record && generate ;;
    *)
        sed -n '2,12p' "$0" >&2
        exit 2
        ;;
esac
