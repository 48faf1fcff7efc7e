// The USB key image builder (src/usb/disk.ts): an MBR + FAT32 image made without root or loop
// mounts, listed back through mtools, and its refusals: a missing Debian package, files that do
// not fit, an output that is a (mounted) device or backs a loop device, and no half-built key
// left at the output path when a build fails or is killed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { buildUsbImage, checkOutputPath, listUsbImage, syslinuxMbr, UsbImageError, type UsbImageListing } from '../src/usb/disk.ts';
import { prepareVm } from '../src/lab/vm.ts';
import { defaultIpxeLkrn, describeNetbootScript, netbootScript, parseNetbootOptions } from '../src/usb/netboot.ts';
import { repoRoot, runCli, tempDir } from './fixtures.ts';
import { requires } from './requires.ts';

const tools = { commands: ['mkfs.vfat', 'mcopy', 'mdir', 'syslinux', syslinuxMbr] };

test('a key with syslinux: one active FAT32 partition at LBA 2048, syslinux MBR code, files and scripts listed back', { skip: requires(tools) }, async (t) => {
  const dir = tempDir(t);
  const blob = Buffer.alloc(300_000, 7);
  writeFileSync(join(dir, 'blob.bin'), blob);
  const lines: string[] = [];
  const out = join(dir, 'key.img');
  const script = '#!ipxe\nchain http://10.1.2.3:8080/boot/stage1.ipxe\n';
  const r = await buildUsbImage({
    out,
    label: 'FBTEST',
    files: [
      { path: 'EFI/BOOT/BOOTX64.EFI', source: join(dir, 'blob.bin') },
      { path: 'fleetboot.ipxe', content: script },
      { path: 'deep/er/config.json', content: '{"a":1}' },
    ],
    syslinuxCfg: 'DEFAULT x\nLABEL x\n  KERNEL ipxe.lkrn\n',
    progress: (m) => lines.push(m),
  });
  assert.equal(r.sizeBytes, 64 * 1024 * 1024);
  assert.equal(statSync(out).size, r.sizeBytes);
  assert.ok(lines.some((l) => l.includes('EFI/BOOT/BOOTX64.EFI')), lines.join('\n'));

  const raw = readFileSync(out);
  const mbrCode = readFileSync(syslinuxMbr);
  assert.deepEqual(raw.subarray(0, mbrCode.length), mbrCode, 'syslinux mbr.bin is the boot code');
  assert.equal(raw.readUInt16LE(510), 0xaa55);

  const listing = await listUsbImage(out);
  assert.equal(listing.mbrBootCode, true);
  assert.deepEqual(listing.partitions, [{ index: 1, active: true, type: 0x0c, startSector: 2048, sectors: 64 * 2048 - 2048 }]);
  assert.equal(listing.label, 'FBTEST');
  const byPath = new Map(listing.files.map((f) => [f.path, f]));
  assert.equal(byPath.get('EFI/BOOT/BOOTX64.EFI')?.size, blob.length);
  assert.equal(byPath.get('fleetboot.ipxe')?.text, script);
  assert.equal(byPath.get('deep/er/config.json')?.text, '{"a":1}');
  assert.match(byPath.get('syslinux.cfg')?.text ?? '', /KERNEL ipxe\.lkrn/);
  assert.ok(byPath.has('ldlinux.sys'), 'syslinux installed its loader');
  // The bytes on the FAT are the file's own.
  const back = await execa('mcopy', ['-n', '-i', `${out}@@1048576`, '::/EFI/BOOT/BOOTX64.EFI', join(dir, 'back.bin')], { env: { MTOOLS_SKIP_CHECK: '1' } });
  assert.equal(back.exitCode, 0);
  assert.deepEqual(readFileSync(join(dir, 'back.bin')), blob);
});

