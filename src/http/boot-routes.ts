// Routes a booting node reads before it has an identity: the generic stage-1 iPXE script.
import { Router, type Request } from 'express';
import type { BootTemplates } from '../boot/templates.ts';
import type { FleetbootConfig } from '../config/schema.ts';

/** The base URL a node should use to reach this head node. */
export function baseUrlFor(req: Request, config: FleetbootConfig): string {
  if (config.http.publicUrl) return config.http.publicUrl.replace(/\/+$/, '');
  // The node reached us at this Host, so it can reach us there again.
  return `${req.protocol}://${req.get('host') ?? `${config.http.listen}:${config.http.port}`}`;
}

export function bootRoutes(deps: { config: FleetbootConfig; templates: BootTemplates }): Router {
  const r = Router();
  r.get('/boot/stage1.ipxe', (req, res) => {
    const script = deps.templates.render('stage1.ipxe', { baseUrl: baseUrlFor(req, deps.config), retries: 5, retryDelay: 5 });
    res.type('text/plain').send(script);
  });
  return r;
}
