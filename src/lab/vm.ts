// One lab VM: the QEMU command line that PXE-boots it from the lab bridge.
// -accel tcg: /dev/kvm here cannot run guests (docs/netboot-notes.md pitfall 7). -no-reboot plus
// reboot-timeout and the `timeout` wrapper: a failed boot ends the VM instead of waiting
// forever in SeaBIOS (pitfall 6).
import { copyFileSync, existsSync, openSync, closeSync, ftruncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuBmcArgs } from './bmc.ts';
import type { Firmware, LabVm } from './state.ts';

export const ovmfCode = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const ovmfVars = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface VmPlan {
  index: number;
  firmware: Firmware;
  /** Leave out the NIC's iPXE ROM so firmware PXE has to chainload iPXE over TFTP (UEFI only). */
  chainload: boolean;
  memoryMiB: number;
  diskMiB: number;
  timeoutSeconds: number;
  /** Ports of the VM's simulated BMC, when it has one (src/lab/bmc.ts). */
  bmc?: { serialPort: number; qmpPort: number };
  /**
   * A USB key image (`fleetboot usb-image`) on a USB 3 controller, the first boot device; QEMU
   * writes never reach the file (snapshot=on).
   */
  usbKey?: string;
  /** false: the NIC without its iPXE option ROM (`romfile=`), so a USB key is the only way in. */
  nicRom?: boolean;
}

/** Locally administered MACs in QEMU's 52:54:00 range, one per lab index. */
export function labMac(index: number): string {
  return `52:54:00:fb:${((index >> 8) & 255).toString(16).padStart(2, '0')}:${(index & 255).toString(16).padStart(2, '0')}`;
}

/** A stable, valid SMBIOS UUID per lab index (so discovery sees a real one, not zeros). */
export function labUuid(index: number, salt: number): string {
  const hex = (n: number, w: number): string => (n >>> 0).toString(16).padStart(w, '0').slice(-w);
  return `fb1ab000-${hex(salt & 0xffff, 4)}-4000-8000-${hex(index, 12)}`;
}

/** Files and the command for VM `plan.index` inside namespace `ns`; creates the disk and VARS copy. */
export function prepareVm(ns: string, dir: string, plan: VmPlan, salt: number): LabVm {
  const name = `node${plan.index}`;
  const mac = labMac(plan.index);
  const uuid = labUuid(plan.index, salt);
  const tap = `tap${plan.index}`;
  const qmpSocket = join(dir, `${name}.qmp`);
  const serialLog = join(dir, `${name}.serial.log`);
  const disk = join(dir, `${name}.disk`);
  if (!existsSync(disk)) {
    // A sparse raw disk: the node reports it in its inventory; nothing is written to it.
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, plan.diskMiB * 1024 * 1024);
    closeSync(fd);
  }
  let varsFile: string | null = null;
  // SeaBIOS's serial console (etc/sercon-port = COM1 0x3f8) carries its and iPXE's screen to the
  // serial log; OVMF writes to the serial port by itself.
  // SeaBIOS reads the file as a little-endian integer (src/romfile.c romfile_loadint).
  const firmwareArgs: string[] = [];
  if (plan.firmware === 'bios') {
    const sercon = join(dir, 'sercon-port.bin');
    if (!existsSync(sercon)) writeFileSync(sercon, Buffer.from([0xf8, 0x03]));
    firmwareArgs.push('-fw_cfg', `name=etc/sercon-port,file=${sercon}`);
  }
  if (plan.firmware === 'uefi') {
    varsFile = join(dir, `${name}.OVMF_VARS.fd`);
    if (!existsSync(varsFile)) copyFileSync(ovmfVars, varsFile); // docs/netboot-notes.md: one VARS copy per VM
    firmwareArgs.push(
      '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmfCode}`,
      '-drive', `if=pflash,format=raw,unit=1,file=${varsFile}`,
    );
  }
  // `romfile=` (empty) removes the NIC's iPXE ROM: OVMF's own VirtioNetDxe + PXE then boots it.
  const noRom = plan.chainload || plan.nicRom === false;
  // With a key the key boots first (bootindex 1); the NIC keeps no boot index of its own.
  const nic = `virtio-net-pci,netdev=n0,mac=${mac}${plan.usbKey ? '' : ',bootindex=1'}${noRom ? ',romfile=' : ''}`;
  // The USB key as measured booting under SeaBIOS and OVMF (docs/usb.md): usb-storage on qemu-xhci,
  // on the lab's default machine (under q35, OVMF's Linux boot stalled in early kernel setup).
  const usbArgs = plan.usbKey
    ? [
      '-device', 'qemu-xhci,id=usbc',
      '-drive', `if=none,id=usbkey,format=raw,file=${plan.usbKey},snapshot=on`,
      '-device', 'usb-storage,bus=usbc.0,drive=usbkey,bootindex=1',
    ]
    : [];
  const argv = [
    'ip', 'netns', 'exec', ns,
    'timeout', '--signal=TERM', '--kill-after=5', String(plan.timeoutSeconds),
    'qemu-system-x86_64',
    '-name', name,
    '-accel', 'tcg',
    '-m', String(plan.memoryMiB),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none',
    // Behind a BMC the VM reboots like a machine (the BMC and its power driver decide; a failed
    // boot retries every reboot-timeout until `timeout` ends it); without one, -no-reboot.
    ...(plan.bmc ? [] : ['-no-reboot']),
    '-serial', `file:${serialLog}`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    '-boot', 'order=n,reboot-timeout=1000',
    '-uuid', uuid,
    ...firmwareArgs,
    '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    ...usbArgs,
    '-device', nic,
    '-drive', `if=none,id=d0,format=raw,file=${disk}`,
    '-device', 'virtio-blk-pci,drive=d0',
    ...(plan.bmc ? qemuBmcArgs(plan.bmc) : []),
  ];
  return {
    name, mac, uuid, tap, firmware: plan.firmware, chainload: plan.chainload, usbKey: plan.usbKey ?? null, nicRom: !noRom, qmpSocket, serialLog, disk, varsFile, argv, process: null, bmc: null,
  };
}
