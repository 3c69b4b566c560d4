#!/usr/bin/env bash
# Installs the AOI station on a Debian/Ubuntu line PC from a wheelhouse (offline).
# installer/README.md describes every file it writes. Run as root:
#   sudo installer/install.sh --wheelhouse /media/usb/wheelhouse
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: install.sh --wheelhouse DIR [options]
       install.sh --uninstall [--root DIR]

  --wheelhouse DIR   folder of wheels (installer/make-wheelhouse.sh); pip never uses an index
  --extras LIST      extras of aoi-station, comma-separated (default: gui; e.g. gui,gpu)
  --root DIR         install under DIR as if it were / and touch nothing outside it
                     (tests, image builds): no apt, no user, no systemctl, no sysctl
  --no-apt           do not apt-get the GUI's system libraries; print them
  --python PY        interpreter that creates the venv (default: python3; 3.11 or newer)
  --extra-site DIR   dependencies are already installed in DIR (a site-packages folder): the
                     venv gets a .pth to it and pip installs only aoi-station (tests, images)
  --uninstall        remove the program (venv, unit, desktop entry, sysctl drop-in);
                     keep /etc/aoi (config, site recipes) and /var/lib/aoi (data)
USAGE
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="" WHEELHOUSE="" EXTRAS="gui" NO_APT=0 PYTHON=python3 EXTRA_SITE="" UNINSTALL=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
    --extras) EXTRAS="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --no-apt) NO_APT=1; shift ;;
    --python) PYTHON="$2"; shift 2 ;;
    --extra-site) EXTRA_SITE="$2"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

# The target system's paths; $ROOT prefixes them only where files are written.
VENV=/opt/aoi/venv
ETC=/etc/aoi
DATA=/var/lib/aoi
UNIT=/etc/systemd/system/aoi-station.service
DESKTOP=/usr/share/applications/aoi-gui.desktop
SYSCTL=/etc/sysctl.d/60-aoi-gige.conf
if [[ -n "$ROOT" ]]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
fi
say() { echo "install: $*"; }

# What PySide6 6.x's xcb platform plugin (plugins/platforms/libqxcb.so, libQt6XcbQpa) links
# against beyond the base system; `ldd` on it names them (installer/README.md).
QT_APT_PACKAGES=(
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
  libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
  libxcb-xkb1 libxcb-util1 libxcb1 libx11-xcb1 libx11-6 libxkbcommon-x11-0 libxkbcommon0
  libegl1 libgl1 libfontconfig1 libfreetype6 libglib2.0-0 libdbus-1-3
)
PY_APT_PACKAGES=(python3 python3-venv)

live() { [[ -z "$ROOT" ]]; }   # touching the running system (not a --root install)

uninstall() {
  if live && command -v systemctl >/dev/null; then
    systemctl disable --now aoi-station.service 2>/dev/null || true
  fi
  rm -rf "$ROOT$VENV"
  rm -f "$ROOT$UNIT" "$ROOT$DESKTOP" "$ROOT$SYSCTL"
  rmdir "$ROOT/opt/aoi" 2>/dev/null || true
  if live && command -v systemctl >/dev/null; then systemctl daemon-reload || true; fi
  say "removed $VENV, $UNIT, $DESKTOP, $SYSCTL"
  say "kept $ETC (station.toml, site recipes) and $DATA (database, journal, images); user aoi kept"
}

apt_install() {
  local wanted=("${PY_APT_PACKAGES[@]}")
  [[ ",$EXTRAS," == *",gui,"* ]] && wanted+=("${QT_APT_PACKAGES[@]}")
  if ! live || [[ $NO_APT == 1 ]] || ! command -v apt-get >/dev/null; then
    say "not running apt-get (--root, --no-apt or no apt); the station needs: ${wanted[*]}"
    return
  fi
  say "apt-get install ${wanted[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}"
}

make_user() {
  if ! live; then
    say "not creating user aoi under --root (the unit runs as aoi: create it in the image)"
    return
  fi
  if ! id aoi >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin aoi
    say "created system user aoi"
  fi
  # USB3 Vision cameras are plugdev devices on Debian; GigE needs no group.
  getent group plugdev >/dev/null && usermod -a -G plugdev aoi
  chown -R aoi:aoi "$DATA"
}

