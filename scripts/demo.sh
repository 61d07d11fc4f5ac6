#!/usr/bin/env bash
# imgctl on embedded defaults, on any Debian machine: a .venv with imgctl, then `imgctl demo`
# (two embedded registries, the issuer, an SSH key in a private agent, the server, a promotion).
# Arguments go to `imgctl demo`, e.g. --keep.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
activate_venv .
exec imgctl demo "$@"
