#!/usr/bin/env node
// fleetboot runs its TypeScript sources through tsx's loader: no build step, one source of truth.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
