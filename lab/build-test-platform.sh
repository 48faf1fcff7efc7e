#!/usr/bin/env bash
# Builds the lab's Linux test platform: a Debian kernel plus a busybox-static initramfs whose
# init brings up the network, fetches the node agent from the head node and runs it (the agent
# checks in and reports the SHA-1 of the config modules iPXE put in / with `initrd --name`).
#
#   lab/build-test-platform.sh [--version A] [--stamp STAMP] [--build-dir ./lab-build] [--out DIR]
#                              [--no-checkin] [--reports STAMP]
#                              [--ssh-authorized-key FILE [--ssh-host-key FILE]]
#
# --no-checkin and --reports build broken platforms for rollout tests: one whose kernel boots but
# never checks in, one that checks in saying it runs another platform than it is.
# --ssh-authorized-key adds dropbear (Debian dropbear-bin, with the libraries ldd names) started
# at boot on port 22, root logging in with that public key only; its ed25519 host key is
# --ssh-host-key (default BUILD/ssh/ssh_host_ed25519_key), made once with dropbearkey, so
# rebuilds keep the key a known_hosts file pins. reboot / poweroff (busybox's, signalling PID 1)
# then reboot / power off the machine.
# Writes DIR/{vmlinuz,initrd.img,platform.json} (default DIR: BUILD/platforms/<stamp>), a folder
# `fleetboot platform import DIR` accepts. The kernel .deb is downloaded once into BUILD/cache and
# unpacked once into BUILD/kernel-<package>; after that a build takes a few seconds.
# Needs: apt-get (download only), dpkg, busybox-static, cpio, gzip. Root is not needed once the
# .deb is cached.
set -euo pipefail

version=A
stamp=
build_dir=./lab-build
out=
kernel_pkg=${FLEETBOOT_LAB_KERNEL_PKG:-}
checkin=yes
reports=
ssh_key=
ssh_host_key=

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --stamp) stamp=${2:?--stamp needs a value}; shift 2 ;;
    --build-dir) build_dir=${2:?--build-dir needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --kernel-package) kernel_pkg=${2:?--kernel-package needs a value}; shift 2 ;;
    --no-checkin) checkin=no; shift ;;
    --reports) reports=${2:?--reports needs a platform stamp}; shift 2 ;;
    --ssh-authorized-key) ssh_key=${2:?--ssh-authorized-key needs a public key file}; shift 2 ;;
    --ssh-host-key) ssh_host_key=${2:?--ssh-host-key needs a file}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "build-test-platform: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ ]]; then
  echo "build-test-platform: --version '$version': use letters, digits, '.', '_' or '-' (at most 32)" >&2
  exit 2