test('files that do not fit in --size are refused before anything is written; a size below 64 MiB too', { skip: requires(tools) }, async (t) => {
  const dir = tempDir(t);
  const big = join(dir, 'big.bin');
  writeFileSync(big, Buffer.alloc(70 * 1024 * 1024, 1));
  const out = join(dir, 'key.img');
  await assert.rejects(buildUsbImage({ out, label: 'FB', files: [{ path: 'big.bin', source: big }], sizeMiB: 64 }), (err: Error) => {
    assert.ok(err instanceof UsbImageError);
    assert.match(err.message, /do not fit in --size 64 MiB: they need \d+ MiB/);
    return true;
  });
  assert.equal(existsSync(out), false);
  await assert.rejects(buildUsbImage({ out, label: 'FB', files: [{ path: 'a.txt', content: 'a' }], sizeMiB: 16 }), /at least 64 MiB/);
  // Without --size it grows to fit.
  const r = await buildUsbImage({ out, label: 'FB', files: [{ path: 'big.bin', source: big }] });
  assert.ok(r.sizeBytes > 70 * 1024 * 1024);
  assert.deepEqual((await listUsbImage(out)).files.find((f) => f.path === 'big.bin')?.size, 70 * 1024 * 1024);
});

test('bad input is named: a label, a path with a colon, a file given twice, a missing source', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'key.img');
  await assert.rejects(buildUsbImage({ out, label: 'lower case', files: [] }), /volume label 'lower case'/);
  await assert.rejects(buildUsbImage({ out, label: 'FB', files: [{ path: 'a:b', content: '' }] }), /file path 'a:b'/);
  await assert.rejects(buildUsbImage({ out, label: 'FB', files: [{ path: 'A.TXT', content: '' }, { path: 'a.txt', content: '' }] }), /a\.txt is given twice/);
  await assert.rejects(buildUsbImage({ out, label: 'FB', files: [{ path: 'k', source: join(dir, 'nope') }] }), /nope does not exist/);
  await assert.rejects(buildUsbImage({ out: join(dir, 'no', 'key.img'), label: 'FB', files: [] }), /folder .*no does not exist/);
  assert.deepEqual(readdirSync(dir), []);
});

test('a missing mtools is named with its Debian package', { skip: requires(tools) }, async () => {
  // mtools lives in /usr/bin, mkfs.vfat in /usr/sbin: with a PATH of nothing, only mcopy is missing.
  const code = `import { buildUsbImage } from './src/usb/disk.ts';
    try { await buildUsbImage({ out: '/nonexistent-dir-for-test/k.img', label: 'FB', files: [] }); } catch (e) { console.log(e.message); }`;
  const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot, env: { PATH: '/nonexistent' }, extendEnv: false, reject: false });
  // The folder check comes first; with an existing folder, the tool check.
  assert.match(r.stdout, /does not exist/);
  const code2 = code.replace('/nonexistent-dir-for-test/k.img', `${repoRoot}/.no-such-key-${process.pid}.img`);
  const r2 = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code2], { cwd: repoRoot, env: { PATH: '/nonexistent' }, extendEnv: false, reject: false });
  assert.match(r2.stdout, /mcopy is missing: install the Debian package mtools/);
  assert.equal(existsSync(`${repoRoot}/.no-such-key-${process.pid}.img`), false);
});

test('an output that is a block device, a mounted device or the backing file of a loop device is refused', { skip: requires({ root: 'mknod and losetup', commands: ['losetup', 'mknod'] }) }, async (t) => {
  const dir = tempDir(t);
  // A node for an unattached loop device (writing to it could only fail), and a mountinfo saying it is mounted.
  const dev = join(dir, 'loopdev');
  await execa('mknod', [dev, 'b', '7', '250']);
  assert.throws(() => checkOutputPath(dev), /is a block device/);
  const mountinfo = join(dir, 'mountinfo');
  writeFileSync(mountinfo, '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n99 27 7:250 / /media/stick rw,relatime - vfat /dev/loop250 rw\n');
  assert.throws(() => checkOutputPath(dev, mountinfo), /is a mounted device \(mounted on \/media\/stick\)/);
  await assert.rejects(buildUsbImage({ out: dev, label: 'FB', files: [] }), /is a block device/);

  // The machine's own root file system device, as /proc/self/mountinfo lists it.
  const root = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
  if (root && !root[2]!.startsWith('0:')) {
    const [major, minor] = root[2]!.split(':');
    const rootDev = join(dir, 'rootdev');
    await execa('mknod', [rootDev, 'b', major!, minor!]);
    assert.throws(() => checkOutputPath(rootDev), /is a mounted device \(mounted on \/[^)]*\)/);
  }

  const backing = join(dir, 'attached.img');
  writeFileSync(backing, Buffer.alloc(1024 * 1024));
  const loop = (await execa('losetup', ['-f', '--show', backing])).stdout.trim();
  t.after(() => execa('losetup', ['-d', loop], { reject: false }));
  await assert.rejects(buildUsbImage({ out: backing, label: 'FB', files: [] }), /backs a loop device/);
  assert.deepEqual(readFileSync(backing), Buffer.alloc(1024 * 1024), 'the attached file is untouched');
});

