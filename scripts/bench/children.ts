import type { ChildProcess } from 'node:child_process';

/** Every child the bench has running, so that a bench told to stop leaves none behind. */
const running = new Set<ChildProcess>();
export function track<C extends ChildProcess>(child: C): C {
  running.add(child);
  child.once('close', () => running.delete(child));
  return child;
}

/** On SIGINT or SIGTERM: SIGTERM to every child still running (servers, agent, load), then exit. */
export function stopChildrenOnSignal(): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      for (const child of running) child.kill('SIGTERM');
      process.exit(code);
    });
  }
}
