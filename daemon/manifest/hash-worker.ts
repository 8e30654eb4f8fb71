/** Worker thread of StreamHasher: one FileHasher per stream (tape file), fed in order. */
import { recordAt } from '../workers/record-batch.js';
import { serveRequests } from '../workers/serve-requests.js';
import type { HashName } from './file-hash.js';
import type { HashReply, HashRequest } from './stream-hasher.js';
import { FileHasher } from './manifest.js';

const hashers = new Map<number, FileHasher>();
const hasher = (stream: number, hash: HashName) => hashers.get(stream) ?? hashers.set(stream, new FileHasher(hash)).get(stream)!;

serveRequests<HashRequest, HashReply>((request) => {
  switch (request.op) {
    case 'records': {
      for (let i = 0; i < request.lengths.length; i++) hasher(request.streams[i]!, request.hash).add(recordAt(request, i));
      return { reply: {} };
    }
    case 'snapshot':
      return { reply: { snapshots: request.streams.map((s) => ({ stream: s, ...hasher(s, request.hash).snapshot() })) } };
    case 'drop':
      for (const s of request.streams) hashers.delete(s);
      return { reply: {} };
  }
});
