import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Sshd {
  port: number;
  /** The ssh command (and options) that logs in to it as root with the test key: an rmt sink's rsh. */
  rsh: string[];
  stop(): Promise<void>;
}

/**
 * A private sshd on 127.0.0.1 for one test file: its own host key, a client key that root may log
 * in with, no passwords; it runs in the foreground and is stopped by its process id.
 */
export async function startSshd(dir: string): Promise<Sshd> {
  await mkdir(dir, { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const key of [hostKey, clientKey]) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await execa('cp', [`${clientKey}.pub`, join(dir, 'authorized_keys')]);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no', // the key files live in a temporary directory
      '',
    ].join('\n'),
  );
  // sshd checks for its privilege separation directory, which Debian's init script makes.
  const madeRunDir = !existsSync('/run/sshd');
  if (madeRunDir) await mkdir('/run/sshd', { mode: 0o755 });
  const proc: ResultPromise = execa('/usr/sbin/sshd', ['-D', '-e', '-f', config], { reject: false, stdin: 'ignore' });
  await waitForPort(port, proc);
  return {
    port,
    rsh: ['ssh', '-p', String(port), '-i', clientKey, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'],
    async stop() {
      proc.kill('SIGTERM');
      await proc;
      if (madeRunDir) await rm('/run/sshd', { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port: number, proc: ResultPromise): Promise<void> {
  let exited = false;
  void proc.then(() => (exited = true));
  for (let i = 0; i < 100 && !exited; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    await sleep(100);
  }
  const r = await Promise.race([proc, sleep(0)]);
  throw new Error(`sshd did not start on port ${port}: ${r ? String(r.stderr) : 'no answer'}`);
}
