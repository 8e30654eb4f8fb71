import { readFileSync, readlinkSync } from 'node:fs';

/**
 * CPU time of the daemon's threads by what they do, from /proc/self/task: which stage is busy
 * (the front ends' thread, manifest hashing, encryption) is what a slow backup needs to know, and
 * Node names all its threads "node". Worker threads tell their OS thread id (`ownThreadId`) to
 * their client, which names it here.
 */

/** The clock ticks of /proc's stat files: USER_HZ, 100 on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** Thread ids of the named threads (workers), by thread id. */
const named = new Map<number, string>();

/** The OS thread id of the calling thread (a worker's own, in a worker). */
export function ownThreadId(): number {
  return Number(readlinkSync('/proc/thread-self').split('/').pop());
}

/** The thread that loaded this module: the daemon's event loop, which serves the front ends. */
const mainThread = ownThreadId();

export function nameThread(tid: number, label: string): void {
  named.set(tid, label);
}

export function forgetThread(tid: number): void {
  named.delete(tid);
}

/**
 * CPU seconds (user and system) so far, by label: `main`, each worker label (threads of one label
 * summed), and `other` for the rest of the process: libuv's pool (file writes), V8's helpers
 * (collection, compilation) and threads that have exited. The labels sum to the process's time.
 */
export function threadCpuSeconds(): Record<string, number> {
  const seconds: Record<string, number> = { main: statCpuSeconds(`/proc/self/task/${mainThread}/stat`) };
  for (const [tid, label] of named) seconds[label] = (seconds[label] ?? 0) + statCpuSeconds(`/proc/self/task/${tid}/stat`);
  const labelled = Object.values(seconds).reduce((a, b) => a + b, 0);
  seconds.other = Math.max(0, statCpuSeconds('/proc/self/stat') - labelled);
  return seconds;
}

/** User plus system CPU seconds in a /proc stat file (a process's or a thread's); 0 once it has gone. */
export function statCpuSeconds(path: string): number {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}
