#!/usr/bin/env bash
# The seccomp profile beside the compose file (seccomp-io_uring.json): record, generate, check.
#
#   tuning/seccomp.sh record    strace two payrelay instances through a short lab contest, once
#                               with IO_DRIVER=io_uring and once with epoll, SIGTERM them (so
#                               the drain is traced too), write tuning/seccomp-syscalls.txt
#   tuning/seccomp.sh generate  seccomp-syscalls.txt + seccomp-extra.txt -> seccomp-io_uring.json
#   tuning/seccomp.sh check     run the same contest with the profile's allowlist loaded into
#                               both instances (libseccomp's Python binding, default action
#                               EPERM, as Docker would), both drivers; fails on any error
#   tuning/seccomp.sh all       record, generate, check
#
# Options (environment): PAYRELAY=path LAB=path (built with cargo otherwise, as the Dockerfile
# builds), PORT_BASE=27000 (API on +999, processors +1/+2, peer links +101/+102; pick free
# ones), SCENARIO=benches/scenarios/ci-short.toml. Needs root for apt-get (strace,
# python3-seccomp) and loopback only. How the profile is meant to be read: tuning/README.md,
# "Seccomp".
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
PORT_BASE=${PORT_BASE:-27000}
SCENARIO=${SCENARIO:-benches/scenarios/ci-short.toml}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/payrelay-seccomp.XXXXXX")
RECORDED=tuning/seccomp-syscalls.txt
EXTRA=tuning/seccomp-extra.txt
PROFILE=seccomp-io_uring.json

need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2" >&2
    apt-get install -y -qq "$2" >/dev/null
}

build() {
    if [[ -z ${PAYRELAY:-} ]]; then
        # The Dockerfile's flags, so the recording sees the binary the container runs.
        RUSTFLAGS="-C target-cpu=x86-64-v3 -C target-feature=+pclmulqdq" \
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
        --default-port "$dflt" --fallback-port "$fb" --quiet \
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
# Recorded $(date -u +%F): payrelay release build (x86-64-v3, as the Dockerfile), $(rustc --version | cut -d' ' -f1-2),
# glibc $(ldd --version | head -1 | awk '{print $NF}'), kernel $(uname -r | cut -d- -f1).
EOF
        cat "$WORK"/strace-*.txt | grep -oE '^[0-9]+ +[a-z_0-9]+\(' | awk '{print $2}' |
            tr -d '(' | sort -u
    } >"$RECORDED"
    echo "wrote $RECORDED ($(grep -vc '^#' "$RECORDED") syscalls); traces in $WORK" >&2
}

names() { grep -v '^[[:space:]]*#' "$@" | awk 'NF { print $1 }' | sort -u; }

json_list() { # json_list < names -> indented JSON strings, comma separated
    awk 'BEGIN { ORS = "" } { if (NR > 1) print ",\n"; printf "        \"%s\"", $1 } END { print "\n" }'
}

generate() {
    local recorded extra
    recorded=$(names "$RECORDED")
    extra=$(comm -13 <(echo "$recorded") <(names "$EXTRA"))
    cat >"$PROFILE" <<EOF
{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [
    {
      "comment": "Recorded from payrelay under strace (tuning/seccomp-syscalls.txt), both IO drivers; regenerate with tuning/seccomp.sh",
      "names": [
$(echo "$recorded" | json_list)
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "The io_uring calls, paths the recording did not take, and what the container runtime needs before execve (tuning/seccomp-extra.txt)",
      "names": [
$(echo "$extra" | json_list)
      ],
      "action": "SCMP_ACT_ALLOW"
    }
  ]
}
EOF
    echo "wrote $PROFILE ($(echo "$recorded" | wc -l) recorded + $(echo "$extra" | wc -l) extra)" >&2
}

check() {
    # Debian's binding of libseccomp, for the system Python.
    if ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
        echo "installing python3-seccomp" >&2
        apt-get install -y -qq python3-seccomp >/dev/null
    fi
    build
    local loader=$WORK/seccomp-exec.py
    cat >"$loader" <<'EOF'
# Load the profile's allowlist (EPERM for anything else, like Docker), then exec payrelay.
import json, os, sys
import seccomp
profile = json.load(open(sys.argv[1]))
assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
f = seccomp.SyscallFilter(seccomp.ERRNO(profile.get("defaultErrnoRet", 1)))
for group in profile["syscalls"]:
    assert group["action"] == "SCMP_ACT_ALLOW"
    for name in group["names"]:
        f.add_rule(seccomp.ALLOW, name)
f.load()
os.execv(sys.argv[2], sys.argv[2:])
EOF
    for driver in io_uring epoll; do
        run_pair "$driver" /usr/bin/python3 "$loader" "$ROOT/$PROFILE"
        jq_line=$(tr ',' '\n' <"$WORK/results-$driver.json" |
            grep -E '"(posts_ok|posts_failed|inconsistencies|lag)"' | tr -d ' \n')
        echo "under the profile, IO_DRIVER=$driver: $jq_line" >&2
    done
}

case ${1:-} in
    record) record ;;
    generate) generate ;;
    check) check ;;
    all) record && generate && check ;;
    *)
        sed -n '2,18p' "$0" >&2
        exit 2
        ;;
esac
