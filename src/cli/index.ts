/**
 * argv → commands. Subcommands with an action (`ca init`, `rules check` …) are one cac command
 * with an <action> argument, because cac matches only the first word.
 */
import { cac } from 'cac';
import { approvalsCommand } from './approvals.js';
import { VERSION } from '../core/version.js';
import { auditCommand, type AuditOptions } from './audit.js';
import { caCommand } from './ca.js';
import { DEFAULT_LISTEN, UsageError } from './common.js';
import { envCommand } from './env.js';
import { handleCommand } from './handle.js';
import { runCommand } from './run.js';
import { secretCommand } from './secret.js';
import { rulesCommand } from './rules.js';
import { startCommand } from './start.js';

export async function runCli(argv: string[]): Promise<number> {
  const cli = cac('turret');
  let exit = 0;
  let action: Promise<unknown> | null = null;
  const run = (p: Promise<unknown>): void => {
    action = p;
  };

  cli
    .command('start', 'Run the proxy')
    .option('--rules <dir>', 'Rules directory (env TURRET_RULES)', { default: undefined })
    .option('--ca <dir>', 'CA and key directory (env TURRET_CA_DIR)')
    .option('--listen <host:port>', `Proxy listen address (env TURRET_LISTEN, default ${DEFAULT_LISTEN})`)
    .option('--audit <file>', 'Audit log file (env TURRET_AUDIT, default var/audit.jsonl)')
    .option('--log-level <level>', 'debug | info | warn | error')
    .option('--no-watch', 'Do not reload when rule files change (SIGHUP still reloads)')
    .option('--admin <host:port|off>', 'Admin listener for /metrics, /healthz, /readyz (env TURRET_ADMIN, default 127.0.0.1:8751)')
    .option('--admin-token-file <file>', 'Bearer token for /metrics and /readyz (or env TURRET_ADMIN_TOKEN)')
    .option('--production', 'Refuse to start with an insecure setup (or env TURRET_PRODUCTION=1)')
    .option('--drain-timeout <duration>', 'On SIGTERM, how long running requests and tunnels may finish (env TURRET_DRAIN_TIMEOUT, default 30s)')
    .option('--transparent <host:port>', 'Also accept connections nftables redirected from ports 80/443; agents by source address (env TURRET_TRANSPARENT)')
    .option('--trust-source-addresses', 'Production: allow source-address identities on a 0.0.0.0/:: listener (see docs/operations.md)')
    .option('--limit <name=value>', 'Resource limit, repeatable, e.g. --limit max_tunnels_per_agent=32 (env TURRET_LIMITS; see docs/operations.md)')
    .option('--workers <n>', 'Processes sharing the listen sockets: a number or "auto" (env TURRET_WORKERS, default 1; see docs/operations.md)')
    .action((o) => run(startCommand(o)));

  cli
    .command('ca <action>', 'Manage the local CA: init [--force] | export')
    .option('--ca <dir>', 'CA directory (env TURRET_CA_DIR, default ca)')
    .option('--dir <dir>', 'Alias of --ca')
    .option('--force', 'Replace an existing CA (init)')
    .action((a: string, o) => run(caCommand(a, { ...o, ca: o.ca ?? o.dir })));

  cli
    .command('rules <action> [...request]', 'Rule files: check | explain --agent A METHOD URL')
    .option('--rules <dir>', 'Rules directory (env TURRET_RULES, default rules)')
    .option('--agent <name>', 'explain: the agent making the request')
    .option('--content-type <type>', 'explain: the request content type (git and GraphQL catalog)')
    .option('--body <text>', 'explain: the request body (GraphQL, MCP/JSON-RPC, body schemas)')
    .option('--websocket', 'explain: the request is a WebSocket upgrade (same as METHOD websocket or a ws:// / wss:// URL)')
    .option('--tainted <labels>', 'explain: session labels to assume (comma-separated), as if an earlier request had added them')
    .option('--ca <dir>', 'Accepted for symmetry with the other commands; rules do not use the CA')
    .action((a: string, request: string[], o) => run(rulesCommand(a, request, o)));

  cli
    .command('approvals <action> [id]', 'Requests waiting for an operator (action: ask): list | allow ID [--for 1h] | deny ID [--message TEXT]')
    .option('--admin <host:port>', 'The admin listener (env TURRET_ADMIN, default 127.0.0.1:8751)')
    .option('--admin-token-file <file>', 'The admin token (or env TURRET_ADMIN_TOKEN)')
    .option('--for <duration>', 'allow: allow this agent and host for a while (adds a rule entry with until:), e.g. 1h')
    .option('--message <text>', 'deny: a message the agent sees')
    .option('--as <name>', 'Who decides, for the audit record (default: cli)')
    .option('--rules <dir>', 'Accepted for symmetry with the other commands; approvals do not read rules')
    .option('--ca <dir>', 'Accepted for symmetry with the other commands; approvals do not use the CA')
    .action((a: string, id: string | undefined, o) => run(approvalsCommand(a, id, o)));

  cli
    .command('handle <action> [target]', 'Credential handles: issue --agent A --secret S [--ttl 8h] | list [--all] | revoke ID|HANDLE|--agent A|--secret S')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .option('--agent <name>', 'Agent the handle is bound to')
    .option('--secret <name>', 'Secret the handle stands for')
    .option('--ttl <duration>', 'Lifetime, e.g. 30m, 8h, 2d', { default: '8h' })
    .option('--all', 'list: include expired and revoked handles')
    .action((a: string, target: string | undefined, o) => run(handleCommand(a, target, o)));

  cli
    .command('secret <action> [name]', 'Encrypted secret store: set NAME (value on stdin) | list | delete NAME')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .action((a: string, name: string | undefined, o) => run(secretCommand(a, name, o)));

  cli
    .command('run', 'Run a command as an agent, isolated (see docs/security.md): turret run --agent A [--ttl 1h] -- CMD ARGS')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .option('--agent <name>', 'Agent name')
    .option('--ttl <duration>', 'Lifetime of the handles issued for the run', { default: '1h' })
    .option('--proxy <host:port>', `Turret's proxy address (default TURRET_LISTEN or ${DEFAULT_LISTEN})`)
    .option('--user <name|uid>', 'As root: the unprivileged user the command runs as (default nobody)')
    .option('--allow-write <path>', 'Also writable inside the sandbox (repeatable; the working directory always is)')
    .option('--pass-env <NAME>', 'Also pass this variable of your environment (repeatable or comma-separated)')
    .option('--audit <file>', 'The audit log to hide from the command (env TURRET_AUDIT, default var/audit.jsonl)')
    .option('--no-sandbox', 'Run without isolation: the command is cooperative only (warns on every start)')
    .action((o) =>
      run(
        runCommand(o).then((code) => {
          exit = code;
        }),
      ),
    );

  cli
    .command('env', 'Print the shell exports an agent needs')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .option('--agent <name>', 'Agent name')
    .option('--ttl <duration>', 'Lifetime of the handles issued', { default: '8h' })
    .option('--proxy <host:port>', `Proxy address agents use (default TURRET_LISTEN or ${DEFAULT_LISTEN})`)
    .action((o) => run(envCommand(o)));

  cli
    .command('audit <action> [...files]', 'Audit log: verify FILE... | tail [--follow] [--agent A] [--decision D] FILE')
    .option('-f, --follow', 'tail: keep printing new records (across rotation) until interrupted')
    .option('--agent <name>', 'tail: only records of this agent')
    .option('--decision <outcome>', 'tail: only records with this outcome (denied, allowed, completed, failed, aborted)')
    .action((a: string, files: string[], o: AuditOptions) =>
      run(
        auditCommand(a, files, o).then((code) => {
          exit = code;
        }),
      ),
    );

  cli.help();
  cli.version(VERSION);
  const parsed = usage(() => cli.parse(argv, { run: false }));
  if (parsed.options.help || parsed.options.version) return 0;
  if (!cli.matchedCommand) {
    if (cli.args.length === 0) {
      cli.outputHelp();
      return 2;
    }
    throw new UsageError(`unknown command "${cli.args.join(' ').slice(0, 60)}"; see turret --help`);
  }
  usage(() => cli.runMatchedCommand());
  // `action` is set by the command's handler during runMatchedCommand (TypeScript cannot see that).
  const pending = action as Promise<unknown> | null;
  if (pending) await pending;
  return exit;
}

/** cac's own errors (missing argument, unknown option) are usage errors: exit 2 like ours. */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if ((e as Error)?.name === 'CACError') throw new UsageError((e as Error).message);
    throw e;
  }
}
