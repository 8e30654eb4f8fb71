import type { DriveInfo } from '../../generated/tapeproxy.js';
import type { EventBus } from '../events/events.js';
import { GcStats } from './gc-stats.js';
import { threadCpuSeconds } from './thread-cpu.js';

/**
 * The Prometheus text exposition format (version 0.0.4), written directly: a handful of gauges and
 * counters read from the drives' status at scrape time, and event counts kept from the bus.
 * Rates are the daemon's own (5-second window); Prometheus's rate() over the byte counters works too.
 */

type Labels = Record<string, string>;
interface Metric {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  samples: { labels: Labels; value: number }[];
}

/** Per sink: [name, type, help, value]; a value of undefined leaves the sample out (unknown). */
const SINK_METRICS: [string, Metric['type'], string, (s: DriveInfo['sinks'][number]) => number | undefined][] = [
  ['tapeproxy_sink_bytes_written_total', 'counter', 'Record bytes written to the copy since the daemon started.', (s) => s.bytesWritten],
  ['tapeproxy_sink_records_written_total', 'counter', 'Records written to the copy since the daemon started.', (s) => s.recordsWritten],
  ['tapeproxy_sink_write_rate_bytes_per_second', 'gauge', 'Bytes per second written to the copy over the last 5 seconds.', (s) => s.rate],
  ['tapeproxy_sink_average_rate_bytes_per_second', 'gauge', 'Bytes per second written to the copy over the current or last write session.', (s) => s.averageRate],
  ['tapeproxy_sink_volume', 'gauge', 'Volume number the copy is on.', (s) => s.volume],
  ['tapeproxy_sink_position', 'gauge', 'Object (records and filemarks) the copy is at on its volume.', (s) => s.position],
  ['tapeproxy_sink_used_bytes', 'gauge', 'Bytes the current volume of the copy holds.', (s) => s.used],
  ['tapeproxy_sink_capacity_bytes', 'gauge', 'Size of a volume of the copy, where known.', (s) => s.capacity],
  ['tapeproxy_sink_early_warning_at_bytes', 'gauge', 'Where early warning begins on a volume of the copy, where known.', (s) => s.earlyWarningAt],
  ['tapeproxy_sink_early_warning', 'gauge', '1 when the copy is past early warning on its volume.', (s) => Number(s.earlyWarning)],
  ['tapeproxy_sink_queued_bytes', 'gauge', 'Bytes queued for the copy, not yet written.', (s) => s.queuedBytes],
  ['tapeproxy_sink_failed', 'gauge', '1 when the copy has failed (see tapeproxy status for why).', (s) => Number(s.failure !== '')],
  ['tapeproxy_sink_set_aside', 'gauge', '1 when the drive went on without the failed copy.', (s) => Number(s.setAside)],
];

const DRIVE_METRICS: [string, string, (d: DriveInfo) => number][] = [
  ['tapeproxy_drive_volume', 'Volume number in the drive (0: none loaded yet).', (d) => d.state!.volume],
  ['tapeproxy_drive_loaded', '1 when a volume is loaded.', (d) => Number(d.state!.loaded)],
  ['tapeproxy_drive_open', '1 while the drive is open.', (d) => Number(d.state!.inUse)],
  ['tapeproxy_drive_past_early_warning', '1 when a copy of the drive is past early warning.', (d) => Number(d.state!.pastEarlyWarning)],
];

export class Metrics {
  private readonly events = new Map<string, { labels: Labels; value: number }>();
  private readonly failures = new Map<string, { labels: Labels; value: number }>();
  private readonly gc = new GcStats();

  constructor(
    bus: EventBus,
    private readonly drives: () => DriveInfo[],
    /** Per drive with a device: WRITE records from its shim by how they crossed (ShimLink.writes). */
    private readonly shimWrites: () => { drive: string; ring: number; socket: number }[] = () => [],
  ) {
    bus.subscribe((e) => {
      count(this.events, { drive: e.drive, type: e.type });
      if (e.type === 'copy-failed') count(this.failures, { drive: e.drive, sink: e.sink });
    });
  }

