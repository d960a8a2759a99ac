#!/usr/bin/env bash
# bazel/install.sh: installs carechatd as a systemd service on this machine.
#
#   sudo bazel/install.sh [--root DIR] [--no-start]
#
# Builds carechatd and carechat (-c opt), installs them to /usr/local/bin, the
# unit (server/carechatd.service) to /etc/systemd/system, the example
# configuration (server/carechatd.conf) to /etc/carechat/carechatd.conf unless
# one is there, makes the system user `carechat` and its directories
# (/var/lib/carechat for the data, /var/lib/carechat-keys for the keys: mount
# them on separate volumes first), runs `carechatd init` once when there is no
# database yet, and enables and starts the service. Nothing that exists is
# overwritten but the binaries and the unit.
#
# --root DIR installs into DIR instead of / (for tests and packaging: no user is
# made, the files belong to the caller, and systemctl is not called);
# --no-start enables nothing.
set -euo pipefail

root=/
start=1
while [ $# -gt 0 ]; do
    case "$1" in
    --root) root=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
staged=$([ "$root" = / ] && echo 0 || echo 1)
at() { printf '%s%s' "${root%/}" "$1"; }

if [ -z "${CARECHATD_BIN:-}" ]; then
    "$repo/bazel/setup.sh"
    (cd "$repo" && bazel build -c opt //server:carechatd //client:carechat)
    CARECHATD_BIN="$repo/bazel-bin/server/carechatd"
    CARECHAT_BIN="$repo/bazel-bin/client/carechat"
fi

if [ "$staged" = 0 ] && ! id carechat >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/carechat --shell /usr/sbin/nologin carechat
fi
owner() { [ "$staged" = 1 ] || chown carechat:carechat "$@"; }

install -d -m 0755 "$(at /usr/local/bin)" "$(at /etc/systemd/system)" "$(at /etc/carechat)" \
    "$(at /usr/local/share/doc/carechat)"
install -m 0755 "$CARECHATD_BIN" "$(at /usr/local/bin/carechatd)"
[ -n "${CARECHAT_BIN:-}" ] && install -m 0755 "$CARECHAT_BIN" "$(at /usr/local/bin/carechat)"
install -m 0644 "$repo/server/carechatd.service" "$(at /etc/systemd/system/carechatd.service)"
install -m 0644 "$repo/README.md" "$(at /usr/local/share/doc/carechat/README.md)"
conf=$(at /etc/carechat/carechatd.conf)
if [ ! -e "$conf" ]; then
    # The example, with its paths under the root.
    sed -e "s|= /var/lib/|= $(at /var/lib/)|" "$repo/server/carechatd.conf" >"$conf"
    chmod 0640 "$conf"
    [ "$staged" = 1 ] || chgrp carechat "$conf"
fi
for d in /var/lib/carechat /var/lib/carechat-keys; do
    install -d -m 0700 "$(at "$d")"
    owner "$(at "$d")"
done

# The database, once: never over an existing or half-mounted one (carechatd
# init refuses those itself).
data=$(sed -n 's/#.*//; s/^[[:space:]]*data[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p' "$conf" | tail -1)
if [ ! -e "$data/db" ]; then
    if [ "$staged" = 1 ]; then
        "$(at /usr/local/bin/carechatd)" init --config "$conf"
    else
        runuser -u carechat -- /usr/local/bin/carechatd init --config "$conf"
    fi
fi

if [ "$staged" = 0 ]; then
    systemctl daemon-reload
    if [ "$start" = 1 ]; then
        systemctl enable --now carechatd
        echo "carechatd is running: journalctl -u carechatd; create the first system" \
            "administrator with: sudo -u carechat carechatd bootstrap --config" \
            "/etc/carechat/carechatd.conf --email EMAIL --password-file FILE (the server must be" \
            "stopped: systemctl stop carechatd)"
    fi
fi
