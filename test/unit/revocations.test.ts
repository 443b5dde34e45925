/**
 * RevocationList (secrets/revocations.ts): a revocation made by this process applies from the
 * moment revoke() is called (on_misuse: revoke must refuse the next request, decided before any
 * I/O completes), and a re-read of the file that does not hold it yet does not forget it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RevocationList } from '../../src/secrets/revocations.js';

const id = (): string => randomBytes(16).toString('hex');

describe('RevocationList', () => {
  it('revoke() applies synchronously, before its file write lands', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'turret-rev-'));
    const list = new RevocationList(dir);
    const a = id();
    assert.equal(list.has(a), false);
    const written = list.revoke(a, 2_000_000_000);
    assert.equal(list.has(a), true, 'revoked at once');
    // A re-read in between (another replica's append changed the file) does not drop it.
    const b = id();
    writeFileSync(list.file, `${b} 2000000000\n`);
    list.refresh(Date.now());
    assert.equal(list.has(a), true, 'kept across a re-read of a file that does not hold it yet');
    assert.equal(list.has(b), true);
    await written;
    assert.match(readFileSync(list.file, 'utf8'), new RegExp(`^${a} 2000000000$`, 'm'));
    assert.equal(new RevocationList(dir).has(a), true, 'another process reads it from the file');
  });
});
