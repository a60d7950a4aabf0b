#!/usr/bin/env bash
# Installs the system packages the test suite needs, only where missing (Debian/Ubuntu).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have dbus-run-session || need+=(dbus dbus-x11)
have gnome-keyring-daemon || need+=(gnome-keyring)
have strace || need+=(strace)
have ip || need+=(iproute2)
have Xvfb || need+=(xvfb)
have xdotool || need+=(xdotool)
have trayer || need+=(trayer)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! have apt-get; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
