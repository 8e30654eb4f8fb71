/** Worker thread of StreamHasher: one FileHasher per stream (tape file), fed in order. */
import { recordAt } from '../workers/record-batch.js';
import { serveRequests } from '../workers/serve-requests.js';
import type { HashReply, HashRequest } from './stream-hasher.js';
import { FileHasher } from './manifest.js';

const hashers = new Map<number, FileHasher>();
const hasher = (stream: number) => hashers.get(stream) ?? hashers.set(stream, new FileHasher()).get(stream)!;

serveRequests<HashRequest, HashReply>((request) => {
  switch (request.op) {
    case 'records': {
      for (let i = 0; i < request.lengths.length; i++) hasher(request.streams[i]!).add(recordAt(request, i));
      return { reply: {} };
    }
    case 'snapshot':
      return { reply: { snapshots: request.streams.map((s) => ({ stream: s, ...hasher(s).snapshot() })) } };
    case 'drop':
      for (const s of request.streams) hashers.delete(s);
      return { reply: {} };
  }
});
