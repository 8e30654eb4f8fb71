/**
 * What deploy/ ships: the example config is valid and means what its comments say; the systemd unit
 * passes systemd-analyze verify and keeps its sandbox; the udev rule parses and gives the device
 * group tape, mode 0660, as udev itself applies it.
 */
import { execa, execaSync } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../daemon/config/config.js';
import { useTempDir } from '../support/temp-dir.js';

const deploy = (name: string) => fileURLToPath(new URL(`../../deploy/${name}`, import.meta.url));
const tmp = useTempDir();

it('the example config in deploy/ is valid and means what its comments say', async () => {
  const config = await loadConfigFile(deploy('tapeproxy.example.yaml'));
  expect(config).toEqual({
    listen: '127.0.0.1:7070',
    runtimeDir: '/run/tapeproxy',
    drives: [
      {
        name: 'pnst0',
        sinks: [
          'file:/srv/tapes/pnst0-a-%v.tap?capacity=18T&early-warning=20G',
          'file:/srv/tapes/pnst0-b-%v.tap?capacity=18T&early-warning=20G',
        ],
        maxRecord: 1 << 20,
        window: 16 << 20,
        minCopies: 2,
      stallTimeoutMs: 120_000,
        autoload: true,
        device: { kind: 'cuse', name: 'pnst0' },
        deviceMode: '0660',
        deviceGroup: 'tape',
        followWriter: true,
        manifestHash: 'blake3',
      },
    ],
  });
});

describe('systemd unit', () => {
  const unit = deploy('tapeproxy.service');

  it('passes systemd-analyze verify; a broken copy does not', async () => {
    const ok = await execa('systemd-analyze', ['verify', '--man=no', unit], { reject: false });
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);

    const broken = join(tmp.path, 'tapeproxy.service');
    await writeFile(broken, (await readFile(unit, 'utf8')).replace('ExecStart=/usr/bin/node', 'ExecStart=/usr/bin/no-such-node'));
    const bad = await execa('systemd-analyze', ['verify', '--man=no', broken], { reject: false });
    expect(bad.stderr).toContain('/usr/bin/no-such-node is not executable');
    expect(bad.exitCode).not.toBe(0);
  });

  it('runs the daemon where the README installs it, with the config from deploy/', async () => {
    const text = await readFile(unit, 'utf8');
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/tapeproxy\/dist\/client\/tapeproxy\.js daemon --config \/etc\/tapeproxy\/tapeproxy\.yaml$/m);
    const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    for (const step of ['/opt/tapeproxy', 'deploy/tapeproxy.service /etc/systemd/system/', 'deploy/tapeproxy.example.yaml /etc/tapeproxy/tapeproxy.yaml', 'deploy/60-tapeproxy.rules /etc/udev/rules.d/']) {
      expect(readme, step).toContain(step);
    }
  });

  it("keeps systemd's exposure rating at OK or better (the sandbox is in place)", async () => {
    // A UTF-8 locale, for the check marks (in C, systemd writes + and - instead).
    const r = await execa('systemd-analyze', ['security', '--offline=true', unit], { reject: false, env: { LC_ALL: 'C.UTF-8' } });
    const [, score, label] = /Overall exposure level for tapeproxy\.service: ([\d.]+) (\w+)/.exec(r.stdout) ?? [];
    expect(['SAFE', 'OK'], `exposure ${score}`).toContain(label);
    for (const kept of ['ProtectSystem=', 'NoNewPrivileges=', 'PrivateTmp=', 'ProtectHome=', 'RestrictAddressFamilies=~AF_PACKET']) {
      expect(r.stdout).toMatch(new RegExp(`✓ ${kept.replace(/[.*+?^$()|[\]\\]/g, '\\$&')}`));
    }
  });
});

describe('udev rule', () => {
  /**
   * udevadm test on /dev/null's sysfs entry, in a private mount namespace whose /dev, /run and rule
   * directories are fresh tmpfs: udev applies the rules it reads to a /dev/null made there, never
   * to the machine's. (This host has no CUSE device to test the rule's match on; the kernel rig's
   * case 10-cuse-mt checks that /dev/pnst0 is in the cuse subsystem.)
   */
  async function udevTest(rules: string) {
    const script = [
      'set -e',
      'mount -t tmpfs none /dev && mknod -m 0666 /dev/null c 1 3',
      'mount -t tmpfs none /run',
      'mount -t tmpfs none /etc/udev/rules.d',
      'mount -t tmpfs none /usr/lib/udev/rules.d',
      'cp "$1" /etc/udev/rules.d/60-tapeproxy.rules',
      'udevadm test --action=add /sys/devices/virtual/mem/null 2>&1',
      'echo "node: $(stat -c "%a %G" /dev/null)"',
    ].join('\n');
    const r = await execa('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script, 'udev-test', rules], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    return r.stdout;
  }

  it('parses without a complaint from udev', async () => {
    const out = await udevTest(deploy('60-tapeproxy.rules'));
    expect(out).toContain('Reading rules file: /etc/udev/rules.d/60-tapeproxy.rules');
    expect(out).not.toMatch(/60-tapeproxy\.rules:\d+ (?!GROUP|MODE)/); // udev reports a bad line as FILE:LINE and what is wrong
    const broken = join(tmp.path, 'broken.rules');
    await writeFile(broken, (await readFile(deploy('60-tapeproxy.rules'), 'utf8')).replace('GROUP=', 'GRUOP='));
    expect(await udevTest(broken)).toMatch(/60-tapeproxy\.rules:\d+ Invalid key 'GRUOP'/);
  });

  // udevadm verify arrived in systemd 253 (Debian 12 has 252): where it exists, it checks the file too.
  const hasVerify = execaSync('udevadm', ['verify', '--help'], { reject: false }).exitCode === 0;
  it.skipIf(!hasVerify)('passes udevadm verify', async () => {
    const r = await execa('udevadm', ['verify', deploy('60-tapeproxy.rules')], { reject: false });
    expect([r.exitCode, r.stderr]).toEqual([0, '']);
  });

  it('gives the device group tape and mode 0660 when it matches (matched here on /dev/null instead of a CUSE pnst device)', async () => {
    const text = await readFile(deploy('60-tapeproxy.rules'), 'utf8');
    expect(text).toMatch(/^SUBSYSTEM=="cuse", KERNEL=="pnst\*", /m);
    const onNull = join(tmp.path, 'null.rules');
    await writeFile(onNull, text.replace('SUBSYSTEM=="cuse", KERNEL=="pnst*"', 'SUBSYSTEM=="mem", KERNEL=="null"'));
    const out = await udevTest(onNull);
    expect(out).toMatch(/60-tapeproxy\.rules:\d+ GROUP \d+/);
    expect(out).toContain('node: 660 tape');
  });
});
