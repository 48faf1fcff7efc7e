// A one-file cpio archive in the "newc" format the Linux kernel unpacks into its initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst): used to hand a UEFI Linux
// node its config modules, since iPXE under EFI passes initrds to the kernel unwrapped.

const field = (n: number): string => n.toString(16).padStart(8, '0');
const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);

function entry(name: string, data: Buffer, mode: number, ino: number, mtime: number): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  // c_magic, then ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check.
  const header = Buffer.from(
    `070701${[ino, mode, 0, 0, 1, mtime, data.length, 0, 0, 0, 0, nameBytes.length, 0].map(field).join('')}`,
    'ascii',
  );
  const head = Buffer.concat([header, nameBytes]);
  return Buffer.concat([head, pad4(head.length), data, pad4(data.length)]);
}

/** `data` as the file `/<name>` (mode 0644, root-owned) in a newc archive ending with its trailer. */
export function newcArchive(name: string, data: Buffer, mtimeSeconds = 0): Buffer {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`cpio member name ${JSON.stringify(name)} must be a plain file name`);
  return Buffer.concat([entry(name, data, 0o100644, 1, mtimeSeconds), entry('TRAILER!!!', Buffer.alloc(0), 0, 0, 0)]);
}
