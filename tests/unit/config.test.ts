import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, loadConfigFile, MAX_RECORD_LIMIT, validateConfig } from '../../daemon/config/config.js';
import { checkConfigPaths } from '../../daemon/config/config-paths.js';
import { formatSize, parseSize } from '../../daemon/config/size.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';
import { SinkUriError, sinkFromUri } from '../../daemon/sinks/sink-uri.js';
import { useTempDir } from '../support/temp-dir.js';

/** A drive without a kernel device still carries the device defaults, and the manifests' hash. */
const DRIVE_DEFAULTS = { deviceMode: '0660', deviceGroup: 'tape', followWriter: true, manifestHash: 'blake3' };
const K = 2 ** 10;
const M = 2 ** 20;
const G = 2 ** 30;
const T = 2 ** 40;

const tmp = useTempDir();

describe('parseSize', () => {
  it('parses byte counts with binary suffixes', () => {
    expect(parseSize('10240')).toBe(10240);
    expect(parseSize('10K')).toBe(10 * K);
    expect(parseSize('1.5M')).toBe(1.5 * M);
    expect(parseSize('18T')).toBe(18 * T);
    expect(parseSize('20GiB')).toBe(20 * G);
    expect(parseSize('20GB')).toBe(20 * G);
    expect(parseSize('4k')).toBe(4 * K);
    expect(parseSize(' 2 P ')).toBe(2 * 2 ** 50);
    expect(parseSize('0')).toBe(0);
    expect(parseSize(65536)).toBe(65536);
  });

  it('rejects what is not a size, saying what is expected', () => {
    for (const bad of ['', '12Q', '-1', 'K', '1.5.2M', '10 K B']) {
      expect(() => parseSize(bad)).toThrow(
        `invalid size '${bad}': expected a number with an optional K, M, G or T suffix`,
      );
    }
    expect(() => parseSize(-1)).toThrow('invalid size -1: expected a whole number of bytes');
    expect(() => parseSize(1.5)).toThrow('invalid size 1.5: expected a whole number of bytes');
    expect(() => parseSize('99999999P')).toThrow("size '99999999P' is too large");
  });
});

describe('formatSize', () => {
  it('uses the largest unit that divides the size exactly', () => {
    expect(formatSize(0)).toBe('0');
    expect(formatSize(1000)).toBe('1000');
    expect(formatSize(10240)).toBe('10K');
    expect(formatSize(1.5 * M)).toBe('1536K');
    expect(formatSize(16 * M)).toBe('16M');
    expect(formatSize(20 * G)).toBe('20G');
    expect(formatSize(18 * T)).toBe('18T');
    expect(formatSize(M + 1)).toBe(String(M + 1));
  });

  it('round-trips through parseSize', () => {
    for (const bytes of [1, 1023, 1024, 10240, 1.5 * M, 20 * G, 18 * T]) expect(parseSize(formatSize(bytes))).toBe(bytes);
  });
});

