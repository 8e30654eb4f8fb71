import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { loadConfigFile } from '../../daemon/config/config.js';

it('the example config in deploy/ is valid and means what its comments say', async () => {
  const config = await loadConfigFile(fileURLToPath(new URL('../../deploy/tapeproxy.example.yaml', import.meta.url)));
  expect(config).toEqual({
    listen: '127.0.0.1:7070',
    runtimeDir: '/run/tapeproxy',
    drives: [
      {
        name: 'pnst0',
        sinks: [
          'file:/srv/tapes/pnst0-a-%v.tap?capacity=18T&early-warning=20G',
          'file:/srv/tapes/pnst0-b-%v.tap?capacity=18T&early-warning=20G',
        ],
        maxRecord: 1 << 20,
        window: 16 << 20,
        minCopies: 2,
        autoload: true,
        deviceMode: '0660',
        deviceGroup: 'tape',
      },
    ],
  });
});
