/**
 * Small HTTP helpers for the console: escaping, the security headers every page carries, bounded
 * form and JSON bodies, cookies. Every value an agent or upstream could have influenced (hosts,
 * paths, reasons, names) reaches HTML only through `esc`.
 */
import type http from 'node:http';

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"'`=/]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Strict CSP: no inline script or style, nothing from elsewhere; frames, plugins and <base> off.
 * The script and stylesheet are served from /console/assets/ by this listener.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form posts,
  // which the same-origin check must refuse.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export function sendHtml(res: http.ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS });
  res.end(body);
}

export function redirect(res: http.ServerResponse, to: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { location: to, 'content-length': 0, ...SECURITY_HEADERS, ...extra });
  res.end();
}

const MAX_BODY = 16 * 1024;

export class BodyError extends Error {}

/** The request body as text, at most 16 KiB (a form or a small JSON document). */
export async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new BodyError(`body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const ct = String(req.headers['content-type'] ?? '');
  if (!ct.startsWith('application/x-www-form-urlencoded')) throw new BodyError('expected a form (application/x-www-form-urlencoded)');
  return new URLSearchParams(await readBody(req));
}

export function cookies(req: http.IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

/**
 * A state-changing request must come from this console: when the browser says where it came
 * from (Origin, or Sec-Fetch-Site), that must be this origin. Together with the SameSite=Strict
 * cookie and the per-session form token this is the CSRF defence.
 */
export function sameOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return origin === `http://${req.headers.host ?? ''}`;
}
