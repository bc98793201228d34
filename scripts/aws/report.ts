import type { AwsTarget } from './clients.ts';

/**
 * The CLI edge's output: one line per finished step with the time since the command started, and a
 * "still waiting" line every `progressEverySeconds` while a step runs, so that no wait (SDK waiters
 * included) is silent for minutes.
 */
export function createReporter(
  options: { write?: (text: string) => void; progressEverySeconds?: number } = {},
) {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const secondsSince = (time: number) => (Date.now() - time) / 1000;
  const start = Date.now();
  const stamp = () => `[${secondsSince(start).toFixed(1).padStart(6)} s]`;
  return {
    async step<T>(label: string, run: () => Promise<T>, describe?: (value: T) => string): Promise<T> {
      const stepStart = Date.now();
      const progress = () =>
        write(`${stamp()} … ${label}: still waiting (${Math.round(secondsSince(stepStart))} s)\n`);
      const timer = setInterval(progress, (options.progressEverySeconds ?? 15) * 1000);
      try {
        const value = await run();
        const detail = describe?.(value);
        write(
          `${stamp()} ✓ ${label}${detail ? `: ${detail}` : ''} (${secondsSince(stepStart).toFixed(1)} s)\n`,
        );
        return value;
      } finally {
        clearInterval(timer);
      }
    },
    line: (text: string) => write(`${text}\n`),
  };
}

/**
 * What an AWS command runs with: the clients, the reporter, and the caller's identity, checked first.
 * The AWS SDK takes a second to load: it is imported only here, not for --help or a flag error.
 */
export async function startSession(target: AwsTarget) {
  const { createClients } = await import('./clients.ts');
  const { checkCredentials } = await import('./credentials.ts');
  const clients = createClients(target);
  const report = createReporter();
  const identity = await report.step(
    'credentials',
    () => checkCredentials(clients.sts, target.profile),
    (id) => `${id.arn} in ${id.region}`,
  );
  return { ...clients, report, identity };
}

export type Session = Awaited<ReturnType<typeof startSession>>;
