// Generates generated/tapeproxy.ts from proto/ with protoc and ts-proto. The output is not checked
// in: the build always makes it from the .proto, so it cannot go stale.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'generated'), { recursive: true });
execFileSync(
  'protoc',
  [
    `--plugin=protoc-gen-ts_proto=${join(root, 'node_modules/.bin/protoc-gen-ts_proto')}`,
    `--ts_proto_out=${join(root, 'generated')}`,
    '--ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,importSuffix=.js,forceLong=number',
    `--proto_path=${join(root, 'proto')}`,
    'tapeproxy.proto',
  ],
  { stdio: 'inherit' },
);
