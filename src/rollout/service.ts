// The head node's rollout loop: runs the orchestrator over the store's journal when the clock
// says so (a deadline, the end of a soak), right after a node checks in, and every few
// seconds besides, since `fleetboot rollout ...` in another process only writes the journal.
import type { Logger } from '../log.ts';
import type { Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import type { StepState } from './journal.ts';
import { RolloutOrchestrator, type RolloutPorts, type StepChange, type TickResult } from './orchestrator.ts';

export interface RolloutServiceOptions {
  /** How often the journal is read for operator changes (ms). */
  pollMs?: number;
  /** The world the orchestrator acts on: the head node's are storeRolloutPorts (rollout/ports.ts). */
  ports: RolloutPorts;
}

/** Step outcomes worth a line on the node's boot timeline; assignments and reboots have their own events. */
const timelineStates: ReadonlySet<StepState> = new Set(['verified', 'rolling_back', 'rolled_back', 'rollback_failed', 'reverted']);

const adminMac = (node: NodeRecord | undefined): Mac | null => node?.nics.find((n) => n.isAdmin)?.mac ?? node?.nics[0]?.mac ?? null;

export class RolloutService {
  readonly name = 'rollouts';
  readonly orchestrator: RolloutOrchestrator;
  private readonly pollMs: number;
  private poll: NodeJS.Timeout | null = null;
  private wake: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  /** A tick is queued and has not started: later requests join it instead of queueing more. */
  private queued = false;
  private stopped = true;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    options: RolloutServiceOptions,
  ) {
    this.pollMs = options.pollMs ?? 5000;
    this.orchestrator = new RolloutOrchestrator(store.rollouts, options.ports, { log, onStep: (c) => this.recordStep(c) });
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.poll = setInterval(() => this.kick(), this.pollMs);
    this.poll.unref();
    // A restart resumes at once: steps left in flight are judged or carried on now.
    this.kick();
  }

  /** Asks for a tick soon (a check-in arrived, an operator verb ran); ticks never overlap. */
  kick(): void {
    if (this.stopped || this.queued) return;
    this.queued = true;
    this.running = this.running.then(async () => {
      this.queued = false;
      if (this.stopped) return;
      await this.tickAndSchedule();
    });
  }

  /** One tick now (tests on a fake clock); the result says when the clock next matters. */
  tick(): Promise<TickResult> {
    return this.orchestrator.tick();
  }

  private async tickAndSchedule(): Promise<void> {
    let result: TickResult;
    try {
      result = await this.orchestrator.tick();
    } catch (err) {
      // A conflict or a store error: nothing was guessed; the next poll decides again from the journal.
      this.log.error({ err, event: 'rollout_tick_failed' }, 'rollout tick failed');
      return;
    }
    if (this.wake) clearTimeout(this.wake);
    this.wake = null;
    if (result.wakeAt === null || this.stopped) return;
    const delay = result.wakeAt - this.store.now();
    // Later than the next poll: the poll will see it.
    if (delay >= this.pollMs) return;
    this.wake = setTimeout(() => this.kick(), Math.max(0, delay) + 1);
    this.wake.unref();
  }

  private recordStep(c: StepChange): void {
    if (!timelineStates.has(c.to)) return;
    const node = this.store.nodes.get(c.nodeId);
    const mac = adminMac(node);
    this.store.events.record({ event: 'rollout', nodeId: c.nodeId, mac, detail: { rollout: c.rolloutId, step: c.to, from: c.from, ...(c.reason ? { reason: c.reason } : {}) } });
    const level = c.to === 'verified' || c.to === 'reverted' ? 'info' : 'warn';
    this.log[level]({ event: 'rollout_node', rollout: c.rolloutId, node: c.nodeId, mac, step: c.to, reason: c.reason }, `rollout ${c.rolloutId}: ${c.label} ${c.to}`);
  }

  /** Stops the timers and waits for a tick in progress (a power cycle) to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.poll) clearInterval(this.poll);
    if (this.wake) clearTimeout(this.wake);
    this.poll = null;
    this.wake = null;
    await this.running.catch(() => undefined);
  }
}
