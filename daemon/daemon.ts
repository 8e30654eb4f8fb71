import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DaemonConfig, DriveConfig } from './config/config.js';
import { PseudoDrive } from './drive/pseudo-drive.js';
import { logEvents } from './events/event-log.js';
import { EventBus } from './events/events.js';
import { RateMeter, SAMPLE_INTERVAL_MS } from './events/rates.js';
import { serverSecurity } from './frontends/grpc/auth.js';
import { driveInfo, startGrpcServer, type ServedDrive } from './frontends/grpc/server.js';
import { ShimLink } from './frontends/shim/shim-link.js';
import { RING_BYTES } from './frontends/shim/shim-ring.js';
import { ShimSupervisor } from './frontends/shim/shim-supervisor.js';
import { startMetricsServer } from './metrics/metrics-server.js';
import { Metrics } from './metrics/prometheus.js';
import { Mirror } from './mirror/mirror.js';
import { isLoopback, splitAddress } from './address.js';
import { raiseMallocThresholds } from './malloc-thresholds.js';
import { growHeapFreely } from './heap-growth.js';
import { type SinkLog, sinkFromUri } from './sinks/sink-uri.js';
import type { Sink } from './sinks/sink.js';
import { defaultCatalogDir, journalPath } from './catalog/catalog.js';
import { Journal } from './catalog/journal.js';
import { imageTemplate } from './manifest/image-paths.js';
import { stageNames } from './stages/stage-uri.js';
import { ManifestRecorder } from './manifest/recorder.js';
import { blake3Missing, usableHash } from './manifest/file-hash.js';
import { hashSpeed, hashSpeedNotice } from './manifest/hash-speed.js';
import { writeBehindWindow } from './drive/write-behind-window.js';

/** Room in a gRPC message for the fields around a record. */
const MESSAGE_OVERHEAD = 64 * 1024;

export interface Daemon {
  address: string;
  drives: ReadonlyMap<string, ServedDrive>;
  stop(): Promise<void>;
}

export async function startDaemon(config: DaemonConfig, log: Logger): Promise<Daemon> {
  raiseMallocThresholds();
  growHeapFreely();
  if (!isLoopback(config.listen) && !config.tls && !config.allowPlaintext) {
    throw new Error(
      `refusing to serve plaintext gRPC on ${config.listen}: remote peers need TLS (tls.cert and tls.key, or --tls-cert and --tls-key), ` +
        'or use a loopback address (127.0.0.1:PORT); allow-plaintext serves a network you trust without it',
    );
  }
  const security = await serverSecurity(config);
  const drives = new Map<string, ServedDrive>();
  const frontEnds: { link: ShimLink; supervisor: ShimSupervisor }[] = [];
  const bus = new EventBus();
  logEvents(bus, log);
  // Counting events from the first one (volume 1's load at start).
  const metrics = config.metrics
    ? new Metrics(
        bus,
        () => [...drives.values()].map(driveInfo),
        () => frontEnds.map(({ link }) => ({ drive: link.drive.name, ...link.writes })),
      )
    : undefined;
  const hashes = new Set(config.drives.filter((d) => d.manifests !== false).map((d) => d.manifestHash));
  const missing = hashes.has('blake3') ? blake3Missing() : undefined;
  if (missing) log.warn({ reason: missing }, 'BLAKE3 is not available on this machine: manifests are hashed with SHA-256');
  for (const hash of new Set([...hashes].map(usableHash))) {
    const notice = hashSpeedNotice(hash, hashSpeed(hash));
    log[notice.level]({ hash, hashMBps: notice.mbPerSecond }, notice.message);
  }
  const stopFrontEnds = async () => {
    for (const { link, supervisor } of frontEnds.splice(0)) {
      await supervisor.stop();
      await link.close();
    }
  };
  const closeDrives = async () => {
    for (const { drive, mirror } of drives.values()) {
      try {
        await drive.shutdown();
        await mirror.close();
      } catch (err) {
        log.error({ drive: drive.name, err: (err as Error).message }, 'closing the drive at shutdown failed');
      }
    }
  };
  // A drive, device or server that cannot start stops those started before it: the daemon then
  // exits with the reason instead of running half-started.
  let served: Awaited<ReturnType<typeof startGrpcServer>> | undefined;
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    for (const d of config.drives) {
      const sinkLog: SinkLog = (message, fields, level = 'info') => log[level]({ drive: d.name, ...fields }, message);
      const events = bus.forDrive(d.name);
      const sinks = d.sinks.map((uri) => sinkFromUri(uri, sinkLog));
      const setAside = (sink: Sink) => mirror.isDropped(sink);
      const recorder = d.manifests === false ? undefined : manifestRecorder(d, sinks, setAside, config.catalogDir ?? defaultCatalogDir(), sinkLog);
      const mirror: Mirror = new Mirror(sinks, {
        recorder,
        window: d.window,
        minCopies: d.minCopies,
        stallTimeoutMs: d.stallTimeoutMs,
        onCopyFailed: (sink, error, setAside) => {
          const object = mirror.copyStatus(sink).position;
          const at = recorder?.place(object) ?? { fileno: -1, record: -1 };
          events({ type: 'copy-failed', sink: sink.name, volume: mirror.volume, object, ...at, error: error.message, setAside });
          recorder?.copyFailed(sink, { volume: mirror.volume, object, ...at, error: error.message, setAside });
        },
        events,
      });
      const rates = new RateMeter(mirror.sinks);
      bus.subscribe((e) => e.drive === d.name && rates.onEvent(e));
      if (recorder) {
        // A writer's close short of early warning ends the catalog's session.
        bus.subscribe((e) => {
          if (e.drive === d.name && e.type === 'closed') void recorder.writerClosed(mirror.pastEarlyWarning);
        });
      }
      const drive = new PseudoDrive(d.name, mirror, { maxRecord: d.maxRecord, autoload: d.autoload, events });
      await drive.start();
      drives.set(d.name, { drive, mirror, rates });
      log.info({ drive: d.name, sinks: mirror.sinks.map((s) => s.name), volume: mirror.volume }, 'drive ready');
      if (d.device) frontEnds.push(await startShim(d, drive, mirror, config.runtimeDir, log));
    }
    const maxRecord = Math.max(...config.drives.map((d) => d.maxRecord));
    served = await startGrpcServer(drives, config.listen, maxRecord + MESSAGE_OVERHEAD, log, bus, security, config.recordPort);
    metricsServer = metrics && config.metrics ? await serveMetrics(config.metrics, metrics, log) : undefined;
  } catch (err) {
    served?.watch.close();
    await served?.channels?.close();
    served?.server.forceShutdown();
    metrics?.stop();
    await stopFrontEnds();
    await closeDrives();
    throw err;
  }
  const { server, address, watch, health, channels } = served;
  const sampler = setInterval(() => drives.forEach((d) => d.rates?.sample()), SAMPLE_INTERVAL_MS).unref();
  log.info({ tls: !!config.tls, clientCertificates: !!config.tls?.clientCa, token: !!config.tokenFile, address }, 'listening');

  return {
    address,
    drives,
    async stop() {
      health.stopping();
      watch.close();
      clearInterval(sampler);
      metricsServer?.server.close();
      metrics?.stop();
      await stopFrontEnds();
      await channels?.close();
      await shutdown(server);
      await closeDrives();
    },
  };
}

