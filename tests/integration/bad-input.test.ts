/**
 * Bad input gets a clear error, never a crash: through the gRPC drive protocol (errno replies) and
 * on the command line (one-line message, exit code 2 for usage and configuration mistakes).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../client/drive-session.js';
import { expectErrno } from '../support/errno.js';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('all');
let daemon: RunningDaemon;

beforeAll(async () => {
  daemon = await startDaemon(['--drive', 'pnst0', '--max-record', '64K', '--sink', `file:${dir.path}/a.tap`]);
});
afterAll(async () => {
  await daemon.stop();
});

describe('drive protocol over gRPC', () => {
  it('a request with no operation is EINVAL, an unknown mt op ENOSYS, and the session goes on', async () => {
    const fd = await daemon.session('pnst0', { access: 'read' });
    await expectErrno(fd.request({}), 'EINVAL');
    await expectErrno(fd.mt(99, 1), 'ENOSYS');
    expect((await fd.status()).type).toBe(0x72);
    await fd.close();
  });

  it('a record over the configured maximum is EINVAL and is not written', async () => {
    const fd = await daemon.session('pnst0', { access: 'write' });
    await expectErrno(fd.write(Buffer.alloc(64 * 1024 + 1)), 'EINVAL');
    expect(await fd.position()).toBe(0);
    expect(await fd.write(Buffer.alloc(64 * 1024))).toBe(64 * 1024);
    await fd.close();
  });

  it('writing on a read-only open is EACCES; a second open is EBUSY; an unknown drive ENOENT', async () => {
    const fd = await daemon.session('pnst0', { access: 'read' });
    await expectErrno(fd.write(Buffer.alloc(10)), 'EACCES');
    await expectErrno(daemon.session('pnst0', { access: 'write' }), 'EBUSY');
    await fd.close();
    await expectErrno(daemon.session('nosuch', { access: 'read' }), 'ENOENT');
    (await daemon.session('pnst0', { access: 'read' })).close(); // free again after close
  });

  it('operations before open are EBADF', async () => {
    const client = connect(daemon.address);
    const raw = client.session(); // a stream whose first request is a read, not an open
    const reply = await new Promise<{ error?: { name: string } }>((resolve) => {
      raw.on('data', resolve);
      raw.write({ id: 1, pipelined: false, read: { maxBytes: 10 } });
    });
    raw.end();
    expect(reply.error?.name).toBe('EBADF');
    client.close();
  });

  it('ending the stream with the drive open closes it, writing the filemark', async () => {
    const fd = await daemon.session('pnst0', { access: 'write' });
    await fd.write(Buffer.alloc(100, 1));
    const before = await fd.position();
    (fd as unknown as { call: { end(): void } }).call.end(); // as if the writer exited
    await new Promise((r) => setTimeout(r, 300));
    const again = await daemon.session('pnst0', { access: 'read' }); // no EBUSY: it was closed
    expect(await again.position()).toBe(before + 1); // the close-time filemark
    await again.close();
  });
});

describe('command line', () => {
  it.each([
    [['daemon', '--drive', 'x', '--sink', 'bogus:/a'], /unknown sink type 'bogus'; known types: file, nst, mem, rmt, grpc/],
    [['daemon', '--drive', 'x', '--sink', 'file:/tmp/a.tap?capacity=lots'], /capacity: invalid size 'lots'/],
    [['daemon', '--drive', 'x', '--sink', 'file:/tmp/a.tap?colour=red'], /unknown parameter 'colour'/],
    [['daemon', '--drive', 'x'], /needs at least one --sink/],
    [['daemon'], /give --config FILE, or --drive NAME/],
    [['daemon', '--drive', 'x', '--sink', 'mem:', '--max-record', 'huge'], /--max-record: invalid size 'huge'/],
    [['frobnicate'], /Unknown argument: frobnicate/],
    [['mt', 'pnst0', 'spin'], /unknown mt operation 'spin'/],
    [['daemon', '--config', '/nonexistent.yaml'], /cannot read config file \/nonexistent.yaml/],
  ])('tapeproxy %j fails with exit code 2 and says why', async (args, message) => {
    const r = await cli(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.split('\n')[0]).toMatch(/^tapeproxy: /);
    expect(r.exitCode).toBe(2);
  });

  it('a malformed config file: the key path and what is expected, exit code 2', async () => {
    const file = join(dir.path, 'bad.yaml');
    await writeFile(file, 'drives:\n  - name: pnst0\n    sinks: []\n    window: 3Q\n');
    const r = await cli(['daemon', '--config', file]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('drives[0].sinks: a drive needs at least one sink');
    expect(r.stderr).toContain("drives[0].window: invalid size '3Q'");
    await writeFile(file, 'drives: [unclosed\n');
    const yaml = await cli(['daemon', '--config', file]);
    expect(yaml.exitCode).toBe(2);
    expect(yaml.stderr).toContain('is not valid YAML');
  });

  it('a daemon whose shim cannot run exits 1 with the reason, instead of waiting for the shim', async () => {
    const args = ['daemon', '--drive', 'x', '--sink', 'mem:', '--fuse', join(dir.path, 'x'), '--runtime-dir', join(dir.path, 'run'), '--listen', '127.0.0.1:0'];
    const r = await cli(args, undefined, { TAPEPROXY_SHIM: join(dir.path, 'no-such-shim') });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^tapeproxy: the shim for drive x \(.*no-such-shim\) exited before its device was ready: spawn .*no-such-shim ENOENT/);
  });

  it('an operation that fails on the drive exits 1 with the errno message', async () => {
    const r = await cli(['--server', daemon.address, 'mt', 'nosuch', 'status']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^tapeproxy: ENOENT: no drive named 'nosuch'/);
  });
});
