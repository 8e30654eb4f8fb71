/**
 * grpc sinks to a tapeproxy daemon in a container (deploy/Dockerfile, started with testcontainers
 * on a private dockerd), over TLS with a client certificate and a token: the remote's early
 * warning ends the volumes of both copies; a wrong token, a certificate the sink cannot verify and
 * a missing client certificate are refused before anything is written; the container stopped
 * mid-stream fails the copy under either policy, and a paused one resumes where the remote says.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { cli, type RunningDaemon } from '../support/daemon.js';
import { IMAGE, startDocker, type DockerRig } from '../support/docker.js';
import { expectRestoresAlone, expectSameVolumes, expectVolumesEndedByRemote, fuseDrive, grows, tarCreate } from '../support/tape-copies.js';
import { useTempDir } from '../support/temp-dir.js';
import { hashTree, makeTree } from '../support/trees.js';

const MiB = 2 ** 20;
const shared = useTempDir('all');
const dir = useTempDir();
let rig: DockerRig;
let pki: TestPki;
let container: StartedTestContainer | undefined;
let local: RunningDaemon | undefined;

beforeAll(async () => {
  rig = await startDocker();
  pki = await makeTestPki(join(shared.path, 'pki'), ['127.0.0.1', 'localhost']);
}, 600_000);
afterAll(async () => {
  await rig?.stop();
});
beforeEach(async () => {
  await makeTree(join(dir.path, 'src'), 9 * MiB);
});
afterEach(async () => {
  await local?.stop();
  local = undefined;
  await container?.stop();
  container = undefined;
});

/**
 * The remote: drive remote0 in a container, its images in `dir/remote`, TLS asking for a client
 * certificate from the test CA, and the token. Returns the address the host reaches it at.
 */
async function startRemote(image = 'capacity=4M&early-warning=1M'): Promise<string> {
  const data = join(dir.path, 'remote');
  await mkdir(data);
  const config = join(dir.path, 'remote.yaml');
  await writeFile(
    config,
    [
      'listen: 0.0.0.0:7070',
      'tls:',
      '  cert: /etc/tapeproxy/pki/server.crt',
      '  key: /etc/tapeproxy/pki/server.key',
      '  client-ca: /etc/tapeproxy/pki/ca.crt',
      'token-file: /etc/tapeproxy/pki/token',
      'drives:',
      '  - name: remote0',
      `    sinks: ['file:/var/lib/tapeproxy/r-%v.tap?${image}']`,
      '',
    ].join('\n'),
  );
  container = await new GenericContainer(IMAGE)
    .withBindMounts([
      { source: pki.dir, target: '/etc/tapeproxy/pki', mode: 'ro' },
      { source: config, target: '/etc/tapeproxy/tapeproxy.yaml', mode: 'ro' },
      { source: data, target: '/var/lib/tapeproxy' },
    ])
    .withExposedPorts(7070, 7071) // gRPC, and the record port after it
    .withWaitStrategy(Wait.forLogMessage('"msg":"listening"'))
    .start();
  return `127.0.0.1:${container.getMappedPort(7070)}`;
}

/**
 * The grpc sink's URI with the test CA, client certificate and token, and `extra` parameters. Its
 * records go on the record channel, at the port Docker maps the container's to.
 */
function grpcSink(address: string, extra = ''): string {
  const records = extra.includes('records=') ? '' : `&records=${container!.getMappedPort(7071)}`;
  return `grpc://${address}/remote0?ca=${pki.ca}&cert=${pki.clientCert}&key=${pki.clientKey}&token-file=${pki.tokenFile}${records}${extra}`;
}

async function startLocal(sink: string, extra: string[] = []): Promise<string> {
  const drive = await fuseDrive(dir.path, 'pnst0', [`file:${dir.path}/a-%v.tap?capacity=64M`, sink], extra);
  local = drive.daemon;
  return drive.device;
}

it('tar -M to a local image and over TLS with a token to a tapeproxy in a container, records on its record channel: the remote ends each volume; each copy restores alone', async () => {
  const device = await startLocal(grpcSink(await startRemote()));
  await tarCreate(device, dir.path);
  expect(local!.log()).toMatch(/"earlyWarningZone":524288,"records":"record channel","msg":"remote drive ready"/);
  const status = (await cli(['status', 'pnst0', '--json', '--server', local!.address])).stdout.toString();
  for (const shown of [local!.log(), status]) expect(shown).not.toContain(pki.token);
  await local!.stop();
  local = undefined;
  await expectVolumesEndedByRemote(dir.path, `${dir.path}/a-%v.tap`, `${dir.path}/remote/r-%v.tap`, { earlyWarningAt: 3 * MiB, capacity: 4 * MiB });
});

