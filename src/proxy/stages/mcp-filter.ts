/**
 * The answer to an MCP `tools/list` allowed by a rule with `mcp.tools` is filtered to the tools
 * that rule lets the agent call (docs/rules.md, capabilities), so the model is not offered tools
 * it would only be refused. Streamable HTTP answers either as JSON or as server-sent events; both
 * are handled. Only messages whose id is one of the tools/list requests' ids are touched.
 *
 * Bounded: a JSON answer, or one SSE event, larger than MAX_MESSAGE_BYTES fails the response
 * (an answer that cannot be filtered is not passed on unfiltered).
 */
import { Transform } from 'node:stream';

export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface ToolFilter {
  ids: unknown[];
  tools: ReadonlySet<string>;
}

function filterMessage(msg: unknown, f: ToolFilter): unknown {
  if (Array.isArray(msg)) return msg.map((m) => filterMessage(m, f));
  const o = msg as { id?: unknown; result?: { tools?: unknown } } | null;
  if (!o || typeof o !== 'object' || !f.ids.includes(o.id) || !Array.isArray(o.result?.tools)) return msg;
  const tools = (o.result.tools as Array<{ name?: unknown }>).filter((t) => typeof t?.name === 'string' && f.tools.has(t.name));
  return { ...o, result: { ...o.result, tools } };
}

/** Rewrite one JSON text; text that is not JSON passes unchanged (it holds no tool list). */
export function filterJsonText(text: string, f: ToolFilter): string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return text;
  }
  return JSON.stringify(filterMessage(v, f));
}

function tooLarge(): Error {
  return new Error(`an MCP tools/list answer larger than ${MAX_MESSAGE_BYTES} bytes cannot be filtered`);
}

/** Whole-body filter for `application/json` answers. */
function jsonFilter(f: ToolFilter): Transform {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > MAX_MESSAGE_BYTES) return cb(tooLarge());
      chunks.push(chunk);
      cb();
    },
    flush(cb) {
      cb(null, Buffer.from(filterJsonText(Buffer.concat(chunks).toString('utf8'), f)));
    },
  });
}

/** Event-by-event filter for `text/event-stream` answers: each event's data is one JSON message. */
function sseFilter(f: ToolFilter): Transform {
  let pending = '';
  const rewrite = (event: string): string => {
    const lines = event.split(/\r?\n/);
    const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
    if (data.length === 0) return event;
    const out = filterJsonText(data.join('\n'), f);
    const rest = lines.filter((l) => !l.startsWith('data:'));
    return [...rest, ...out.split('\n').map((l) => `data: ${l}`)].join('\n');
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      pending += chunk.toString('utf8');
      let out = '';
      for (;;) {
        const m = /\r?\n\r?\n/.exec(pending);
        if (!m) break;
        out += `${rewrite(pending.slice(0, m.index))}\n\n`;
        pending = pending.slice(m.index + m[0].length);
      }
      if (pending.length > MAX_MESSAGE_BYTES) return cb(tooLarge());
      cb(null, out.length > 0 ? Buffer.from(out) : undefined);
    },
    flush(cb) {
      cb(null, pending.length > 0 ? Buffer.from(rewrite(pending)) : undefined);
    },
  });
}

export function toolListFilterStream(contentType: string | string[] | undefined, f: ToolFilter): Transform {
  const ct = (Array.isArray(contentType) ? contentType[0] : contentType) ?? '';
  return /^\s*text\/event-stream/i.test(ct) ? sseFilter(f) : jsonFilter(f);
}
