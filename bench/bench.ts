/**
 * npm run bench: the pseudo drive against the tools users would otherwise reach for, in one run on
 * this machine, sinks on a tmpfs (issue "Performance"). Prints a table and the ratios and writes
 * bench/results/latest.json. Not part of the test suite: figures, not pass/fail.
 *
 *   npm run bench [-- --runs 5 --sizes 10240,65536,262144,1048576 --mib 1024 --only Cdd,Bfile --long --no-manifests]
 *
 * --no-manifests runs the daemons without manifests (to see what recording them costs).
 */
import { execa, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { HASH_NAMES, hashLabel, usableHash } from '../daemon/manifest/file-hash.js';
import { hashSpeed } from '../daemon/manifest/hash-speed.js';
import { statCpuSeconds } from '../daemon/metrics/thread-cpu.js';
import { packageRoot } from '../daemon/package-root.js';

// A bad option is told in one line (and --help named), not as a stack trace.
const { values: opts } = (() => {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '5' },
        sizes: { type: 'string', default: '10240,65536,262144,1048576' },
        mib: { type: 'string', default: '1024' },
        long: { type: 'boolean', default: false },
        only: { type: 'string', default: '' },
        'no-manifests': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    console.error(`bench: ${(err as Error).message} (see --help)`);
    process.exit(2);
  }
})();
if (opts.help) {
  console.log(`npm run bench [-- OPTIONS]: the pseudo drive against mbuffer, tee and dd on this machine

  --runs N          rounds per record size, each running every contender once; the median
                    of each contender's runs is reported (default 5)
  --sizes LIST      record sizes in bytes (default 10240,65536,262144,1048576)
  --mib N           MiB written per run (default 1024)
  --only LIST       contenders to run: A,Bfile,Btar,Cdd,Ctar,Tee,D,E,F,Floor (default all)
  --long            also stream 10 GiB through the drive and print the daemon's peak RSS
  --no-manifests    run the daemons without manifests (what recording them costs)

Prints a table and the ratios against the targets; the JSON goes to bench/results/latest.json.`);
  process.exit(0);
}
const RUNS = Number(opts.runs);
const SIZES = opts.sizes.split(',').map(Number);
const BYTES = Number(opts.mib) * 2 ** 20;
const ONLY = opts.only ? opts.only.split(',') : [];
const root = packageRoot();
const CLI = join(root, 'dist', 'client', 'tapeproxy.js');

type Contender = 'A' | 'Bfile' | 'Btar' | 'Cdd' | 'Ctar' | 'Tee' | 'D' | 'E' | 'F' | 'Floor';

