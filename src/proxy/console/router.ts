/**
 * The console and the approvals API on the admin listener (docs/console.md):
 *
 *   /console/login, /console/logout          session cookie from the admin token
 *   /console/ (+ /events SSE), /record/ID    live decisions and one record
 *   /console/approvals (+ /events, /list)    pending requests; POST allow / deny
 *   /console/agents (POST /revoke)           handles, limits, recent denials
 *   /console/secrets, /console/rules         state; explain form
 *   /api/approvals[/ID/allow|deny]           JSON with Authorization: Bearer (turret approvals)
 *
 * Every page needs a session, every POST its form token and a same-origin request.
 */
import type http from 'node:http';
import { explain } from '../../policy/decide.js';
import { parseRequest } from '../../policy/request.js';
import { parseTtl } from '../../secrets/handles.js';
import { ApprovalError, type Approval } from '../approvals.js';
import type { Runtime } from '../runtime.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { Sessions, tokenMatches, type Session } from './auth.js';
import { BodyError, readBody, readForm, redirect, sameOrigin, sendHtml, sendJson, SECURITY_HEADERS } from './http.js';
import { approvalsList, approvalsPage, decisionsPage, disabledPage, loginPage, recordPage } from './pages.js';
import { agentsPage, rulesPage, secretsPage } from './pages-state.js';
import { agentViews, handleViews, secretViews } from './state.js';

export interface ConsoleContext {
  token: string | null;
  sessions: Sessions;
  runtime: () => Runtime | null;
}

export function isConsolePath(p: string): boolean {
  return p === '/console' || p.startsWith('/console/') || p.startsWith('/api/');
}

/**
 * What a live feed may hold unsent for its client. A feed whose client stops reading (a laptop
 * asleep with the console open, a stuck tab) would otherwise keep every record since in memory;
 * past this it is closed, and the browser's EventSource reconnects when it reads again.
 */
export const SSE_MAX_BUFFERED = 1024 * 1024;

function sse(rt: Runtime, req: http.IncomingMessage, res: http.ServerResponse, subscribe: (send: (event: string, data: unknown) => void) => () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...SECURITY_HEADERS });
  res.write(': live\n\n');
  const stop = subscribe((event, data) => {
    if (res.destroyed) return;
    if (res.writableLength > SSE_MAX_BUFFERED) {
      rt.log.warn('console live feed closed: its client is not reading', { client: req.socket.remoteAddress, path: req.url, buffered: res.writableLength });
      stop();
      res.destroy();
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  });
  req.socket.setTimeout(0);
  res.on('close', stop);
}

function who(req: http.IncomingMessage, via: string): string {
  return `${via}@${req.socket.remoteAddress ?? '?'}`;
}

async function decideApproval(rt: Runtime, id: string, action: 'allow' | 'deny', by: string, opts: { for?: string | null; message?: string | null }): Promise<Approval> {
  if (action === 'deny') return rt.approvals.deny(id, by, opts.message ?? undefined);
  if (!opts.for) return rt.approvals.allow(id, by);
  const s = parseTtl(opts.for);
  if (s === null) throw new ApprovalError(`"${opts.for.slice(0, 20)}" is not a duration like 15m, 1h or 7d`, 400);
  return rt.approvals.allow(id, by, s * 1000);
}

async function api(c: ConsoleContext, rt: Runtime, req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
  const m = /^bearer[ \t]+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (c.token === null) return sendJson(res, 403, { error: 'the approvals API needs an admin token (--admin-token-file or TURRET_ADMIN_TOKEN)' });
  if (!m || !tokenMatches(m[1] ?? '', c.token)) return sendJson(res, 401, { error: 'admin token required: Authorization: Bearer <token>' });
  if (path === '/api/approvals' && req.method === 'GET') return sendJson(res, 200, { approvals: rt.approvals.list() });
  const act = /^\/api\/approvals\/([0-9a-f]{1,40})\/(allow|deny)$/.exec(path);
  if (!act || req.method !== 'POST')
    return sendJson(res, 404, { error: 'GET /api/approvals, POST /api/approvals/ID/allow {"for":"1h"}, POST /api/approvals/ID/deny {"message":"…"}' });
  let body: { for?: unknown; message?: unknown; by?: unknown } = {};
  const text = await readBody(req);
  if (text.trim()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return sendJson(res, 400, { error: 'the body must be JSON' });
    }
    // `null` parses too, and reading a field of it threw (a 500 for the client's mistake).
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return sendJson(res, 400, { error: 'the body must be a JSON object' });
    body = parsed as typeof body;
  }
  const by = `cli${typeof body.by === 'string' ? `:${body.by.replace(/[^\w.@-]/g, '').slice(0, 40)}` : ''}@${req.socket.remoteAddress ?? '?'}`;
  const a = await decideApproval(rt, act[1] ?? '', act[2] as 'allow' | 'deny', by, {
    for: typeof body.for === 'string' ? body.for : null,
    message: typeof body.message === 'string' ? body.message : null,
  });
  sendJson(res, 200, { approval: a });
}

