// GET /ipxe/<file>: the iPXE binaries (config.ipxeDir) over HTTP, for UEFI HTTP boot
// clients, which get a URL instead of a TFTP file name in the DHCP reply (dhcp/boot.ts).
import { Router } from 'express';
import type { FleetbootConfig } from '../config/schema.ts';
import { sendError } from './errors.ts';

export function ipxeRoutes(deps: { config: FleetbootConfig }): Router {
  const r = Router();
  r.get('/ipxe/:file', (req, res, next) => {
    const file = req.params.file;
    // One plain file name: no folders, no dot files.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(file)) {
      sendError(res, 400, 'bad_file', `"${file}" is not an iPXE binary name`);
      return;
    }
    res.sendFile(file, { root: deps.config.ipxeDir, dotfiles: 'deny' }, (err) => {
      if (!err) return;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as { status?: number }).status === 404) {
        if (!res.headersSent) sendError(res, 404, 'not_found', `no ${file} in ${deps.config.ipxeDir}`);
        return;
      }
      next(err);
    });
  });
  return r;
}
