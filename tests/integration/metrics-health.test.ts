/**
 * The daemon's Prometheus endpoint, scraped over HTTP while GNU tar writes through the drive, and
 * its standard gRPC health service, asked with a client built from grpc-health-check's own
 * definition of grpc.health.v1.Health.
 */
import * as grpc from '@grpc/grpc-js';
import { execa } from 'execa';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { expectErrno } from '../support/errno.js';
import { useTempDir } from '../support/temp-dir.js';
import { makeTree } from '../support/trees.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

/** The address the daemon logged for its metrics (started with --metrics 127.0.0.1:0). */
function metricsAddress(d: RunningDaemon): string {
  return /"address":"([^"]+)","msg":"metrics listening/.exec(d.log())![1]!;
}

/** A scrape, parsed: `name{labels}` -> value; the format is checked line by line on the way. */
async function scrape(address: string): Promise<Map<string, number>> {
  const res = await fetch(`http://${address}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge']).toContain(meta[3]);
        typed.add(meta[2]!);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    expect(sample, `not a sample line: ${line}`).not.toBeNull();
    expect(typed.has(sample![1]!), `sample before its TYPE: ${line}`).toBe(true);
    samples.set(`${sample![1]}${sample![2] ?? ''}`, Number(sample![3]));
  }
  return samples;
}

describe('metrics', () => {
  it('scraped during a tar run: bytes written grow on both copies; the volume, early warning and events are there', async () => {
    await makeTree(join(dir.path, 'src'), 8 * 2 ** 20);
    const device = join(dir.path, 'pnst0');
    const a = `file:${dir.path}/a-%v.tap`;
    const b = `file:${dir.path}/b-%v.tap`;
    daemon = await startDaemon([
      '--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--metrics', '127.0.0.1:0',
      '--sink', `${a}?capacity=4M&early-warning=512K&rate=3M&fsync=false`,
      '--sink', `${b}?capacity=64M&rate=3M&fsync=false`,
    ]);
    const address = metricsAddress(daemon);
    const bytes = (s: Map<string, number>, sink: string) => s.get(`tapeproxy_sink_bytes_written_total{drive="pnst0",sink="${sink}"}`);

    const tar = execa('tar', ['-c', '-M', '-F', 'true', '-b', '64', '-f', device, 'src'], { cwd: dir.path, stdin: 'ignore' });
    let finished = false;
    void tar.finally(() => (finished = true)).catch(() => undefined);
    const during: Map<string, number>[] = [];
    while (!finished) {
      during.push(await scrape(address));
      await sleep(200);
    }
    await tar;
    for (const sink of [a, b]) {
      const series = during.map((s) => bytes(s, sink)!);
      expect(new Set(series).size, `${sink}: ${series.join(' ')}`).toBeGreaterThanOrEqual(3);
      expect(series).toEqual([...series].sort((x, y) => x - y));
    }
    expect(during.some((s) => (s.get(`tapeproxy_sink_write_rate_bytes_per_second{drive="pnst0",sink="${a}"}`) ?? 0) > 0)).toBe(true);

    const final = await scrape(address);
    const status = await daemon.status('pnst0');
    for (const [i, sink] of [a, b].entries()) {
      expect(bytes(final, sink)).toBe(status.sinks[i]!.bytesWritten);
      expect(final.get(`tapeproxy_sink_volume{drive="pnst0",sink="${sink}"}`)).toBe(status.state!.volume);
      expect(final.get(`tapeproxy_sink_failed{drive="pnst0",sink="${sink}"}`)).toBe(0);
    }
    expect(status.state!.volume).toBeGreaterThanOrEqual(2);
    expect(final.get(`tapeproxy_sink_capacity_bytes{drive="pnst0",sink="${a}"}`)).toBe(4 * 2 ** 20);
    expect(final.get('tapeproxy_drive_volume{drive="pnst0"}')).toBe(status.state!.volume);
    expect(final.get('tapeproxy_events_total{drive="pnst0",type="early-warning"}')).toBe(status.state!.volume - 1);
    expect(final.get('tapeproxy_events_total{drive="pnst0",type="volume-loaded"}')).toBe(status.state!.volume);
    expect(final.get('process_resident_memory_bytes')).toBeGreaterThan(0);
    // CPU by thread: the front end's thread and the manifest hashing worker are there, and the
    // threads share the process's time out (scraped after it, so it is the larger by a little).
    const threads = [...final].filter(([k]) => k.startsWith('tapeproxy_thread_cpu_seconds_total{'));
    expect(threads.map(([k]) => /thread="([^"]+)"/.exec(k)![1]).sort()).toEqual(['main', 'manifest hashing', 'other']);
    expect(final.get('tapeproxy_thread_cpu_seconds_total{thread="main"}')).toBeGreaterThan(0);
    const threadSum = threads.reduce((sum, [, v]) => sum + v, 0);
    expect(final.get('process_cpu_seconds_total')! - threadSum).toBeGreaterThan(-0.02);
    expect(final.get('process_cpu_seconds_total')! - threadSum).toBeLessThan(0.2);
    // Collections by kind (their counting: tests/unit/gc-stats.test.ts; a short tar run through
    // pooled buffers may make too little garbage for even one young collection).
    const kinds = (metric: string) => [...final].filter(([k]) => k.startsWith(`${metric}{`)).map(([k]) => /kind="([^"]+)"/.exec(k)![1]).sort();
    expect(kinds('tapeproxy_gc_collections_total')).toEqual(['incremental', 'major', 'minor', 'weak callbacks']);
    expect(kinds('tapeproxy_gc_pause_seconds_total')).toEqual(['incremental', 'major', 'minor', 'weak callbacks']);

    expect((await fetch(`http://${address}/other`)).status).toBe(404);
  });
});

