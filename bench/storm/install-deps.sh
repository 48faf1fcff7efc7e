#!/usr/bin/env bash
# Installs the Debian packages the benches run beside fleetboot: for the boot-storm bench
# (bench/storm) the classic stack it measures fleetboot against (ISC Kea's kea-dhcp4, tftpd-hpa's
# in.tftpd, nginx) and the iPXE binaries both stacks serve; for bench/http its load generator
# (wrk); for bench/tftp dnsmasq's binary (dnsmasq-base, which has no service). Root. Only what
# dpkg does not have, with one `apt-get update`.
#
# The packages' maintainer scripts would start kea-dhcp4, tftpd-hpa and nginx as host services
# (policy-rc.d(8): invoke-rc.d asks /usr/sbin/policy-rc.d first). A policy-rc.d that exits 101
# ("action forbidden") is in place for the install only, so no service starts and no service
# already on the host is touched; the bench runs its own copies in its network namespaces.
#
#   bench/storm/install-deps.sh           install what is missing
#   bench/storm/install-deps.sh --check   list what is missing; exit 1 when something is
set -euo pipefail

packages=(kea-dhcp4-server tftpd-hpa nginx-light ipxe iproute2 procps wrk dnsmasq-base)

check_only=false
case "${1:-}" in
  '') ;;
  --check) check_only=true ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-deps: unknown argument '$1' (use --check)" >&2; exit 2 ;;
esac

missing=()
for pkg in "${packages[@]}"; do
  # nginx-light or any other nginx flavour will do: the bench needs the nginx binary.
  if [ "$pkg" = nginx-light ] && command -v nginx >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if $check_only; then
  echo "install-deps: missing Debian packages: ${missing[*]}"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root: sudo bench/storm/install-deps.sh)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
saved=''
if [ -e "$policy" ]; then
  saved="$(mktemp)"
  cp -p "$policy" "$saved"
fi
restore() {
  if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
printf '#!/bin/sh\n# bench/storm/install-deps.sh: no service starts during this install\nexit 101\n' > "$policy"
chmod 755 "$policy"

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
