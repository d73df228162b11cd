#!/usr/bin/env bash
# System packages some tests need: a real RTSP server (GStreamer's gst-rtsp-server, run by the
# system Python). Installs them with apt when missing and when running as root; else says what to do.
set -euo pipefail
packages=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: the RTSP test is skipped until these are installed: sudo apt-get install ${missing[*]}" >&2
fi
