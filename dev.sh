#!/usr/bin/env bash
# One entry point for a fresh Debian / Raspberry Pi OS machine:
#   ./dev.sh run [deskphone run args...]   set up, then run the phone (simulated hardware off a Pi)
#   ./dev.sh test [pytest args...]         set up, then run the whole test suite with ruff and mypy
# Each sets up what it needs itself: Debian packages when run as root (otherwise it prints
# the exact apt-get line to run), and a virtual environment in .venv.
set -euo pipefail
cd "$(dirname "$0")"

RUN_PACKAGES=(python3 python3-venv python3-dev build-essential libasound2-dev)
TEST_PACKAGES=(kamailio kamailio-sqlite-modules kamailio-presence-modules sqlite3
               sip-tester baresip-core sipvicious tshark sox alsa-utils iproute2)

need_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Use-Pty=0 "${missing[@]}" >&2
        if [[ " ${missing[*]} " == *" kamailio "* ]] && [ -d /run/systemd/system ]; then
            # Debian enables and starts kamailio.service on install: a SIP server on *:5060, the
            # phone's own port. The tests start their own Kamailio on loopback, so stop that one.
            echo "dev.sh: stopping and disabling kamailio.service (the tests run their own)" >&2
            systemctl disable --now kamailio.service >&2
        fi
    else
        echo "dev.sh: missing Debian packages; run:" >&2
        echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
}

python_for_venv() {
    # Debian's interpreter on a fresh machine; any python3 >= 3.11 elsewhere.
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

setup_venv() {
    local extras="$1"
    if [ ! -x .venv/bin/python ]; then
        "$(python_for_venv)" -m venv .venv
    fi
    local stamp=".venv/.installed-${extras:-base}"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip >&2
        if grep -qi "raspberry pi" /proc/device-tree/model 2>/dev/null; then
            extras="${extras:+$extras,}pi"
        fi
        .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}" >&2
        touch "$stamp"
    fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
    run)
        need_debian_packages "${RUN_PACKAGES[@]}"
        setup_venv ""
        exec .venv/bin/deskphone run "$@"
        ;;
    test)
        need_debian_packages "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        setup_venv dev
        # Run all three even when one fails, so one report shows every problem.
        failed=()
        echo "== ruff" && .venv/bin/ruff check . || failed+=(ruff)
        echo "== mypy" && .venv/bin/mypy || failed+=(mypy)
        echo "== pytest" && .venv/bin/pytest -n auto "$@" || failed+=(pytest)
        if [ ${#failed[@]} -gt 0 ]; then
            echo "dev.sh: failed: ${failed[*]}" >&2
            exit 1
        fi
        ;;
    *)
        echo "usage: ./dev.sh run [--config FILE] [--sim] | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
