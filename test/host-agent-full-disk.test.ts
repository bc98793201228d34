import t from 'tap';
import { parsePollLine } from '../lib/contract.ts';
import { parseResults, resultsScript } from '../scripts/aws/results.ts';
import { checkWholeInOrder } from './helpers/agent.ts';
import { bootHost } from './helpers/host.ts';
import { AGENT, agentCommandPayloads, runPayloads } from './helpers/host-agent.ts';
import { eventually } from './helpers/process.ts';
import { startService } from './helpers/service.ts';
import { OLD_LINE } from './helpers/tmpfs.ts';

// The installed unit on a real systemd host, its output folder a small file system of its own (a
// tmpfs mounted there before the install, so the file the unit's BindPaths= binds into the agent's
// sandbox lives on it) filled to within a few bytes of a line: a full disk as the agent meets it on EC2.
const FOLDER = '/var/lib/random-number';
const OUTPUT = `${FOLDER}/randomNumber.txt`;
const FILLER = `${FOLDER}/filler`;

t.setTimeout(300_000);

t.test('through the installed unit, a full disk tears no line and loses no number', async (t) => {
  const service = await startService(t);
  const host = await bootHost(t);
  // The mount lives in the host's own mount namespace: its files are read and changed from inside.
  const sh = (script: string) => host.run(['sh', '-c', script]);
  await sh(`mkdir -p ${FOLDER} && mount -t tmpfs -o size=256k,mode=0755 tmpfs ${FOLDER}`);
  // Whole lines up to a few bytes short of the end of a block, then a filler takes every block left.
  const bsize = Number(await sh(`stat -f -c %S ${FOLDER}`));
  const count = Math.floor((bsize - 4) / OLD_LINE.length);
  await host.run(['sh', '-c', `cat > ${OUTPUT}`], { input: OLD_LINE.repeat(count) });
  await host.exec(['dd', 'if=/dev/zero', `of=${FILLER}`, `bs=${bsize}`]);
  t.equal((await sh(`stat -f -c %f ${FOLDER}`)).trim(), '0', 'the output folder has no free block left');

  const flags = ['--service-url', `${service.url}/`, '--schedule', '* * * * * *', '--output-file', OUTPUT];
  const payloads = await agentCommandPayloads(t, flags);
  t.equal((await runPayloads(host, payloads)).at(-1)?.code, 0, 'installed on the full disk');
  const { MainPID } = await host.unit(AGENT, ['MainPID']);
  const sandbox = `stat -f -c %T ${FOLDER} && ls ${FOLDER}`;
  t.same(
    (await host.run(['nsenter', '-t', MainPID as string, '-m', '--', 'sh', '-c', sandbox])).split('\n'),
    ['tmpfs', 'filler', 'randomNumber.txt', ''],
    "in the agent's sandbox the output folder is that small, full file system",
  );

  const polls = async () =>
    (await host.run(['journalctl', '-u', AGENT, '-o', 'cat', '--no-pager']))
      .split('\n')
      .map(parsePollLine)
      .filter((p) => p !== undefined);
  const full = await eventually('three numbers fetched while the disk is full', async () => {
    const failed = (await polls()).filter((p) => p.outcome === 'write_failed');
    return failed.length >= 3 ? failed : undefined;
  });
  t.match(
    full.slice(0, 3),
    [1, 2, 3].map((backlog) => ({ backlog, number: Number, reason: /ENOSPC/ })),
    'the journal says write_failed with ENOSPC, and how many numbers wait',
  );
  t.equal(await sh(`cat ${OUTPUT}`), OLD_LINE.repeat(count), 'not a byte of a line reached the file');

  await sh(`rm ${FILLER}`);
  await eventually('an ok poll with nothing waiting', async () =>
    (await polls()).find((p) => p.outcome === 'ok' && p.backlog === 0),
  );
  await host.run(['systemctl', 'stop', AGENT]);
  const lines = (await sh(`cat ${OUTPUT}`)).split('\n').filter(Boolean);
  checkWholeInOrder(t, lines);
  const fetched = (await polls()).filter((p) => p.number !== null).map((p) => p.number);
  t.same(
    lines.slice(count).map((line) => Number(line.split(' ')[1])),
    fetched,
    'every number fetched, those of the full disk first, is in the file, in order',
  );
  const results = await host.runShellScript(resultsScript({ outputFile: OUTPUT, lines: 1000 }));
  t.same(parseResults(results.stdout).unparsed, [], "ec2-results' own reading finds no torn line");
});
