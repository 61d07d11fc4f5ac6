# Sourced by scripts/demo.sh and scripts/test.sh: root-or-sudo, and the project's .venv with
# imgctl installed (the arguments are pip's: "." or "-e .[dev]"). Debian's python3 has no venv module
# until python3-venv is installed, and its pip refuses to install system-wide (PEP 668).

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    say "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    if [ $# -gt 0 ]; then as_root apt-get install -y -qq "$@" >/dev/null; fi
}

activate_venv() {
    if [ ! -x .venv/bin/python ]; then
        python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv python3-pip
        python3 -m venv .venv
    fi
    . .venv/bin/activate
    python -m pip install -q --upgrade pip
    python -m pip install -q "$@"
}
