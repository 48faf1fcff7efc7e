// `fleetboot usb-image`: write a USB key image (a file to dd onto a stick), or list what one holds.
import type { Command } from 'commander';
import { UsbImageError, listUsbImage, type UsbImageListing } from '../usb/disk.ts';
import { buildNetbootKey, describeNetbootScript, ensureIpxe, parseNetbootOptions, scriptName } from '../usb/netboot.ts';
import { configFor } from './context.ts';
import { describeStandaloneKey, standaloneSummaryLines } from '../usb/standalone.ts';
import { refuseStandaloneFlags, runStandalone, standaloneExamples, standaloneOptions, type StandaloneCliOptions } from './usb-standalone.ts';
import { UsageError } from './errors.ts';
import { formatBytes, formatTable, printJson } from './output.ts';

interface UsbImageOptions extends StandaloneCliOptions {
  out?: string;
  list?: string;
  url?: string[];
  static?: string;
  gateway?: string;
  dns?: string[];
  vlan?: string;
  size?: string;
  ipxeEfi?: string;
  ipxeLkrn?: string;
  json?: boolean;
}

const repeat = (v: string, acc: string[] = []): string[] => [...acc, v];

/** Progress for people: on a terminal, to stderr; nothing when the output goes to a file or pipe. */
function progressLine(): (msg: string) => void {
  return process.stderr.isTTY ? (msg) => process.stderr.write(`${msg}\n`) : () => undefined;
}

async function usbErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsbImageError) throw new UsageError(err.message);
    throw err;
  }
}

function listingText(l: UsbImageListing): string {
  const out: string[] = [];
  out.push(`${l.file}: ${formatBytes(l.sizeBytes)}, MBR boot code ${l.mbrBootCode ? 'present' : 'none'}, FAT label ${l.label ?? '-'}`);
  out.push(formatTable(['PARTITION', 'ACTIVE', 'TYPE', 'START', 'SIZE'], l.partitions.map((p) => [p.index, p.active ? 'yes' : 'no', `0x${p.type.toString(16).padStart(2, '0')}`, `LBA ${p.startSector}`, formatBytes(p.sectors * 512)])));
  out.push('');
  out.push(formatTable(['FILE', 'SIZE'], l.files.map((f) => [f.path, `${f.size} (${formatBytes(f.size)})`])));
  const script = l.files.find((f) => f.path.toLowerCase() === scriptName);
  if (script?.text !== undefined) {
    const s = describeNetbootScript(script.text);
    out.push('');
    out.push(`netboot: head node ${s.urls.join(', then ') || '(no URL)'}`);
    out.push(`network: ${s.dhcp ? 'DHCP' : `static ${s.ip ?? '?'} netmask ${s.netmask ?? '?'} gateway ${s.gateway ?? 'none'} dns ${s.dns ?? 'none'}`} on ${s.device ?? '?'}${s.vlan !== null ? ` (VLAN ${s.vlan})` : ''}`);
  }
  const standalone = describeStandaloneKey(l.files);
  if (standalone) out.push('', ...standaloneSummaryLines(standalone));
  for (const f of l.files.filter((x) => x.text !== undefined)) {
    out.push('', `--- ${f.path}`, f.text!.replace(/\n$/, ''));
  }
  return `${out.join('\n')}\n`;
}