describe('sinkFromUri', () => {
  it('builds file and mem sinks with their capacity model', () => {
    const file = sinkFromUri('file:/srv/tapes/a-%v.tap?capacity=18T&early-warning=20G&fsync=false');
    expect(file).toBeInstanceOf(FileSink);
    expect(file.name).toBe('file:/srv/tapes/a-%v.tap');
    expect(file.status()).toMatchObject({ capacity: 18 * T, earlyWarningAt: 18 * T - 20 * G, loaded: false });

    const mem = sinkFromUri('mem:?capacity=1000'); // early warning defaults to 2% of capacity
    expect(mem).toBeInstanceOf(MemorySink);
    expect(mem.name).toBe('mem:tape');
    expect(mem.status()).toMatchObject({ capacity: 1000, earlyWarningAt: 980 });
    expect(sinkFromUri('mem:spare').status()).toMatchObject({ name: 'mem:spare', capacity: undefined });
  });

  it('write-protects a file sink with a bare readonly flag', async () => {
    const sink = sinkFromUri(`file:${tmp.path}/a.tap?readonly`);
    expect(await sink.load(1)).toEqual({ writeProtected: true });
    await sink.close();
    const writable = sinkFromUri(`file:${tmp.path}/b.tap?readonly=no`);
    expect(await writable.load(1)).toEqual({ writeProtected: false });
    await writable.close();
  });

  it('names the known types for an unknown type', () => {
    expectUriError('tape:/dev/nst0', "sink 'tape:/dev/nst0': unknown sink type 'tape'; known types: file, nst, mem, rmt, grpc");
    expectUriError('/srv/a.tap', "sink '/srv/a.tap': unknown sink type ''; known types: file, nst, mem, rmt, grpc");
  });

  it('names the known parameters for an unknown parameter', () => {
    expectUriError(
      'file:/a.tap?speed=1M',
      "sink 'file:/a.tap?speed=1M': unknown parameter 'speed' for file:; known: capacity, early-warning, readonly, fsync, rate",
    );
    expectUriError(
      'mem:x?readonly',
      "sink 'mem:x?readonly': unknown parameter 'readonly' for mem:; known: capacity, early-warning",
    );
  });

  it('needs a path for a file sink', () => {
    expectUriError('file:?capacity=1G', "sink 'file:?capacity=1G': a path is needed, as in file:/srv/tapes/a-%v.tap");
  });

  it('checks the capacity model', () => {
    expectUriError(
      'file:/a.tap?capacity=1G&early-warning=1G',
      "sink 'file:/a.tap?capacity=1G&early-warning=1G': early-warning must be smaller than capacity",
    );
    expectUriError('mem:?capacity=1G&early-warning=2G', "sink 'mem:?capacity=1G&early-warning=2G': early-warning must be smaller than capacity");
    expectUriError('file:/a.tap?early-warning=1G', "sink 'file:/a.tap?early-warning=1G': early-warning needs a capacity");
    expectUriError(
      'file:/a.tap?capacity=lots',
      "sink 'file:/a.tap?capacity=lots': capacity: invalid size 'lots': expected a number with an optional K, M, G or T suffix",
    );
  });

  it('builds an nst sink lazily (the drive is opened at load) and checks its parameters', () => {
    const sink = sinkFromUri('nst:/dev/nst7?early-warning=64M&changer=mtx+-f+/dev/sg3+next');
    expect(sink.name).toBe('nst:/dev/nst7');
    expect(sink.earlyWarningZone).toBe(64 * M);
    expectUriError('nst:tape0', "sink 'nst:tape0': a tape device is needed, as in nst:/dev/nst0");
    expectUriError('nst:/dev/st0', "sink 'nst:/dev/st0': use the non-rewinding device (/dev/nst0)");
    expectUriError('nst:/dev/nst0?load-timeout=1h', "sink 'nst:/dev/nst0?load-timeout=1h': load-timeout must be whole seconds, not '1h'");
  });

  it('rejects a flag that is not a boolean', () => {
    expectUriError('file:/a.tap?readonly=maybe', "sink 'file:/a.tap?readonly=maybe': readonly must be true or false, not 'maybe'");
    expectUriError('file:/a.tap?fsync=2', "sink 'file:/a.tap?fsync=2': fsync must be true or false, not '2'");
  });
});

