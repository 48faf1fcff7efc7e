// How long an HTTP boot step took (the boot script, a config module): the time from the
// request's arrival to the end of its response, for the node's boot waterfall
// (docs/timeline.md). /os files measure their own sends (platforms/file-routes.ts), since the
// zero-copy path writes past the response.
import type { Response } from 'express';

export interface StepOutcome {
  /** Milliseconds from `begin` to the end of the response. */
  ms: number;
  /** False when the connection closed before the whole response was handed to the kernel. */
  complete: boolean;
}

/** Whole milliseconds since `t0` (a performance.now() value), as `tftp_get` records them. */
export function msSince(t0: number): number {
  return Math.round(performance.now() - t0);
}

/**
 * Calls `done` once, when `res` ends: at 'finish' (the last byte handed to the OS, Node's
 * http.ServerResponse) or at 'close' without it (the client went away first). `t0` is the
 * request's arrival on the performance.now() clock. A throw from `done` is not the response's
 * problem: it goes to `onError`.
 */
export function whenResponseEnds(res: Response, t0: number, done: (o: StepOutcome) => void, onError: (err: unknown) => void): void {
  let fired = false;
  const fire = (complete: boolean): void => {
    if (fired) return;
    fired = true;
    try {
      done({ ms: msSince(t0), complete });
    } catch (err) {
      onError(err);
    }
  };
  res.once('finish', () => fire(true));
  res.once('close', () => fire(res.writableFinished));
}