test('a failed or killed build leaves the previous key at the output path whole', { skip: requires(tools) }, async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'key.img');
  writeFileSync(out, 'the previous key');
  await assert.rejects(
    buildUsbImage({
      out,
      label: 'FB',
      files: [{ path: 'a.txt', content: 'a' }],
      syslinuxCfg: 'DEFAULT x\n',
      progress: (m) => {
        if (m.includes('syslinux')) throw new Error('interrupted at syslinux');
      },
    }),
    /interrupted at syslinux/,
  );
  assert.equal(readFileSync(out, 'utf8'), 'the previous key');
  assert.deepEqual(readdirSync(dir), ['key.img'], 'no partial file left behind');

  // SIGKILL while a large image is being filled: the old key stays, whole.
  const big = join(dir, 'big.bin');
  writeFileSync(big, Buffer.alloc(200 * 1024 * 1024, 3));
  mkdirSync(join(dir, 'kill'));
  const code = `import { buildUsbImage } from './src/usb/disk.ts';
    await buildUsbImage({ out: ${JSON.stringify(out)}, label: 'FB', files: [{ path: 'big.bin', source: ${JSON.stringify(big)} }], progress: (m) => console.log(m) });`;
  const child = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot, reject: false, buffer: false });
  t.after(() => { child.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('big.bin')) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    void child.then(() => reject(new Error('the build ended before it copied big.bin')));
  });
  await child;
  assert.equal(readFileSync(out, 'utf8'), 'the previous key');
});

test('a listing refuses a file that is not a key', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'x'), Buffer.alloc(4096));
  await assert.rejects(listUsbImage(join(dir, 'x')), /no MBR partition table/);
  await assert.rejects(listUsbImage(join(dir, 'missing')), /missing does not exist/);
});

// The netboot key (src/usb/netboot.ts, `fleetboot usb-image`).

test('netboot options: bad URLs, addresses, gateways and VLANs are named', () => {
  assert.throws(() => parseNetbootOptions({ urls: [] }), /no head-node URL/);
  assert.throws(() => parseNetbootOptions({ urls: ['ftp://x/'] }), /--url ftp:\/\/x\/: expected an http/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1/a b'] }), /--url http:\/\/10\.0\.0\.1\/a b/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], static: '10.0.0.5' }), /--static 10\.0\.0\.5: expected IP\/PREFIX/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], static: '10.0.0.0/24' }), /network address of 10\.0\.0\.0\/24/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], static: '10.0.0.5/24', gateway: '10.0.1.1' }), /--gateway 10\.0\.1\.1 is not in 10\.0\.0\.0\/24/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], gateway: '10.0.0.1' }), /go with --static/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://head.example:8080'], static: '10.0.0.5/24' }), /names a host: a --static key needs --dns/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], static: '10.0.0.5/24', dns: ['10.0.0.2', '10.0.0.3'] }), /--dns given 2 times: iPXE takes one resolver/);
  assert.throws(() => parseNetbootOptions({ urls: ['http://10.0.0.1'], vlan: '4095' }), /--vlan 4095: expected a VLAN ID from 1 to 4094/);
  assert.deepEqual(parseNetbootOptions({ urls: ['http://10.0.0.1:8080/'], static: '10.0.0.5/24', gateway: '10.0.0.1', dns: ['10.0.0.2'], vlan: '12' }), {
    urls: ['http://10.0.0.1:8080'],
    vlan: 12,
    static: { ip: '10.0.0.5', prefix: 24, gateway: '10.0.0.1', dns: ['10.0.0.2'] },
  });
});

