import { Worker } from 'node:worker_threads';
import { forgetThread, nameThread } from '../metrics/thread-cpu.js';

/** The worker's first message (its OS thread id), then replies. */
type Envelope<T> = { tid: number } | { id: number; reply?: T; error?: string };

/**
 * Requests to one worker thread, answered in order by `serveRequests` on the other side. The
 * worker starts at the first request and does not keep the process alive while idle. If it dies,
 * its pending requests fail and the next request starts a new one.
 */
export class WorkerClient<Request, Reply> {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>();

  constructor(
    private readonly script: URL,
    private readonly label: string,
  ) {}

  /** Requests not answered yet. */
  get busy(): number {
    return this.pending.size;
  }

  request(message: Request): Promise<Reply> {
    const worker = (this.worker ??= this.spawn());
    if (this.pending.size === 0) worker.ref(); // a pending answer keeps a CLI alive
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, message });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private spawn(): Worker {
    const worker = new Worker(this.script, { execArgv: [] }); // the process's flags (--input-type, --eval...) are not the worker's
    worker.unref();
    let tid: number | undefined;
    worker.on('message', (message: Envelope<Reply>) => {
      if ('tid' in message) {
        nameThread((tid = message.tid), this.label);
        return;
      }
      const { id, reply, error } = message;
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (error !== undefined) waiter?.reject(new Error(`${this.label} worker: ${error}`));
      else waiter?.resolve(reply as Reply);
    });
    worker.on('error', (err) => this.lost(worker, err.message));
    worker.on('exit', (code) => {
      if (tid !== undefined) forgetThread(tid);
      this.lost(worker, `exited with code ${code}`);
    });
    return worker;
  }

  private lost(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const waiter of this.pending.values()) waiter.reject(new Error(`${this.label} worker failed: ${why}`));
    this.pending.clear();
  }
}
