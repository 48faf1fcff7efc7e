#!/usr/bin/env bash
# The lab demo: on a fresh Debian machine, as root, from a clone of fleetboot:
#   installs what is missing (lab/install-deps.sh), starts the head node in a lab network
#   namespace (lab up builds the Linux test platform when there is none), PXE-boots two QEMU VMs
#   from it, waits for them to check in and prints the node table. The lab keeps running;
#   `npx fleetboot lab down` removes it.
#   sudo npm run lab:demo        (or: sudo lab/demo.sh [--nodes N] [--firmware bios|uefi])
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=2
firmware=bios
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=${2:?}; shift 2 ;;
    --firmware) firmware=${2:?}; shift 2 ;;
    *) echo "lab demo: unknown argument '$1' (use --nodes N, --firmware bios|uefi)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "lab demo: run as root (sudo npm run lab:demo): the lab creates a network namespace and taps" >&2
  exit 2
fi

# 1. Debian packages the lab needs: the same list and install step as npm test.
bash lab/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund

# 2. The lab: namespace fb-lab, head node on 10.99.0.1, $nodes VMs booting the test platform
#    (lab up builds it first when lab-build has none; the kernel .deb is downloaded once).
if [ -f var/lab/lab.json ]; then
  echo "lab demo: removing the previous lab"
  node bin/fleetboot.js lab down
fi
node bin/fleetboot.js lab up --nodes "$nodes" --firmware "$firmware" --detach

# 3. Wait for every VM to check in (TCG boots take 10-25 s each), then show the fleet.
echo "lab demo: waiting for $nodes node(s) to boot and check in"
for _ in $(seq 1 120); do
  up=$(node bin/fleetboot.js lab status --json | grep -c '"lastSeen": [0-9]' || true)
  [ "$up" -ge "$nodes" ] && break
  sleep 2
done
node bin/fleetboot.js lab status
echo
node bin/fleetboot.js --config var/lab/fleetboot.json node list
cat <<'MSG'

The lab keeps running. Next:
  npx fleetboot lab console node0                  # a VM's serial console
  npx fleetboot --config var/lab/fleetboot.json node show 52:54:00:fb:00:00   # one node, with its boot timeline
  npx fleetboot lab down                           # remove the VMs, head node and namespace
MSG