export function registerUsbImage(program: Command): void {
  standaloneOptions(program.command('usb-image'))
    .description('write a USB key image that boots BIOS and UEFI machines into iPXE and chains this head node (dd it to a stick), or --list what a key holds')
    .option('-o, --out <file>', 'image file to write (a file, never a device: dd it to the stick afterwards)')
    .option('--url <url>', "head node's base URL, repeatable: tried in order (default: http.publicUrl from the config)", repeat)
    .option('--static <ip/prefix>', 'a static address instead of DHCP, e.g. 10.0.5.20/24')
    .option('--gateway <ip>', 'default gateway with --static')
    .option('--dns <ip>', 'DNS resolver with --static (one; needed when a --url names a host)', repeat)
    .option('--vlan <id>', '802.1Q VLAN to reach the head node on (1-4094)')
    .option('--size <MiB>', 'image size (default: what the files need, at least 64)')
    .option('--ipxe-efi <file>', "iPXE EFI binary (1.21 or later, which runs autoexec.ipxe); default: lab/fetch-ipxe-usb.sh's, fetched on first use")
    .option('--ipxe-lkrn <file>', "iPXE as a Linux kernel for BIOS (syslinux); default: lab/fetch-ipxe-usb.sh's")
    .option('--list <file>', 'show what a key image holds: partitions, files with sizes, boot scripts and their URLs and addresses')
    .option('--json', 'with --list: print JSON')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  fleetboot usb-image --out netboot.img',
        '  fleetboot usb-image --out netboot.img --url http://10.0.0.2:8080 --url http://10.0.1.2:8080',
        '  fleetboot usb-image --out rack7.img --static 10.7.0.50/24 --gateway 10.7.0.1 --dns 10.7.0.1 --vlan 107',
        ...standaloneExamples,
        '  fleetboot usb-image --list netboot.img',
        '  dd if=netboot.img of=/dev/sdX bs=4M conv=fsync   # after checking --list',
      ].join('\n'),
    )
    .action(async (o: UsbImageOptions, cmd: Command) => {
      if (o.list !== undefined) {
        if (o.out !== undefined) throw new UsageError('--list reads a key; --out writes one: give one of them');
        const listing = await usbErrors(() => listUsbImage(o.list!));
        if (o.json) {
          const script = listing.files.find((f) => f.path.toLowerCase() === scriptName);
          return printJson({ ...listing, netboot: script?.text !== undefined ? describeNetbootScript(script.text) : null, standalone: describeStandaloneKey(listing.files) });
        }
        process.stdout.write(listingText(listing));
        return;
      }
      if (o.out === undefined) throw new UsageError('usb-image needs --out FILE (or --list FILE)');
      let sizeMiB: number | undefined;
      if (o.size !== undefined) {
        sizeMiB = Number(o.size);
        if (!/^\d+$/.test(o.size)) throw new UsageError(`--size ${o.size}: expected a whole number of MiB`);
      }
      if (o.standalone) return usbErrors(() => runStandalone(o, sizeMiB, progressLine(), cmd));
      refuseStandaloneFlags(o);
      const urls = o.url ?? [];
      if (urls.length === 0) {
        const publicUrl = configFor(cmd).config.http.publicUrl;
        if (publicUrl) urls.push(publicUrl);
      }
      const progress = progressLine();
      const net = await usbErrors(async () =>
        parseNetbootOptions({
          urls,
          ...(o.static !== undefined ? { static: o.static } : {}),
          ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
          ...(o.dns !== undefined ? { dns: o.dns } : {}),
          ...(o.vlan !== undefined ? { vlan: o.vlan } : {}),
        }),
      );
      const r = await usbErrors(async () => {
        const ipxe = await ensureIpxe({ ...(o.ipxeEfi !== undefined ? { efi: o.ipxeEfi } : {}), ...(o.ipxeLkrn !== undefined ? { lkrn: o.ipxeLkrn } : {}) }, progress);
        return buildNetbootKey({ ...net, out: o.out!, ipxeEfi: ipxe.efi, ipxeLkrn: ipxe.lkrn, ...(sizeMiB !== undefined ? { sizeMiB } : {}), progress });
      });
      const how = net.static ? `static ${net.static.ip}/${net.static.prefix}` : 'DHCP';
      process.stdout.write(`wrote ${r.out} (${formatBytes(r.sizeBytes)}): netboot key, ${how}${net.vlan !== undefined ? ` on VLAN ${net.vlan}` : ''}, head node ${net.urls.join(' then ')}\n`);
      process.stdout.write(`check it with: fleetboot usb-image --list ${o.out}\n`);
    });
}