interface Daemon {
  device: string;
  address: string;
  /** Where its Prometheus metrics are served (CPU time by thread). */
  metrics: string;
  pid: number;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const shm = await mkdtemp('/dev/shm/tapeproxy-bench-');
  try {
    const input = join(shm, 'records.bin');
    await execa('sh', ['-c', `head -c ${BYTES} /dev/urandom > ${input}`]);
    const tree = join(shm, 'tree');
    await makeTree(tree, BYTES);
    const out = (n: number) => join(shm, `out${n}`);
    const daemon = await startDaemon(shm);
    process.env.TAPEPROXY_SERVER = daemon.address; // for D's rmt
    const grpcPair = ONLY.length === 0 || ONLY.includes('E') ? await startGrpcPair(shm) : undefined;
    const seconds: Record<string, number> = {};
    /** CPU seconds per GiB of the daemons and the shim during Cdd, E and F: where the time goes. */
    const cpuPerGiB: Record<string, number> = {};
    const shim = await shimPid(daemon.device);
    // Whose CPU time is sampled around each run: Cdd's daemon, E's two (stages named by daemon), F's.
    const probes: Partial<Record<Contender, CpuProbe>> = { Cdd: { prefix: '', daemons: [['', daemon]], shim } };
    if (grpcPair) probes.E = { prefix: 'E ', daemons: [['local ', grpcPair.local], ['remote ', grpcPair.remote]], shim: await shimPid(grpcPair.local.device) };
    // F: the same drive with its second copy encrypted (its own daemon, started when asked for).
    let encrypting: Daemon | undefined;
    const encryptingDrive = async () => {
      if (!encrypting) {
        encrypting = await startEncryptingDaemon(join(shm, 'f'));
        probes.F = { prefix: 'F ', daemons: [['', encrypting]], shim: await shimPid(encrypting.device) };
      }
      return encrypting;
    };
    // Floor: dd into a FUSE file that answers every write at once (bench/fuse-floor.c), mounted as
    // the shim mounts the drive: what the FUSE round trip alone allows, in the same run as Cdd.
    const floor = ONLY.length === 0 || ONLY.includes('Floor') ? await startFuseFloor(shm) : undefined;
    let rss: Record<string, number> = {};
    let shimRecords: ShimRecords | undefined;
    try {
      for (const R of SIZES) {
        const N = R / 512;
        const contenders: Record<string, () => Promise<unknown>> = {
          A: () => sh(`dd if=${input} of=${out(1)} bs=${R} conv=notrunc status=none`),
          Bfile: () => sh(`mbuffer -q -s ${R} -m 64M -i ${input} -o ${out(1)} -o ${out(2)} 2>/dev/null`),
          Btar: () => sh(`tar -b ${N} -cf - -C ${shm} tree | mbuffer -q -s ${R} -m 64M -o ${out(1)} -o ${out(2)} 2>/dev/null`),
          Tee: () => sh(`tee ${out(1)} > ${out(2)} < ${input}`),
          Cdd: async () => {
            await mtRewind(daemon.device);
            return sh(`dd if=${input} of=${daemon.device} bs=${R} conv=notrunc status=none; times`);
          },
          Ctar: async () => {
            await mtRewind(daemon.device);
            return sh(`tar -b ${N} -cf ${daemon.device} -C ${shm} tree`);
          },
          D: async () => {
            await mtRewind(daemon.device);
            return sh(`tar -b ${N} -cf localhost:/dev/bench0 --rsh-command=${join(root, 'client', 'tapeproxy-rsh')} -C ${shm} tree`);
          },
          ...(grpcPair && {
            E: async () => {
              await mtRewind(grpcPair.local.device);
              return sh(`dd if=${input} of=${grpcPair.local.device} bs=${R} conv=notrunc status=none; times`);
            },
          }),
          ...(floor && { Floor: () => sh(`dd if=${input} of=${floor.file} bs=${R} conv=notrunc status=none`) }),
          F: async () => {
            const { device } = await encryptingDrive();
            await mtRewind(device);
            return sh(`dd if=${input} of=${device} bs=${R} conv=notrunc status=none; times`);
          },
        };
        const chosen = Object.entries(contenders).filter(([name]) => ONLY.length === 0 || ONLY.includes(name));
        for (const [, run] of chosen) await run(); // warm-up: files exist, buffers touched (steady state)
        const times: Record<string, number[]> = {};
        const cpu: Record<string, CpuSample[]> = {};
        // Round by round, every contender once per round: this VM's speed drifts over minutes, and
        // a ratio must compare contenders measured side by side, not one's five runs against
        // another's five runs taken ten minutes later.
        for (let i = 0; i < RUNS; i++) {
          process.stderr.write(`${sizeLabel(R)}: round ${i + 1} of ${RUNS}\n`);
          for (const [name, run] of chosen) {
            const probe = probes[name as Contender];
            const before = probe && (await cpuSample(probe));
            const t = performance.now();
            const result = await run();
            (times[name] ??= []).push((performance.now() - t) / 1000);
            if (probe && before) (cpu[name] ??= []).push(cpuSpent(probe, before, await cpuSample(probe), (result as { stdout: string }).stdout));
          }
        }
        for (const [name] of chosen) {
          seconds[`${name}@${R}`] = median(times[name]!);
          const samples = cpu[name] ?? [];
          for (const stage of Object.keys(samples[0] ?? {})) {
            cpuPerGiB[`${probes[name as Contender]!.prefix}${stage}@${R}`] = Number((median(samples.map((c) => c[stage] ?? 0)) / (BYTES / 2 ** 30)).toFixed(2));
          }
          process.stderr.write(`${name}@${R}: ${(BYTES / 2 ** 30 / seconds[`${name}@${R}`]!).toFixed(2)} GiB/s\n`);
        }
      }
    } finally {
      rss = { daemon: await peakRssMiB(daemon.pid), shim: await peakRssMiB(await shimPid(daemon.device)) };
      shimRecords = await shimRecordCounts(daemon);
      if (encrypting) rss.encryptingDaemon = await peakRssMiB(encrypting.pid);
      await daemon.stop();
      await grpcPair?.stop();
      await encrypting?.stop();
      await floor?.stop();
    }
    let longRun: { gib: number; peakRssMiB: number; seconds: number } | undefined;
    if (opts.long) longRun = await tenGiB();
    await report(seconds, rss, cpuPerGiB, shimRecords, longRun);
  } finally {
    await stopAll();
    await rm(shm, { recursive: true, force: true });
  }
}

