/**
 * The daemon killed with SIGKILL in the middle of a backup (power cut of the process): the writer
 * gets an error instead of hanging, the FUSE device goes away, every image holds whole records up to
 * where the writing stopped (`tapeproxy image repair` cuts a torn tail), those records are the
 * writer's, in order, and a restarted daemon serves the drive again. An image whose tail is torn is
 * refused with the repair command in the message, rather than read as a shorter or garbled tape.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { cli, imageObjects, startDaemon, type RunningDaemon } from '../support/daemon.js';
import { writeImage } from '../support/images.js';
import { useTempDir } from '../support/temp-dir.js';
import { isMountPoint, sizeOf, waitFor } from '../support/wait.js';

const dir = useTempDir();
let daemon: RunningDaemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const REC = 64 * 1024;

function driveArgs(device: string): string[] {
  return ['--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'),
    '--sink', `file:${dir.path}/a.tap`, '--sink', `file:${dir.path}/b.tap`];
}


it('SIGKILL mid-stream: the writer gets an error, the images hold a prefix of its records, a restarted daemon serves again', async () => {
  const device = join(dir.path, 'pnst0');
  const input = join(dir.path, 'input');
  await writeFile(input, randomBytes(256 * REC)); // 16 MiB
  daemon = await startDaemon(driveArgs(device));
  // A slow writer, so the kill lands mid-stream: one record every few milliseconds.
  const writer = execa('sh', ['-c', `for i in $(seq 0 255); do dd if=${input} bs=${REC} skip=$i count=1 status=none; done | dd of=${device} bs=${REC} iflag=fullblock status=none`], { reject: false });
  await waitFor('a quarter of the stream on both copies', async () => (await sizeOf(join(dir.path, 'b.tap'))) > 64 * REC);
  process.kill(daemon.pid, 'SIGKILL');
  daemon = undefined;

  const result = await writer;
  expect(result.exitCode, 'the writer must see the loss').not.toBe(0);
  expect(result.stderr).toMatch(/Input\/output error|Transport endpoint is not connected|No such device/);
  await waitFor('the shim to unmount the device', async () => !(await isMountPoint(device)));

  const written = await readFile(input);
  for (const copy of ['a.tap', 'b.tap']) {
    const path = join(dir.path, copy);
    // A torn tail (a record cut by the kill) is cut back to the last whole record; then it verifies.
    await cli(['image', 'repair', path, '--in-place']);
    const verify = await cli(['image', 'verify', path]);
    expect(verify.exitCode, `${copy}: ${verify.stdout}${verify.stderr}`).toBe(0);
    const objects = await imageObjects(path);
    expect(objects.length, copy).toBeGreaterThan(0);
    objects.forEach((o, i) => {
      expect(o, `${copy} object ${i}`).not.toBeNull(); // no filemark: nobody closed the drive
      expect(o!.equals(written.subarray(i * REC, (i + 1) * REC)), `${copy} record ${i} is the writer's record ${i}`).toBe(true);
    });
  }

  // Restarted on the same images, the drive serves again: the aborted backup is written anew from
  // the beginning, over both copies (which the kill may have left at different lengths).
  daemon = await startDaemon(driveArgs(device));
  await execa('dd', [`if=${input}`, `of=${device}`, `bs=${REC}`, 'count=4', 'status=none']);
  await daemon.stop();
  daemon = undefined;
  for (const copy of ['a.tap', 'b.tap']) {
    const objects = await imageObjects(join(dir.path, copy));
    expect(objects.map((o) => (o ? o.length : 'FM')), copy).toEqual([REC, REC, REC, REC, 'FM']);
    expect(objects[3]!.equals(written.subarray(3 * REC, 4 * REC))).toBe(true);
  }
}, 120_000);

it('an image with a torn tail is refused, naming the repair, and serves again once repaired', async () => {
  const device = join(dir.path, 'pnst0');
  const path = join(dir.path, 'a.tap');
  const args = ['daemon', '--drive', 'pnst0', '--fuse', device, '--runtime-dir', join(dir.path, 'run'), '--sink', `file:${path}`];
  daemon = await startDaemon(args.slice(1));
  await execa('dd', ['if=/dev/urandom', `of=${device}`, `bs=${REC}`, 'count=3', 'status=none']);
  await daemon.stop();
  daemon = undefined;
  const whole = await sizeOf(path);
  await appendFile(path, Buffer.concat([Buffer.from([0x00, 0x00, 0x01, 0x00]), randomBytes(1000)])); // a 64 KiB record, cut

  const refused = await cli([...args, '--listen', '127.0.0.1:0']);
  expect(refused.exitCode).not.toBe(0);
  const said = refused.stdout.toString() + refused.stderr;
  expect(said).toContain(`image ${path}: record of 65536 bytes cut short (image truncated) at byte ${whole}`);
  expect(said).toContain(`tapeproxy image repair ${path} --in-place`);

  expect((await cli(['image', 'repair', path, '--in-place'])).exitCode).toBe(0);
  expect(await sizeOf(path)).toBe(whole);
  daemon = await startDaemon(args.slice(1));
  await execa('mt', ['-f', device, 'eod']);
  const status = await cli(['status', 'pnst0', '--server', daemon.address]);
  expect(status.stdout.toString()).toMatch(/file 1, block -1/);
}, 60_000);

/**
 * On tmpfs the image sink writes over an old backup in place (FileSink's class comment). Killed at
 * random moments, again and again, the writer must leave an image that reads as a prefix of the new
 * records, ending at an end-of-medium marker: never one that runs on into the old records, which
 * have the same sizes at the same offsets (so a marker lost to a torn write would not show).
 */
