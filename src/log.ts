// Logs are pino JSON lines; per-node lines carry `mac`, `node` and `event` fields so one
// node's story can be grepped out of the head node's log (docs/style.md).
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(level: LevelWithSilent = 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { svc: 'fleetboot' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets never reach a log line, whatever a caller passes.
    redact: { paths: ['token', 'authorization', 'headers.authorization', 'root_password', '*.root_password', 'rootPassword'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that writes nothing: the default for in-process servers in tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