describe('validateConfig', () => {
  it('fills in the defaults', () => {
    expect(validateConfig({ drives: [{ name: 'pnst0', sinks: ['mem:'] }] })).toEqual({
      listen: '127.0.0.1:7070',
      runtimeDir: '/run/tapeproxy', // as root, which the tests run as
      drives: [{ name: 'pnst0', sinks: ['mem:'], maxRecord: M, window: 16 * M, minCopies: 1, stallTimeoutMs: 120_000, autoload: true, ...DRIVE_DEFAULTS }],
    });
    expect(DEFAULTS).toEqual({
      listen: '127.0.0.1:7070',
      runtimeDir: '/run/tapeproxy',
      deviceMode: '0660',
      deviceGroup: 'tape',
      maxRecord: '1M',
      window: '16M',
      autoload: true,
      followWriter: true,
      stallTimeout: 120,
      manifestHash: 'blake3',
    });
  });

  it("manifest-hash: blake3 or sha256, and nothing else", () => {
    const drive = (extra: object) => validateConfig({ drives: [{ name: 'pnst0', sinks: ['mem:'], ...extra }] }).drives[0];
    expect(drive({ 'manifest-hash': 'sha256' })?.manifestHash).toBe('sha256');
    expect(drive({ 'manifest-hash': 'blake3' })?.manifestHash).toBe('blake3');
    expect(() => drive({ 'manifest-hash': 'md5' })).toThrow(/^drives\[0\]\.manifest-hash: .*"blake3".*"sha256"/);
  });

  it('a drive has a FUSE file or a CUSE device (default name: the drive), not both; FUSE records are at most 1M', () => {
    const drive = (extra: object) => validateConfig({ drives: [{ name: 'pnst0', sinks: ['mem:'], ...extra }] }).drives[0];
    expect(drive({ fuse: './pnst0' })?.device).toEqual({ kind: 'fuse', path: './pnst0' });
    expect(drive({ cuse: true })?.device).toEqual({ kind: 'cuse', name: 'pnst0' });
    expect(drive({ cuse: 'tape7', 'device-mode': '0640', 'device-group': 'backup' })).toMatchObject({
      device: { kind: 'cuse', name: 'tape7' },
      deviceMode: '0640',
      deviceGroup: 'backup',
    });
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'], fuse: 'x', cuse: true }] }, 'drives[0].cuse: a drive has either a fuse file or a cuse device, not both');
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'], fuse: 'x', 'max-record': '2M', window: '4M' }] }, 'drives[0].max-record: a FUSE file carries records of at most 1M (its max_write)');
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'], 'device-mode': 'rw' }] }, 'drives[0].device-mode: an octal mode such as 0660');
    expect(drive({ fuse: './pnst0', 'follow-writer': false })?.followWriter).toBe(false);
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'], 'follow-writer': 'no' }] }, 'drives[0].follow-writer: Invalid input: expected boolean, received string');
  });

  it('takes sizes as text or numbers and keeps explicit values', () => {
    const config = validateConfig({
      listen: '0.0.0.0:9000',
      drives: [
        { name: 'a', sinks: ['mem:', `file:${tmp.path}/a-%v.tap?capacity=10G`], 'max-record': '256K', window: 1048576, autoload: false },
        { name: 'b.2_x-y', sinks: ['mem:b'] },
      ],
    });
    expect(config.listen).toBe('0.0.0.0:9000');
    expect(config.drives[0]).toEqual({
      name: 'a',
      sinks: ['mem:', `file:${tmp.path}/a-%v.tap?capacity=10G`],
      maxRecord: 256 * K,
      window: M,
      minCopies: 2,
      stallTimeoutMs: 120_000,
      autoload: false,
      ...DRIVE_DEFAULTS,
    });
    expect(config.drives[1]?.name).toBe('b.2_x-y');
  });

  it('names the key of every problem', () => {
    expectConfigError({ drives: [{ name: 'a', sinks: [] }] }, 'drives[0].sinks: a drive needs at least one sink');
    expectConfigError({ drives: [] }, 'drives: at least one drive is needed');
    expectConfigError({}, 'drives: Invalid input: expected array, received undefined');
    expectConfigError(null, '(top level): Invalid input: expected object, received null');
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'] }], drive: [] },
      "(top level): unknown key 'drive'; known keys here: listen, tls, token-file, allow-plaintext, runtime-dir, catalog-dir, drives, metrics, record-port",
    );
    expectConfigError(
      { drives: [{ name: 'a b', sinks: ['mem:'], window: '12Q', autoload: 'yes', extra: 1 }] },
      [
        'drives[0].name: letters, digits, ".", "_" and "-" only',
        "drives[0].window: invalid size '12Q': expected a number with an optional K, M, G or T suffix",
        'drives[0].autoload: Invalid input: expected boolean, received string',
        "drives[0]: unknown key 'extra'; known keys here: name, sinks, max-record, window, min-copies, stall-timeout, autoload, fuse, cuse, device-mode, device-group, manifests, manifest-hash, follow-writer",
      ].join('\n'),
    );
  });

  it('record-port: the default unless given; a port number, 0 for any, or off', () => {
    const port = (value: unknown) => validateConfig({ drives: [{ name: 'a', sinks: ['mem:'] }], 'record-port': value }).recordPort;
    expect(validateConfig({ drives: [{ name: 'a', sinks: ['mem:'] }] }).recordPort).toBeUndefined();
    expect(port(7171)).toBe(7171);
    expect(port('7171')).toBe(7171);
    expect(port(0)).toBe(0);
    expect(port('off')).toBe('off');
    for (const bad of ['on', -1, 65536, '71 71', 1.5]) {
      expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'] }], 'record-port': bad }, `record-port: expected a port number (0: any free one) or off, not '${bad}'`);
    }
  });

  it('metrics: off unless given; HOST:PORT, or a port on the loopback', () => {
    const metrics = (value: unknown) => validateConfig({ drives: [{ name: 'a', sinks: ['mem:'] }], metrics: value }).metrics;
    expect(validateConfig({ drives: [{ name: 'a', sinks: ['mem:'] }] }).metrics).toBeUndefined();
    expect(metrics(9464)).toBe('127.0.0.1:9464');
    expect(metrics('9464')).toBe('127.0.0.1:9464');
    expect(metrics('0.0.0.0:9100')).toBe('0.0.0.0:9100');
    expect(metrics('[::1]:9464')).toBe('[::1]:9464');
    expect(metrics('backup-host.example:9464')).toBe('backup-host.example:9464');
    for (const bad of ['http://x:9464', '127.0.0.1:', '127.0.0.1:99999', 'lots', -1]) {
      expectConfigError(
        { drives: [{ name: 'a', sinks: ['mem:'] }], metrics: bad },
        `metrics: expected HOST:PORT or PORT, such as 127.0.0.1:9464, not '${bad}'`,
      );
    }
  });

  it('min-copies is a whole number from 1 to the number of sinks', () => {
    expect(validateConfig({ drives: [{ name: 'a', sinks: ['mem:a', 'mem:b'], 'min-copies': 1 }] }).drives[0]?.minCopies).toBe(1);
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:a', 'mem:b'], 'min-copies': 3 }] }, "drives[0].min-copies: 3 is more than the drive's 2 sinks");
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:'], 'min-copies': 0 }] }, 'drives[0].min-copies: Too small: expected number to be >=1');
  });

  it('rejects a duplicate drive name at the second drive', () => {
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'] }, { name: 'a', sinks: ['mem:'] }] },
      "drives[1].name: drive 'a' is defined twice",
    );
  });

  it('checks the record size and the window', () => {
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'], 'max-record': '65M' }] },
      `drives[0].max-record: must be between 1 and ${MAX_RECORD_LIMIT} bytes`,
    );
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'], 'max-record': 0 }] },
      `drives[0].max-record: must be between 1 and ${MAX_RECORD_LIMIT} bytes`,
    );
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'], 'max-record': '2M', window: '1M' }] },
      'drives[0].window: must hold at least one record of max-record bytes',
    );
    expect(validateConfig({ drives: [{ name: 'a', sinks: ['mem:'], 'max-record': '64M', window: '64M' }] }).drives[0]?.maxRecord).toBe(64 * M);
  });

  it('names the sink of a bad URI', () => {
    expectConfigError(
      { drives: [{ name: 'a', sinks: ['mem:'] }, { name: 'b', sinks: ['mem:', 'file:/a.tap?capacity=1G&early-warning=1G'] }] },
      "drives[1].sinks[1]: sink 'file:/a.tap?capacity=1G&early-warning=1G': early-warning must be smaller than capacity",
    );
    expectConfigError({ drives: [{ name: 'a', sinks: ['mem:', 'nfs:/x'] }] }, "drives[0].sinks[1]: sink 'nfs:/x': unknown sink type 'nfs'; known types: file, nst, mem, rmt, grpc");
  });
});

