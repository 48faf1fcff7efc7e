// What every BMC driver (ipmi, redfish) shares: one action at a time per BMC in this process,
// and the jittered backoff between retries. A BMC is a small, slow computer that often handles
// one management request at a time; two power actions racing on it leave the machine in
// whichever state came last.

/** Per-BMC queue: `fn` runs after every earlier action on the same `key` has ended. */
const bmcQueues = new Map<string, Promise<unknown>>();

export function underBmcLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = bmcQueues.get(key) ?? Promise.resolve();
  const run = before.catch(() => undefined).then(fn);
  const tail = run.catch(() => undefined);
  bmcQueues.set(key, tail);
  void tail.then(() => {
    if (bmcQueues.get(key) === tail) bmcQueues.delete(key);
  });
  return run;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The wait before retry `attempt` (1-based): `baseMs` doubled per attempt, ±50 % jitter from `random`. */
export function retryDelay(baseMs: number, attempt: number, random: () => number): number {
  return baseMs * 2 ** (attempt - 1) * (0.5 + random());
}