fi
stamp=${stamp:-fleetboot-test-$version}
if ! [[ "$stamp" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
  echo "build-test-platform: --stamp '$stamp': use letters, digits, '.', '_' or '-' (at most 64)" >&2
  exit 2
fi

for tool in dpkg busybox cpio gzip; do
  command -v "$tool" >/dev/null || { echo "build-test-platform: '$tool' is missing (apt-get install dpkg busybox-static cpio gzip)" >&2; exit 1; }
done
busybox_bin=$(command -v busybox)
if LC_ALL=C ldd "$busybox_bin" >/dev/null 2>&1; then  # ldd fails on a static binary
  echo "build-test-platform: $busybox_bin is not statically linked (apt-get install busybox-static)" >&2
  exit 1
fi

if [ -n "$ssh_key" ]; then
  grep -qE '^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+' "$ssh_key" 2>/dev/null ||
    { echo "build-test-platform: --ssh-authorized-key $ssh_key: not a readable OpenSSH public key (a line 'ssh-ed25519 AAAA...')" >&2; exit 2; }
  for tool in dropbear dropbearkey ldd; do
    PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null || { echo "build-test-platform: --ssh-authorized-key needs '$tool' (apt-get install dropbear-bin)" >&2; exit 1; }
  done
elif [ -n "$ssh_host_key" ]; then
  echo "build-test-platform: --ssh-host-key without --ssh-authorized-key" >&2; exit 2
fi

mkdir -p "$build_dir/cache"
build_dir=$(cd "$build_dir" && pwd)
# Builds of A and B run at once (test/e2e): one of them downloads and unpacks the kernel
# while the other waits, instead of both writing the same cache files.
exec 9>"$build_dir/cache/.lock"
flock 9

# 1. The kernel package: the one Debian's linux-image-amd64 points at, unless named.
if [ -z "$kernel_pkg" ]; then
  cached=$(ls "$build_dir"/cache/linux-image-*-amd64_*_amd64.deb 2>/dev/null | grep -v -- '-cloud-amd64_' | sort -V | tail -n1 || true)
  if [ -n "$cached" ]; then
    kernel_pkg=$(basename "$cached" | cut -d_ -f1)
  else
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$kernel_pkg" ] || { echo "build-test-platform: cannot resolve linux-image-amd64 (run apt-get update)" >&2; exit 1; }
  fi
fi
deb=$(ls "$build_dir"/cache/"$kernel_pkg"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$deb" ]; then
  echo "build-test-platform: downloading $kernel_pkg (once; cached in $build_dir/cache)" >&2
  (cd "$build_dir/cache" && apt-get download -q "$kernel_pkg" 2>&1 | grep -v 'unsandboxed' >&2 || true)
  deb=$(ls "$build_dir"/cache/"$kernel_pkg"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$deb" ] || { echo "build-test-platform: apt-get download $kernel_pkg failed" >&2; exit 1; }
fi
kdir="$build_dir/kernel-$kernel_pkg"
if [ ! -f "$kdir/.complete" ]; then
  rm -rf "$kdir" "$kdir.tmp"
  dpkg -x "$deb" "$kdir.tmp"
  touch "$kdir.tmp/.complete"
  mv "$kdir.tmp" "$kdir"
fi
flock -u 9
kver=$(ls "$kdir/lib/modules" | head -n1)
vmlinuz="$kdir/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || { echo "build-test-platform: $deb holds no kernel at boot/vmlinuz-$kver" >&2; exit 1; }

# 2. The initramfs. Module order matters: each needs the ones before it (docs/netboot-notes.md).
# evdev + button: the ACPI power button (QMP system_powerdown) reaches busybox acpid.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk e1000 evdev button"
stage=$(mktemp -d "$build_dir/initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,etc/udhcpc,lib/modules,var/run,root}
cp "$busybox_bin" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
: >"$stage/etc/modules-order"
for m in $modules; do
  src=$(find "$kdir/lib/modules/$kver/kernel" -name "$m.ko" -o -name "$m.ko.xz" | head -n1)
  [ -n "$src" ] || { echo "build-test-platform: module $m not found in $kernel_pkg" >&2; exit 1; }
  case "$src" in
    *.xz) xz -dc "$src" >"$stage/lib/modules/$m.ko" ;;
    *) cp "$src" "$stage/lib/modules/$m.ko" ;;
  esac
  echo "$m" >>"$stage/etc/modules-order"
done
printf '%s\n' "$version" >"$stage/etc/fleetboot-test-platform"
# The agent reports this as the running platform (boot-templates/agent.sh.hbs).
printf "%s\n" "${reports:-$stamp}" >"$stage/etc/fleetboot-platform"
printf '%s\n' "$checkin" >"$stage/etc/fleetboot-checkin"

if [ -n "$ssh_key" ]; then
  # dropbear as Debian builds it, dynamically linked: the binary and each library ldd resolves
  # (with the loader) at the same paths in the initramfs.
  dropbear_bin=$(PATH=$PATH:/usr/sbin command -v dropbear)
  mkdir -p "$stage/usr/sbin" "$stage/etc/dropbear" "$stage/root/.ssh" "$stage/dev/pts"
  cp "$dropbear_bin" "$stage/usr/sbin/dropbear"
  for lib in $(ldd "$dropbear_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
  ssh_host_key=${ssh_host_key:-$build_dir/ssh/ssh_host_ed25519_key}
  if [ ! -s "$ssh_host_key" ]; then
    mkdir -p "$(dirname "$ssh_host_key")"
    dropbearkey -t ed25519 -f "$ssh_host_key" >/dev/null 2>&1 || { echo "build-test-platform: dropbearkey could not write $ssh_host_key" >&2; exit 1; }
  fi
  install -m 0600 "$ssh_host_key" "$stage/etc/dropbear/dropbear_ed25519_host_key"
  # dropbear takes root's home and shell from passwd (getpwnam) and refuses an authorized_keys
  # others can write (svr-authpubkey.c checkpubkeyperms).
  echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
  echo 'root:x:0:' >"$stage/etc/group"
  echo '/bin/sh' >"$stage/etc/shells"
  chmod 0700 "$stage/root" "$stage/root/.ssh"
  install -m 0600 "$ssh_key" "$stage/root/.ssh/authorized_keys"
fi

cat >"$stage/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc calls this with deconfig | bound | renew | leasefail | nak; the lease is in the environment.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route del default 2>/dev/null
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "fleetboot-test-platform: $1 $ip/${mask:-24} on $interface (server $serverid)"
    ;;
esac
exit 0
EOF
chmod 0755 "$stage/etc/udhcpc/default.script"

cat >"$stage/init" <<'EOF'
#!/bin/sh
# fleetboot lab test platform: network up, fetch and run the node agent, then stay up.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "fleetboot-test-platform: $*"; }
say "version $(cat /etc/fleetboot-test-platform) up, kernel $(uname -r)"

for m in $(cat /etc/modules-order); do
  insmod "/lib/modules/$m.ko" 2>/dev/null || true
done

# Kernel arguments key=value (fleetboot_url, fleetboot_node, ...) become variables for the agent.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    fleetboot_*=*) export "$arg" ;;
  esac
done

ip link set lo up
iface=
for i in 1 2 3 4 5 6 7 8 9 10; do
  for p in /sys/class/net/*; do
    n=${p##*/}
    [ "$n" = lo ] && continue
    iface=$n; break
  done
  [ -n "$iface" ] && break
  sleep 1
done
[ -n "$iface" ] || say "no network interface found"
export fleetboot_iface="$iface"
ip link set "$iface" up

# A node booted with its config modules (a USB key, or iPXE's initrds) takes its admin address
# from /networking.json the way SmartOS does (smartos-live net-boot-config: the vnic on the
# admin tag, untagged and static); without one, DHCP. networking.json is fleetboot's own
# pretty-printed rendering (one key per line), which busybox awk can read.
static_admin() {
  [ -f /networking.json ] || return 1
  set -- $(awk '
    /"admin_tag":/ { v = $2; gsub(/[",]/, "", v); tag = v }
    /"vnics": \[/ { invnics = 1; next }
    invnics && /^  \]/ { invnics = 0 }
    invnics && /"(mac|ip|netmask|gateway|vlan_id|nic_tag)":/ { k = $1; v = $2; gsub(/[":]/, "", k); gsub(/[",]/, "", v); f[k] = v }
    invnics && /}/ { n++; mac[n] = f["mac"]; ip[n] = f["ip"]; mask[n] = f["netmask"]; gw[n] = f["gateway"]; vlan[n] = f["vlan_id"]; nt[n] = f["nic_tag"]; delete f }
    END { for (i = 1; i <= n; i++) if (nt[i] == tag && (vlan[i] == "0" || vlan[i] == "") && ip[i] != "dhcp" && ip[i] != "") { print mac[i], ip[i], mask[i], gw[i]; exit } }
  ' /networking.json)
  [ -n "${2:-}" ] || return 1
  dev=$iface
  for p in /sys/class/net/*; do [ "$(cat "$p/address" 2>/dev/null)" = "$1" ] && dev=${p##*/}; done
  bits=0
  for o in $(echo "$3" | tr . ' '); do
    case "$o" in 255) bits=$((bits + 8)) ;; 254) bits=$((bits + 7)) ;; 252) bits=$((bits + 6)) ;; 248) bits=$((bits + 5)) ;;
      240) bits=$((bits + 4)) ;; 224) bits=$((bits + 3)) ;; 192) bits=$((bits + 2)) ;; 128) bits=$((bits + 1)) ;; esac
  done
  ip link set "$dev" up
  ip -4 addr flush dev "$dev"
  ip addr add "$2/$bits" dev "$dev" || return 1
  [ "${4:-null}" != null ] && ip route add default via "$4" dev "$dev"
  say "static $2/$bits on $dev from /networking.json (gateway ${4:-null})"
}

