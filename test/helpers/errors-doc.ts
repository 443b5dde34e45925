/** docs/errors.md is generated from the error table; the unit test keeps them equal. */
import { writeFileSync } from 'node:fs';
import { ERROR_TABLE } from '../../src/core/errors.js';

export function renderErrorsDoc(): string {
  let out = `# Errors

Every refusal or failure carries a stable code in the \`X-Turret-Error\` response header, the
audit record (\`code\`) and the metrics (\`code\` label). Clients and tests should match on the code,
never on the message. Statuses below 500 are policy (retrying another way will not help); 5xx are
network failures between Turret and the upstream.

The body is short plain text for the agent: what was refused, the reason (which rule, which
address class, which secret name — never a value), the code, and whether it is policy or network.
It is scrubbed like every other output.

| code | status | meaning |
|---|---|---|
`;
  for (const [k, v] of Object.entries(ERROR_TABLE)) out += `| \`${k}\` | ${v.status} | ${v.what} |\n`;
  out += '\nThis table is generated from `src/core/errors.ts` (`npm run docs:errors`); `test/unit/errors.test.ts` fails when they differ.\n';
  return out;
}

if (process.argv[1]?.endsWith('errors-doc.ts')) writeFileSync(new URL('../../docs/errors.md', import.meta.url), renderErrorsDoc());
