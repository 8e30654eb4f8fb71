import { parentPort, type Transferable } from 'node:worker_threads';
import { ownThreadId } from '../metrics/thread-cpu.js';

/** The worker side of WorkerClient: tells its OS thread id (for CPU accounting), then answers each request in arrival order. */
export function serveRequests<Request, Reply>(handle: (request: Request) => { reply: Reply; transfer?: Transferable[] }): void {
  const port = parentPort;
  if (!port) throw new Error('this module runs as a worker thread');
  port.postMessage({ tid: ownThreadId() });
  port.on('message', ({ id, message }: { id: number; message: Request }) => {
    let answer: { reply: Reply; transfer?: Transferable[] };
    try {
      answer = handle(message);
    } catch (err) {
      port.postMessage({ id, error: (err as Error).message });
      return;
    }
    port.postMessage({ id, reply: answer.reply }, answer.transfer ?? []);
  });
}
