/**
 * Console pages for the state of the fleet: agents (live handles, recent denials, limits),
 * secrets (source, status, age, fingerprint, hosts; past max_age flagged), rules (files, last
 * reload, explain form). Names, ids and fingerprints only: never a value or a handle.
 */
import type { AuditRecord } from '../../audit/record.js';
import type { Trace } from '../../policy/decide.js';
import type { Decision } from '../../policy/types.js';
import { esc } from './http.js';
import { layout, recordRow } from './pages.js';

export interface HandleView {
  id: string;
  agent: string;
  secret: string;
  expires: string;
  status: string;
}

export interface AgentView {
  name: string;
  where: string;
  handles: HandleView[];
  denials: AuditRecord[];
  limits: string[];
}

function hidden(csrf: string, fields: Record<string, string>): string {
  return [`<input type="hidden" name="_csrf" value="${esc(csrf)}">`, ...Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)].join(
    '',
  );
}

export function agentsPage(csrf: string, agents: AgentView[]): string {
  const section = (a: AgentView): string => {
    const handles = a.handles
      .map(
        (h) => `<tr data-handle="${esc(h.id)}"><td>${esc(h.id)}</td><td>${esc(h.secret)}</td><td>${esc(h.expires)}</td><td>${esc(h.status)}</td>
<td>${h.status === 'active' ? `<form method="post" action="/console/agents/revoke">${hidden(csrf, { id: h.id })}<button class="revoke">Revoke</button></form>` : ''}</td></tr>`,
      )
      .join('\n');
    const all = a.handles.some((h) => h.status === 'active')
      ? `<form method="post" action="/console/agents/revoke">${hidden(csrf, { agent: a.name })}<button class="revoke-all">Revoke all of ${esc(a.name)}'s handles</button></form>`
      : '';
    return `<section class="agent" data-agent="${esc(a.name)}"><h3>${esc(a.name)} <small>${esc(a.where)}</small></h3>
<h4>Handles</h4>${handles ? `<table><thead><tr><th>id</th><th>secret</th><th>expires</th><th>status</th><th></th></tr></thead><tbody>${handles}</tbody></table>${all}` : '<p class="none">No handles issued.</p>'}
<h4>Rate limits</h4>${a.limits.length ? `<ul>${a.limits.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>` : '<p class="none">None.</p>'}
<h4>Recent denials</h4>${a.denials.length ? `<table><tbody>${a.denials.map(recordRow).join('\n')}</tbody></table>` : '<p class="none">None in the recent records.</p>'}</section>`;
  };
  return layout('Agents', csrf, `<h2>Agents</h2>${agents.map(section).join('\n')}`, '/console/agents');
}

export interface SecretView {
  name: string;
  source: string;
  status: 'loaded' | 'missing';
  ageS: number | null;
  maxAgeS: number | null;
  fingerprint: string | null;
  hosts: string[];
  where: string;
}

function age(s: number | null): string {
  if (s === null) return '—';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function secretsPage(csrf: string, secrets: SecretView[]): string {
  const rows = secrets
    .map((s) => {
      const stale = s.maxAgeS !== null && s.ageS !== null && s.ageS > s.maxAgeS;
      return `<tr class="${stale ? 'stale' : s.status}"><td>${esc(s.name)}</td><td>${esc(s.source)}</td><td>${esc(s.status)}</td>
<td>${esc(age(s.ageS))}${stale ? ` <strong class="flag">older than max_age ${esc(age(s.maxAgeS))}</strong>` : ''}</td><td><code>${esc(s.fingerprint ?? '—')}</code></td><td>${esc(s.hosts.join(', '))}</td><td>${esc(s.where)}</td></tr>`;
    })
    .join('\n');
  return layout(
    'Secrets',
    csrf,
    `<h2>Secrets</h2><table><thead><tr><th>name</th><th>source</th><th>status</th><th>age</th><th>fingerprint</th><th>bound hosts</th><th>defined at</th></tr></thead><tbody>${rows}</tbody></table>
<p class="hint">Age is the time since the source last changed (file modification, store update, or since Turret loaded it). A fingerprint identifies a version of a value without revealing it.</p>`,
    '/console/secrets',
  );
}

export interface RulesView {
  files: string[];
  loadedAt: string;
  ruleCount: number;
  lastReloadError: { at: string; why: string; problems: string[] } | null;
  agents: string[];
  form: { agent: string; method: string; url: string; body: string };
  result: { decision: Decision; trace: Trace[] } | { problem: string } | null;
}

export function rulesPage(csrf: string, v: RulesView): string {
  const err = v.lastReloadError
    ? `<div class="error"><p>Last reload refused at ${esc(v.lastReloadError.at)} (${esc(v.lastReloadError.why)}); the previous rules keep serving:</p><pre>${esc(v.lastReloadError.problems.join('\n'))}</pre></div>`
    : '<p>The last reload succeeded.</p>';
  let result = '';
  if (v.result && 'problem' in v.result) result = `<p class="error">${esc(v.result.problem)}</p>`;
  else if (v.result) {
    const d = v.result.decision;
    result = `<div class="explain"><p class="${d.allow ? 'completed' : 'denied'}"><strong>${d.allow ? 'allow' : d.ask ? 'ask an operator' : `deny (${esc(d.code ?? 'policy_denied')})`}</strong></p>
<p>rule: ${esc(d.rule ? `${d.rule.id} (${d.rule.name})` : 'none')}</p><p>reason: ${esc(d.reason)}</p>
<ul>${v.result.trace.map((t) => `<li>${esc(t.rule.name)} (${esc(t.rule.id)}) [${esc(t.rule.action)}]: ${esc(t.verdict)}</li>`).join('')}</ul></div>`;
  }
  const opts = v.agents.map((a) => `<option${a === v.form.agent ? ' selected' : ''}>${esc(a)}</option>`).join('');
  return layout(
    'Rules',
    csrf,
    `<h2>Rules</h2><p>${v.ruleCount} rule(s) loaded at ${esc(v.loadedAt)} from:</p><ul>${v.files.map((f) => `<li><code>${esc(f)}</code></li>`).join('')}</ul>${err}
<h3>Explain</h3><form method="get" action="/console/rules" class="explain-form">
<label>agent <select name="agent">${opts}</select></label>
<label>method <input name="method" value="${esc(v.form.method || 'GET')}" size="8"></label>
<label>URL <input name="url" value="${esc(v.form.url)}" size="60" placeholder="https://api.example.com/path"></label>
<label>body <input name="body" value="${esc(v.form.body)}" size="40" placeholder="(optional) JSON body"></label>
<button>Explain</button></form>${result}
<p class="hint">The same decision and reason the proxy would give; nothing is sent.</p>`,
    '/console/rules',
  );
}
