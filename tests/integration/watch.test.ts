/**
 * `tapeproxy watch` while GNU tar writes a multi-volume archive through the drive's FUSE file to two
 * copies: in a real terminal (tmux, captured as the screen shows it) and as plain lines when stdout
 * is not a terminal, both fed by the daemon's gRPC Watch stream.
 */
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';
import { makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
/** A tmux server of this test's own (-L), so the tests never touch another tmux. */
const TMUX = ['-L', `tapeproxy-watch-${process.pid}`];
let tmuxStarted = false;

afterEach(async () => {
  if (tmuxStarted) await execa('tmux', [...TMUX, 'kill-server'], { reject: false });
  tmuxStarted = false;
  await daemon?.stop();
  daemon = undefined;
});

/**
 * A drive as a FUSE file, copy A of 4 MiB volumes (early warning 512 KiB before the end), copy B of
 * 64 MiB; both written at 3 MiB/s (rate=), as slow drives would be, so the run lasts seconds.
 */
async function slowDrive(): Promise<string> {
  const device = join(dir.path, 'pnst0');
  daemon = await startDaemon([
    '--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'),
    '--sink', `file:${dir.path}/a-%v.tap?capacity=4M&early-warning=512K&rate=3M&fsync=false`,
    '--sink', `file:${dir.path}/b-%v.tap?capacity=64M&rate=3M&fsync=false`,
  ]);
  return device;
}

function tarTo(device: string): ResultPromise {
  return execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', device, 'src'], { cwd: dir.path, stdin: 'ignore' });
}

/** Repeats `probe` until `done` resolves; returns what the probes returned. */
async function whileRunning<T>(done: Promise<unknown>, probe: () => Promise<T>): Promise<T[]> {
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  const seen: T[] = [];
  while (!finished) {
    seen.push(await probe());
    await sleep(200);
  }
  await done;
  return seen;
}

