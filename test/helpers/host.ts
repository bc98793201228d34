import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { childPids, eventually, type Output, outputOf, type Teardown } from './process.ts';
import { NODE22 } from './service.ts';

/**
 * A real Linux host for the tests: the Debian bookworm root file system that `make test` builds
 * (test/helpers/host-rootfs.sh), copied per test and booted with systemd-nspawn, systemd 252 as PID 1,
 * the version Amazon Linux 2023 runs. It stands in for the EC2 instance: what the SSM payloads, the
 * systemd unit and the agent do there is what they do on an instance, sandbox and all. It shares this
 * machine's network, so a service on 127.0.0.1 here is reachable from inside. Node.js 22 is mounted
 * at /usr/bin/node-22, where Amazon Linux's nodejs22 package puts it.
 *
 * The host has no systemd bus, so nothing goes through machinectl: commands run inside with nsenter
 * into the container's PID 1. Every host is powered off and its copy removed when the test ends.
 */
const ROOT = resolve(import.meta.dirname, '../..');
export const HOST_ROOTFS = join(ROOT, '.cache', 'test-host', 'rootfs');
const HOSTS = join(ROOT, '.cache', 'test-host', 'run');
/** What a root shell on the instance has, and nothing of this machine's (or tap's) environment. */
const HOST_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'LANG=C.UTF-8',
  'HOME=/root',
];

export type Result = Output;

export interface Host {
  /** The host's root folder, as seen from this machine. */
  dir: string;
  /** Runs a command inside the host as root; resolves with its status and output (never throws on status). */
  exec(argv: string[], options?: { input?: string; timeoutMs?: number }): Promise<Result>;
  /** exec, but rejects with the output when the status is not 0. */
  run(argv: string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /**
   * What SSM's AWS-RunShellScript does with a command's `commands`: writes the lines into a script
   * file and runs it with `sh` as root, in the script's folder.
   */
  runShellScript(lines: string[], timeoutMs?: number): Promise<Result>;
  /** `systemctl show -p <prop> --value` for each property. */
  unit(name: string, props: string[]): Promise<Record<string, string>>;
  /** Reads a file of the host, or undefined when it does not exist. */
  read(path: string): string | undefined;
  /** The lines of a file of the host (none when it does not exist). */
  lines(path: string): string[];
  /** Waits until the file of the host has at least `count` lines; returns them. */
  linesAtLeast(path: string, count: number, timeoutMs?: number): Promise<string[]>;
  /** A clean power-off, then the same root file system booted again. */
  reboot(): Promise<void>;
}

/** Fails with what to run when the root file system has not been built (make test builds it). */
export function requireHost(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the test host needs root (systemd-nspawn): run make test as root');
  }
  if (!existsSync(join(HOST_ROOTFS, 'etc/os-release'))) {
    throw new Error(
      `no test host root file system in ${HOST_ROOTFS}: run make test (or test/helpers/host-rootfs.sh ${HOST_ROOTFS})`,
    );
  }
  if (!NODE22 || !existsSync(NODE22)) {
    throw new Error('no Node.js 22 binary for the test host: run make test (it fetches it as NODE22)');
  }
}

let scripts = 0;

