/**
 * The lead filter (src/scrub/lead.ts): a keyword hit whose bytes are not the pattern's
 * case-sensitive lead starts no regex pass. It must never change what is found: every corpus
 * example, in its own case and with its lead's case flipped, next to look-alikes in every case,
 * in one call and split across chunks, gives the same output with and without the filter.
 */
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_PATTERNS, GENERIC_PATTERNS, compilePatterns, type CompiledPattern } from '../../src/scrub/patterns.js';
import { boundaryStart, exactLead } from '../../src/scrub/lead.js';
import { compileScrubber, type Scrubber } from '../../src/scrub/scrubber.js';

const CORPORA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/corpora');
const corpus = (JSON.parse(fs.readFileSync(path.join(CORPORA, 'secret_patterns.json'), 'utf8')) as Array<{ rule_id: string; example_raw: unknown }>).flatMap((r) =>
  typeof r.example_raw === 'string' ? [{ rule_id: r.rule_id, example_raw: r.example_raw }] : [],
);

test('exactLead: the literal every match starts with, or nothing when the regex could start otherwise', () => {
  const cases: Array<[string, string, string | undefined]> = [
    ['\\b(EAA[MC](?i)[a-z0-9]{100,})(?:[\\x60\'"\\s;]|\\\\[nr]|$)', '', 'EAA'],
    ['ghp_[0-9a-zA-Z]{36}', '', 'ghp_'],
    ['FLWSECK_TEST-(?i)[a-h0-9]{12}', '', 'FLWSECK_TEST-'],
    ['(?:(?:xoxb))-[0-9]+', '', 'xoxb'],
    ['(EAA)+x', '', 'EAA'],
    ['EAB?c', '', 'EA'],
    ['ab*', '', 'a'],
    ['ab{0,2}', '', 'a'],
    ['x[|)]y', '', 'x'],
    ['a\\|b', '', 'a'],
    ['(ab)(?:c|d)', '', 'ab'],
    // No lead: case-insensitive, optional, or an alternation that offers another start.
    ['ghp_[0-9]{36}', 'i', undefined],
    ['(?i)ghp_[0-9]{36}', '', undefined],
    ['(EAA)?x', '', undefined],
    ['(EAA)*x', '', undefined],
    ['(EAA){0,1}x', '', undefined],
    ['EAA|foo', '', undefined],
    ['(EAA|x)y', '', undefined],
    ['((EAA)z|q)', '', undefined],
    ['(?:ab)*c', '', undefined],
    ['[A-Z]{4}', '', undefined],
    ['^abc', '', undefined],
    ['\\.abc', '', undefined],
    ['', '', undefined],
  ];
  for (const [src, flags, want] of cases) assert.equal(exactLead(src, flags), want, `${src} /${flags}`);
});

test('boundaryStart: every match opens with a keyword at a word boundary, or false', () => {
  const cases: Array<[string, string[], boolean]> = [
    ['\\b((?:hvs\\.[\\w-]{90,120}|s\\.(?i:[a-z0-9]{24})))(?:[\\x60\'"\\s;]|$)', ['hvs.', 's.'], true],
    ['\\b((?:A3T[A-Z0-9]|AKIA|ASIA)[A-Z2-7]{16})\\b', ['a3t', 'akia', 'asia'], true],
    ['\\b(?:ab|cd)e', ['ab', 'cd'], true],
    ['\\b(ab(c|d))', ['ab'], true],
    // False: no \b first, an alternative without a keyword start, optional, top-level alternation, a non-word start.
    ['s\\.x', ['s.'], false],
    ['\\b(s\\.x|q)', ['s.'], false],
    ['\\b(?:ab|c)e', ['ab', 'cd'], false],
    ['\\b(s\\.x)?', ['s.'], false],
    ['\\b(?:ab|cd)?e', ['ab', 'cd'], false],
    ['\\bs\\.x|\\by', ['s.'], false],
    ['\\b\\.ab', ['.ab'], false],
    ['\\b(?:(?:ab|cd)|ef)', ['ab', 'cd', 'ef'], false],
    ['\\b[a-z]+', ['ab'], false],
  ];
  for (const [src, kws, want] of cases) assert.equal(boundaryStart(src, kws), want, src);
});

