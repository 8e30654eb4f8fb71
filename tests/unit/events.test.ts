/**
 * The daemon's event bus as the drive and its mirror feed it (what the log, watch, metrics and
 * health read), and the rate meter: real PseudoDrive, Mirror and memory copies, a controlled clock.
 */
import { describe, expect, it } from 'vitest';
import { PseudoDrive } from '../../daemon/drive/pseudo-drive.js';
import { EventBus, type DriveEvent } from '../../daemon/events/events.js';
import { RateMeter } from '../../daemon/events/rates.js';
import { Mirror } from '../../daemon/mirror/mirror.js';
import { Capacity } from '../../daemon/sinks/capacity.js';
import { MemorySink } from '../../daemon/sinks/memory-sink.js';
import { expectErrno } from '../support/errno.js';
import { record } from '../support/memory-drive.js';

const REC = 10240;

async function drive(bus: EventBus, copies: MemorySink[]) {
  const events = bus.forDrive('pnst0');
  const mirror = new Mirror(copies, { window: 1 << 20, events });
  const d = new PseudoDrive('pnst0', mirror, { maxRecord: 1 << 20, autoload: true, events });
  await d.start();
  return d;
}

/** The events, each as its type and the fields that tell it apart. */
function summary(events: DriveEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'opened':
        return `opened ${e.access} v${e.volume}${e.autoloaded ? ' autoloaded' : ''}${e.nonBlocking ? ' non-blocking' : ''}`;
      case 'early-warning':
        return `early-warning ${e.sink} v${e.volume}`;
      case 'filemark':
        return `filemark x${e.count} v${e.volume} file ${e.fileno}`;
      case 'closed':
        return `closed v${e.volume} file ${e.fileno}`;
      case 'logical-eot':
        return `logical-eot v${e.volume}${e.physical ? ' physical' : ''}`;
      default:
        return `${e.type}${'volume' in e ? ` v${e.volume}` : ''}`;
    }
  });
}

describe('drive events', () => {
  it('a multi-volume write: opens, the first copy at early warning, logical EOT, filemark, volume change; nothing per record', async () => {
    const bus = new EventBus();
    const seen: DriveEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const small = new MemorySink('small', new Capacity(100 * 1024, 20 * 1024));
    const big = new MemorySink('big', new Capacity());
    const d = await drive(bus, [small, big]);

    let fd = await d.open({ access: 'write' });
    const beforeRecords = seen.length;
    for (let i = 0; i < 7; i++) await fd.write(record(REC, i)); // 7 framed records: 71.7 KiB, before EW at 80 KiB
    expect(seen.length).toBe(beforeRecords); // no event per record
    await fd.write(record(REC, 7)); // crosses early warning on the small copy
    await expectErrno(fd.write(record(REC, 8)), 'ENOSPC');
    await fd.close();
    fd = await d.open({ access: 'write' }); // autoload: the next volume
    await fd.write(record(REC, 9));
    await fd.close();
    const status = await d.open({ access: 'read', nonBlocking: true });
    await status.close();

    expect(summary(seen)).toEqual([
      'volume-loading v1',
      'volume-loaded v1',
      'opened write v1',
      'early-warning mem:small v1',
      'logical-eot v1',
      'filemark x1 v1 file 1',
      'closed v1 file 1',
      'volume-unloaded v1',
      'volume-loading v2',
      'volume-loaded v2',
      'opened write v2 autoloaded',
      'filemark x1 v2 file 1',
      'closed v2 file 1',
      'opened read v2 non-blocking',
      'closed v2 file 1',
    ]);
    expect(seen.every((e) => e.drive === 'pnst0')).toBe(true);
    expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => i + 1));
  });

  it('a copy at its physical end: logical EOT marked physical', async () => {
    const bus = new EventBus();
    const seen: DriveEvent[] = [];
    bus.subscribe((e) => seen.push(e));
    const d = await drive(bus, [new MemorySink('tiny', new Capacity(3 * REC, 15000))]);
    const fd = await d.open({ access: 'write' });
    await fd.write(record(REC, 1));
    await fd.write(record(REC, 2)); // past early warning
    await expectErrno(fd.write(record(REC, 3)), 'ENOSPC'); // the write after early warning
    await expectErrno(fd.write(record(REC, 4)), 'ENOSPC'); // allowed by st's alternation, but does not fit
    expect(summary(seen).filter((s) => s.startsWith('logical-eot'))).toEqual(['logical-eot v1', 'logical-eot v1 physical']);
    await fd.close();
  });
});

describe('RateMeter', () => {
  it('rate over the last samples, average over the write session, which goes on through an autoloaded reopen', async () => {
    let now = 1_000_000;
    const bus = new EventBus(() => now);
    const sink = new MemorySink('a', new Capacity());
    const meter = new RateMeter([sink], () => now);
    bus.subscribe((e) => meter.onEvent(e));
    const publish = bus.forDrive('pnst0');
    await sink.load(1);
    const write = (mib: number) => {
      for (let i = 0; i < mib * 16; i++) sink.write(Buffer.alloc(65536));
    };

    expect(meter.rates()).toEqual([{ rate: 0, average: 0, sessionBytes: 0 }]);
    write(1); // before the session: not in its figures
    meter.sample();
    publish({ type: 'opened', access: 'write', nonBlocking: false, volume: 1, autoloaded: false });
    expect(meter.sessionTimes).toEqual({ started: 1_000_000, ended: 0 });
    for (let s = 1; s <= 3; s++) {
      now += 1000;
      write(2);
      meter.sample();
    }
    expect(meter.rates()).toEqual([{ rate: 2 * 2 ** 20, average: 2 * 2 ** 20, sessionBytes: 6 * 2 ** 20 }]);

    publish({ type: 'closed', volume: 1, fileno: 1, blkno: 0 });
    now += 1000;
    publish({ type: 'opened', access: 'write', nonBlocking: false, volume: 2, autoloaded: true }); // tar -M's next volume
    now += 1000;
    write(4);
    meter.sample();
    // 10 MiB in 5 s of session; over the sample window (oldest kept sample at -4 s): 2+2+0+4 MiB in 4 s.
    expect(meter.rates()[0]).toEqual({ rate: 2 * 2 ** 20, average: 2 * 2 ** 20, sessionBytes: 10 * 2 ** 20 });

    publish({ type: 'closed', volume: 2, fileno: 1, blkno: 0 });
    now += 60_000;
    for (let i = 0; i < 6; i++) meter.sample(); // idle: the window forgets the writing
    expect(meter.rates()[0]).toEqual({ rate: 0, average: 2 * 2 ** 20, sessionBytes: 10 * 2 ** 20 }); // ended: kept as it was
    expect(meter.sessionTimes).toEqual({ started: 1_000_000, ended: 1_005_000 });

    publish({ type: 'opened', access: 'read', nonBlocking: false, volume: 2, autoloaded: false }); // a reader: no write session
    publish({ type: 'opened', access: 'write', nonBlocking: true, volume: 2, autoloaded: false }); // mt status: neither
    expect(meter.sessionTimes.started).toBe(1_000_000);
    publish({ type: 'opened', access: 'write', nonBlocking: false, volume: 2, autoloaded: false }); // a new backup
    expect(meter.sessionTimes).toEqual({ started: now, ended: 0 });
    expect(meter.rates()[0]!.sessionBytes).toBe(0);
  });
});