describe('tapeproxy watch', () => {
  it('in a terminal: both copies, their rates and volume numbers, live during a tar run, then the events', async () => {
    await makeTree(join(dir.path, 'src'), 10 * 2 ** 20);
    const device = await slowDrive();
    // The pane keeps its last screen and says how watch ended, should it end.
    const command = `node ${CLI} --server ${daemon!.address} watch --interval 0.2; echo "watch exited: $?"; sleep 600`;
    await execa('tmux', [...TMUX, 'new-session', '-d', '-s', 'watch', '-x', '160', '-y', '40', command]);
    tmuxStarted = true;
    const capture = async () => (await execa('tmux', [...TMUX, 'capture-pane', '-p', '-t', 'watch'])).stdout;
    // Watch shows events from when it connects: the backup starts once it has (on a loaded machine
    // the first volume's early warning came before a slow start of watch).
    await waitFor('watch showing the drive', async () => /pnst0 {2}IDLE/.test(await capture()));

    const screens = await whileRunning(tarTo(device), capture);
    const copyA = `file:${dir.path}/a-%v.tap`;
    const copyB = `file:${dir.path}/b-%v.tap`;
    // A screen during the run: the drive writing, each copy with a volume, a rate above zero, a bar.
    const live = screens.find(
      (s) =>
        /pnst0 {2}(WRITING|EW REACHED) {2}volume \d+/.test(s) &&
        new RegExp(`${escape(copyA)}\\n +(writing|EW reached) +volume \\d+ .* now [1-9][\\d.]* (KiB|MiB)/s`).test(s) &&
        new RegExp(`${escape(copyB)}\\n +(writing|EW reached) +volume \\d+ .* now [1-9][\\d.]* (KiB|MiB)/s`).test(s) &&
        /\[#+-*\] +\d+% +[\d.]+ (KiB|MiB) to early warning/.test(s),
    );
    expect(live, `no screen showed both copies writing with a rate; the last one:\n${screens.at(-1)}`).toBeDefined();
    // Volume changes are on the screen as they happen: a later volume than the first.
    expect(screens.some((s) => /pnst0 {2}\w[\w ]* {2}volume [2-9]/.test(s)), screens.at(-1)).toBe(true);

    await sleep(500); // the next snapshot after tar's end
    const after = await capture();
    const volumes = (await daemon!.status('pnst0')).state!.volume;
    expect(volumes).toBeGreaterThanOrEqual(3);
    expect(after).toMatch(new RegExp(`pnst0 {2}IDLE {2}volume ${volumes} `));
    expect(after).toMatch(new RegExp(`early warning on ${escape(copyA)} \\(volume 1\\)`));
    expect(after).toContain('volume 2 loaded');
    expect(after).not.toContain('watch exited');
  });

  it('not on a terminal: one logfmt line per copy per snapshot and per event, with the bytes growing on both copies', async () => {
    await makeTree(join(dir.path, 'src'), 6 * 2 ** 20);
    const device = await slowDrive();
    const watch = execa('node', [CLI, '--server', daemon!.address, 'watch', '--interval', '0.2'], { reject: false });
    const lines: string[] = [];
    watch.stdout!.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    await waitFor('watch connected', async () => lines.length > 0); // see above
    await tarTo(device);
    await sleep(500);
    watch.kill('SIGTERM'); // as Ctrl-C: watch ends the stream and exits 0
    const { exitCode, stderr } = await watch;
    expect(stderr).toBe('');
    expect(exitCode).toBe(0);

    const parsed = lines.map(parseLine);
    for (const [i, line] of parsed.entries()) expect(line, lines[i]).not.toBeNull();
    const copies = parsed.filter((l) => l!.sink && !l!.event);
    for (const copy of ['a', 'b']) {
      const bytes = copies.filter((l) => l!.sink === `file:${dir.path}/${copy}-%v.tap`).map((l) => Number(l!.bytes));
      expect(new Set(bytes).size, `copy ${copy}: bytes over the snapshots`).toBeGreaterThanOrEqual(3);
      expect(bytes).toEqual([...bytes].sort((x, y) => x - y));
    }
    expect(copies.some((l) => Number(l!.rate) > 0)).toBe(true);
    const events = parsed.filter((l) => l!.event).map((l) => `${l!.event} ${l!.volume}${l!.sink ? ` ${l!.sink}` : ''}`);
    expect(events).toContain(`early-warning 1 file:${dir.path}/a-%v.tap`);
    expect(events).toContain('logical-eot 1');
    expect(events).toContain('volume-loaded 2');
    expect(events.indexOf('volume-loaded 2')).toBeGreaterThan(events.indexOf('logical-eot 1'));
  });

  it('--json --count 2: two snapshots as JSON lines (the gRPC replies), then exit 0', async () => {
    await slowDrive();
    const r = await cli(['--server', daemon!.address, 'watch', 'pnst0', '--json', '--count', '2', '--interval', '0.1']);
    expect(r.exitCode).toBe(0);
    const replies = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { snapshot?: { drives: { name: string; sinks: unknown[] }[] } });
    const snapshots = replies.filter((x) => x.snapshot);
    expect(snapshots).toHaveLength(2);
    expect(snapshots[0]!.snapshot!.drives.map((d) => [d.name, d.sinks.length])).toEqual([['pnst0', 2]]);
  });

  it('a drive that does not exist, or no daemon: a clear error, exit code 1', async () => {
    await slowDrive();
    const missing = await cli(['--server', daemon!.address, 'watch', 'nosuch']);
    expect(missing.stderr).toBe("tapeproxy: no drive named 'nosuch'; drives: pnst0");
    expect(missing.exitCode).toBe(1);
    const address = daemon!.address;
    await daemon!.stop();
    daemon = undefined;
    const gone = await cli(['--server', address, 'watch']);
    expect(gone.stderr).toMatch(new RegExp(`^tapeproxy: cannot reach the daemon at ${escape(address)}: `));
    expect(gone.exitCode).toBe(1);
  });
});

/** A logfmt line after its ISO time: its fields, or null if it is not one. */
function parseLine(line: string): Record<string, string> | null {
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (.*)$/.exec(line);
  if (!m) return null;
  const fields: Record<string, string> = {};
  const rest = m[2]!.replace(/(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+) ?/g, (_all, key: string, value: string) => {
    fields[key] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
    return '';
  });
  return rest === '' ? fields : null;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
