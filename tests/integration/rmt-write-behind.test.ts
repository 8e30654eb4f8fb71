/**
 * The rmt front end answers a W before the daemon has its record (client/write-behind-drive.ts),
 * within a window of half the drive's early-warning zone, and the writer still learns of every
 * record it was told was written that did not reach the copies. The daemon is held with SIGSTOP:
 * what is answered while it cannot reply was answered behind.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, it } from 'vitest';
import { MtOp } from '../../daemon/drive/mtio.js';
import { CLI, imageObjects, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const REC = 32 * 1024;
const O_WRONLY = 1;

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  try {
    if (daemon) process.kill(daemon.pid, 'SIGCONT'); // a test that failed while it was held
  } catch {
    // it was killed
  }
  await daemon?.stop();
  daemon = undefined;
});

/** `tapeproxy rmt` for the daemon: requests go in as written, replies are collected as they come. */
function rmt(address: string) {
  const proc = execa('node', [CLI, 'rmt', '--server', address], { stdin: 'pipe', encoding: 'buffer', reject: false });
  let text = '';
  proc.stdout!.on('data', (b: Buffer) => (text += b.toString('latin1')));
  const replies = () => {
    const out: string[] = [];
    const lines = text.split('\n');
    lines.pop(); // what follows the last newline is not a whole line yet
    for (let i = 0; i < lines.length; i++) out.push(lines[i]!.startsWith('E') ? `${lines[i]} ${lines[++i] ?? ''}` : lines[i]!);
    return out;
  };
  return {
    send: (request: string | Buffer) => proc.stdin!.write(request),
    write: (record: Buffer) => proc.stdin!.write(Buffer.concat([Buffer.from(`W${record.length}\n`), record])),
    replies,
    until: (n: number) => waitFor(`${n} rmt replies (have ${replies().length})`, async () => replies().length >= n, 15),
    end: () => {
      proc.stdin!.end();
      return proc;
    },
  };
}

const records = (n: number) => Array.from({ length: n }, () => randomBytes(REC));

it('answers writes while the daemon is held, as many as half the early-warning zone holds; every one reaches both copies', async () => {
  // Copy a's zone of 512 KiB: 256 KiB may be in flight, 8 records of 32 KiB.
  daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap?fsync=false&capacity=64M&early-warning=512K`, '--sink', `file:${dir.path}/b.tap?fsync=false`]);
  const sent = records(20);
  const client = rmt(daemon.address);
  client.send(`O/dev/pnst0\n${O_WRONLY}\n`);
  client.write(sent[0]!); // the first write after open waits for the drive's own answer
  await client.until(2);

  process.kill(daemon.pid, 'SIGSTOP');
  for (const r of sent.slice(1)) client.write(r);
  await client.until(2 + 8);
  await sleep(500);
  expect(client.replies(), 'no more than the window while the daemon is held').toHaveLength(2 + 8);

  process.kill(daemon.pid, 'SIGCONT');
  await client.until(2 + 19);
  client.send('C\n');
  await client.until(2 + 19 + 1);
  expect(client.replies()).toEqual(['A0', ...sent.map(() => `A${REC}`), 'A0']);
  expect((await client.end()).exitCode).toBe(0);

  await daemon.stop();
  daemon = undefined;
  for (const copy of ['a.tap', 'b.tap']) {
    const objects = await imageObjects(join(dir.path, copy));
    expect(objects.map((o) => o?.toString('hex')), copy).toEqual([...sent.map((r) => r.toString('hex')), undefined]);
  }
});

it('after any other request the next write waits for the drive itself, so it gets the drive\'s own answer', async () => {
  daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap?fsync=false`]);
  const client = rmt(daemon.address);
  const sent = records(3);
  client.send(`O/dev/pnst0\n${O_WRONLY}\n`);
  client.write(sent[0]!);
  client.write(sent[1]!); // behind
  client.send(`I${MtOp.MTWEOF}\n1\n`);
  await client.until(4);
  process.kill(daemon.pid, 'SIGSTOP');
  client.write(sent[2]!); // same length as the last, but a filemark came between
  await sleep(500);
  expect(client.replies(), 'not answered while the daemon is held').toHaveLength(4);
  process.kill(daemon.pid, 'SIGCONT');
  await client.until(5);
  client.send('C\n');
  await client.until(6);
  expect(client.replies()).toEqual(['A0', `A${REC}`, `A${REC}`, 'A1', `A${REC}`, 'A0']);
  await client.end();
});

it('the daemon killed while records answered behind were in flight: the next request gets EIO saying so', async () => {
  daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a.tap?fsync=false`]);
  const client = rmt(daemon.address);
  client.send(`O/dev/pnst0\n${O_WRONLY}\n`);
  const sent = records(6);
  client.write(sent[0]!);
  await client.until(2);
  process.kill(daemon.pid, 'SIGSTOP');
  for (const r of sent.slice(1)) client.write(r);
  await client.until(2 + 5);
  process.kill(daemon.pid, 'SIGKILL');

  client.send('C\n');
  await client.until(2 + 5 + 1);
  expect(client.replies().slice(0, -1)).toEqual(['A0', ...sent.map(() => `A${REC}`)]);
  expect(client.replies().at(-1)).toMatch(/^E5 a record acknowledged earlier was not written: /);
  await client.end();
});

it('a copy whose file system fills: EIO at the next request, and every write after it is refused', async () => {
  const small = join(dir.path, 'small');
  await mkdir(small);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tapeproxy-test', small]);
  try {
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/good.tap?fsync=false`, '--sink', `file:${small}/lost.tap?fsync=false`]);
    const client = rmt(daemon.address);
    const n = 200; // 6.25 MiB, twice what the small file system holds
    client.send(`O/dev/pnst0\n${O_WRONLY}\n`);
    const sent = records(n);
    for (const r of sent) client.write(r);
    client.send('C\n');
    await client.until(1 + n + 1);
    const [open, ...rest] = client.replies();
    const close = rest.pop();
    expect(open).toBe('A0');
    const first = rest.findIndex((r) => r !== `A${REC}`);
    expect(first, 'a write was refused').toBeGreaterThan(0);
    expect(rest.slice(first).filter((r) => !/^E5 /.test(r)), 'replies from the first refusal on').toEqual([]);
    expect(close).toMatch(/^E5 /);
    expect((await client.end()).exitCode).toBe(0);
    // The good copy holds the first records in order, no more than were answered A: those answered
    // after the copy failed reached no copy, which is what the E5 told the writer.
    await daemon.stop();
    daemon = undefined;
    const good = (await imageObjects(join(dir.path, 'good.tap'))).filter((o) => o !== null);
    expect(good.length).toBeGreaterThan(0);
    expect(good.length).toBeLessThanOrEqual(first);
    expect(good.map((r) => r.toString('hex'))).toEqual(sent.slice(0, good.length).map((r) => r.toString('hex')));
  } finally {
    await daemon?.stop();
    daemon = undefined;
    await execa('umount', [small]);
  }
});