async function report(seconds: Record<string, number>, peakRssMiB: Record<string, number>, cpuPerGiB: Record<string, number>, shimRecords: ShimRecords | undefined, longRun?: object) {
  const gibps = (key: string) => (seconds[key] ? BYTES / 2 ** 30 / seconds[key] : undefined);
  const names: Contender[] = ['A', 'Bfile', 'Btar', 'Tee', 'Cdd', 'Ctar', 'D', 'E', 'F', 'Floor'];
  const rows = names.map((n) => [n, ...SIZES.map((R) => gibps(`${n}@${R}`)?.toFixed(2) ?? '-')]);
  console.log(`\nGiB/s, median of ${RUNS} runs of ${BYTES / 2 ** 20} MiB, sinks on tmpfs`);
  console.log(table([['', ...SIZES.map(sizeLabel)], ...rows]));

  const ratios: Record<string, number> = {};
  const ratio = (a: string, b: string, R: number) => {
    const x = gibps(`${a}@${R}`);
    const y = gibps(`${b}@${R}`);
    if (x && y) ratios[`${a}/${b}@${R}`] = Number((x / y).toFixed(3));
  };
  for (const R of SIZES) {
    ratio('Cdd', 'Bfile', R);
    ratio('Cdd', 'Tee', R);
    ratio('Cdd', 'A', R);
    ratio('Ctar', 'Btar', R);
    ratio('D', 'Cdd', R);
    ratio('E', 'Cdd', R);
    ratio('F', 'Cdd', R);
    ratio('Cdd', 'Floor', R);
  }
  const recordsPerSecond: Record<string, number> = {};
  for (const R of SIZES) {
    for (const name of ['Cdd', 'Floor']) {
      if (seconds[`${name}@${R}`]) recordsPerSecond[`${name}@${R}`] = Math.round(BYTES / R / seconds[`${name}@${R}`]!);
    }
  }
  const targets: [string, number][] = [
    ['Cdd/Bfile@262144', 0.6],
    ['Cdd/Tee@262144', 0.8],
    ['Ctar/Btar@262144', 0.8],
    ['Ctar/Btar@1048576', 0.8],
    ['Cdd/A@262144', 0.25],
    ['E/Cdd@262144', 0.5],
    ['F/Cdd@262144', 0.7],
  ];
  console.log('\nratio                      value   target');
  for (const [key, target] of targets) {
    const v = ratios[key];
    console.log(`${key.padEnd(26)} ${v?.toFixed(3) ?? '-'.padStart(5)}   ≥ ${target}  ${v === undefined ? '' : v >= target ? 'met' : 'MISSED'}`);
  }
  const rps = recordsPerSecond['Cdd@10240'];
  const floorRps = recordsPerSecond['Floor@10240'];
  const ceiling = floorRps === undefined ? '' : ` (Floor, a FUSE file that only answers: ${floorRps})`;
  console.log(`Cdd@10240 records/s        ${rps ?? '-'}   ≥ 50000  ${rps === undefined ? '' : rps >= 50000 ? 'met' : 'MISSED'}${ceiling}`);
  if (rps !== undefined && floorRps !== undefined && rps < 50000 && floorRps < 50000) {
    console.log(
      `  the bottleneck is the FUSE round trip, not the daemon: a FUSE file with nothing behind it takes ${floorRps} records/s here, and Cdd ${(rps / floorRps).toFixed(2)}x that ` +
        "(each write(2) waits for its answer: two context switches, and a wake-up on the other CPU whenever the scheduler moves the writer there)",
    );
  }
  const encrypting = peakRssMiB.encryptingDaemon ? `, daemon with an encrypted copy (F) ${peakRssMiB.encryptingDaemon}` : '';
  console.log(`peak RSS MiB: daemon ${peakRssMiB.daemon}, shim ${peakRssMiB.shim}${encrypting}`);
  if (longRun) console.log(`10 GiB stream: ${JSON.stringify(longRun)}`);
  console.log(
"copies of each record byte between writer and sinks (Cdd), for two copies: 3, as mbuffer, where the shim has the kernel read the FUSE request into the record ring (kernel→ring, ring→each sink; the manifest hash reads records of 64 KiB and more where they are and copies smaller ones together first); while the ring has no room for a whole request, 4 for records of 64 KiB and more (kernel→shim, shim→ring, ring→each sink); while the ring is full, 5 (kernel→shim, shim→socket, socket→record, record→each sink), and 2 more for records under 64 KiB (the shim's gather buffer, the daemon's staging buffer)",
  );
  if (shimRecords) console.log(`records the shim passed to the daemon (Cdd, Ctar): ${shimRecords.ring} through the record ring, ${shimRecords.socket} on the socket`);
  const whereTimeGoes = (name: Contender, prefix: string, daemons: string[], heading: string) => {
    const lines = SIZES.filter((R) => cpuPerGiB[`${prefix}${daemons[0]}daemon@${R}`] !== undefined).map((R) => bottleneck(R, gibps(`${name}@${R}`)!, cpuPerGiB, prefix, daemons));
    if (lines.length > 0) console.log(`where the time goes in ${name}, CPU seconds per GiB: ${heading}, the shim, dd, and all CPUs together:\n${lines.join('\n')}`);
  };
  whereTimeGoes('Cdd', '', [''], "the daemon's threads (main: the front end and the copies; manifest hashing; other: libuv's file writes and the collector)");
  whereTimeGoes('E', 'E ', ['local ', 'remote '], "each daemon's threads (local: the drive with an image copy and the grpc copy; remote: the drive the grpc copy writes to)");
  whereTimeGoes('F', 'F ', [''], "the daemon's threads (main, manifest hashing, encryption, other)");
  // SHA-256 too: a drive configured with it (or without BLAKE3 here) is held to its speed.
  const hashes = [...new Set(HASH_NAMES.map(usableHash))];
  const hashGiBps = Object.fromEntries(hashes.map((hash) => [hash, Number((hashSpeed(hash, 256 * 2 ** 20, 500) / 2 ** 30).toFixed(2))]));
  const speeds = hashes.map((hash) => `${hashLabel(hash)} ${hashGiBps[hash]} GiB/s`).join(', ');
  console.log(`manifest hashing here, on one core: ${speeds} (the drives hash with ${hashLabel(usableHash('blake3'))}): the most a drive that records manifests can take (its records are hashed in order)`);
  const results = join(root, 'bench', 'results');
  await mkdir(results, { recursive: true });
  await writeFile(
    join(results, 'latest.json'),
    JSON.stringify({ date: new Date().toISOString(), runs: RUNS, bytes: BYTES, seconds, ratios, recordsPerSecond, peakRssMiB, cpuPerGiB, shimRecords, hashGiBps, longRun }, null, 2),
  );
  console.log(`\nwritten: ${join(results, 'latest.json')}`);
}

