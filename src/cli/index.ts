/**
 * argv → commands. Subcommands with an action (`ca init`, `rules check` …) are one cac command
 * with an <action> argument, because cac matches only the first word.
 */
import { cac } from 'cac';
import { auditCommand } from './audit.js';
import { caCommand } from './ca.js';
import { DEFAULT_LISTEN, UsageError } from './common.js';
import { envCommand } from './env.js';
import { handleCommand } from './handle.js';
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
    .action((o) => run(startCommand(o)));

  cli
    .command('ca <action>', 'Manage the local CA: init [--force] | export')
    .option('--ca <dir>', 'CA directory (env TURRET_CA_DIR, default ca)')
    .option('--dir <dir>', 'Alias of --ca')
    .option('--force', 'Replace an existing CA (init)')
    .action((a: string, o) => run(caCommand(a, { ...o, ca: o.ca ?? o.dir })));

  cli
    .command('rules <action>', 'Check rule files: check')
    .option('--rules <dir>', 'Rules directory (env TURRET_RULES, default rules)')
    .action((a: string, o) => run(rulesCommand(a, o)));

  cli
    .command('handle <action>', 'Credential handles: issue --agent A --secret S [--ttl 8h]')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .option('--agent <name>', 'Agent the handle is bound to')
    .option('--secret <name>', 'Secret the handle stands for')
    .option('--ttl <duration>', 'Lifetime, e.g. 30m, 8h, 2d', { default: '8h' })
    .action((a: string, o) => run(handleCommand(a, o)));

  cli
    .command('env', 'Print the shell exports an agent needs')
    .option('--rules <dir>', 'Rules directory')
    .option('--ca <dir>', 'CA and key directory')
    .option('--agent <name>', 'Agent name')
    .option('--ttl <duration>', 'Lifetime of the handles issued', { default: '8h' })
    .option('--proxy <host:port>', `Proxy address agents use (default TURRET_LISTEN or ${DEFAULT_LISTEN})`)
    .action((o) => run(envCommand(o)));

  cli
    .command('audit <action> [...files]', 'Audit log: verify FILE...')
    .action((a: string, files: string[]) =>
      run(
        auditCommand(a, files).then((code) => {
          exit = code;
        }),
      ),
    );

  cli.help();
  cli.version('0.1.0');
  const parsed = cli.parse(argv, { run: false });
  if (parsed.options.help || parsed.options.version) return 0;
  if (!cli.matchedCommand) {
    if (cli.args.length === 0) {
      cli.outputHelp();
      return 2;
    }
    throw new UsageError(`unknown command "${cli.args.join(' ').slice(0, 60)}"; see turret --help`);
  }
  await cli.runMatchedCommand();
  if (action) await action;
  return exit;
}
