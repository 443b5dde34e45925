/**
 * Server-rendered console pages: layout, login, live decisions, one record, approvals. Plain HTML,
 * every value through `esc`; the one script (/console/assets/console.js) adds live updates and
 * filters. Agents, secrets and rules are in pages-state.ts.
 */
import type { AuditRecord } from '../../audit/record.js';
import type { Approval } from '../approvals.js';
import { esc } from './http.js';

export const NAV = [
  ['/console/', 'Decisions'],
  ['/console/approvals', 'Approvals'],
  ['/console/agents', 'Agents'],
  ['/console/secrets', 'Secrets'],
  ['/console/rules', 'Rules'],
] as const;

export function layout(title: string, csrf: string | null, body: string, active = ''): string {
  const nav = csrf
    ? `<nav>${NAV.map(([href, name]) => `<a href="${href}"${href === active ? ' class="on"' : ''}>${name}</a>`).join('')}
<form method="post" action="/console/logout" class="logout"><input type="hidden" name="_csrf" value="${esc(csrf)}"><button>Log out</button></form></nav>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Turret</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console/assets/console.css"></head>
<body${csrf ? ` data-csrf="${esc(csrf)}"` : ''}><header><h1>Turret</h1>${nav}</header><main>
${body}
</main><script src="/console/assets/console.js"></script></body></html>
`;
}

export function loginPage(problem: string | null): string {
  return layout(
    'Log in',
    null,
    `<h2>Log in</h2>
${problem ? `<p class="error">${esc(problem)}</p>` : ''}
<form method="post" action="/console/login" class="login">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button>Log in</button></form>
<p class="hint">The admin token is the one <code>/metrics</code> needs (<code>--admin-token-file</code> or <code>TURRET_ADMIN_TOKEN</code>).</p>`,
  );
}

export function disabledPage(): string {
  return layout(
    'Console off',
    null,
    `<h2>The console is off</h2><p>It needs an admin token: start Turret with <code>--admin-token-file FILE</code> or <code>TURRET_ADMIN_TOKEN</code>.
Without one, anything that reaches this port (an agent on this machine too) could approve requests.</p>`,
  );
}

const COLUMNS = ['time', 'agent', 'outcome', 'code', 'method', 'host', 'path', 'rule'] as const;

/** One table row; the script builds the same shape for live records (data-* carry the filters). */
export function recordRow(r: AuditRecord): string {
  const cell = (k: (typeof COLUMNS)[number]): string => {
    const v = k === 'time' ? String(r.time).slice(11, 23) : (r[k] ?? '');
    return `<td>${esc(v)}</td>`;
  };
  const href = r.request_id ? `/console/record/${encodeURIComponent(r.request_id)}` : '';
  const data = COLUMNS.filter((k) => k !== 'time' && k !== 'method' && k !== 'path')
    .map((k) => ` data-${k}="${esc(r[k] ?? '')}"`)
    .join('');
  return `<tr class="${esc(r.outcome)}"${data}>${COLUMNS.map(cell).join('')}<td>${href ? `<a href="${href}">detail</a>` : esc(r.event)}</td></tr>`;
}

export function decisionsPage(csrf: string, records: AuditRecord[]): string {
  const filters = ['agent', 'outcome', 'code', 'host', 'rule'].map((f) => `<label>${f} <input name="${f}" data-filter="${f}" autocomplete="off"></label>`).join('');
  return layout(
    'Decisions',
    csrf,
    `<h2>Live decisions</h2>
<form class="filters" id="filters">${filters}</form>
<p class="hint" id="live-status">Newest first; new records appear as they are written.</p>
<table id="records"><thead><tr>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}<th></th></tr></thead>
<tbody>${records.map(recordRow).join('\n')}</tbody></table>`,
    '/console/',
  );
}

export function recordPage(csrf: string, r: AuditRecord | undefined, id: string): string {
  if (!r) return layout('Record', csrf, `<h2>Record</h2><p>No recent record has request id <code>${esc(id)}</code> (the console keeps the last 1,000; the audit log has all).</p>`);
  const rows = Object.entries(r)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${typeof v === 'object' && v !== null ? `<pre>${esc(JSON.stringify(v, null, 2))}</pre>` : esc(v)}</td></tr>`)
    .join('\n');
  return layout(
    'Record',
    csrf,
    `<h2>Request ${esc(r.request_id ?? '')}</h2>
<table class="detail">${rows}</table>
<p class="hint">The rule is given as file:line. Secret names and fingerprints identify which secret (and version) was injected; values and handles are never shown.</p>`,
  );
}

function approvalRow(a: Approval, csrf: string): string {
  const target = `${a.method} ${a.scheme}://${a.host}:${a.port}${a.path}`;
  const facts = `<dl><dt>agent</dt><dd>${esc(a.agent)}</dd><dt>request</dt><dd>${esc(target)}</dd><dt>rule</dt><dd>${esc(a.rule.name)} (${esc(a.rule.id)})</dd>
<dt>reason</dt><dd>${esc(a.reason)}</dd><dt>request id</dt><dd>${esc(a.requestId)}</dd><dt>waits until</dt><dd>${esc(new Date(a.deadline).toISOString())}</dd></dl>`;
  if (a.state !== 'pending') {
    const how = `${a.state.replace('_', ' ')}${a.by ? ` by ${a.by}` : ''}${a.until ? ` until ${new Date(a.until).toISOString()}` : ''}${a.message ? `: ${a.message}` : ''}`;
    return `<li class="done" data-id="${esc(a.id)}">${facts}<p class="state">${esc(how)}</p></li>`;
  }
  const hidden = `<input type="hidden" name="_csrf" value="${esc(csrf)}"><input type="hidden" name="id" value="${esc(a.id)}">`;
  return `<li class="pending" data-id="${esc(a.id)}">${facts}
<form method="post" action="/console/approvals/allow">${hidden}<button name="how" value="once" class="allow-once">Allow once</button></form>
<form method="post" action="/console/approvals/allow">${hidden}<select name="for"><option>15m</option><option selected>1h</option><option>8h</option><option>24h</option><option>7d</option></select><button name="how" value="for" class="allow-for">Allow for this agent and host</button></form>
<form method="post" action="/console/approvals/deny">${hidden}<input name="message" placeholder="message to the agent (optional)" maxlength="500"><button class="deny">Deny</button></form></li>`;
}

export function approvalsList(list: Approval[], csrf: string): string {
  const pending = list.filter((a) => a.state === 'pending');
  const done = list.filter((a) => a.state !== 'pending').slice(0, 50);
  return `<h3>Pending (${pending.length})</h3><ul class="approvals" id="pending">${pending.map((a) => approvalRow(a, csrf)).join('\n') || '<li class="none">Nothing waits for an operator.</li>'}</ul>
<h3>Decided</h3><ul class="approvals">${done.map((a) => approvalRow(a, csrf)).join('\n') || '<li class="none">None yet.</li>'}</ul>`;
}

export function approvalsPage(list: Approval[], csrf: string): string {
  return layout(
    'Approvals',
    csrf,
    `<h2>Approvals</h2><p class="hint">Requests an <code>action: ask</code> rule matched wait here. "Allow for" adds a rule entry with <code>until:</code> to <code>rules/approvals.yaml</code>.</p><div id="approvals">${approvalsList(list, csrf)}</div>`,
    '/console/approvals',
  );
}
