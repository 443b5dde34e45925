/**
 * The console's one script and one stylesheet, served from /console/assets/ (the CSP allows
 * scripts and styles from this origin only, never inline). No build step: plain ES2020 that
 * every current browser runs. The script only ever sets textContent for record values, so a
 * hostile host or path is shown as text.
 */

export const CONSOLE_JS = `'use strict';
(function () {
  var COLUMNS = ['time', 'agent', 'outcome', 'code', 'method', 'host', 'path', 'rule'];
  var FILTERS = ['agent', 'outcome', 'code', 'host', 'rule'];
  var csrf = document.body.getAttribute('data-csrf');

  function filterValues() {
    var out = {};
    document.querySelectorAll('[data-filter]').forEach(function (i) { out[i.getAttribute('data-filter')] = i.value.trim().toLowerCase(); });
    return out;
  }
  function matches(row, f) {
    return FILTERS.every(function (k) { return !f[k] || (row.getAttribute('data-' + k) || '').toLowerCase().indexOf(f[k]) >= 0; });
  }
  function applyFilters() {
    var f = filterValues();
    document.querySelectorAll('#records tbody tr').forEach(function (r) { r.hidden = !matches(r, f); });
  }
  function rowFor(rec) {
    var tr = document.createElement('tr');
    tr.className = String(rec.outcome || '');
    FILTERS.forEach(function (k) { tr.setAttribute('data-' + k, rec[k] == null ? '' : String(rec[k])); });
    COLUMNS.forEach(function (k) {
      var td = document.createElement('td');
      var v = rec[k] == null ? '' : String(rec[k]);
      td.textContent = k === 'time' ? v.slice(11, 23) : v;
      tr.appendChild(td);
    });
    var last = document.createElement('td');
    if (rec.request_id) {
      var a = document.createElement('a');
      a.href = '/console/record/' + encodeURIComponent(rec.request_id);
      a.textContent = 'detail';
      last.appendChild(a);
    } else last.textContent = String(rec.event || '');
    tr.appendChild(last);
    return tr;
  }

  var table = document.querySelector('#records tbody');
  if (table) {
    document.querySelectorAll('[data-filter]').forEach(function (i) { i.addEventListener('input', applyFilters); });
    var es = new EventSource('/console/events');
    es.addEventListener('record', function (e) {
      var row = rowFor(JSON.parse(e.data));
      row.hidden = !matches(row, filterValues());
      table.insertBefore(row, table.firstChild);
      while (table.children.length > 1000) table.removeChild(table.lastChild);
    });
    es.addEventListener('open', function () { document.getElementById('live-status').textContent = 'Live: newest first; new records appear as they are written.'; });
  }

  var approvals = document.getElementById('approvals');
  if (approvals) {
    var ae = new EventSource('/console/approvals/events');
    ae.addEventListener('change', function () {
      fetch('/console/approvals/list', { credentials: 'same-origin' }).then(function (r) { return r.text(); }).then(function (html) {
        // Server-rendered with every value escaped; the CSP forbids inline script in any case.
        approvals.innerHTML = html;
      });
    });
  }
  void csrf;
})();
`;

export const CONSOLE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; background: #1d232a; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
nav { display: flex; gap: 1rem; align-items: center; flex: 1; }
nav a { color: #cfd8e3; text-decoration: none; } nav a.on { color: #fff; font-weight: 600; }
nav .logout { margin-left: auto; } main { padding: 1rem 1.2rem; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e3e7ec; vertical-align: top; word-break: break-all; }
tr.denied td { background: #fff4f2; } tr.failed td { background: #fff9e6; } tr.stale td { background: #fff4f2; }
.filters { display: flex; gap: .8rem; flex-wrap: wrap; } .filters input { width: 9rem; }
.hint { color: #5b6673; } .error { color: #a3261b; } .flag { color: #a3261b; }
ul.approvals { list-style: none; padding: 0; } ul.approvals li { background: #fff; border: 1px solid #e3e7ec; padding: .6rem; margin-bottom: .6rem; }
ul.approvals form { display: inline-block; margin-right: .6rem; } dl { display: grid; grid-template-columns: 8rem 1fr; margin: 0 0 .4rem; } dt { color: #5b6673; }
button { cursor: pointer; } .deny, .revoke, .revoke-all { color: #a3261b; } .allow-once, .allow-for { color: #1b6b33; }
pre { white-space: pre-wrap; margin: 0; } section.agent { background: #fff; padding: .4rem .8rem; margin-bottom: 1rem; border: 1px solid #e3e7ec; }
.login { display: flex; gap: .6rem; align-items: end; }
`;
