#!/usr/bin/env bash
# `scripts/need.sh CHECK:PACKAGE ...`: make sure each CHECK holds, installing the Debian
# PACKAGE that provides it with apt-get when we are root; otherwise say, in one line, what to
# install. CHECK is a command on PATH, or py.MODULE for a module python3 must import. Used by `make run` and `make test` so that a fresh Debian/Ubuntu machine needs nothing else.
# `scripts/need.sh --optional WHAT CHECK:PACKAGE ...`: the same, but when they cannot be
# installed, say in one line what to install for WHAT, and go on (exit 0).
set -euo pipefail
optional=""
if [[ ${1:-} == --optional ]]; then
    optional=$2
    shift 2
fi
missing=()
present() {
    case "$1" in
        py.*) "${PYTHON:-python3}" -c "import ${1#py.}" >/dev/null 2>&1 ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}
for pair in "$@"; do
    present "${pair%%:*}" || missing+=("${pair#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (apt-get)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
elif [[ -n $optional ]]; then
    echo "skipping $optional: run 'sudo apt-get install -y ${missing[*]}' to run them" >&2
else
    echo "missing: run 'sudo apt-get install -y ${missing[*]}' and try again" >&2
    exit 1
fi
