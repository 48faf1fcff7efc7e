// The worker thread's entry: Node 20 does not apply tsx's loader (from --import) to a
// worker's own entry module, so this plain module loads worker.ts through tsx's API.
import { tsImport } from 'tsx/esm/api';

await tsImport('./worker.ts', import.meta.url);