test('the netboot script tries the URLs in order over DHCP, or sets the static address on the VLAN device', () => {
  const dhcp = netbootScript({ urls: ['http://a:1', 'http://b:2'] });
  assert.match(dhcp, /^#!ipxe\n/);
  assert.match(dhcp, /dhcp net0 \|\| goto nonet/);
  const chains = [...dhcp.matchAll(/^chain --autofree (\S+)\/boot\/stage1\.ipxe \|\|$/gm)].map((m) => m[1]);
  assert.deepEqual(chains, ['http://a:1', 'http://b:2']);
  assert.doesNotMatch(dhcp, /set net0\/ip/);
  const st = netbootScript(parseNetbootOptions({ urls: ['http://10.0.0.1'], static: '10.0.0.5/20', gateway: '10.0.0.1', dns: ['10.0.0.2'], vlan: '7' }));
  assert.match(st, /^vcreate --tag 7 net0/m);
  assert.match(st, /^set net0-7\/ip 10\.0\.0\.5$/m);
  assert.match(st, /^set net0-7\/netmask 255\.255\.240\.0$/m);
  assert.match(st, /^set net0-7\/gateway 10\.0\.0\.1$/m);
  assert.match(st, /^set dns 10\.0\.0\.2$/m);
  assert.match(st, /^ifopen net0-7 \|\| goto nonet$/m);
  assert.doesNotMatch(st, /^dhcp/m);
  assert.deepEqual(describeNetbootScript(st), { urls: ['http://10.0.0.1'], dhcp: false, device: 'net0-7', vlan: 7, ip: '10.0.0.5', netmask: '255.255.240.0', gateway: '10.0.0.1', dns: '10.0.0.2' });
});

const netbootTools = { commands: [...tools.commands, '/usr/lib/ipxe/ipxe.efi', 'apt-get', 'dpkg-deb'] };

test('usb-image writes a netboot key for BIOS and UEFI and --list shows its files, URLs and static address', { skip: requires(netbootTools), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['usb-image', '--out', 'key.img', '--url', 'http://10.9.0.1:8080', '--url', 'http://10.9.1.1:8080', '--static', '10.9.0.77/24', '--gateway', '10.9.0.1', '--dns', '10.9.0.1', '--vlan', '30'], dir, {}, 170_000);
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.match(String(r.stdout), /wrote .*key\.img \(64\.0 MiB\): netboot key, static 10\.9\.0\.77\/24 on VLAN 30, head node http:\/\/10\.9\.0\.1:8080 then http:\/\/10\.9\.1\.1:8080/);
  const list = await runCli(['usb-image', '--list', 'key.img', '--json'], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  const l = JSON.parse(String(list.stdout)) as UsbImageListing & { netboot: ReturnType<typeof describeNetbootScript> };
  const paths = l.files.map((f) => f.path);
  for (const p of ['EFI/BOOT/BOOTX64.EFI', 'ipxe.lkrn', 'autoexec.ipxe', 'syslinux.cfg', 'ldlinux.sys']) assert.ok(paths.includes(p), `${p} on the key: ${paths.join(', ')}`);
  assert.equal(l.files.find((f) => f.path === 'ipxe.lkrn')?.size, statSync(defaultIpxeLkrn).size, 'the ipxe.lkrn of the same iPXE as the EFI binary');
  assert.match(l.files.find((f) => f.path === 'syslinux.cfg')?.text ?? '', /KERNEL ipxe\.lkrn\n\s*INITRD autoexec\.ipxe/);
  assert.deepEqual(l.netboot, { urls: ['http://10.9.0.1:8080', 'http://10.9.1.1:8080'], dhcp: false, device: 'net0-30', vlan: 30, ip: '10.9.0.77', netmask: '255.255.255.0', gateway: '10.9.0.1', dns: '10.9.0.1' });
  // The UEFI binary reads autoexec.ipxe.
  const efi = await execa('mcopy', ['-n', '-i', `${join(dir, 'key.img')}@@1048576`, '::/EFI/BOOT/BOOTX64.EFI', join(dir, 'boot.efi')], { env: { MTOOLS_SKIP_CHECK: '1' } });
  assert.equal(efi.exitCode, 0);
  assert.ok(readFileSync(join(dir, 'boot.efi')).includes('autoexec.ipxe'));

  const text = await runCli(['usb-image', '--list', 'key.img'], dir);
  assert.match(String(text.stdout), /netboot: head node http:\/\/10\.9\.0\.1:8080, then http:\/\/10\.9\.1\.1:8080/);
  assert.match(String(text.stdout), /network: static 10\.9\.0\.77 netmask 255\.255\.255\.0 gateway 10\.9\.0\.1 dns 10\.9\.0\.1 on net0-30 \(VLAN 30\)/);
  assert.match(String(text.stdout), /1 +yes +0x0c +LBA 2048/);
});

test('usb-image takes the head node URL from http.publicUrl, and refuses what would not boot', { skip: requires(netbootTools), timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const none = await runCli(['usb-image', '--out', 'k.img'], dir);
  assert.equal(none.exitCode, 2);
  assert.match(String(none.stderr), /no head-node URL: pass --url .* or set http\.publicUrl/);
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { publicUrl: 'http://10.5.0.1:8080' } }));
  const ok = await runCli(['usb-image', '--out', 'k.img'], dir, {}, 170_000);
  assert.equal(ok.exitCode, 0, String(ok.stderr));
  assert.match(String(ok.stdout), /netboot key, DHCP, head node http:\/\/10\.5\.0\.1:8080/);
  // Bookworm's iPXE (2019) has no autoexec.ipxe: a key with it would never run its script under UEFI.
  const old = await runCli(['usb-image', '--out', 'old.img', '--ipxe-efi', '/usr/lib/ipxe/ipxe.efi'], dir);
  assert.equal(old.exitCode, 2);
  assert.match(String(old.stderr), /ipxe\.efi is an iPXE without autoexec\.ipxe support/);
  assert.equal(existsSync(join(dir, 'old.img')), false);
  const notLkrn = await runCli(['usb-image', '--out', 'old.img', '--ipxe-lkrn', join(dir, 'fleetboot.json')], dir);
  assert.equal(notLkrn.exitCode, 2);
  assert.match(String(notLkrn.stderr), /fleetboot\.json is not an ipxe\.lkrn \(no Linux boot header\)/);
  const small = await runCli(['usb-image', '--out', 'small.img', '--size', '8'], dir);
  assert.equal(small.exitCode, 2);
  assert.match(String(small.stderr), /--size 8 MiB: a key needs a whole number of at least 64 MiB/);
  const both = await runCli(['usb-image', '--out', 'k.img', '--list', 'k.img'], dir);
  assert.equal(both.exitCode, 2);
});