/** The same patterns with both filters off. */
function withoutLeads(ps: CompiledPattern[]): CompiledPattern[] {
  return ps.map((p) => ({ ...p, lead: undefined, boundary: false }));
}

/** `s` with the ASCII case of the letters at the positions of `mask`'s set bits flipped. */
function flip(s: string, at: number, len: number): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? '';
    out += i >= at && i < at + len ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c;
  }
  return out;
}

async function streamed(s: Scrubber, input: Buffer, size: number): Promise<string> {
  const inc = s.createIncremental();
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) parts.push(inc.write(input.subarray(i, i + size)));
  parts.push(inc.end());
  return Buffer.concat(parts).toString('latin1');
}

test('the lead and boundary filters change nothing: every corpus example, its lead in every case, after word and non-word bytes, look-alikes, one call and chunked', async () => {
  const specs = [...BUILTIN_PATTERNS, ...GENERIC_PATTERNS];
  const filtered = compilePatterns(specs);
  const withLead = filtered.filter((p) => p.lead !== undefined);
  assert.ok(withLead.length > 50, `patterns with a lead: ${withLead.length}`);
  assert.ok(filtered.filter((p) => p.boundary).length > 40, 'patterns with a boundary start');
  const a = compileScrubber({ secrets: [], patterns: filtered });
  const b = compileScrubber({ secrets: [], patterns: withoutLeads(filtered) });
  const leadOf = new Map(filtered.map((p) => [p.id, p.lead?.toString('latin1')]));
  let compared = 0;
  for (const r of corpus) {
    const lead = leadOf.get(r.rule_id);
    const ex = r.example_raw;
    const at = lead === undefined ? -1 : ex.indexOf(lead);
    const variants = [ex, ex.toLowerCase(), ex.toUpperCase()];
    if (at >= 0 && lead) for (let k = 0; k < lead.length; k++) variants.push(flip(ex, at + k, 1));
    for (const v of variants) {
      // Look-alikes first (the lead in lower-case hex, as in git SHAs; keywords right after word
      // bytes), then the token at a boundary, after a word byte, after `_`, `.` and a UTF-8 byte.
      const body = Buffer.from(`sha ${'0'.repeat(8)}${(lead ?? 'eaac').toLowerCase()}9f see the docs. ${v}\n"${v}" x${v} _${v} .${v} \u00e9${v} ${v.toUpperCase()} tail`, 'utf8');
      const one = a.scrubBuffer(body).buf.toString('latin1');
      assert.equal(one, b.scrubBuffer(body).buf.toString('latin1'), `${r.rule_id}: ${v.slice(0, 40)}`);
      for (const size of [1, 7, 64]) assert.equal(await streamed(a, body, size), one, `${r.rule_id} in chunks of ${size}`);
      compared++;
    }
  }
  assert.ok(compared >= corpus.length);
});

test('hex full of a lead in lower case starts no pass, and the real token after it is still found', () => {
  const s = compileScrubber({ secrets: [], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const token = `EAAC${randomBytes(90)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, 110)}`;
  const hex = Array.from({ length: 400 }, (_, i) => `"sha":"${i.toString(16).padStart(8, '0')}eaac${'0f'.repeat(14)}"`).join(',');
  const out = s.scrubString(`${hex} ${token} ${hex}`);
  assert.ok(!out.text.includes(token), 'the token was redacted');
  assert.equal(out.redactions.filter((x) => x.id === 'facebook-page-access-token').length, 1);
  assert.equal(out.text.split('eaac').length - 1, 800, 'the hex is unchanged');
});

test('prose full of "s." (a word end) starts no vault-service-token window, and a real vault token is still found', () => {
  const s = compileScrubber({ secrets: [], patterns: compilePatterns(BUILTIN_PATTERNS) });
  const alnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const token = `s.${[...randomBytes(24)].map((b) => alnum[b % alnum.length]).join('')}`;
  const prose = 'See the docs. The settings. Read the notes. '.repeat(200);
  const out = s.scrubString(`${prose}token: ${token} and ${prose}`);
  assert.ok(!out.text.includes(token), 'the token was redacted');
  assert.equal(out.redactions.filter((x) => x.id === 'vault-service-token').length, 1);
  assert.equal(out.text.split('docs.').length - 1, 400, 'the prose is unchanged');
});
