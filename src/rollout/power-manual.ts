// The `manual` power driver: for machines nothing can power remotely. Each action tells an
// operator what to do with the machine (which one: id, hostname, serial, rack, admin MAC, the
// spec's own instructions) and, where the caller can wait (the CLI), waits for the node to
// check in on its new boot. A rollout and the HTTP API do not wait here: the orchestrator
// already waits for the check-in, and an HTTP request cannot be held for half an hour.
import type { Logger } from '../log.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

/** Which machine the operator must go to. */
export interface ManualNode {
  id: number;
  hostname: string | null;
  serial: string | null;
  rack: string | null;
  adminMac: string | null;
}

export const manualNodeOf = (node: NodeRecord): ManualNode => ({
  id: node.id,
  hostname: node.hostname,
  serial: node.serial,
  rack: node.traits['rack'] ?? null,
  adminMac: node.nics.find((n) => n.isAdmin)?.mac ?? node.nics[0]?.mac ?? null,
});

/** Resolves once the node checked in after this was called; rejects with PowerError after `timeoutMs`. */
export type WaitForCheckin = (timeoutMs: number) => Promise<void>;

export interface ManualPowerOptions {
  /** Free text from the spec: where the machine is, which switch ("rack 3, top switch"). */
  instructions?: string;
  /** How long a waiting caller waits for the check-in (default 30 min). */
  checkinTimeoutMs?: number;
  node?: ManualNode;
  /** Where the operator reads the instructions (the CLI: stdout). */
  tell?: (text: string) => void;
  /** Given by callers that wait for the node (the CLI); without it an action returns at once. */
  waitForCheckin?: WaitForCheckin;
  log?: Logger;
}

const doWhat = { cycle: 'switch it off and on again (or press its reset button)', on: 'switch it on', off: 'switch it off' } as const;
export type ManualAction = keyof typeof doWhat;

/** The text an operator gets for `action` on `node`. */
export function manualInstructions(action: ManualAction, node: ManualNode | undefined, instructions: string | undefined): string {
  const name = node ? `node ${node.id}${node.hostname ? ` (${node.hostname})` : ''}` : 'the node';
  const facts = node
    ? [
      node.hostname ? `hostname ${node.hostname}` : null,
      node.serial ? `serial ${node.serial}` : null,
      node.rack ? `rack ${node.rack}` : null,
      node.adminMac ? `admin MAC ${node.adminMac}` : null,
    ].filter((f): f is string => f !== null)
    : [];
  return [
    `${name} has no remote power control: ${doWhat[action]} by hand.`,
    ...(facts.length ? [`  ${facts.join(', ')}`] : []),
    ...(instructions ? [`  instructions: ${instructions}`] : []),
  ].join('\n');
}

export class ManualPowerDriver implements PowerDriver {
  readonly kind = 'manual';
  readonly checkinTimeoutMs: number;

  constructor(private readonly o: ManualPowerOptions = {}) {
    this.checkinTimeoutMs = o.checkinTimeoutMs ?? 30 * 60_000;
  }

  /** The same driver, naming `node` in its instructions (a driver built from the spec alone knows no node). */
  forNode(node: ManualNode): ManualPowerDriver {
    return this.o.node ? this : new ManualPowerDriver({ ...this.o, node });
  }

  /** What this driver tells the operator for `action`. */
  instructionsFor(action: ManualAction): string {
    return manualInstructions(action, this.o.node, this.o.instructions);
  }

  /** Whether an action waits for the node's check-in (a caller gave a way to wait). */
  get waits(): boolean {
    return this.o.waitForCheckin !== undefined;
  }

  private async act(action: ManualAction): Promise<void> {
    const text = this.instructionsFor(action);
    this.o.log?.warn({ event: 'power_manual', node: this.o.node?.id, mac: this.o.node?.adminMac, action, instructions: this.o.instructions ?? null }, text.split('\n')[0]!);
    this.o.tell?.(text);
    if (action !== 'off' && this.o.waitForCheckin) await this.o.waitForCheckin(this.checkinTimeoutMs);
  }

  powerCycle(): Promise<void> {
    return this.act('cycle');
  }

  powerOn(): Promise<void> {
    return this.act('on');
  }

  powerOff(): Promise<void> {
    return this.act('off');
  }

  status(): Promise<PowerState> {
    return Promise.resolve('unknown');
  }
}

export interface CheckinWaitOptions {
  /** Registry reads this often (default 1000 ms). */
  pollMs?: number;
  /** Called about every `progressEveryMs` (default 30 s) while waiting, with the time waited. */
  progress?: (waitedMs: number, timeoutMs: number) => void;
  progressEveryMs?: number;
}

/**
 * A WaitForCheckin reading the registry: done when a `checkin` boot event of the node is newer
 * than every event it had when the wait began. The check-in may be accepted by another process
 * (serve) on the same database; SQLite's WAL shows its commits to this reader.
 */
export function registryCheckinWaiter(store: Store, nodeId: number, o: CheckinWaitOptions = {}): WaitForCheckin {
  return async (timeoutMs) => {
    const baseline = store.events.timeline(nodeId, 1).at(-1)?.id ?? 0;
    const started = Date.now();
    let lastProgress = started;
    for (;;) {
      if (store.events.timeline(nodeId, 50).some((e) => e.event === 'checkin' && e.id > baseline)) return;
      const now = Date.now();
      if (now - started >= timeoutMs) {
        throw new PowerError(`no check-in from node ${nodeId} within ${formatWait(timeoutMs)} (power.checkinTimeoutMs): check the machine's console`);
      }
      if (o.progress && now - lastProgress >= (o.progressEveryMs ?? 30_000)) {
        lastProgress = now;
        o.progress(now - started, timeoutMs);
      }
      await new Promise((r) => setTimeout(r, Math.min(o.pollMs ?? 1000, Math.max(1, timeoutMs - (now - started)))));
    }
  };
}

/** `1m 05s`-style durations for the operator. */
export function formatWait(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}
