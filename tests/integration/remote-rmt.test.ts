/**
 * rmt sinks against the real rmt servers: dump's (/usr/sbin/rmt-dump) spawned here and GNU rmt
 * (/usr/sbin/rmt-tar) through ssh to an sshd on loopback. The remote "drive" is a second tapeproxy
 * daemon's drive served as a FUSE file, so the rmt server meets st's early warning (ENOSPC on the
 * write after the crossing one, which it answers E28) exactly as on a real drive; its image is
 * small, so its early warning comes first and must end the volume of the local copy too.
 */
import { execa } from 'execa';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { cli, type RunningDaemon } from '../support/daemon.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import { expectRestoresAlone, expectVolumesEndedByRemote, fuseDrive, grows, tarCreate } from '../support/tape-copies.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const MiB = 2 ** 20;
const dir = useTempDir();
const sshDir = useTempDir('all');
let sshd: Sshd;
let daemons: RunningDaemon[] = [];

beforeAll(async () => {
  sshd = await startSshd(join(sshDir.path, 'sshd'));
});
afterAll(async () => {
  await sshd?.stop();
});
beforeEach(async () => {
  await makeTree(join(dir.path, 'src'), 9 * MiB);
});
afterEach(async () => {
  for (const d of daemons.reverse()) await d.stop();
  daemons = [];
});

/** The remote drive: a FUSE file whose image has 4 MiB volumes, early warning 1 MiB before the end. */
async function remoteDrive(image = 'capacity=4M&early-warning=1M'): Promise<string> {
  const { daemon, device } = await fuseDrive(dir.path, 'remote0', [`file:${dir.path}/r-%v.tap?${image}`]);
  daemons.push(daemon);
  return device;
}

/** The local drive: a roomy image copy and the rmt copy. */
async function localDrive(rmtSink: string, extra: string[] = []) {
  const drive = await fuseDrive(dir.path, 'pnst0', [`file:${dir.path}/a-%v.tap?capacity=64M`, rmtSink], extra);
  daemons.push(drive.daemon);
  return drive;
}

/**
 * dump's rmt, run here: the remote shell is left out. early-warning=512K: the remote's 1 MiB zone as
 * the rmt server meets it, less the half that the remote's own shim acknowledges early.
 */
const dumpRmt = (device: string, params = '') => `rmt://localhost${device}?rsh=local&rmt=/usr/sbin/rmt-dump&early-warning=512K${params}`;

async function backupEndsAtRemoteEarlyWarning(rmtSink: string): Promise<void> {
  await remoteDrive();
  const { device } = await localDrive(rmtSink);
  await tarCreate(device, dir.path);
  for (const d of daemons.splice(0).reverse()) await d.stop();
  // The local copy could take 64 MiB: each volume ended because the remote passed its early warning.
  await expectVolumesEndedByRemote(dir.path, `${dir.path}/a-%v.tap`, `${dir.path}/r-%v.tap`, { earlyWarningAt: 3 * MiB, capacity: 4 * MiB });
}

it("tar -M to a local image and through dump's rmt (spawned here): the remote's early warning ends each volume of both copies; each copy restores alone", async () => {
  const remote = join(dir.path, 'remote0');
  await backupEndsAtRemoteEarlyWarning(dumpRmt(remote));
});

it('the same through GNU rmt (rmt-tar) over ssh to an sshd on loopback', async () => {
  const rsh = sshd.rsh.join('+');
  await backupEndsAtRemoteEarlyWarning(`rmt://root@127.0.0.1${join(dir.path, 'remote0')}?rsh=${rsh}&rmt=/usr/sbin/rmt-tar&early-warning=512K`);
});

it("the remote's physical end (a zone smaller than a record): the rmt copy fails, tar gets an I/O error, the log names the host", async () => {
  const remote = await remoteDrive('capacity=4M&early-warning=16K');
  const { daemon, device } = await localDrive(dumpRmt(remote));
  const tar = await tarCreate(device, dir.path, { reject: false });
  expect(tar.exitCode).not.toBe(0);
  expect(tar.stderr).toMatch(/Input\/output error/);
  expect(daemon.log()).toMatch(/copy failed: the writer gets the error/);
  const failure = (await daemon.status('pnst0')).sinks[1]!.failure;
  expect(failure).toMatch(/^EIO: rmt:\/\/localhost.*physical end of tape: refused twice/);
  expect((await stat(`${dir.path}/r-1.tap`)).size).toBeLessThanOrEqual(4 * MiB);
});

it('min-copies 1: a killed rmt server is set aside, the backup completes on the local copy, status shows the last good position', async () => {
  // A remote written at 3 MiB/s, so the server can be killed mid-stream.
  const remote = await remoteDrive('capacity=64M&rate=3M');
  const { daemon, device } = await localDrive(dumpRmt(remote), ['--min-copies', '1']);
  const tar = tarCreate(device, dir.path);
  await grows(`${dir.path}/r-1.tap`, MiB);
  await execa('pkill', ['-KILL', '-P', String(daemon.pid), '-x', 'rmt-dump']);
  await tar;

  const status = JSON.parse((await cli(['status', 'pnst0', '--json', '--server', daemon.address])).stdout.toString());
  const [local, rmt] = status.sinks as { failure: string; setAside: boolean; position: string; recordsWritten: string }[];
  expect(local!.failure).toBe('');
  expect(rmt!.setAside).toBe(true);
  expect(rmt!.failure).toMatch(/rmt:\/\/localhost.*the rmt connection to localhost ended.*killed/);
  expect(Number(rmt!.position)).toBe(Number(rmt!.recordsWritten));
  expect(Number(rmt!.recordsWritten)).toBeGreaterThan(0);
  expect(Number(rmt!.recordsWritten)).toBeLessThan(Number(local!.recordsWritten));
  const text = (await cli(['status', 'pnst0', '--server', daemon.address])).stdout.toString();
  expect(text).toMatch(/rmt:\/\/localhost.*FAILED at object \d+: .*\(set aside/);
  for (const d of daemons.splice(0).reverse()) await d.stop();
  await expectRestoresAlone(dir.path, `${dir.path}/a-%v.tap`, await hashTree(join(dir.path, 'src')));
});

it('a stalled rmt server: no reply within timeout= fails the copy, and by default the writer gets an I/O error', async () => {
  const remote = await remoteDrive('capacity=64M&rate=3M');
  const { daemon, device } = await localDrive(dumpRmt(remote, '&timeout=2'));
  const tar = tarCreate(device, dir.path, { reject: false });
  await grows(`${dir.path}/r-1.tap`, MiB);
  await execa('pkill', ['-STOP', '-P', String(daemon.pid), '-x', 'rmt-dump']);
  const result = await tar;
  expect(result.exitCode).not.toBe(0);
  expect(result.stderr).toMatch(/Input\/output error/);
  const failure = (await daemon.status('pnst0')).sinks[1]!.failure;
  expect(failure).toMatch(/no reply from the rmt server on localhost for 2 s/);
});

it('a device that does not exist on the remote: the daemon does not start, and says which host and path', async () => {
  const missing = join(dir.path, 'no-such-drive');
  const r = await cli(['daemon', '--drive', 'pnst0', '--listen', '127.0.0.1:0', '--sink', `file:${dir.path}/a.tap`, '--sink', dumpRmt(missing)]);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain(`rmt://localhost${missing}: cannot open volume 1: ${missing} on localhost: No such file or directory (E2)`);
});