it('a wrong token, a certificate the sink cannot verify, or no client certificate: refused with a clear error, nothing written', async () => {
  const address = await startRemote();
  const refusal = async (sink: string) => {
    const r = await cli(['daemon', '--drive', 'pnst0', '--listen', '127.0.0.1:0', '--sink', `file:${dir.path}/a.tap`, '--sink', sink]);
    expect(r.exitCode).toBe(1);
    return r.stderr;
  };
  const name = `grpc://${address}/remote0`;
  expect(await refusal(grpcSink(address).replace(pki.tokenFile, pki.wrongTokenFile))).toContain(
    `${name}: cannot load volume 1: ${address} refused the call: the token is not the one this daemon accepts (check token-file=`,
  );
  expect(await refusal(grpcSink(address).replace(`ca=${pki.ca}`, `ca=${pki.otherCa}`))).toMatch(
    new RegExp(`${name}: cannot load volume 1: cannot establish TLS with ${address}: [^\\n]*certificate[^\\n]* \\(give the CA that signed`),
  );
  expect(await refusal(`grpc://${address}/remote0?ca=${pki.ca}&token-file=${pki.tokenFile}`)).toContain(
    `${name}: cannot load volume 1: cannot establish TLS with ${address}: tlsv13 alert certificate required (the daemon asks for a client certificate: give cert= and key=`,
  );
  expect(existsSync(join(dir.path, 'remote', 'r-1.tap'))).toBe(false);
});

it('the container stopped mid-stream: under the default policy the writer gets an I/O error', async () => {
  const device = await startLocal(grpcSink(await startRemote('capacity=64M&rate=3M'), '&keepalive=1&grace=2'));
  const tar = tarCreate(device, dir.path, { reject: false });
  await grows(join(dir.path, 'remote', 'r-1.tap'), MiB);
  await container!.stop();
  container = undefined;
  const result = await tar;
  expect(result.exitCode).not.toBe(0);
  expect(result.stderr).toMatch(/Input\/output error/);
  expect(local!.log()).toMatch(/copy failed: the writer gets the error/);
  const failure = (await local!.status('pnst0')).sinks[1]!.failure;
  expect(failure).toMatch(/^EIO: grpc:\/\/127\.0\.0\.1:\d+\/remote0: link failed: .*not resumed within 2 s.*the last object the remote confirmed is \d+ of volume 1/);
});

it('min-copies 1, the record port closed (records in gRPC messages): the container stopped mid-stream; the backup completes on the local copy; status shows the remote copy FAILED at its last good position', async () => {
  // Records in gRPC messages here: the record port given is closed, and the copy says so once.
  const device = await startLocal(grpcSink(await startRemote('capacity=64M&rate=3M'), '&keepalive=1&grace=0&records=1'), ['--min-copies', '1']);
  const tar = tarCreate(device, dir.path);
  await grows(join(dir.path, 'remote', 'r-1.tap'), 1);
  expect(local!.log()).toMatch(/"records":"gRPC messages","msg":"remote drive ready"/);
  expect(local!.log().match(/cannot reach the remote's record port: records go in gRPC messages/g)).toHaveLength(1);
  await grows(join(dir.path, 'remote', 'r-1.tap'), MiB);
  await container!.stop();
  container = undefined;
  await tar;
  const status = JSON.parse((await cli(['status', 'pnst0', '--json', '--server', local!.address])).stdout.toString());
  const [image, remote] = status.sinks as { failure: string; setAside: boolean; position: string; recordsWritten: string }[];
  expect(image!.failure).toBe('');
  expect(remote!.setAside).toBe(true);
  expect(remote!.failure).toMatch(new RegExp(`link failed: .*the last object the remote confirmed is ${remote!.position} of volume 1`));
  expect(Number(remote!.position)).toBe(Number(remote!.recordsWritten));
  expect(Number(remote!.recordsWritten)).toBeGreaterThan(0);
  expect(Number(remote!.recordsWritten)).toBeLessThan(Number(image!.recordsWritten));
  await local!.stop();
  local = undefined;
  await expectRestoresAlone(dir.path, `${dir.path}/a-%v.tap`, await hashTree(join(dir.path, 'src')));
});

it('the remote paused (a stalled link) and resumed within the grace period: the copy goes on where the remote confirmed; both copies the same', async () => {
  const device = await startLocal(grpcSink(await startRemote('capacity=64M&rate=3M'), '&keepalive=1&timeout=3&grace=60'));
  const tar = tarCreate(device, dir.path);
  await grows(join(dir.path, 'remote', 'r-1.tap'), MiB);
  await rig.docker(['pause', container!.getId()]);
  while (!local!.log().includes('reconnecting to resume')) await sleep(100);
  await rig.docker(['unpause', container!.getId()]);
  await tar;
  expect(local!.log()).toMatch(/resumed on the remote drive at the position it confirmed/);
  await local!.stop();
  local = undefined;
  await container!.stop();
  container = undefined;
  expect(await expectSameVolumes(`${dir.path}/a-%v.tap`, `${dir.path}/remote/r-%v.tap`)).toBe(1);
  await expectRestoresAlone(dir.path, `${dir.path}/remote/r-%v.tap`, await hashTree(join(dir.path, 'src')));
});
