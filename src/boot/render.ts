// Turns a boot plan into the iPXE script a node runs, through boot-templates/*.ipxe.hbs.
// Every URL is absolute (iPXE resolves relative URIs against the script's own URL, but a
// script fetched through a proxy or a redirect should not depend on that).
import type { BootTemplates } from './templates.ts';
import type { BootEntry, BootPlan } from './plan.ts';
import { rescueMenuTimeoutMs } from './plan.ts';

/** `/os/...` file URLs carry the MAC so the file route can put the fetch on the node's timeline. */
function platformUrl(baseUrl: string, path: string, mac: string): string {
  return `${baseUrl}${path}?mac=${mac}`;
}

function renderEntry(templates: BootTemplates, entry: BootEntry, baseUrl: string, mac: string): string {
  const kernelUrl = platformUrl(baseUrl, entry.kernelPath, mac);
  const moduleUrl = (path: string): string => (path.startsWith('/os/') ? platformUrl(baseUrl, path, mac) : `${baseUrl}${path}`);
  if (entry.os === 'smartos') {
    return templates
      .render('smartos.ipxe', {
        title: entry.title,
        kernelUrl,
        flags: entry.kernelFlags.length > 0 ? entry.kernelFlags.join(' ') : null,
        bootArgs: entry.bootArgs.map(([k, v]) => `${k}=${v}`).join(','),
        modules: entry.modules.map((m) => ({ url: moduleUrl(m.path), type: m.type, name: m.name })),
      })
      .trimEnd();
  }
  return templates
    .render('linux.ipxe', {
      title: entry.title,
      kernelUrl,
      cmdline: entry.cmdline,
      initrds: entry.initrds.map((i) => ({ url: platformUrl(baseUrl, i.path, mac), name: i.name })),
      // The template names each module twice: `initrd --name` for iPXE builds that take the
      // initramfs path from the image name, and `imgargs <name> <name>` for older ones
      // (Debian 12's), whose bzimage.c wraps an initrd in a cpio header named by its arguments.
      modules: entry.modules.map((m) => ({ url: moduleUrl(m.path), name: m.name })),
    })
    .trimEnd();
}

/** The whole per-node script: `exit` for machines that must not boot, else the entries (with a menu when there is a rescue entry). */
export function renderBootScript(templates: BootTemplates, plan: BootPlan, baseUrl: string): string {
  if (plan.action === 'exit') return templates.render('exit.ipxe', { reason: plan.reason });
  const first = plan.entries[0]!;
  const who = plan.nodeId === null ? `unregistered machine ${plan.mac}` : `node ${plan.nodeId} (${plan.mac})`;
  const summary = plan.mode === 'discovery' ? `${who} boots ${first.title} to register` : `${who} boots ${first.title}`;
  return templates.render('node.ipxe', {
    summary,
    menu: plan.entries.length > 1 ? { title: summary, timeoutMs: rescueMenuTimeoutMs } : null,
    entries: plan.entries.map((e) => ({ label: e.label, title: e.title, script: renderEntry(templates, e, baseUrl, plan.mac) })),
  });
}

export interface WaitScript {
  inFlight: number;
  limit: number;
  position: number;
  waiting: number;
  waitSeconds: number;
  /** The node.ipxe URL to ask again, as the node asked it. */
  retryUrl: string;
}

/** The script a node over the boot-slot limit gets (boot/boot-slots.ts): wait, then ask again. */
export function renderWaitScript(templates: BootTemplates, w: WaitScript): string {
  return templates.render('wait.ipxe', { ...w });
}