/**
 * One line of Cdd's CPU use at record size R and what limits it: a thread busy nearly all the run
 * (one thread cannot go faster), else all CPUs busy (the work as a whole), else neither: the
 * stages wait on each other (wake-ups between dd, the shim and the daemon).
 */
function bottleneck(R: number, gibPerSecond: number, cpuPerGiB: Record<string, number>, prefix: string, daemons: string[]): string {
  const at = (stage: string) => cpuPerGiB[`${prefix}${stage}@${R}`] ?? 0;
  const stages = [...daemons.flatMap((daemon) => THREAD_STAGES.map((s) => daemon + s)), 'shim', 'dd'].filter((s) => cpuPerGiB[`${prefix}${s}@${R}`] !== undefined);
  const spent = stages.map((s) => `${s} ${at(s).toFixed(2)}`).join(', ');
  const cores = cpus().length;
  const busyCores = at('all') * gibPerSecond;
  // Threads of their own: 'other', encryption and the shim are several threads each.
  const ownThreads = stages.filter((s) => /(^| )(main|manifest hashing)$/.test(s) || s === 'dd');
  const [thread, busiest] = ownThreads.map((s) => [s, at(s) * gibPerSecond] as const).sort((a, b) => b[1] - a[1])[0]!;
  const largest = [...stages].sort((a, b) => at(b) - at(a))[0]!;
  let verdict: string;
  if (busiest >= 0.85) verdict = `the ${thread} thread is the bottleneck: busy ${Math.round(busiest * 100)}% of the run`;
  else if (busyCores >= 0.85 * cores) verdict = `CPU-bound: ${busyCores.toFixed(2)} of ${cores} cores busy; the largest share is ${largest}'s`;
  else verdict = `latency-bound: ${(cores - busyCores).toFixed(2)} of ${cores} cores idle and no thread busy all the run (the busiest, ${thread}, ${Math.round(busiest * 100)}%)`;
  const fullGcs = daemons.map((d) => `${d}${at(d + FULL_GCS)}`.trim()).join(', ');
  return `  ${sizeLabel(R).padEnd(7)} ${spent}; all ${at('all').toFixed(2)}: ${verdict}; full collections per GiB: ${fullGcs}`;
}

