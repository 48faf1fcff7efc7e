#!/usr/bin/env bash
# Installs the Debian packages listed in lab/debian-packages.txt that are missing: the one
# install step behind `npm test`, the lab demo and CI. Installs only what dpkg does not have,
# with one `apt-get update` first; nothing at all when everything is there.
#
#   lab/install-deps.sh           (root) install what is missing
#   lab/install-deps.sh --check   list what is missing; exit 1 when something is
set -euo pipefail
cd "$(dirname "$0")"

check_only=false
case "${1:-}" in
  '') ;;
  --check) check_only=true ;;
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-deps: unknown argument '$1' (use --check)" >&2; exit 2 ;;
esac

mapfile -t packages < <(sed 's/#.*//' debian-packages.txt | awk 'NF { print $1 }')
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if $check_only; then
  echo "install-deps: missing Debian packages: ${missing[*]}"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them: sudo lab/install-deps.sh)" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "install-deps: no apt-get here; install by hand: ${missing[*]}" >&2; exit 1; }

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Lock::Timeout: wait for another apt run (unattended upgrades) instead of failing at once.
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
