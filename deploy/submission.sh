#!/usr/bin/env bash
# Assembles the contest submission folder: what the pull request to the contest's repository
# (participantes/<name>/) holds. The compose file is run from that folder alone, so it carries
# every file the compose file reads, at the same relative paths.
#
#   deploy/submission.sh OUT_DIR [IMAGE]
#
# IMAGE (the pushed, public image, e.g. ghcr.io/<owner>/payrelay:0.1.0) replaces the
# placeholder in `image:` when given. Fails if info.json still holds REPLACE-ME placeholders and
# an IMAGE is given (a real submission), or if the compose file reads a file that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: deploy/submission.sh OUT_DIR [IMAGE]}
image=${2:-}
# The files: the three the contest asks for, and what docker-compose.yml reads (env_file and
# the seccomp profile). tests/compose.rs checks this list against the compose file.
FILES=(docker-compose.yml info.json README.md seccomp-io_uring.json tuning/contest.env)

mkdir -p "$out"
for file in "${FILES[@]}"; do
    install -D -m 0644 "$file" "$out/$file"
done
placeholder=ghcr.io/replace-with-owner/payrelay:0.1.0
if [[ -n $image ]]; then
    sed -i "s|$placeholder|$image|g" "$out/docker-compose.yml"
    if grep -q REPLACE-ME "$out/info.json"; then
        echo "submission: info.json still has REPLACE-ME fields" >&2
        exit 1
    fi
fi
echo "submission: $out (${FILES[*]})"