/**
 * E: a drive (FUSE device) with an image copy and a grpc sink to a second daemon on loopback, whose
 * drive writes an image: Cdd with one of its two copies behind gRPC.
 */
async function startGrpcPair(shm: string) {
  await mkdir(join(shm, 'e'));
  const remote = await startDaemon(join(shm, 'remote'), [`file:${shm}/r.tap?fsync=false`], { fuse: false });
  const local = await startDaemon(join(shm, 'e'), [`file:${shm}/e.tap?fsync=false`, `grpc://${remote.address}/bench0?plaintext`]);
  return {
    local,
    remote,
    async stop() {
      await local.stop();
      await remote.stop();
    },
  };
}

/** A drive with a FUSE device and two image copies on tmpfs; also reachable by rmt as /dev/bench0. */
async function startDaemon(dir: string, sinks = [`file:${dir}/a.tap?fsync=false`, `file:${dir}/b.tap?fsync=false`], { fuse = true } = {}): Promise<Daemon> {
  const device = join(dir, 'bench0');
  const front = fuse ? ['--fuse', device, '--runtime-dir', join(dir, 'run')] : [];
  const manifests = opts['no-manifests'] ? ['--no-manifests'] : ['--catalog-dir', join(dir, 'catalog')];
  const proc = execa('node', [CLI, 'daemon', '--drive', 'bench0', ...front, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', ...manifests, ...sinks.flatMap((s) => ['--sink', s])], { reject: false });
  const addresses = new Map<string, string>();
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /"address":"([^"]+)","msg":"(listening|metrics listening)/.exec(line);
      if (m) addresses.set(m[2]!, m[1]!);
      if (addresses.size === 2) resolve();
    });
    void proc.then((r) => reject(new Error(`daemon exited: ${r.stderr}`)));
  });
  return {
    device,
    address: addresses.get('listening')!,
    metrics: addresses.get('metrics listening')!,
    pid: proc.pid!,
    stop: stopper(proc),
  };
}

