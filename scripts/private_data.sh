#!/usr/bin/env bash
# `make run`'s data directory, readable by its owner alone: `private_data.sh DIR` makes DIR
# (0700: Redis keeps the link store there); `private_data.sh DIR --key` also prints the
# development API key kept in DIR/dev-api-key (0600), made once. Modes an earlier release
# left looser (the default umask: 0755 and 0644, readable by every user) are tightened.
set -euo pipefail
umask 077
dir="$1"
mkdir -p "$dir"
chmod 0700 "$dir"
if [[ "${2:-}" == --key ]]; then
    key="$dir/dev-api-key"
    [[ -s "$key" ]] || { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; echo; } > "$key"
    chmod 0600 "$key"
    cat "$key"
fi
