/**
 * Reloads never overlap and are never dropped: a request to reload while one runs (a rule file
 * changed again, a SIGHUP, an approval) may not be in what the running reload read, so one more
 * reload runs when the current one ends. Several requests meanwhile share that one reload (the
 * last reason is reported), and each caller's promise settles when a reload that started after
 * its request has finished.
 */
export function serialReloads(run: (why: string) => Promise<void>): (why: string) => Promise<void> {
  let running: Promise<void> | null = null;
  let queued: { why: string; done: Promise<void>; settle: () => void } | null = null;
  const start = (why: string): Promise<void> =>
    run(why)
      .catch(() => undefined) // run reports its own failures; a rejection must not stop the queue
      .finally(() => {
        running = null;
        const q = queued;
        queued = null;
        if (q) {
          running = start(q.why);
          void running.then(q.settle);
        }
      });
  return (why: string): Promise<void> => {
    if (!running) {
      running = start(why);
      return running;
    }
    if (!queued) {
      let settle = (): void => undefined;
      const done = new Promise<void>((r) => (settle = r));
      queued = { why, done, settle };
    } else queued.why = why;
    return queued.done;
  };
}
