/**
 * The CLI edge's output: one line per finished step with the time since the command started, and a
 * "still waiting" line every `progressEveryMs` while a step runs, so that no wait (SDK waiters
 * included) is silent for minutes.
 */
export interface Reporter {
  step<T>(label: string, run: () => Promise<T>, describe?: (value: T) => string): Promise<T>;
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
      const timer = setInterval(() => {
        write(`${stamp()} … ${label}: still waiting (${Math.round((now() - stepStart) / 1000)} s)\n`);
      }, every);
      try {
        const value = await run();
        const detail = describe ? describe(value) : '';
        const took = ((now() - stepStart) / 1000).toFixed(1);
        write(`${stamp()} ✓ ${label}${detail ? `: ${detail}` : ''} (${took} s)\n`);
        return value;
      } finally {
        clearInterval(timer);
      }
    },
    line(text) {
      write(`${text}\n`);
    },
  };
}
