/**
 * `tapeproxy config check FILE` and `tapeproxy daemon --config FILE` judge a config file alike:
 * a malformed one gets one line naming the key and what is expected, exit code 2, and no daemon.
 */
import { execa } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const dir = useTempDir('all');

/** A config of one drive; `drive` lines replace the drive's defaults, `top` lines are added. */
function config({ sinks = ['file:DIR/tapes/a-%v.tap?capacity=1G'], drive = [] as string[], top = [] as string[] } = {}): string {
  return [...top, 'drives:', '  - name: pnst0', '    sinks:', ...sinks.map((s) => `      - '${s}'`), ...drive.map((l) => `    ${l}`), ''].join('\n');
}

const MALFORMED: [what: string, yaml: string, error: string][] = [
  ['drives is not a list', 'drives: pnst0\n', 'drives: Invalid input: expected array, received string'],
  ['a boolean that is not', config({ drive: ['autoload: sometimes'] }), 'drives[0].autoload: Invalid input: expected boolean, received string'],
  ['a number that is not', config({ drive: ['min-copies: two'] }), 'drives[0].min-copies: Invalid input: expected number, received string'],
  ['an unknown top-level key', config({ top: ['listne: 127.0.0.1:7070'] }), "(top level): unknown key 'listne'; known keys here: listen, tls, token-file, allow-plaintext, runtime-dir, catalog-dir, drives, metrics, record-port"],
  ['an unknown drive key', config({ drive: ['max-records: 1M'] }), "drives[0]: unknown key 'max-records'; known keys here: name, sinks, max-record, window"],
  ['an unknown sink type', config({ sinks: ['ftp:/srv/a.tap'] }), "drives[0].sinks[0]: sink 'ftp:/srv/a.tap': unknown sink type 'ftp'; known types: file, nst, mem"],
  [
    'an unknown sink parameter',
    config({ sinks: ['file:DIR/tapes/a.tap?capacity=18T&earlywarning=20G'] }),
    "drives[0].sinks[0]: sink 'file:DIR/tapes/a.tap?capacity=18T&earlywarning=20G': unknown parameter 'earlywarning' for file:; known: capacity, early-warning",
  ],
  ['a negative size', config({ drive: ['window: -16M'] }), "drives[0].window: invalid size '-16M': expected a number with an optional K, M, G or T suffix"],
  [
    'a negative size in a sink URI',
    config({ sinks: ['file:DIR/tapes/a.tap?capacity=-1G'] }),
    "drives[0].sinks[0]: sink 'file:DIR/tapes/a.tap?capacity=-1G': capacity: invalid size '-1G'",
  ],
  [
    "a missing images' directory",
    config({ sinks: ['file:DIR/tapes/a-%v.tap', 'file:DIR/missing/b-%v.tap'] }),
    "drives[0].sinks[1]: sink 'file:DIR/missing/b-%v.tap': the images' directory DIR/missing does not exist",
  ],
  ['a missing tape device', config({ sinks: ['nst:/dev/nst97'] }), "drives[0].sinks[0]: sink 'nst:/dev/nst97': the tape device /dev/nst97 does not exist"],
  ['a bad metrics address', config({ top: ['metrics: 127.0.0.1:99999'] }), "metrics: expected HOST:PORT or PORT, such as 127.0.0.1:9464, not '127.0.0.1:99999'"],
];

beforeAll(async () => {
  await mkdir(join(dir.path, 'tapes'));
});

async function write(name: string, yaml: string): Promise<string> {
  const file = join(dir.path, name);
  await writeFile(file, yaml.replaceAll('DIR', dir.path));
  return file;
}

describe('a malformed config', () => {
  it.each(MALFORMED)('%s: one line with the key path, exit code 2, for config check and for the daemon, which does not start', async (_what, yaml, error) => {
    const file = await write('bad.yaml', yaml);
    const expected = `tapeproxy: ${file}: ${error.replaceAll('DIR', dir.path)}`;

    const check = await cli(['config', 'check', file]);
    expect(check.stderr.startsWith(expected), check.stderr).toBe(true);
    expect(check.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(check.stdout.toString()).toBe('');
    expect(check.exitCode).toBe(2);

    // A daemon that started would run until killed: the timeout turns that into a failure here.
    const daemon = await execa('node', [CLI, 'daemon', '--config', file, '--listen', '127.0.0.1:0'], { reject: false, timeout: 30_000 });
    expect(daemon.timedOut).toBe(false);
    expect(daemon.stdout).not.toContain('listening');
    expect(daemon.stderr.trimEnd()).toBe(check.stderr.trimEnd());
    expect(daemon.exitCode).toBe(2);
  });
});

describe('a valid config', () => {
  it('config check says what it holds and exits 0', async () => {
    const file = await write('good.yaml', config({ sinks: ['file:DIR/tapes/a-%v.tap?capacity=1G', 'mem:spare'], drive: ['fuse: DIR/pnst0'], top: ['metrics: 9464'] }));
    const r = await cli(['config', 'check', file]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe(`${file}: valid: 1 drive pnst0 (2 copies, fuse); gRPC 127.0.0.1:7070; metrics 127.0.0.1:9464`);
    expect(r.exitCode).toBe(0);
  });

  it('the example config in deploy/ passes where its images directory exists', async () => {
    const example = await readFile(new URL('../../deploy/tapeproxy.example.yaml', import.meta.url), 'utf8');
    const file = await write('example.yaml', example.replaceAll('/srv/tapes', join(dir.path, 'tapes')));
    const r = await cli(['config', 'check', file]);
    expect(r.stdout.toString()).toBe(`${file}: valid: 1 drive pnst0 (2 copies, cuse); gRPC 127.0.0.1:7070; metrics off`);
    expect(r.exitCode).toBe(0);
  });
});
