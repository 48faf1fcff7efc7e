#!/usr/bin/env bash
# Fetches the iPXE that `fleetboot usb-image` puts on a netboot key: an EFI binary that runs a
# script from the USB key it starts from (autoexec.ipxe, iPXE 1.21 and later:
# src/interface/efi/efi_autoexec.c), and the same version's ipxe.lkrn for syslinux on BIOS (with
# VLAN support, which bookworm's ipxe.lkrn lacks). Debian bookworm's ipxe (2019) has no
# autoexec.ipxe and no EFI command line, and its source package is not on every mirror; Debian
# trixie's `ipxe` package (Architecture: all, data only) ships both. It is downloaded (never
# installed) with apt-get through a private sources list and state folder, so the system's apt
# configuration is not touched, and cached in BUILD/cache.
#
#   lab/fetch-ipxe-usb.sh [--build-dir ./lab-build] [--suite trixie]
#
# Writes BUILD/ipxe-usb/{ipxe.efi,ipxe.lkrn,VERSION}; prints the folder. Needs apt-get (download
# only) and dpkg-deb; no root once the .deb is cached.
set -euo pipefail

build_dir=./lab-build
suite=${FLEETBOOT_IPXE_SUITE:-trixie}
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=${2:?--build-dir needs a value}; shift 2 ;;
    --suite) suite=${2:?--suite needs a value}; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-ipxe-usb: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "fetch-ipxe-usb: '$tool' is missing (Debian packages apt, dpkg)" >&2; exit 1; }
done

mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
cache="$build_dir/cache"
out="$build_dir/ipxe-usb"
apt_dir="$cache/apt-$suite"
mkdir -p "$cache" "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/archives/partial"

deb=$(ls "$cache"/ipxe_*_all.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$deb" ]; then
  # Debian's own mirror and archive key, as the system's sources use them.
  cat >"$apt_dir/sources/$suite.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o "Debug::NoLocking=1")
  echo "fetch-ipxe-usb: downloading Debian $suite's ipxe package into $cache" >&2
  apt-get "${apt_opts[@]}" -qq update >&2
  # As root apt warns that it downloads unsandboxed into a folder _apt cannot read: expected here.
  (cd "$cache" && apt-get "${apt_opts[@]}" -qq download "ipxe/$suite" 2>&1 | grep -v 'unsandboxed' >&2 || true)
  deb=$(ls "$cache"/ipxe_*_all.deb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$deb" ] || { echo "fetch-ipxe-usb: apt-get download ipxe/$suite got nothing" >&2; exit 1; }
fi

tmp=$(mktemp -d "$build_dir/.ipxe-usb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/x"
efi="$tmp/x/usr/lib/ipxe/ipxe-amd64.efi"
[ -f "$efi" ] || efi="$tmp/x/usr/lib/ipxe/ipxe.efi"
[ -f "$efi" ] || { echo "fetch-ipxe-usb: $deb holds no ipxe.efi" >&2; exit 1; }
grep -q 'autoexec.ipxe' "$efi" || { echo "fetch-ipxe-usb: $deb's ipxe.efi has no autoexec.ipxe support" >&2; exit 1; }
lkrn="$tmp/x/usr/lib/ipxe/ipxe.lkrn"
[ -f "$lkrn" ] || { echo "fetch-ipxe-usb: $deb holds no ipxe.lkrn" >&2; exit 1; }
mkdir -p "$tmp/out"
cp "$efi" "$tmp/out/ipxe.efi"
cp "$lkrn" "$tmp/out/ipxe.lkrn"
dpkg-deb -f "$deb" Version >"$tmp/out/VERSION"
rm -rf "$out"
mv "$tmp/out" "$out"
echo "$out"