describe('loadConfigFile', () => {
  it('reads and validates a YAML file', async () => {
    const file = path.join(tmp.path, 'tapeproxy.yaml');
    await writeFile(
      file,
      [
        'listen: 127.0.0.1:7171',
        'drives:',
        '  - name: pnst0',
        '    sinks:',
        `      - file:${tmp.path}/pnst0-%v.tap?capacity=18T&early-warning=20G`,
        '      - mem:spare',
        '    max-record: 256K',
        '  - name: pnst1',
        '    sinks: [ "mem:" ]',
        '    autoload: false',
        '',
      ].join('\n'),
    );
    expect(await loadConfigFile(file)).toEqual({
      listen: '127.0.0.1:7171',
      runtimeDir: '/run/tapeproxy',
      drives: [
        {
          name: 'pnst0',
          sinks: [`file:${tmp.path}/pnst0-%v.tap?capacity=18T&early-warning=20G`, 'mem:spare'],
          maxRecord: 256 * K,
          window: 16 * M,
          minCopies: 2,
      stallTimeoutMs: 120_000,
          autoload: true,
          ...DRIVE_DEFAULTS,
        },
        { name: 'pnst1', sinks: ['mem:'], maxRecord: M, window: 16 * M, minCopies: 1, stallTimeoutMs: 120_000, autoload: false, ...DRIVE_DEFAULTS },
      ],
    });
  });

  it('reports a missing file', async () => {
    const file = path.join(tmp.path, 'nope.yaml');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^cannot read config file ${escape(file)}: ENOENT`));
  });

  it('reports invalid YAML', async () => {
    const file = path.join(tmp.path, 'bad.yaml');
    await writeFile(file, 'drives:\n  - name: [unclosed\n');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`^${escape(file)} is not valid YAML: `));
  });

  it('prefixes validation errors with the file name', async () => {
    const file = path.join(tmp.path, 'dup.yaml');
    await writeFile(file, 'drives:\n  - { name: a, sinks: ["mem:"] }\n  - { name: a, sinks: ["mem:"] }\n');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${file}: drives[1].name: drive 'a' is defined twice`);
  });
});