install_venv() {
  if [[ ! -x "$ROOT$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$ROOT$VENV"
    say "created venv $VENV"
  fi
  local py="$ROOT$VENV/bin/python" spec="aoi-station" args=()
  [[ -n "$EXTRAS" ]] && spec="aoi-station[$EXTRAS]"
  if [[ -n "$EXTRA_SITE" ]]; then
    # Dependencies come from an existing site-packages; pip must not look at (or replace) an
    # aoi-station it may find there, hence --ignore-installed for the station's own wheel.
    local site
    site="$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    echo "$EXTRA_SITE" > "$site/aoi-extra-site.pth"
    args+=(--no-deps --ignore-installed)
  fi
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q --no-index --find-links "$WHEELHOUSE" \
    --upgrade "${args[@]}" "$spec"
  say "installed $("$py" -m pip show aoi-station 2>/dev/null | sed -n 's/^Version: /aoi-station /p') into $VENV"
}

write_config() {
  mkdir -p "$ROOT$ETC/recipes" "$ROOT$DATA"
  if [[ -e "$ROOT$ETC/station.toml" ]]; then
    say "kept existing $ETC/station.toml"
  else
    sed "s|@DATA_DIR@|$DATA|g" "$HERE/station.toml.in" > "$ROOT$ETC/station.toml"
    say "wrote $ETC/station.toml (edit camera, PLC and database there)"
  fi
  "$ROOT$VENV/bin/python" "$HERE/station_env.py" "$ROOT$ETC/station.toml" "$ROOT$ETC/aoi.env" "$DATA"
}

install_system_files() {
  install -D -m 0644 "$HERE/aoi-station.service" "$ROOT$UNIT"
  say "wrote $UNIT"
  if [[ ",$EXTRAS," == *",gui,"* ]]; then
    install -D -m 0644 "$HERE/aoi-gui.desktop" "$ROOT$DESKTOP"
    say "wrote $DESKTOP (aoi gui --kiosk)"
  fi
  install -D -m 0644 "$HERE/60-aoi-gige.conf" "$ROOT$SYSCTL"
  say "wrote $SYSCTL (GigE Vision socket buffers, rp_filter)"
  if live; then
    sysctl -q -p "$SYSCTL" || say "sysctl could not apply $SYSCTL now (a container?); it applies at boot"
    if command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null; then
      systemctl enable aoi-station.service
      say "enabled aoi-station.service; start it with: systemctl start aoi-station"
    else
      say "systemd is not running here: the unit is installed but not enabled"
    fi
  fi
  say "jumbo frames are per interface and not set here; on the camera NIC run"
  say "  ip link set dev <camera-nic> mtu 9000   (and persist it in netplan/NetworkManager)"
}

run_doctor() {
  say "aoi doctor:"
  local rc=0
  if live; then
    "$VENV/bin/aoi" doctor --station "$ETC/station.toml" || rc=$?
  else
    # station.toml names the target's paths (/var/lib/aoi), which this machine must not touch:
    # check the staged program with the defaults and the staged data folder.
    AOI_DATA_DIR="$ROOT$DATA" "$ROOT$VENV/bin/aoi" doctor || rc=$?
  fi
  if [[ $rc -ne 0 ]]; then
    say "aoi doctor exited $rc: the lines above say what is missing before the station can run"
  else
    say "aoi doctor: nothing missing"
  fi
}

if [[ $UNINSTALL == 1 ]]; then
  uninstall
  exit 0
fi
if [[ -z "$WHEELHOUSE" ]]; then
  echo "install: --wheelhouse DIR is required (installer/make-wheelhouse.sh builds it)" >&2
  exit 2
fi
if live && [[ $EUID -ne 0 ]]; then
  echo "install: run as root (or with --root DIR for a staging folder)" >&2
  exit 2
fi
apt_install
install_venv
write_config
make_user
install_system_files
run_doctor
say "done"
