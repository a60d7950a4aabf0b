#!/usr/bin/env bash
# Installs the system packages the test suite needs, only where missing (Debian/Ubuntu).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have dbus-run-session || need+=(dbus dbus-x11)
have gnome-keyring-daemon || need+=(gnome-keyring)
have strace || need+=(strace)
have unshare || need+=(util-linux)
have ip || need+=(iproute2)
have Xvfb || need+=(xvfb)
have xdotool || need+=(xdotool)
have trayer || need+=(trayer)
have xclip || need+=(xclip)
have systemd-socket-activate || need+=(systemd)  # also systemd-analyze; not run as init
have desktop-file-validate || need+=(desktop-file-utils)
# Qt's xcb platform (the tray app under Xvfb): what PySide6's libqxcb.so links to, and a font.
if have dpkg; then
  for pkg in libegl1 libgl1 libfontconfig1 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 \
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
      libxcb-shape0 libxcb-xkb1 fonts-dejavu-core; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! have apt-get; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
