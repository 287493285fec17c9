#!/bin/sh
# The push part of `make bench` alone (bench/run.sh runs it after the earlier parts); see
# bench/push.py for what it measures. Needs: cargo, python3, and the receivers' venv
# (`make receivers`).
set -eu
exec python3 "$(dirname "$0")/push.py" "$@"