interface HealthClient extends grpc.Client {
  check(request: { service: string }, callback: (err: grpc.ServiceError | null, reply?: { status: string }) => void): void;
}

describe('gRPC health', () => {
  it('SERVING for the daemon and each drive; a drive whose failed copy fails the writer is NOT_SERVING until the next volume', async () => {
    await mkdir(join(dir.path, 'a'));
    await mkdir(join(dir.path, 'b'));
    daemon = await startDaemon(['--drive', 'pnst0', '--sink', `file:${dir.path}/a/x-%v.tap`, '--sink', `file:${dir.path}/b/y-%v.tap`]);
    const Client = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, 'Health');
    const client = new Client(daemon.address, grpc.credentials.createInsecure()) as unknown as HealthClient;
    const check = (service: string) =>
      new Promise<string>((resolve, reject) => client.check({ service }, (err, reply) => (err ? reject(err) : resolve(reply!.status))));
    try {
      expect(await check('')).toBe('SERVING');
      expect(await check('tapeproxy.v1.TapeProxy')).toBe('SERVING');
      expect(await check('pnst0')).toBe('SERVING');
      await expect(check('nosuch')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });

      await rm(join(dir.path, 'b'), { recursive: true }); // copy B cannot create its image
      let fd = await daemon.session('pnst0', { access: 'write' });
      await fd.write(Buffer.alloc(10240)).catch(() => undefined);
      await expectErrno(fd.close(), 'EIO');
      expect(await check('pnst0')).toBe('NOT_SERVING');
      expect(await check('')).toBe('SERVING');
      expect((await cli(['--server', daemon.address, 'health', 'pnst0'])).exitCode).toBe(1);

      await mkdir(join(dir.path, 'b'));
      fd = await daemon.session('pnst0', { access: 'read', nonBlocking: true });
      await expectErrno(fd.mt(7 /* MTOFFL: its sync point reports the failure once more; the drive is empty */), 'EIO');
      await fd.mt(30 /* MTLOAD: volume 2, on every copy */);
      await fd.close();
      expect(await check('pnst0')).toBe('SERVING');
      const ok = await cli(['--server', daemon.address, 'health', 'pnst0']);
      expect([ok.exitCode, ok.stdout.toString().trim()]).toEqual([0, 'SERVING']);
    } finally {
      client.close();
    }
  });
});