describe('checkConfigPaths', () => {
  const check = (drive: object) => () => checkConfigPaths(validateConfig({ drives: [{ name: 'a', ...drive }] }));

  it("accepts sinks whose directories and devices exist", async () => {
    expect(check({ sinks: [`file:${tmp.path}/a-%v.tap?capacity=1G`, 'mem:', 'nst:/dev/null'], fuse: `${tmp.path}/pnst0` })).not.toThrow();
  });

  it("names the sink whose images' directory or device is missing, or of the wrong kind", async () => {
    await writeFile(path.join(tmp.path, 'plain'), '');
    expect(check({ sinks: ['mem:', `file:${tmp.path}/nope/a-%v.tap`] })).toThrow(
      new ConfigError(`drives[0].sinks[1]: sink 'file:${tmp.path}/nope/a-%v.tap': the images' directory ${tmp.path}/nope does not exist`),
    );
    expect(check({ sinks: [`file:${tmp.path}/plain/a.tap`] })).toThrow(
      `drives[0].sinks[0]: sink 'file:${tmp.path}/plain/a.tap': the images' directory ${tmp.path}/plain is not a directory`,
    );
    expect(check({ sinks: ['nst:/dev/nst97'] })).toThrow("drives[0].sinks[0]: sink 'nst:/dev/nst97': the tape device /dev/nst97 does not exist");
    expect(check({ sinks: [`nst:/dev/shm`] })).toThrow("drives[0].sinks[0]: sink 'nst:/dev/shm': the tape device /dev/shm is not a character device");
    expect(check({ sinks: ['mem:'], fuse: `${tmp.path}/nope/pnst0` })).toThrow(`drives[0].fuse: the FUSE file's directory ${tmp.path}/nope does not exist`);
  });
});

// --- helpers ---

function expectUriError(uri: string, message: string): void {
  let caught: unknown;
  try {
    sinkFromUri(uri);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SinkUriError);
  expect((caught as Error).message).toBe(message);
}

function expectConfigError(raw: unknown, message: string): void {
  let caught: unknown;
  try {
    validateConfig(raw);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  expect((caught as Error).message).toBe(message);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