export async function routeConsole(c: ConsoleContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://console.invalid');
  const path = url.pathname;
  if (path === '/console/assets/console.js' || path === '/console/assets/console.css') {
    const js = path.endsWith('.js');
    const body = js ? CONSOLE_JS : CONSOLE_CSS;
    res.writeHead(200, { 'content-type': js ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8', 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS });
    return void res.end(req.method === 'HEAD' ? undefined : body);
  }
  const rt = c.runtime();
  if (!rt) return sendHtml(res, 503, disabledPage().replace('The console is off', 'Turret is starting'));
  try {
    if (path.startsWith('/api/')) return await api(c, rt, req, res, path);
    if (c.token === null) return sendHtml(res, 403, disabledPage());
    if (req.method === 'POST' && !sameOrigin(req)) return sendHtml(res, 403, loginPage('refused: a console form must be sent from the console itself'));
    if (path === '/console/login') {
      if (req.method !== 'POST') return sendHtml(res, 200, loginPage(null));
      const form = await readForm(req);
      if (!tokenMatches(form.get('token') ?? '', c.token)) {
        rt.log.warn('console login failed', { client: req.socket.remoteAddress });
        return sendHtml(res, 401, loginPage('That is not the admin token.'));
      }
      return redirect(res, '/console/', { 'set-cookie': Sessions.cookie(c.sessions.create()) });
    }
    const s = c.sessions.of(req);
    if (!s) return req.method === 'GET' || req.method === 'HEAD' ? redirect(res, '/console/login') : sendHtml(res, 403, loginPage('Log in first.'));
    if (req.method === 'POST') return await post(c, rt, s, req, res, path);
    return await page(rt, s, req, res, path, url.searchParams);
  } catch (e) {
    if (e instanceof ApprovalError)
      return path.startsWith('/api/') ? sendJson(res, e.status, { error: e.message }) : sendHtml(res, e.status, `<p>${e.message.replace(/[<&>"']/g, '')}</p>`);
    if (e instanceof BodyError) return path.startsWith('/api/') ? sendJson(res, 400, { error: e.message }) : sendHtml(res, 400, loginPage(e.message));
    throw e;
  }
}

async function post(c: ConsoleContext, rt: Runtime, s: Session, req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
  const form = await readForm(req);
  if (!Sessions.csrfOk(s, form.get('_csrf'))) return sendHtml(res, 403, loginPage('refused: the form token is missing or stale; reload the page'));
  const by = who(req, 'console');
  switch (path) {
    case '/console/logout':
      c.sessions.end(s);
      return redirect(res, '/console/login', { 'set-cookie': Sessions.clearCookie() });
    case '/console/approvals/allow':
      await decideApproval(rt, form.get('id') ?? '', 'allow', by, { for: form.get('how') === 'for' ? (form.get('for') ?? '1h') : null });
      return redirect(res, '/console/approvals');
    case '/console/approvals/deny':
      await decideApproval(rt, form.get('id') ?? '', 'deny', by, { message: form.get('message') });
      return redirect(res, '/console/approvals');
    case '/console/agents/revoke': {
      const id = form.get('id');
      const agent = form.get('agent');
      const targets = (await handleViews(rt)).filter((h) => h.status === 'active' && (id ? h.id === id : h.agent === agent));
      for (const h of targets) await rt.shared.revoke(h.id, h.exp);
      rt.log.info('handles revoked from the console', { by, handle_ids: targets.map((h) => h.id) });
      return redirect(res, '/console/agents');
    }
    default:
      return sendHtml(res, 404, '<p>not found</p>');
  }
}

async function page(rt: Runtime, s: Session, req: http.IncomingMessage, res: http.ServerResponse, path: string, q: URLSearchParams): Promise<void> {
  if (path === '/console' || path === '/console/') return sendHtml(res, 200, decisionsPage(s.csrf, rt.feed.recent(200)));
  if (path === '/console/events') return sse(rt, req, res, (send) => rt.feed.subscribe((r) => send('record', r)));
  if (path.startsWith('/console/record/')) {
    let id: string;
    try {
      id = decodeURIComponent(path.slice('/console/record/'.length));
    } catch {
      return sendHtml(res, 400, '<p>not a record id</p>'); // a malformed %-escape threw: a 500 for the client's mistake
    }
    return sendHtml(res, 200, recordPage(s.csrf, rt.feed.find(id), id));
  }
  if (path === '/console/approvals') return sendHtml(res, 200, approvalsPage(rt.approvals.list(), s.csrf));
  if (path === '/console/approvals/list') return sendHtml(res, 200, approvalsList(rt.approvals.list(), s.csrf));
  if (path === '/console/approvals/events') {
    return sse(rt, req, res, (send) => {
      const l = (a: Approval): void => send('change', { id: a.id, state: a.state });
      rt.approvals.on('change', l);
      return () => rt.approvals.off('change', l);
    });
  }
  if (path === '/console/agents') return sendHtml(res, 200, agentsPage(s.csrf, await agentViews(rt)));
  if (path === '/console/secrets') return sendHtml(res, 200, secretsPage(s.csrf, secretViews(rt)));
  if (path === '/console/rules') return sendHtml(res, 200, rulesPage(s.csrf, rulesView(rt, q)));
  return sendHtml(res, 404, '<p>not found</p>');
}

function rulesView(rt: Runtime, q: URLSearchParams): Parameters<typeof rulesPage>[1] {
  const p = rt.state.policy;
  const form = { agent: q.get('agent') ?? [...p.agents.keys()][0] ?? '', method: (q.get('method') ?? 'GET').toUpperCase(), url: q.get('url') ?? '', body: q.get('body') ?? '' };
  let result: Parameters<typeof rulesPage>[1]['result'] = null;
  if (form.url) {
    try {
      if (!p.agents.has(form.agent)) throw new Error(`agent "${form.agent.slice(0, 40)}" is not defined`);
      const req = parseRequest(form.agent, form.method, form.url, { contentType: form.body ? 'application/json' : null, body: form.body || null });
      result = explain(p, req);
    } catch (e) {
      result = { problem: (e as Error).message };
    }
  }
  return { files: p.files, loadedAt: p.loadedAt.toISOString(), ruleCount: p.rules.length, lastReloadError: rt.lastReloadError, agents: [...p.agents.keys()], form, result };
}
