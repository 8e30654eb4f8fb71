/** The encrypt stage in sink URIs and in the YAML config's map form. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, validateConfig } from '../../daemon/config/config.js';
import { FileSink } from '../../daemon/sinks/file-sink.js';
import { sinkFromUri } from '../../daemon/sinks/sink-uri.js';
import { EncryptStage } from '../../daemon/stages/encrypt-stage.js';
import { innermostUri, stageOf } from '../../daemon/stages/stage-uri.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();

async function keyFile(name = 'k'): Promise<string> {
  const file = path.join(tmp.path, name);
  await writeFile(file, 'a passphrase for tests\n', { mode: 0o600 });
  return file;
}

describe('encrypt stage URIs', () => {
  it('wrap the sink after |, whatever its type, and name it without secrets', async () => {
    const key = await keyFile();
    const sink = sinkFromUri(`encrypt:keyfile=${key}|file:${tmp.path}/b-%v.tap?capacity=10M`);
    expect(sink).toBeInstanceOf(EncryptStage);
    expect(sink.name).toBe(`encrypt:keyfile=${key}|file:${tmp.path}/b-%v.tap`);
    expect(sink.earlyWarningZone).toBe(Math.floor((10 << 20) / 50));
    expect(innermostUri(`encrypt:keyfile=${key}|encrypt:keyenv=X|file:/a|b.tap`)).toBe('file:/a|b.tap');
    // A real drive behind the stage reads back records 28 bytes longer than the drive's 1M default.
    expect(stageOf('encrypt:keyenv=K|nst:/dev/nst0')?.build).toBe('nst:/dev/nst0?max-record=1048604');
    expect(stageOf('encrypt:keyenv=K|nst:/dev/nst0?max-record=4M')?.build).toBe('nst:/dev/nst0?max-record=4M');
    // A | that follows no stage is part of the sink's own target.
    expect(sinkFromUri(`file:${tmp.path}/a|b.tap`)).toBeInstanceOf(FileSink);
  });

  it('report the inner sink\'s errors and their own, naming the URI', async () => {
    const key = await keyFile();
    expect(() => sinkFromUri(`encrypt:keyfile=${key}|tape:/x`)).toThrow("sink 'tape:/x': unknown sink type 'tape'");
    expect(() => sinkFromUri(`encrypt:keyfile=${key}&keyenv=K|mem:`)).toThrow(`sink 'encrypt:keyfile=${key}&keyenv=K|mem:': encrypt: needs one of keyfile=PATH or keyenv=NAME`);
  });
});

describe('the YAML map form', () => {
  it('becomes the stage URI, nested stages included', async () => {
    const key = await keyFile('my key');
    const config = validateConfig({
      drives: [{ name: 'p', sinks: ['mem:a', { encrypt: { keyfile: key }, sink: { encrypt: { keyenv: 'HOME' }, sink: 'mem:b' } }] }],
    });
    expect(config.drives[0]!.sinks).toEqual(['mem:a', `encrypt:keyfile=${key.replace(' ', '%20')}|encrypt:keyenv=HOME|mem:b`]);
    expect(sinkFromUri(config.drives[0]!.sinks[1]!).name).toBe(`encrypt:keyfile=${key}|encrypt:keyenv=HOME|mem:b`);
  });

  it('from a config file, with errors naming the key', async () => {
    const key = await keyFile();
    const file = path.join(tmp.path, 'tapeproxy.yaml');
    await writeFile(
      file,
      ['drives:', '  - name: pnst0', '    sinks:', '      - file:/srv/a-%v.tap', `      - encrypt: { keyfile: ${key} }`, '        sink: file:/srv/b-%v.tap'].join('\n'),
    );
    expect((await loadConfigFile(file)).drives[0]!.sinks[1]).toBe(`encrypt:keyfile=${key}|file:/srv/b-%v.tap`);

    const bad = (sinks: unknown[]) => () => validateConfig({ drives: [{ name: 'p', sinks }] });
    expect(bad([{ encrypt: { key: 'x' }, sink: 'mem:' }])).toThrow(new ConfigError("drives[0].sinks[0].encrypt: unknown key 'key'; known keys here: keyfile, keyenv"));
    expect(bad([{ encrypt: { keyenv: 'HOME' }, sink: 'mem:', wrap: 1 }])).toThrow(new ConfigError("drives[0].sinks[0]: unknown key 'wrap'; known keys here: encrypt, sink"));
    expect(bad([{ encrypt: {}, sink: 'mem:' }])).toThrow("drives[0].sinks[0]: sink 'encrypt:|mem:': encrypt: needs one of keyfile=PATH or keyenv=NAME");
    expect(bad([{ encrypt: { keyfile: `${tmp.path}/none` }, sink: 'mem:' }])).toThrow(/drives\[0\]\.sinks\[0\]: .*cannot read key file .*none: ENOENT/);
  });
});
