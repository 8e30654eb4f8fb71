import { execa, type ResultPromise } from 'execa';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../../daemon/package-root.js';

/**
 * A private Docker daemon for one test file (CI machines have none running and no systemd), with
 * its images cached in /var/cache/tapeproxy-docker so a second run builds nothing. No registry is
 * reachable: the base image deploy/Dockerfile starts FROM (node:20-bookworm-slim) is made here
 * from a debootstrap tree of Debian 12 and this machine's node and npm.
 */
const CACHE = '/var/cache/tapeproxy-docker';
export const IMAGE = 'tapeproxy:test';
const BASE = 'node:20-bookworm-slim';

export interface DockerRig {
  /** DOCKER_HOST for the docker CLI and testcontainers (also set in process.env). */
  host: string;
  docker(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startDocker(): Promise<DockerRig> {
  const restoreHost = await hostNetworkState();
  // A short exec root: containerd's socket paths must stay under the Unix socket limit.
  const execRoot = await mkdtemp('/run/tpd-');
  const socket = join(execRoot, 'docker.sock');
  const dockerd: ResultPromise = execa(
    'dockerd',
    ['--data-root', join(CACHE, 'data'), '--exec-root', execRoot, '-H', `unix://${socket}`, '--pidfile', join(execRoot, 'dockerd.pid')],
    { reject: false, stdin: 'ignore', all: true, buffer: true },
  );
  const host = `unix://${socket}`;
  const env = { ...process.env, DOCKER_HOST: host };
  const docker = async (args: string[]) => (await execa('docker', args, { env })).stdout;
  const stop = async () => {
    dockerd.kill('SIGTERM');
    await dockerd;
    await rm(execRoot, { recursive: true, force: true });
    await restoreHost();
  };
  try {
    await waitFor(() => execa('docker', ['version'], { env }).then(() => true, () => false), dockerd, 'dockerd');
    Object.assign(process.env, { DOCKER_HOST: host, TESTCONTAINERS_RYUK_DISABLED: 'true' });
    await buildImages(docker);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, docker, stop };
}

/** The base image (once per cache) and tapeproxy:test from the built checkout (layers cached). */
async function buildImages(docker: (args: string[]) => Promise<string>): Promise<void> {
  if (!(await docker(['images', '-q', BASE]))) {
    const tarball = await debianTree();
    await docker(['import', tarball, 'tapeproxy-base/debian:bookworm']);
    const context = await mkdtemp(join(CACHE, 'node-'));
    try {
      const npm = dirname(dirname(realpathSync(join(dirname(process.execPath), 'npm')))); // .../node_modules/npm
      await mkdir(join(context, 'bin'));
      await execa('cp', [process.execPath, join(context, 'bin', 'node')]);
      await execa('cp', ['-a', npm, join(context, 'npm')]);
      await writeFile(
        join(context, 'Dockerfile'),
        [
          'FROM tapeproxy-base/debian:bookworm',
          'COPY bin/node /usr/local/bin/node',
          'COPY npm /usr/local/lib/node_modules/npm',
          'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx',
          'CMD ["node"]',
          '',
        ].join('\n'),
      );
      await docker(['build', '-q', '-t', BASE, context]);
    } finally {
      await rm(context, { recursive: true, force: true });
    }
  }
  await docker(['build', '-q', '-f', 'deploy/Dockerfile', '-t', IMAGE, packageRoot()]);
}

/** A minimal Debian 12 tree as a tarball, from this machine's Debian mirror (once per cache). */
async function debianTree(): Promise<string> {
  const tarball = join(CACHE, 'bookworm-minbase.tar');
  if (existsSync(tarball)) return tarball;
  await mkdir(CACHE, { recursive: true });
  const tree = await mkdtemp(join(CACHE, 'rootfs-'));
  try {
    await execa('debootstrap', ['--variant=minbase', 'bookworm', tree, await debianMirror()]);
    await execa('sh', ['-c', `tar -C ${tree} -cf ${tarball}.tmp . && mv ${tarball}.tmp ${tarball}`]);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  return tarball;
}

async function debianMirror(): Promise<string> {
  const sources = await readdir('/etc/apt/sources.list.d').catch(() => []);
  for (const file of [...sources.map((f) => join('/etc/apt/sources.list.d', f)), '/etc/apt/sources.list']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const uri = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\b/m.exec(text)?.[1];
    if (uri) return uri;
  }
  return 'http://deb.debian.org/debian';
}

async function waitFor(ready: () => Promise<boolean>, proc: ResultPromise, what: string): Promise<void> {
  let exited = false;
  void proc.then(() => (exited = true));
  for (let i = 0; i < 300 && !exited; i++) {
    if (await ready()) return;
    await sleep(100);
  }
  throw new Error(`${what} did not come up${exited ? `: ${String((await proc).all).slice(-2000)}` : ''}`);
}

/**
 * What dockerd changes on the host and leaves behind when it stops (its iptables chains and
 * FORWARD policy, IP forwarding, the docker0 bridge); the returned function puts it back.
 */
async function hostNetworkState(): Promise<() => Promise<void>> {
  const rules = (await execa('iptables-save')).stdout;
  const forwarding = await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8');
  const bridge = existsSync('/sys/class/net/docker0');
  return async () => {
    await execa('iptables-restore', { input: `${rules}\n` });
    await writeFile('/proc/sys/net/ipv4/ip_forward', forwarding);
    if (!bridge) await execa('ip', ['link', 'del', 'docker0'], { reject: false });
  };
}
