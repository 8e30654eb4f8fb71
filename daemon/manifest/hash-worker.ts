/** Worker thread of StreamHasher: one FileHasher per stream (tape file), fed in order. */
import { recordsOf } from '../workers/record-batch.js';
import { serveRequests } from '../workers/serve-requests.js';
import type { HashReply, HashRequest } from './stream-hasher.js';
import { FileHasher } from './manifest.js';

const hashers = new Map<number, FileHasher>();
const hasher = (stream: number) => hashers.get(stream) ?? hashers.set(stream, new FileHasher()).get(stream)!;

serveRequests<HashRequest, HashReply>((request) => {
  switch (request.op) {
    case 'records': {
      let i = 0;
      for (const record of recordsOf(request)) hasher(request.streams[i++]!).add(record);
      return { reply: {} };
    }
    case 'snapshot':
      return { reply: { snapshots: request.streams.map((s) => ({ stream: s, ...hasher(s).snapshot() })) } };
    case 'drop':
      for (const s of request.streams) hashers.delete(s);
      return { reply: {} };
  }
});
