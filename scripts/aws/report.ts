import type { AwsTarget } from './clients.ts';

/**
 * A step that changes something, or waits on what was changed: `name` is the label its ✓ line shows,
 * `plan` says from read calls alone what it would do given what exists, `run` does it and returns the
 * ✓ line's detail. A scenario is one list of them, so its dry run cannot tell a different story.
 */
export type Step = { name: string; plan: () => string | Promise<string>; run: () => Promise<string> };

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
  async function step<T>(label: string, run: () => Promise<T>, describe?: (value: T) => string) {
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
  }
  return {
    step,
    /** Runs the steps in order or, in a dry run, prints each one's plan; false marks a step skipped. */
    async steps(dryRun: boolean, steps: (Step | false | undefined | '')[]) {
      if (dryRun) write('dry run: nothing was changed. The plan:\n');
      for (const s of steps) {
        if (s && dryRun) write(`  ${s.name}: ${await s.plan()}\n`);
        else if (s) await step(s.name, s.run, String);
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
