/**
 * A minimal WebAssembly encoder: enough to emit exported i32 functions over an imported
 * memory (prefilter-wasm.ts, long-runs-wasm.ts). The scrubber's hot loops are written as
 * instruction lists in those files and assembled here at load, so the repository holds no binary
 * and needs no toolchain. Encoding: the WebAssembly core specification, "Binary Format".
 */

export interface WasmMemory {
  buffer: ArrayBuffer;
}
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (d: { initial: number }) => WasmMemory;
}
export const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export const I32 = 0x7f;
export const V128 = 0x7b;
/** The SIMD instructions' prefix byte (each is followed by its number, LEB128). */
export const SIMD = 0xfd;
export const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  load: 0x28,
  load8: 0x2d,
  load16: 0x2f,
  store: 0x36,
  const: 0x41,
  eqz: 0x45,
  ltS: 0x48,
  gtS: 0x4a,
  geS: 0x4e,
  add: 0x6a,
  sub: 0x6b,
  mul: 0x6c,
  and: 0x71,
  or: 0x72,
  shl: 0x74,
  shrU: 0x76,
  ctz: 0x68,
  ltU: 0x49,
  ne: 0x47,
  geU: 0x4f,
  divU: 0x6e,
  drop: 0x1a,
} as const;
export const VOID = 0x40;

/**
 * The head of a while loop: `block`, `loop`, then `exit` (leaves an i32) and a branch past the
 * block when it is not zero. The body follows; close it with `op.br, 0, op.end, op.end`.
 */
export function loopUntil(exit: readonly number[]): number[] {
  return [op.block, VOID, op.loop, VOID, ...exit, op.brIf, 1];
}

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];

/** One exported function `name(params…) → i32`: its parameter types, extra i32 locals, code. */
export interface WasmFunction {
  name: string;
  params: number[];
  locals: number;
  /** v128 locals, after the i32 ones. */
  vectors?: number;
  body: number[];
}

/** A module importing memory `m.mem` and exporting the functions (one type each). */
export function moduleOf(...fns: WasmFunction[]): Uint8Array {
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec([[I32]])]))),
    ...section(2, vec([[...name('m'), ...name('mem'), 0x02, 0x00, 0x01]])), // memory import, min 1 page
    ...section(3, vec(fns.map((_, i) => uleb(i)))),
    ...section(7, vec(fns.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(
      10,
      vec(
        fns.map((f) => {
          const decl = [[...uleb(f.locals), I32], ...(f.vectors ? [[...uleb(f.vectors), V128]] : [])];
          const code = [...vec(decl), ...f.body];
          return [...uleb(code.length), ...code];
        }),
      ),
    ),
  ]);
}