# Built with --ssh-authorized-key: an sshd for root's key, up before the agent checks in. busybox
# reboot / poweroff signal PID 1 (init/halt.c: TERM, USR2), which this script is: it does it.
if [ -x /usr/sbin/dropbear ]; then
  trap 'say "reboot"; reboot -f' TERM
  trap 'say "poweroff"; poweroff -f' USR2
  mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
fi
start_sshd() {
  [ -x /usr/sbin/dropbear ] || return 0
  # -s: keys only; -j -k: no port forwarding.
  /usr/sbin/dropbear -s -j -k -p 22 -r /etc/dropbear/dropbear_ed25519_host_key && say "sshd (dropbear) listening on port 22"
}

if static_admin || udhcpc -i "$iface" -s /etc/udhcpc/default.script -t 20 -T 2 -A 2 -n -S; then
  start_sshd
  if [ "$(cat /etc/fleetboot-checkin)" = no ]; then
    say "built with --no-checkin: not running the agent"
  elif [ -z "${fleetboot_url:-}" ]; then
    say "no fleetboot_url on the kernel command line"
  else
    # Until the head node answers: a node booted from a key may come up while it is away.
    tries=0
    until wget -q -O /tmp/agent.sh "$fleetboot_url/agent.sh"; do
      tries=$((tries + 1))
      [ "$tries" = 10 ] && say "head node $fleetboot_url not reachable yet; still trying every 3 s"
      sleep $([ "$tries" -lt 10 ] && echo 2 || echo 3)
    done
    if [ -s /tmp/agent.sh ]; then
      say "running agent from $fleetboot_url/agent.sh"
      sh /tmp/agent.sh
      say "agent exited with $?"
    else
      say "could not fetch $fleetboot_url/agent.sh"
    fi
  fi