  stop(): void {
    this.gc.stop();
  }

  render(): string {
    const drives = this.drives();
    const metrics: Metric[] = [
      ...DRIVE_METRICS.map(([name, help, value]): Metric => ({
        name,
        type: 'gauge',
        help,
        samples: drives.map((d) => ({ labels: { drive: d.name }, value: value(d) })),
      })),
      ...SINK_METRICS.map(([name, type, help, value]): Metric => ({
        name,
        type,
        help,
        samples: drives.flatMap((d) =>
          d.sinks.flatMap((s) => {
            const v = value(s);
            return v === undefined ? [] : [{ labels: { drive: d.name, sink: s.name }, value: v }];
          }),
        ),
      })),
      {
        name: 'tapeproxy_shim_records_total',
        type: 'counter',
        help: "Records written through the drive's device, by how they reached the daemon: ring (the shim's shared record ring) or socket (records while the ring was full, where the shim has none, and in CUSE mode those under 64 KiB).",
        samples: this.shimWrites().flatMap((w) => [
          { labels: { drive: w.drive, path: 'ring' }, value: w.ring },
          { labels: { drive: w.drive, path: 'socket' }, value: w.socket },
        ]),
      },
      { name: 'tapeproxy_sink_failures_total', type: 'counter', help: 'Failures of the copy (I/O errors, full file system, dead drive).', samples: [...this.failures.values()] },
      { name: 'tapeproxy_events_total', type: 'counter', help: 'Drive events by type (see tapeproxy watch).', samples: [...this.events.values()] },
      {
        name: 'tapeproxy_thread_cpu_seconds_total',
        type: 'counter',
        help: 'CPU seconds (user and system) of the daemon by thread: main (the front ends and copies), manifest hashing, encryption, other (file writes in libuv\'s pool, the collector, threads that have ended).',
        samples: Object.entries(threadCpuSeconds()).map(([thread, value]) => ({ labels: { thread }, value })),
      },
      {
        name: 'tapeproxy_gc_collections_total',
        type: 'counter',
        help: 'Garbage collections of the main thread by kind; many major ones per GiB written slow the drive down.',
        samples: [...this.gc.collections].map(([kind, value]) => ({ labels: { kind }, value })),
      },
      {
        name: 'tapeproxy_gc_pause_seconds_total',
        type: 'counter',
        help: 'Seconds garbage collection paused the main thread, by kind (work on helper threads shows in thread "other").',
        samples: [...this.gc.pauseSeconds].map(([kind, value]) => ({ labels: { kind }, value })),
      },
      {
        name: 'process_cpu_seconds_total',
        type: 'counter',
        help: 'User and system CPU time of the process in seconds.',
        samples: [{ labels: {}, value: cpuSeconds() }],
      },
      { name: 'process_resident_memory_bytes', type: 'gauge', help: 'Resident memory size in bytes.', samples: [{ labels: {}, value: process.memoryUsage.rss() }] },
      {
        name: 'process_start_time_seconds',
        type: 'gauge',
        help: 'Start time of the process since the epoch, in seconds.',
        samples: [{ labels: {}, value: Math.round(Date.now() / 1000 - process.uptime()) }],
      },
    ];
    return metrics.map(format).join('');
  }
}

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function count(counts: Map<string, { labels: Labels; value: number }>, labels: Labels): void {
  const key = JSON.stringify(labels);
  const entry = counts.get(key) ?? { labels, value: 0 };
  entry.value++;
  counts.set(key, entry);
}

function format(m: Metric): string {
  const lines = [`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`];
  for (const { labels, value } of m.samples) lines.push(`${m.name}${formatLabels(labels)} ${formatValue(value)}`);
  return lines.join('\n') + '\n';
}

function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return pairs.length > 0 ? `{${pairs.join(',')}}` : '';
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}
