/**
 * A grpc sink across a link the test cuts: the remote daemon runs in a network namespace behind a
 * veth pair, served over TLS with a token (it is not on loopback), and the host end of the veth is
 * taken down mid-stream, so packets stop without anyone being told; only keepalive notices. Back
 * up within the grace period, the copy resumes where the remote confirms; if the remote daemon was
 * restarted meanwhile (its drive back at the beginning of the tape), the copy fails instead of
 * writing records twice or leaving a gap.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { makeNetnsLink, type NetnsLink } from '../support/netns.js';
import { expectRestoresAlone, expectSameVolumes, fuseDrive, grows, tarCreate } from '../support/tape-copies.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const MiB = 2 ** 20;
const shared = useTempDir('all');
const dir = useTempDir();
let link: NetnsLink;
let pki: TestPki;
let remote: RunningDaemon | undefined;
let local: RunningDaemon | undefined;

beforeAll(async () => {
  link = await makeNetnsLink();
  pki = await makeTestPki(join(shared.path, 'pki'), [link.address]);
});
afterAll(async () => {
  await link?.remove();
});
beforeEach(async () => {
  await makeTree(join(dir.path, 'src'), 9 * MiB);
});
afterEach(async () => {
  await local?.stop();
  await remote?.stop();
  local = remote = undefined;
  await link.up();
});

/** Drive remote0 in the namespace, its image written at 3 MiB/s so the link can be cut mid-stream. */
async function startRemote(): Promise<void> {
  remote = await startDaemon(
    [
      '--drive', 'remote0', '--sink', `file:${dir.path}/r-%v.tap?capacity=64M&rate=3M`,
      '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--token-file', pki.tokenFile,
    ],
    { listen: `${link.address}:7070`, prefix: link.exec },
  );
}

/** The local drive: an image and the grpc sink across the link; a cut is noticed within 2 s. */
async function startLocal(): Promise<string> {
  const sink = `grpc://${link.address}:7070/remote0?ca=${pki.ca}&token-file=${pki.tokenFile}&keepalive=1&timeout=3&grace=60`;
  const drive = await fuseDrive(dir.path, 'pnst0', [`file:${dir.path}/a-%v.tap?capacity=64M`, sink]);
  local = drive.daemon;
  return drive.device;
}

async function reconnecting(): Promise<void> {
  while (!local!.log().includes('reconnecting to resume')) await sleep(100);
}

it('the link dropped mid-stream and back within the grace period: the copy resumes where the remote confirms; both copies are the same', async () => {
  await startRemote();
  const tar = tarCreate(await startLocal(), dir.path);
  await grows(`${dir.path}/r-1.tap`, MiB);
  await link.down();
  await reconnecting();
  await link.up();
  await tar;
  expect(local!.log()).toMatch(/resumed on the remote drive at the position it confirmed/);
  // Before the cut and after the resume alike, the records went on the record channel (TLS): the
  // copy says when they cannot.
  expect(local!.log()).toMatch(/"records":"record channel","msg":"remote drive ready"/);
  expect(local!.log()).not.toMatch(/cannot reach the remote's record port|offers no record channel/);
  await local!.stop();
  await remote!.stop();
  local = remote = undefined;
  expect(await expectSameVolumes(`${dir.path}/a-%v.tap`, `${dir.path}/r-%v.tap`)).toBe(1);
  await expectRestoresAlone(dir.path, `${dir.path}/r-%v.tap`, await hashTree(join(dir.path, 'src')));
});

it('the link dropped and the remote daemon restarted meanwhile: its drive is not where the copy was, so the copy fails and the writer is told', async () => {
  await startRemote();
  const tar = tarCreate(await startLocal(), dir.path, { reject: false });
  await grows(`${dir.path}/r-1.tap`, MiB);
  await link.down();
  await reconnecting();
  await remote!.stop();
  await startRemote(); // the same images; the new daemon's drive starts at the beginning of volume 1
  await link.up();
  const result = await tar;
  expect(result.exitCode).not.toBe(0);
  expect(result.stderr).toMatch(/Input\/output error/);
  const failure = (await local!.status('pnst0')).sinks[1]!.failure;
  expect(failure).toMatch(
    new RegExp(`link failed: .*not resumed: the remote drive is at object 0, but (\\d+) objects were confirmed .*the last object the remote confirmed is \\1 of volume 1`),
  );
});