// Hosts still running when this test process is ended from outside (tap's timeout sends SIGTERM): a
// container outlives a killed systemd-nspawn, so its PID 1 is killed too. t.teardown covers the rest.
const running = new Set<Booted>();
process.once('exit', () => {
  for (const booted of running) {
    for (const pid of [booted.leader, booted.nspawn.pid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});
process.once('SIGTERM', () => process.exit(143));

export async function bootHost(t: Teardown): Promise<Host> {
  requireHost();
  await mkdir(HOSTS, { recursive: true });
  const dir = await mkdtemp(join(HOSTS, 'h-'));
  // cp -a: owners, modes, hard links and device nodes exactly (fs.cp keeps less, and slower).
  await promisify(execFile)('cp', ['-a', '--reflink=auto', `${HOST_ROOTFS}/.`, dir]);
  await chmod(dir, 0o755); // mkdtemp's 0700 would lock every user but root out of /
  // Masked here rather than in host-rootfs.sh, so that a cached root file system gets it too: this unit
  // remounts the container's root, which systemd-nspawn set up and no test depends on, and once in a full
  // run (other hosts booting and stopping beside it) it failed and left the host 'degraded'.
  await symlink('/dev/null', join(dir, 'etc/systemd/system/systemd-remount-fs.service'));
  const machine = `rn-${dir
    .slice(-6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}`;
  let booted: Booted | undefined;
  t.teardown(async () => {
    if (booted) await powerOff(booted);
    await rm(dir, { recursive: true, force: true });
  });
  booted = await boot(dir, machine);

  const exec: Host['exec'] = (argv, options = {}) => {
    if (!booted) throw new Error('the host is not running');
    return execIn(booted.leader, argv, options);
  };
  const run: Host['run'] = async (argv, options) => {
    const result = await exec(argv, options);
    if (result.code !== 0) {
      throw new Error(`${argv.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
    }
    return result.stdout;
  };
  const host: Host = {
    dir,
    exec,
    run,
    async runShellScript(lines, timeoutMs = 120_000) {
      scripts += 1;
      const folder = `/var/lib/amazon/ssm/orchestration/command-${scripts}`;
      await run(['mkdir', '-p', folder]);
      await run(['sh', '-c', `cat > ${folder}/_script.sh`], { input: `${lines.join('\n')}\n` });
      return exec(['sh', '-c', `cd ${folder} && exec sh _script.sh`], { timeoutMs });
    },
    async unit(name, props) {
      const out = await run(['systemctl', 'show', name, ...props.map((p) => `--property=${p}`)]);
      return Object.fromEntries(
        out
          .trim()
          .split('\n')
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
    },
    read(path) {
      const file = join(dir, path);
      return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    },
    lines(path) {
      return (host.read(path) ?? '').split('\n').filter((line) => line !== '');
    },
    linesAtLeast(path, count, timeoutMs = 20_000) {
      return eventually(
        `${count} lines in ${path}`,
        () => {
          const lines = host.lines(path);
          return lines.length >= count ? lines : undefined;
        },
        timeoutMs,
      );
    },
    async reboot() {
      if (booted) await powerOff(booted);
      booted = undefined;
      booted = await boot(dir, machine);
    },
  };
  return host;
}

interface Booted {
  nspawn: ChildProcess;
  leader: number;
  exited: Promise<unknown>;
  output: string[];
}

async function boot(dir: string, machine: string): Promise<Booted> {
  const nspawn = spawn(
    'env',
    [
      '-i',
      ...HOST_ENV,
      'systemd-nspawn',
      `--directory=${dir}`,
      `--machine=${machine}`,
      '--boot',
      // No systemd on this machine to register with or to give the container its own scope.
      '--register=no',
      '--keep-unit',
      '--console=pipe',
      '--quiet',
      `--bind-ro=${NODE22}:/usr/bin/node-22`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  nspawn.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  nspawn.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = once(nspawn, 'exit');
  const booted: Booted = { nspawn, leader: 0, exited, output };
  running.add(booted);
  exited.then(() => running.delete(booted));
  const deadline = Date.now() + 30_000;
  // systemd-nspawn forks the container's PID 1 (systemd) as its child.
  while (!booted.leader) {
    if (nspawn.exitCode !== null || Date.now() > deadline) {
      nspawn.kill('SIGKILL');
      throw new Error(`systemd-nspawn did not start the host:\n${output.join('')}`);
    }
    booted.leader = childNamed(nspawn.pid as number, 'systemd') ?? 0;
    if (!booted.leader) await sleep(50);
  }
  // systemctl needs PID 1's private socket; asked before it exists, it fails (and an early nsenter
  // into a half-made container can upset its boot), so wait for the socket first.
  while (!existsSync(`/proc/${booted.leader}/root/run/systemd/private`)) {
    if (nspawn.exitCode !== null || Date.now() > deadline) break;
    await sleep(50);
  }
  const result = await execIn(booted.leader, ['systemctl', 'is-system-running', '--wait'], {
    timeoutMs: 60_000,
  });
  const state = result.stdout.trim();
  const said = result.stderr.trim();
  if (state !== 'running') {
    const failed = await execIn(booted.leader, ['systemctl', '--failed', '--no-pager']);
    await powerOff(booted);
    throw new Error(`the test host booted '${state}' (${said}):\n${failed.stdout}${output.join('')}`);
  }
  return booted;
}

function childNamed(parent: number, name: string): number | undefined {
  for (const child of childPids(parent)) {
    try {
      if (readFileSync(`/proc/${child}/comm`, 'utf8').trim() === name) return child;
    } catch {
      // The process is gone.
    }
  }
  return undefined;
}

/** SIGTERM makes systemd-nspawn shut the container down cleanly; SIGKILL if that takes too long. */
async function powerOff(booted: Booted): Promise<void> {
  if (booted.nspawn.exitCode !== null || booted.nspawn.signalCode !== null) return;
  booted.nspawn.kill('SIGTERM');
  const clean = await Promise.race([booted.exited.then(() => true), sleep(20_000).then(() => false)]);
  if (clean) return;
  try {
    process.kill(booted.leader, 'SIGKILL'); // ends the container's PID namespace, every process in it
  } catch {
    // already gone
  }
  booted.nspawn.kill('SIGKILL');
  await booted.exited;
}

function execIn(
  leader: number,
  argv: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<Result> {
  // env -i: tap instruments child processes through NODE_OPTIONS, which must not reach the host's node.
  const child = spawn('env', ['-i', ...HOST_ENV, 'nsenter', '-t', String(leader), '-a', '--', ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: options.timeoutMs ?? 60_000,
    killSignal: 'SIGKILL',
  });
  const output = outputOf(child);
  // A command that exits without reading its input closes the pipe: not an error of ours.
  child.stdin.on('error', () => {});
  child.stdin.end(options.input ?? '');
  return output;
}
