/**
 * Who may use a drive on this machine: the device (here the FUSE file; a CUSE node gets the same
 * mode and group) is 0660 group tape, so a local user outside the group is refused and one in it is
 * let in, by the kernel; the shim's socket is the daemon's alone (0600 root in a 0700 folder, and gone once
 * the daemon is connected), so nobody can talk to the drive around the device; and the gRPC port, which any local user can reach, asks for a token
 * kept in a file only group tape can read. Real users, made for the test, run real dd and tapeproxy.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { shimBinary } from '../../daemon/frontends/shim/shim-supervisor.js';
import { CLI, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

const OUTSIDER = 'tpx-outsider';
const OPERATOR = 'tpx-operator';
const dir = useTempDir('all');
let daemon: RunningDaemon | undefined;
let device: string;
let token: string;

beforeAll(async () => {
  for (const [user, groups] of [[OUTSIDER, []], [OPERATOR, ['-G', 'tape']]] as const) {
    await execa('userdel', [user], { reject: false });
    await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', ...groups, user]);
  }
  // Other users must be able to reach the device's folder; the test's temp folder is 0700.
  await execa('chmod', ['0755', dir.path]);
  device = join(dir.path, 'pnst0');
  token = join(dir.path, 'token');
  await writeFile(token, `${randomBytes(24).toString('hex')}\n`, { mode: 0o640 });
  await execa('chgrp', ['tape', token]);
  daemon = await startDaemon(['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--sink', 'mem:', '--token-file', token]);
});
afterAll(async () => {
  await daemon?.stop();
  for (const user of [OUTSIDER, OPERATOR]) await execa('userdel', [user], { reject: false });
});

/** Runs a command as `user` with that user's groups only. */
function as(user: string, command: string[]) {
  return execa('setpriv', ['--reuid', user, '--regid', user, '--init-groups', '--', ...command], { reject: false });
}

it('the device is 0660 group tape: a user outside the group is refused, one in it writes', async () => {
  const st = await stat(device);
  expect(st.mode & 0o777).toBe(0o660);
  const { stdout: group } = await execa('stat', ['-c', '%G', device]);
  expect(group).toBe('tape');

  const refused = await as(OUTSIDER, ['dd', 'if=/dev/zero', `of=${device}`, 'bs=10240', 'count=1']);
  expect(refused.exitCode).not.toBe(0);
  expect(refused.stderr).toMatch(/Permission denied/);
  const status = await as(OUTSIDER, ['mt', '-f', device, 'status']);
  expect(status.exitCode).not.toBe(0);

  const allowed = await as(OPERATOR, ['dd', 'if=/dev/zero', `of=${device}`, 'bs=10240', 'count=1']);
  expect(allowed.exitCode, allowed.stderr).toBe(0);
});

it("the shim's socket is the daemon's alone: another user cannot connect to it", async () => {
  // The daemon's shim took its one connection and removed the path; the folder is root's alone.
  const run = join(dir.path, 'run');
  expect(existsSync(join(run, 'pnst0.sock'))).toBe(false);
  expect((await stat(run)).mode & 0o777).toBe(0o700);
  // A shim still waiting for its daemon, its socket in a folder others can reach: 0600 root.
  const socket = join(dir.path, 'waiting.sock');
  const shim = execa(shimBinary(), ['--socket', socket, '--fuse', join(dir.path, 'waiting')], { reject: false });
  await waitFor('the shim making its socket', async () => existsSync(socket));
  const st = await stat(socket);
  expect(st.mode & 0o777).toBe(0o600);
  expect(st.uid).toBe(0);
  const connect = `require('net').connect(${JSON.stringify(socket)}).on('connect', () => process.exit(0)).on('error', (e) => { console.error(e.code); process.exit(1); })`;
  for (const user of [OUTSIDER, OPERATOR]) {
    const r = await as(user, [process.execPath, '-e', connect]);
    expect(r.exitCode, `${user} connected to the shim's socket`).toBe(1);
    expect(r.stderr).toMatch(/EACCES/);
  }
  shim.kill('SIGTERM');
  expect((await shim).exitCode).toBe(0); // asked to stop before a daemon came
  expect(existsSync(socket)).toBe(false);
});

it('gRPC asks for the token, which only group tape can read: the outsider is refused, the operator is served', async () => {
  const status = (user: string, ...extra: string[]) => as(user, [process.execPath, CLI, 'status', 'pnst0', '--server', daemon!.address, ...extra]);
  const bare = await status(OUTSIDER);
  expect(bare.exitCode).toBe(1);
  expect(bare.stderr).toMatch(/UNAUTHENTICATED|token/i);
  const unreadable = await status(OUTSIDER, '--token-file', token);
  expect(unreadable.exitCode).toBe(1);
  expect(unreadable.stderr).toContain(`--token-file: cannot read ${token}: EACCES`);
  const served = await status(OPERATOR, '--token-file', token);
  expect(served.exitCode, served.stderr).toBe(0);
  expect(served.stdout).toMatch(/^pnst0: volume 1/);
  // The same through the environment, as tapeproxy-rsh's rmt sessions get it.
  const viaEnv = await execa('setpriv', ['--reuid', OPERATOR, '--regid', OPERATOR, '--init-groups', '--', process.execPath, CLI, 'status', '--server', daemon!.address], {
    env: { TAPEPROXY_TOKEN_FILE: token },
    reject: false,
  });
  expect(viaEnv.exitCode, viaEnv.stderr).toBe(0);
});