test('a lab VM with a USB key boots the key first, on qemu-xhci, and its NIC has neither ROM nor boot index', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'key.img'), '');
  const plan = { index: 3, firmware: 'bios' as const, chainload: false, memoryMiB: 512, diskMiB: 16, timeoutSeconds: 60 };
  const withKey = prepareVm('fbt-x', dir, { ...plan, usbKey: join(dir, 'key.img'), nicRom: false }, 1);
  const nic = withKey.argv.find((a) => a.startsWith('virtio-net-pci,'));
  assert.equal(nic, `virtio-net-pci,netdev=n0,mac=${withKey.mac},romfile=`);
  const i = withKey.argv.indexOf('qemu-xhci,id=usbc');
  assert.ok(i > 0 && withKey.argv[i - 1] === '-device', withKey.argv.join(' '));
  assert.ok(withKey.argv.includes(`if=none,id=usbkey,format=raw,file=${join(dir, 'key.img')},snapshot=on`));
  assert.ok(withKey.argv.includes('usb-storage,bus=usbc.0,drive=usbkey,bootindex=1'));
  assert.equal(withKey.usbKey, join(dir, 'key.img'));
  assert.equal(withKey.nicRom, false);
  const plain = prepareVm('fbt-x', dir, { ...plan, index: 4 }, 1);
  assert.equal(plain.argv.find((a) => a.startsWith('virtio-net-pci,')), `virtio-net-pci,netdev=n0,mac=${plain.mac},bootindex=1`);
  assert.ok(!plain.argv.some((a) => a.includes('usb')));
  assert.equal(plain.usbKey, null);
});
