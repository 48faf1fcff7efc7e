// The express app: boot routes for nodes, the admin API for operators. `http/` only
// parses, calls and formats; decisions live in the modules it calls.
import express, { type Express } from 'express';
import type { BootTemplates } from '../boot/templates.ts';
import type { FleetbootConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';
import { adminApi } from './admin-api.ts';
import { requireBearer } from './auth.ts';
import { bootRoutes } from './boot-routes.ts';
import { errorHandler, sendError } from './errors.ts';

export interface HttpDeps {
  config: FleetbootConfig;
  store: Store;
  templates: BootTemplates;
  log: Logger;
  apiToken: string;
}

export function createApp(deps: HttpDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', 'strong');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use(bootRoutes(deps));
  app.use('/api/v1', express.json({ limit: '1mb' }), requireBearer(deps.apiToken), adminApi(deps.store));
  app.use((req, res) => sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}`));
  app.use(errorHandler(deps.log));
  return app;
}
