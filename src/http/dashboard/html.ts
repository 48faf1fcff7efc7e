// Server-rendered HTML: a tagged template that escapes every interpolated value unless it is
// already Html, so a hostname or trait from a node can never become markup.

/** A fragment of markup that is already safe to emit. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

// HTML Living Standard §13.1.2.3 / §13.1.2.4: escaping &, <, >, " and ' is enough for
// text and for quoted attribute values.
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(v: unknown): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

/** Tagged template: interpolated values are HTML-escaped unless they are Html; arrays are joined; null/undefined/false render nothing. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new Html(out);
}

export function raw(s: string): Html {
  return new Html(s);
}
