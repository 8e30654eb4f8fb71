/** The hand-made codec of write requests against the generated one, both ways. */
import { expect, it } from 'vitest';
import { decodeDriveRequest, encodeDriveRequest } from '../../daemon/frontends/grpc/record-codec.js';
import { Access, DriveRequest } from '../../generated/tapeproxy.js';

const record = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
const writes: DriveRequest[] = [
  { id: 1, pipelined: false, write: { data: record, behind: false } },
  { id: 2 ** 40 + 3, pipelined: true, write: { data: record, behind: true } },
  { id: 127, pipelined: true, write: { data: Buffer.alloc(0), behind: false } },
  { id: 128, pipelined: false, write: { data: Buffer.alloc(70000, 7), behind: true } },
];

it('encodes write requests as the generated code decodes them, and decodes what either encoder made', () => {
  for (const request of writes) {
    expect(DriveRequest.decode(encodeDriveRequest(request))).toEqual(request);
    expect(decodeDriveRequest(encodeDriveRequest(request))).toEqual(request);
    expect(decodeDriveRequest(Buffer.from(DriveRequest.encode(request).finish()))).toEqual(request);
  }
});

it('takes a record given as a plain Uint8Array, as the generated code does (execa hands those out)', () => {
  const request: DriveRequest = { id: 9, pipelined: false, write: { data: new Uint8Array(record) as Buffer, behind: false } };
  expect(DriveRequest.decode(encodeDriveRequest(request)).write!.data.equals(record)).toBe(true);
});

it('leaves the record where it arrived', () => {
  const bytes = encodeDriveRequest(writes[0]!);
  const data = decodeDriveRequest(bytes).write!.data;
  expect(data.buffer).toBe(bytes.buffer);
});

it('hands every other request to the generated code', () => {
  const others: DriveRequest[] = [
    { id: 5, pipelined: false, open: { drive: 'pnst0', access: Access.ACCESS_WRITE, nonBlocking: false, rewindOnClose: false, recordChannel: false } },
    { id: 6, pipelined: true, mt: { op: 35, count: 2 } },
    { id: 7, pipelined: false, read: { maxBytes: 65536 } },
  ];
  for (const request of others) {
    const generated = Buffer.from(DriveRequest.encode(request).finish());
    expect(encodeDriveRequest(request)).toEqual(generated);
    expect(decodeDriveRequest(generated)).toEqual(request);
  }
});
