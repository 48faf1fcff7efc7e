// JSON error bodies for every API failure: {"error": {"code", "message"}}.
import type { NextFunction, Request, Response } from 'express';

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** Last middleware: turns thrown HttpErrors (and body-parser faults) into JSON, anything else into a 500. */
export function errorHandler(log: { error: (o: object, m: string) => void }) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) return sendError(res, err.status, err.code, err.message);
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(res, status, 'bad_request', (err as Error).message);
    }
    log.error({ err }, 'unhandled error in HTTP route');
    sendError(res, 500, 'internal', 'internal error');
  };
}
