/** Worker thread of the crypto pool: seals batches of records, opens single records. */
import { recordAt } from '../workers/record-batch.js';
import { serveRequests } from '../workers/serve-requests.js';
import { type CryptoReply, type CryptoRequest } from './crypto-pool.js';
import { openRecord, RECORD_OVERHEAD, recordAad, sealRecord } from './record-cipher.js';

const aad = Buffer.allocUnsafe(28);

serveRequests<CryptoRequest, CryptoReply>((request) => {
  const keyId = request.keyId;
  if (request.op === 'seal') {
    const { lengths, spots } = request;
    const total = lengths.reduce((sum, n) => sum + n + RECORD_OVERHEAD, 0);
    if (request.out && request.out.length < total) throw new Error(`a sealed batch of ${total} bytes was given ${request.out.length}`);
    // The caller's shared memory, or a buffer of its own, which is handed over whole.
    const out = request.out ? Buffer.from(request.out.memory, request.out.offset, total) : Buffer.allocUnsafeSlow(total);
    for (let i = 0, at = 0; i < lengths.length; i++) {
      recordAad(keyId, { volume: request.volume, file: spots[2 * i]!, record: spots[2 * i + 1]! }, aad);
      sealRecord(request.recordKey, aad, recordAt(request, i), out, at);
      at += lengths[i]! + RECORD_OVERHEAD;
    }
    if (request.out) return { reply: {} }; // sealed where the caller reads them
    return { reply: { sealed: out.buffer as ArrayBuffer }, transfer: [out.buffer as ArrayBuffer] };
  }
  let plain: Buffer;
  try {
    plain = openRecord(request.recordKey, recordAad(keyId, request.place, aad), Buffer.from(request.chunk, 0, request.length));
  } catch (err) {
    return { reply: { error: (err as Error).message } };
  }
  // Hand the plaintext's buffer over whole when it is its own, else a copy (never a pooled slab).
  const whole = plain.byteOffset === 0 && plain.byteLength === plain.buffer.byteLength;
  const ab = (whole ? plain.buffer : Uint8Array.from(plain).buffer) as ArrayBuffer;
  return { reply: { plain: ab }, transfer: [ab] };
});
