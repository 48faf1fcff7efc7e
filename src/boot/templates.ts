// Everything a booting node reads is a handlebars template in boot-templates/ fed by plain
// data (the matchbox way): rendering never reaches into storage.
import Handlebars from 'handlebars';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

type Compiled = (data: object) => string;

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

/**
 * Loads and caches `<name>.hbs` from a templates folder; recompiles when the file changes.
 * A template the folder lacks comes from `fallbackDir` (the install's own boot-templates/), so
 * an operator's folder made before a release added a template keeps working.
 */
export class BootTemplates {
  private readonly cache = new Map<string, { file: string; mtimeMs: number; render: Compiled }>();
  private readonly hbs = Handlebars.create();

  constructor(
    readonly dir: string,
    private readonly fallbackDir?: string,
  ) {}

  render(name: string, data: object): string {
    if (!/^[\w.-]+$/.test(name)) throw new TemplateError(`bad template name ${JSON.stringify(name)}`);
    let file = join(this.dir, `${name}.hbs`);
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch {
      const fallback = this.fallbackDir ? join(this.fallbackDir, `${name}.hbs`) : null;
      try {
        if (!fallback) throw new Error('no fallback');
        mtimeMs = statSync(fallback).mtimeMs;
        file = fallback;
      } catch {
        throw new TemplateError(`template ${join(this.dir, `${name}.hbs`)} does not exist`);
      }
    }
    let hit = this.cache.get(name);
    if (!hit || hit.mtimeMs !== mtimeMs || hit.file !== file) {
      // iPXE scripts and JSON are not HTML: escaping would corrupt `&` in URLs.
      // strict: a field missing from the data is an error, not an empty string in a kernel line.
      const render = this.hbs.compile(readFileSync(file, 'utf8'), { noEscape: true, strict: true });
      hit = { file, mtimeMs, render };
      this.cache.set(name, hit);
    }
    return hit.render(data);
  }
}