/** bench/fuse-floor.c, built for this run and mounted over a file in `dir` until stop(). */
async function startFuseFloor(dir: string) {
  const program = join(dir, 'fuse-floor');
  const shim = join(root, 'cuse-shim');
  await sh(`cc -O2 -std=c11 -Wall -Wextra -Werror -D_FILE_OFFSET_BITS=64 -I${shim} $(pkg-config --cflags fuse3) ${join(root, 'bench', 'fuse-floor.c')} ${join(shim, 'writer-cpu.c')} -o ${program} $(pkg-config --libs fuse3)`);
  const file = join(dir, 'floor0');
  await writeFile(file, '');
  const proc = execa(program, [file], { reject: false });
  const mounted = async () => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((line) => line.split(' ')[4] === file);
  for (let i = 0; !(await mounted()); i++) {
    if (i === 100 || proc.exitCode !== null) throw new Error(`fuse-floor did not mount ${file}: ${(await proc).stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { file, stop: stopper(proc) };
}

/** Cdd's drive with the second copy behind the encrypt stage (a raw key in a 0600 file). */
async function startEncryptingDaemon(dir: string): Promise<Daemon> {
  await mkdir(dir, { recursive: true });
  const key = join(dir, 'bench.key');
  await writeFile(key, randomBytes(32), { mode: 0o600 });
  return startDaemon(dir, [`file:${dir}/a.tap?fsync=false`, `encrypt:keyfile=${key}|file:${dir}/b.tap?fsync=false`]);
}

/** 10 GiB through the drive to two images on disk (tmpfs would not hold them): is memory flat? */
async function tenGiB() {
  const dir = await mkdtemp('/var/tmp/tapeproxy-bench-');
  try {
    const daemon = await startDaemon(dir);
    const t = performance.now();
    await sh(`dd if=/dev/zero of=${daemon.device} bs=256k count=40960 conv=notrunc status=none`);
    const result = { gib: 10, seconds: Number(((performance.now() - t) / 1000).toFixed(1)), peakRssMiB: await peakRssMiB(daemon.pid) };
    await daemon.stop();
    return result;
  } finally {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeTree(dir: string, bytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Files of 1 MiB of random data (tar then writes full records, as on a real backup).
  await sh(`cd ${dir} && for i in $(seq ${Math.ceil(bytes / 2 ** 20)}); do head -c 1048576 /dev/urandom > f$i; done`);
}

const sh = (command: string) => execa('sh', ['-c', command]);
const mtRewind = (device: string) => execa('mt', ['-f', device, 'rewind']);

/** The shim the daemon started for `device` (whatever TAPEPROXY_SHIM names it): only it has both options. */
async function shimPid(device: string): Promise<number> {
  return Number((await execa('pgrep', ['-f', '--', `--socket .*--fuse ${device}`])).stdout.split('\n')[0]);
}

/**
 * Daemons and floors still running. A failed run stops them before the temporary folder goes: their
 * mounts would make its removal fail with EBUSY, and that error would hide the one that counts.
 */
const running = new Set<() => Promise<void>>();

/** stop() for a process the bench started: SIGTERM, then its exit; a second call does nothing. */
function stopper(proc: ResultPromise): () => Promise<void> {
  const stop = async () => {
    running.delete(stop);
    proc.kill('SIGTERM');
    await proc;
  };
  running.add(stop);
  return stop;
}

async function stopAll(): Promise<void> {
  for (const stop of [...running].reverse()) await stop();
}

/** WRITE records from the drive's shim by how they crossed to the daemon (tapeproxy_shim_records_total). */
interface ShimRecords {
  ring: number;
  socket: number;
}

async function shimRecordCounts(daemon: Daemon): Promise<ShimRecords> {
  const text = await (await fetch(`http://${daemon.metrics}/metrics`)).text();
  const count = (path: string) => Number(new RegExp(`^tapeproxy_shim_records_total\\{drive="bench0",path="${path}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { ring: count('ring'), socket: count('socket') };
}

/** The daemon's threads as its metrics name them, in the order the bench prints them. */
const THREAD_STAGES = ['main', 'manifest hashing', 'encryption', 'other'];

/** The sample's count of the daemon's full collections (not CPU seconds; per GiB in the results). */
const FULL_GCS = 'full collections';

/** CPU seconds so far: each daemon's by thread (from its metrics), the shim's, and all CPUs' busy time; each daemon's full collections. */
type CpuSample = Record<string, number>;

/**
 * The daemons of a contender, each with the label its threads get in a sample ('' for Cdd's), and
 * its shim; `prefix` goes before the stages' keys in the results (none for Cdd's, as in earlier
 * results files; "E local main@R" for E's).
 */
interface CpuProbe {
  prefix: string;
  daemons: [label: string, daemon: Daemon][];
  shim: number;
}

async function cpuSample({ daemons, shim }: CpuProbe): Promise<CpuSample> {
  const sample: CpuSample = {};
  for (const [label, daemon] of daemons) {
    const text = await (await fetch(`http://${daemon.metrics}/metrics`)).text();
    for (const m of text.matchAll(/^tapeproxy_thread_cpu_seconds_total\{thread="([^"]+)"\} (\S+)$/gm)) sample[label + m[1]!] = Number(m[2]);
    sample[label + FULL_GCS] = Number(/^tapeproxy_gc_collections_total\{kind="major"\} (\S+)$/m.exec(text)?.[1] ?? NaN);
  }
  sample.shim = statCpuSeconds(`/proc/${shim}/stat`);
  // /proc/stat's first line: all CPUs' ticks by state; busy is all but idle and iowait.
  const ticks = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  sample.all = (ticks.reduce((a, b) => a + b, 0) - ticks[3]! - ticks[4]!) / 100;
  return sample;
}

/** CPU seconds each stage spent between two samples, each daemon's total; dd's from the `times` its shell printed. */
function cpuSpent(probe: CpuProbe, before: CpuSample, after: CpuSample, times: string): CpuSample {
  const spent: CpuSample = {};
  for (const key of Object.keys(after)) spent[key] = after[key]! - (before[key] ?? 0);
  for (const [label] of probe.daemons) {
    const threads = Object.keys(after).filter((k) => k !== 'shim' && k !== 'all' && !k.endsWith(FULL_GCS) && k.startsWith(label)); // labels do not overlap
    spent[`${label}daemon`] = threads.reduce((sum, k) => sum + spent[k]!, 0);
  }
  // The second line of `times`: the children's user and system time, as "0m0.010000s 0m0.220000s".
  const children = times.trim().split('\n').pop()!.matchAll(/(\d+)m([\d.]+)s/g);
  spent.dd = [...children].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
  return spent;
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function sizeLabel(R: number): string {
  return R >= 2 ** 20 ? `${R / 2 ** 20} MiB` : `${R / 1024} KiB`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

await main();