else
  say "no DHCP lease on $iface"
fi

# Stay up until the power button (QMP system_powerdown) or a reset.
acpid_conf=/etc/acpi
mkdir -p "$acpid_conf/PWRF"
printf '#!/bin/sh\npoweroff -f\n' >"$acpid_conf/PWRF/00000080"
chmod 0755 "$acpid_conf/PWRF/00000080"
acpid -d -c "$acpid_conf" >/dev/console 2>&1 &
say "ready"
# `wait` returns as a trapped signal comes in; a plain `sleep` would hold it back for an hour.
while true; do sleep 3600 & wait $!; done
EOF
chmod 0755 "$stage/init"

out=${out:-$build_dir/platforms/$stamp}
mkdir -p "$(dirname "$out")"
tmp_out=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
chmod 0755 "$tmp_out"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -6 >"$tmp_out/initrd.img"
cp "$vmlinuz" "$tmp_out/vmlinuz"
cat >"$tmp_out/platform.json" <<EOF
{
  "os": "linux",
  "stamp": "$stamp",
  "version": "$version",
  "kernel": "vmlinuz",
  "initrds": ["initrd.img"],
  "cmdline": "console=ttyS0 panic=5",
  "sha256": {
    "vmlinuz": "$(sha256sum "$tmp_out/vmlinuz" | cut -d' ' -f1)",
    "initrd.img": "$(sha256sum "$tmp_out/initrd.img" | cut -d' ' -f1)"
  }
}
EOF
rm -rf "$out"
mv "$tmp_out" "$out"
echo "$out"
