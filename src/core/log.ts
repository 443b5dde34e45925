/**
 * JSON-lines logger for Turret's own logs (stderr by default). Every line passes through a
 * scrub function installed by the runtime, so a secret that reaches a log call (an upstream error
 * message quoting a header, say) is redacted before it is written.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  setScrub(fn: (line: string) => string): void;
}

export function createLogger(o: { level?: Level; write?: (line: string) => void } = {}): Logger {
  const min = ORDER[o.level ?? 'info'];
  const write = o.write ?? ((line: string) => process.stderr.write(line));
  let scrub: (line: string) => string = (l) => l;
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg, note: 'fields not serialisable' });
    }
    write(`${scrubbed(line, level)}\n`);
  };
  /** The line scrubbed; when the scrubber fails (a WebAssembly trap, a bug), a fixed line instead:
   * nothing unscanned is written, and a log call never throws (they sit in error handlers and
   * catch blocks, where a throw would skip the cleanup or end the process). */
  const scrubbed = (line: string, level: Level): string => {
    try {
      return scrub(line);
    } catch {
      return JSON.stringify({ time: new Date().toISOString(), level, msg: 'log line withheld: the scrubber failed on it' });
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    setScrub: (fn) => {
      scrub = fn;
    },
  };
}
