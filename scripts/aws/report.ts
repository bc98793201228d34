/**
 * The CLI edge's output: one line per finished step with the time since the command started, and a
 * "still waiting" line every `progressEveryMs` during long waits, so nothing is silent for minutes.
 */
export interface Reporter {
  step<T>(
    label: string,
    run: (onWait: (elapsedMs: number) => void) => Promise<T>,
    describe?: (value: T) => string,
  ): Promise<T>;
  line(text: string): void;
}

export function createReporter(
  options: { write?: (text: string) => void; now?: () => number; progressEveryMs?: number } = {},
): Reporter {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const now = options.now ?? Date.now;
  const every = options.progressEveryMs ?? 15_000;
  const start = now();
  const stamp = () => `[${((now() - start) / 1000).toFixed(1).padStart(6)} s]`;
  return {
    async step(label, run, describe) {
      const stepStart = now();
      let lastProgress = 0;
      const value = await run((elapsedMs) => {
        if (elapsedMs - lastProgress < every) return;
        lastProgress = elapsedMs;
        write(`${stamp()} … ${label}: still waiting (${Math.round(elapsedMs / 1000)} s)\n`);
      });
      const detail = describe ? describe(value) : '';
      const took = ((now() - stepStart) / 1000).toFixed(1);
      write(`${stamp()} ✓ ${label}${detail ? `: ${detail}` : ''} (${took} s)\n`);
      return value;
    },
    line(text) {
      write(`${text}\n`);
    },
  };
}
