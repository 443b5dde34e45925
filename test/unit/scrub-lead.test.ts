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
import { BUILTIN_PATTERNS, GENERIC_PATTERNS, compilePatterns, newRE2, type CompiledPattern, type PatternSpec } from '../../src/scrub/patterns.js';
import { boundaryStart, exactLead } from '../../src/scrub/lead.js';
import { compileScrubber, type Scrubber } from '../../src/scrub/scrubber.js';
import { prng } from '../helpers/response-fuzz.js';

const CORPORA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/corpora');
const corpus = (JSON.parse(fs.readFileSync(path.join(CORPORA, 'secret_patterns.json'), 'utf8')) as Array<{ rule_id: string; example_raw: unknown }>).flatMap((r) =>
  typeof r.example_raw === 'string' ? [{ rule_id: r.rule_id, example_raw: r.example_raw }] : [],
);

test('exactLead: the literal every match starts with, or nothing when the regex could start otherwise', () => {
  // [regex, flags, keywords (default: the expected lead in lower case), expected lead]
  const cases: Array<[string, string, string[] | undefined, string | undefined]> = [
    ['\\b(EAA[MC](?i)[a-z0-9]{100,})(?:[\\x60\'"\\s;]|\\\\[nr]|$)', '', ['eaam', 'eaac'], 'EAA'],
    ['ghp_[0-9a-zA-Z]{36}', '', undefined, 'ghp_'],
    ['FLWSECK_TEST-(?i)[a-h0-9]{12}', '', undefined, 'FLWSECK_TEST-'],
    ['(?:(?:xoxb))-[0-9]+', '', undefined, 'xoxb'],
    ['(EAA)+x', '', undefined, 'EAA'],
    ['EAB?c', '', undefined, 'EA'],
    ['ab*', '', undefined, 'a'],
    ['ab{0,2}', '', undefined, 'a'],
    ['x[|)]y', '', undefined, 'x'],
    ['a\\|b', '', undefined, 'a'],
    ['(ab)(?:c|d)', '', undefined, 'ab'],
    ['\\b(v1\\.0-[a-f0-9]{24})', '', ['cloudflare', 'v1.0-'], 'v1'],
    ['_gitlab_session=[0-9a-z]{32}', '', ['_gitlab_session='], '_gitlab_session'],
    ['xox[os]-\\d+', '', ['xoxo', 'xoxs'], 'xox'],
    ['\\b(pat[[:alnum:]]{14}\\.[a-f0-9]{64})\\b', '', ['pat'], 'pat'],
    // No lead: case-insensitive (and, in `none` below, optional or an alternation offering another start).
    ['ghp_[0-9]{36}', 'i', undefined, undefined],
    // A match whose start is no keyword hit (the keyword only later in it), or no keywords at all.
    ['EAA(?i)[a-z]{0,8}eaax', '', ['eaax'], undefined],
    ['EAA[MC]x', '', ['eaam'], undefined],
    ['EAA[MC]?x', '', ['eaam', 'eaac'], undefined],
    ['xox[pe](?:-[0-9]{10,13}){3}', '', ['xoxp-', 'xoxe-'], undefined],
    ['ghp_[0-9]{36}', '', [], undefined],
    // An alternation the walker must see through \Q…\E and POSIX classes.
    ['EAA\\Q(\\E|xeaa', '', ['eaa'], undefined],
    ['EAA[[:alpha:](]|xeaa', '', ['eaa'], undefined],
    ['EAA[^[:alpha:](]|xeaa', '', ['eaa'], undefined],
    ['EAA[[:alpha:]]x|EAAy', '', ['eaa'], undefined],
  ];
  // Keywords: the lead in lower case, or x.
  const none = ['(?i)ghp_[0-9]{36}', '(EAA)?x', '(EAA)*x', '(EAA){0,1}x', 'EAA|foo', '(EAA|x)y', '((EAA)z|q)', '(?:ab)*c', '[A-Z]{4}', '^abc', '\\.abc', ''];
  for (const src of none) cases.push([src, '', undefined, undefined]);
  for (const [src, flags, kws, want] of cases) {
    const keywords = src === '' ? undefined : (kws ?? [want?.toLowerCase() ?? 'x']);
    assert.equal(exactLead(src, flags, keywords), want, `${src} /${flags}`);
  }
  assert.equal(exactLead('ghp_[0-9]{36}', '', undefined), undefined, 'no keywords: the filter never applies');
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
    // \Q…\E and POSIX classes hide an alternative from the walker.
    ['\\b(?:ab\\Q(\\E|x)ab', ['ab'], false],
    ['\\b(?:ab[[:alpha:](]|x)ab', ['ab'], false],
    ['\\b(?:ab[[:alpha:]]|cd)e', ['ab', 'cd'], true],
  ];
  for (const [src, kws, want] of cases) assert.equal(boundaryStart(src, kws, ''), want, src);
  // The i flag folds s and k to non-ASCII letters (U+017F, U+212A): not a word byte, no keyword hit.
  assert.equal(boundaryStart('\\bs\\.x', ['s.'], 'i'), false);
  assert.equal(boundaryStart('\\b(?:ak|ab)x', ['ak', 'ab'], 'i'), false);
  assert.equal(boundaryStart('\\b(?:ab|cd)x', ['ab', 'cd'], 'i'), true);
  assert.equal(boundaryStart('\\b(?:ab(?i)c|s\\.)x', ['ab', 's.'], ''), false);
  assert.equal(boundaryStart('\\b(?:ab(?i:c)|s\\.)x', ['ab', 's.'], ''), true);
  assert.equal(boundaryStart('\\b(?:s\\.(?i)c|ab)x', ['ab', 's.'], ''), true);
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
  assert.equal(withLead.length, 86, 'patterns with a lead (built-in and generic)');
  assert.equal(filtered.filter((p) => p.boundary).length, 50, 'patterns with a boundary start');
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
  assert.equal(compared, 1263, 'every corpus example, its case variants');
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

/** Filtered and unfiltered scrubbers over `specs` give the same output on `body`, in one call and in chunks; returns that output. */
async function sameBothWays(specs: readonly PatternSpec[], body: string, label: string): Promise<string> {
  const filtered = compilePatterns(specs);
  const a = compileScrubber({ secrets: [], patterns: filtered });
  const b = compileScrubber({ secrets: [], patterns: withoutLeads(filtered) });
  const buf = Buffer.from(body, 'utf8');
  const want = b.scrubBuffer(buf).buf.toString('latin1');
  assert.equal(a.scrubBuffer(buf).buf.toString('latin1'), want, `${label}: one call`);
  for (const size of [1, 3, 16]) assert.equal(await streamed(a, buf, size), want, `${label}: chunks of ${size}`);
  return want;
}

const fake = `fake_${randomBytes(8).toString('hex')}`; // 21 word bytes, lower-case hex
{
  const cases: Array<[PatternSpec, string, string]> = [
    // A keyword that begins with the lead also occurs later in a match whose start is no keyword hit.
    [{ id: 'late-keyword', regex: 'EAA(?i)[a-z0-9_]{0,40}eaax', keywords: ['eaax'] }, `x EAA${fake}eaax y`, 'exactLead: keyword inside the match'],
    // \Q…\E and [[:alpha:]…] hide an alternation from the walker.
    [{ id: 'quoted-paren', regex: 'EAA\\Q(\\E|x[a-z0-9_]{21}eaa', keywords: ['eaa'] }, `x x${fake}eaa y`, 'exactLead: \\Q(\\E'],
    [{ id: 'posix-paren', regex: 'EAA[[:alpha:](]|x[a-z0-9_]{21}eaa', keywords: ['eaa'] }, `x x${fake}eaa y`, 'exactLead: [[:alpha:](]'],
    [{ id: 'quoted-paren-b', regex: '\\b(?:ab\\Q(\\E|x)[a-z0-9_]{21}ab', keywords: ['ab'] }, `y x${fake}ab y`, 'boundaryStart: \\Q(\\E'],
    [{ id: 'posix-paren-b', regex: '\\b(?:ab[[:alpha:](]|x)[a-z0-9_]{21}ab', keywords: ['ab'] }, `y x${fake}ab y`, 'boundaryStart: [[:alpha:](]'],
    // With the i flag RE2 folds s to U+017F and k to U+212A (non-word bytes): no keyword hit at the start, and \b holds after a word byte.
    [{ id: 'long-s', regex: '\\bs\\.[a-z0-9_]{21}q', flags: 'i', keywords: ['s.', 'q'] }, `z\u017f.${fake}q y`, 'boundaryStart: i flag, ſ'],
    [{ id: 'kelvin', regex: '\\bak[a-z0-9_]{21}q', flags: 'i', keywords: ['ak', 'q'] }, `y a\u212a${fake}q y`, 'boundaryStart: i flag, K'],
    // A bare (?i) in one alternative makes the alternatives after it case-insensitive too (RE2).
    [{ id: 'inline-i', regex: '\\b(?:ab(?i)c|s\\.)[a-z0-9_]{21}q', keywords: ['ab', 's.', 'q'] }, `z\u017f.${fake}q y`, 'boundaryStart: (?i) in an earlier alternative'],
  ];
  for (const [spec, body, label] of cases) {
    test(`attack review, ${label}: the same output as without the filters, and the secret is gone`, async () => {
      const out = await sameBothWays([spec], body, label);
      assert.ok(!out.includes(fake), `${label}: the secret is gone`);
    });
  }
}

/** The match RE2 finds from every start of buf (its bytes), as the windows see them. */
function matchesFromEveryStart(source: string, flags: string, buf: Buffer): Buffer[] {
  const re = newRE2(source, `${flags}g`);
  const out: Buffer[] = [];
  for (let s = 0; s < buf.length; s++) {
    re.lastIndex = s;
    const m = re.exec(buf);
    if (!m) break;
    if (m.index === s) out.push(m[0] as unknown as Buffer);
  }
  return out;
}

/** A regex and a sampler of strings it (mostly) matches. */
interface Gen {
  src: string;
  sample: () => string;
}

test('random regexes of the walker-hostile constructs, random keywords, inputs seeded with their matches: the filters change nothing', async () => {
  const r = prng(0x1ead);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const flipCase = (s: string): string => [...s].map((c) => (r() < 0.3 ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)).join('');
  const LETTERS = [...'aAbBeEsSkKxX_-09'];
  const lit = (n: number): string => Array.from({ length: n }, () => pick(LETTERS)).join('');
  const fixed = (src: string, s: string): Gen => ({ src, sample: () => s });
  const atom = (depth: number): Gen => {
    const k = r();
    if (k < 0.35) {
      const s = lit(1 + Math.floor(r() * 3));
      return { src: s, sample: () => (r() < 0.2 ? flipCase(s) : s) };
    }
    if (k < 0.45) return pick([fixed('\\.', '.'), fixed('\\-', '-'), fixed('\\x41', 'A'), fixed('\\Q(\\E', '('), fixed('\\Q|\\E', '|'), fixed('\\Q)\\E', ')'), fixed('\\_', '_')]);
    if (k < 0.6) {
      const [src, chars] = pick([
        ['[ab]', 'ab'],
        ['[]a]', ']a'],
        ['[^]a]', 'bx.'],
        ['[[:alpha:]]', 'aZ'],
        ['[[:alpha:](]', 'a('],
        ['[a\\-b]', 'a-b'],
        ['[\\]|]', ']|'],
        ['[(|]', '(|'],
        ['[A-Z]', 'AKS'],
        ['[a-z0-9]', 'ks9'],
      ] as const);
      return { src, sample: () => pick([...chars]) };
    }
    if (k < 0.72) return fixed(pick(['\\b', '\\B', '^', '$', '(?i)', '(?-i)', '(?s)', '']), '');
    if (depth > 2) return fixed('a', 'a');
    const alts = Array.from({ length: 1 + Math.floor(r() * 3) }, () => (r() < 0.1 ? fixed('', '') : seq(depth + 1)));
    return { src: `${pick(['(', '(?:', '(?i:', '(?P<g>'])}${alts.map((a) => a.src).join('|')})`, sample: () => pick(alts).sample() };
  };
  const quantified = (g: Gen): Gen => {
    if (r() < 0.75 || g.src === '' || /^(\\b|\\B|\^|\$|\(\?[is-]+\))$/.test(g.src)) return g;
    const [q, lo, hi] = pick([
      ['?', 0, 1],
      ['*', 0, 3],
      ['+', 1, 3],
      ['{2}', 2, 2],
      ['{0,2}', 0, 2],
      ['{1,3}', 1, 3],
      ['??', 0, 1],
    ] as const);
    const single = /^([^\\[(]|\\[.\-_]|\\x41)$/.test(g.src) || g.src.startsWith('[') || (g.src.startsWith('(') && g.src.endsWith(')'));
    return { src: single ? `${g.src}${q}` : `(?:${g.src})${q}`, sample: () => Array.from({ length: lo + Math.floor(r() * (hi - lo + 1)) }, () => g.sample()).join('') };
  };
  const seq = (depth: number): Gen => {
    const parts = Array.from({ length: 1 + Math.floor(r() * 3) }, () => quantified(atom(depth)));
    return { src: parts.map((p) => p.src).join(''), sample: () => parts.map((p) => p.sample()).join('') };
  };
  const top = (): Gen => {
    const pre = pick(['', '\\b', '\\b', '(', '\\b(?:', '\\b(']);
    let body = seq(0);
    if (r() < 0.5) {
      // A literal lead, then anything, sometimes the lead again in another case (a keyword inside the match).
      const lead = lit(2 + Math.floor(r() * 3));
      const again = r() < 0.5 ? flipCase(lead) : '';
      const rest = body;
      body = { src: `${lead}${rest.src}${again}`, sample: () => `${lead}${rest.sample()}${again}` };
    }
    const alt = r() < 0.2 ? seq(0) : undefined;
    return {
      src: `${pre}${body.src}${pre.includes('(') ? ')' : ''}${alt ? `|${alt.src}` : ''}`,
      sample: () => (alt && r() < 0.5 ? alt.sample() : body.sample()),
    };
  };
  const FILL = ['a', 'A', 'b', 'e', 'E', 's', 'S', 'k', 'x', '_', '-', '.', ' ', '(', '|', '\u017f', '\u212a', '\u00e9', '9'];
  const asciiLower = (b: Buffer): string => b.toString('latin1').replace(/[A-Z]/g, (c) => c.toLowerCase());
  let leads = 0;
  let boundaries = 0;
  let compared = 0;
  for (let it = 0; it < 1200; it++) {
    const g = top();
    const flags = pick(['', '', 'i', 'm', 's', 'im']);
    const samples = Array.from({ length: 6 }, () => g.sample()).filter((s) => s.length > 0);
    if (samples.length === 0) continue;
    const keywords = [
      ...new Set(
        Array.from({ length: 1 + Math.floor(r() * 2) }, () => {
          const s = pick(samples);
          const at = r() < 0.4 ? 0 : Math.floor(r() * s.length);
          return s.slice(at, at + 1 + Math.floor(r() * 5));
        }),
      ),
    ];
    let ps: CompiledPattern[];
    try {
      ps = compilePatterns([{ id: 'g', regex: g.src, flags, keywords }]);
    } catch {
      continue; // RE2 rejects it, or it matches the empty string
    }
    const p = ps[0] as CompiledPattern;
    if (p.lead === undefined && !p.boundary) continue;
    if (p.lead !== undefined) leads++;
    if (p.boundary) boundaries++;
    const a = compileScrubber({ secrets: [], patterns: ps });
    const b = compileScrubber({ secrets: [], patterns: withoutLeads(ps) });
    for (let t = 0; t < 4; t++) {
      let body = '';
      for (let n = 0; n < 6; n++) {
        body +=
          r() < 0.5
            ? [...pick(samples)].map((c) => (r() < 0.1 ? flipCase(c) : c === 's' && r() < 0.1 ? '\u017f' : (c === 'k' || c === 'K') && r() < 0.1 ? '\u212a' : c)).join('')
            : Array.from({ length: Math.floor(r() * 5) }, () => pick(FILL)).join('');
      }
      const buf = Buffer.from(body, 'utf8');
      // Inputs inside the contracts the filters rely on: every match holds a keyword (PatternSpec),
      // and no match is longer than the pattern's bound (regex-length.ts counts a case-insensitive k
      // or s as one byte, but RE2 also matches U+212A / U+017F: a gap of the windows, not the filters').
      const matches = matchesFromEveryStart(g.src, flags, buf);
      if (matches.some((m) => m.length > p.maxLength || !keywords.some((k) => asciiLower(m).includes(asciiLower(Buffer.from(k, 'utf8')))))) continue;
      const want = b.scrubBuffer(buf).buf.toString('latin1');
      const label = `${JSON.stringify(g.src)} /${flags} keywords ${JSON.stringify(keywords)} on ${JSON.stringify(body)}`;
      assert.equal(a.scrubBuffer(buf).buf.toString('latin1'), want, label);
      assert.equal(await streamed(a, buf, 1 + Math.floor(r() * 7)), want, `${label}, chunked`);
      compared++;
    }
  }
  // Pinned for the seed: what the generator exercised (a change that drops filters shows here).
  assert.deepEqual({ leads, boundaries, compared }, { leads: 182, boundaries: 129, compared: 811 });
});