it('SIGKILL while overwriting an image on tmpfs in place: the image is the new records up to a marker, never old ones after them', async () => {
  const shm = await mkdtemp('/dev/shm/tapeproxy-test-');
  try {
    const path = join(shm, 'a.tap');
    const [COUNT, BYTES] = [256, 16 * 1024];
    const script = fileURLToPath(new URL('../support/overwrite-image.mjs', import.meta.url));
    const seen = { killedMidway: 0, longest: 0 };
    for (let round = 0; round < 20; round++) {
      await writeImage(path, Array.from({ length: COUNT }, () => Buffer.alloc(BYTES, 0xaa)));
      // Killed after a random record, with the sink's earlier writes wherever they are by then.
      const killAfter = 8 + Math.floor(Math.random() * (COUNT - 16));
      const result = await execa('node', [script, path, String(COUNT), String(BYTES), String(killAfter)], { reject: false });
      const objects = await imageObjects(path);
      objects.forEach((o, i) => {
        expect(o, `round ${round}: object ${i} must be a record`).not.toBeNull();
        expect(o!.readUInt32LE(0), `round ${round}: record ${i} is new record ${i}`).toBe(i);
        expect(o!.subarray(4).every((b) => b === 0xbb), `round ${round}: record ${i} holds only new bytes`).toBe(true);
      });
      if (result.signal === 'SIGKILL' && objects.length < COUNT) seen.killedMidway++;
      seen.longest = Math.max(seen.longest, objects.length);
      expect((await cli(['image', 'verify', path])).exitCode, `round ${round}: image verify`).toBe(0);
    }
    // The kills must have come while the old records were being written over, or this tested nothing.
    expect(seen.killedMidway, JSON.stringify(seen)).toBeGreaterThanOrEqual(10);

    // Written over once more, to the end, the image left by the last kill holds exactly the new records.
    const done = await execa('node', [script, path, String(COUNT), String(BYTES)]);
    expect(done.stdout).toContain('done');
    expect(await sizeOf(path)).toBe(COUNT * (BYTES + 8));
    expect((await imageObjects(path)).map((o) => o!.readUInt32LE(0))).toEqual(Array.from({ length: COUNT }, (_, i) => i));
  } finally {
    await rm(shm, { recursive: true, force: true });
  }
}, 120_000);