/** Manifests next to the drive's image copies, and its catalog journal. */
function manifestRecorder(d: DriveConfig, sinks: Sink[], setAside: (sink: Sink) => boolean, catalogDir: string, log: SinkLog): ManifestRecorder {
  return new ManifestRecorder({
    drive: d.name,
    copies: sinks.map((s) => s.name),
    images: d.sinks.flatMap((uri, i) => {
      const template = imageTemplate(uri);
      return template ? [{ template, sink: sinks[i]!, stages: stageNames(uri) }] : [];
    }),
    setAside,
    journal: new Journal(journalPath(catalogDir, d.name)),
    hash: usableHash(d.manifestHash),
    log,
  });
}

/** A kernel-facing device for the drive: the shim that serves the device, and the daemon's link to it. */
async function startShim(d: DriveConfig, drive: PseudoDrive, mirror: Mirror, runtimeDir: string, log: Logger) {
  const window = writeBehindWindow(mirror.earlyWarningZone(), d.device!.kind === 'fuse'); // a FUSE file's close(2) reports a failure
  await mkdir(runtimeDir, { recursive: true, mode: 0o700 });
  let supervisor: ShimSupervisor | undefined;
  const link = new ShimLink(join(runtimeDir, `${d.name}.sock`), drive, log, window, () => supervisor?.ring);
  supervisor = new ShimSupervisor(
    {
      drive: d.name,
      device: d.device!,
      socket: link.path,
      mode: d.deviceMode,
      group: d.deviceGroup,
      window: window.records,
      windowBytes: window.bytes,
      maxRecord: d.maxRecord,
      followWriter: d.followWriter,
      ringBytes: RING_BYTES,
    },
    log,
  );
  supervisor.start();
  link.start();
  try {
    await supervisor.whileRunning(link.connected().then(() => supervisor!.ready()));
  } catch (err) {
    await supervisor.stop();
    await link.close();
    throw err;
  }
  log.info({ drive: d.name, device: supervisor.devicePath }, 'device ready');
  return { link, supervisor };
}

async function serveMetrics(listen: string, metrics: Metrics, log: Logger) {
  const served = await startMetricsServer(metrics, splitAddress(listen));
  log.info({ address: served.address }, 'metrics listening (GET /metrics)');
  return served;
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.forceShutdown(), 5000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
