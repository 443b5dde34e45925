/**
 * Reading an audit file while its writer thread may still be appending to it: complete lines
 * only (the text after the last newline is a record being written, not a torn one), and a wait
 * for a number of lines woken by the file's change events, never by a clock.
 */
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';

export function completeLines(file: string): string[] {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean);
}

export function seqsOf(file: string): number[] {
  return completeLines(file).map((l) => (JSON.parse(l) as { seq: number }).seq);
}

/** Resolves when `file` holds at least `count` complete lines. */
export function linesOnDisk(file: string, count: number): Promise<void> {
  return new Promise((resolve) => {
    let w: FSWatcher | null = null;
    const check = (): void => {
      if (completeLines(file).length < count) return;
      w?.close();
      resolve();
    };
    w = watch(file, check);
    check();
  });
}
