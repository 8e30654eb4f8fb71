import type { Argv } from 'yargs';
import type { GlobalArgs } from '../cli-error.js';
import { ConfigError, DEFAULTS, parseMetricsAddress, recordPort, validateConfig, type DaemonConfig } from '../../daemon/config/config.js';
import { checkConfigPaths, loadCheckedConfig } from '../../daemon/config/config-paths.js';
import { startDaemon } from '../../daemon/daemon.js';
import { defaultCatalogDir } from '../../daemon/catalog/catalog.js';
import { createLogger } from '../../daemon/log.js';
import { HASH_NAMES } from '../../daemon/manifest/file-hash.js';
import { SINK_URI_HELP } from '../../daemon/sinks/sink-uri.js';
import { UsageError } from '../cli-error.js';

interface Args {
  config?: string;
  drive?: string;
  sink?: string[];
  listen?: string;
  'max-record'?: string;
  window?: string;
  'min-copies'?: number;
  'stall-timeout'?: number;
  autoload?: boolean;
  fuse?: string;
  cuse?: string;
  'device-mode'?: string;
  'device-group'?: string;
  'runtime-dir'?: string;
  'catalog-dir'?: string;
  manifests?: boolean;
  'manifest-hash'?: string;
  'follow-writer'?: boolean;
  metrics?: string;
  'record-port'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'tls-client-ca'?: string;
  'token-file'?: string;
  'allow-plaintext'?: boolean;
}

/** Flags of the gRPC port's protection, and their keys in a config file. */
const SECURITY_FLAGS = { 'tls-cert': 'tls.cert', 'tls-key': 'tls.key', 'tls-client-ca': 'tls.client-ca', 'token-file': 'token-file', 'allow-plaintext': 'allow-plaintext' } as const;

export const daemonCommand = {
  command: 'daemon',
  describe: 'Run the pseudo tape drives and serve them over gRPC',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('config', { type: 'string', describe: 'YAML config file (drives, sinks, listen address)' })
      .option('drive', { type: 'string', describe: 'name of a drive defined by flags' })
      .option('sink', { type: 'string', array: true, describe: `sink URI for --drive, repeatable (${SINK_URI_HELP})` })
      .option('listen', { type: 'string', describe: `gRPC address (default ${DEFAULTS.listen}; port 0 picks one)` })
      .option('max-record', { type: 'string', describe: `largest record (default ${DEFAULTS.maxRecord})` })
      .option('window', { type: 'string', describe: `write-behind bytes per copy (default ${DEFAULTS.window})` })
      .option('min-copies', {
        type: 'number',
        describe: 'copies that must stay healthy; a failed copy beyond them is set aside and the backup goes on (default: every sink)',
      })
      .option('stall-timeout', {
        type: 'number',
        describe: `seconds a copy may make no progress while the writer waits for it before it counts as failed (default ${DEFAULTS.stallTimeout}; 0: wait forever)`,
      })
      .option('autoload', { type: 'boolean', describe: 'load the next volume unattended at logical EOT (default on)' })
      .option('fuse', { type: 'string', describe: 'serve --drive as this file, a FUSE mount (kernels without CUSE)' })
      .option('cuse', { type: 'string', describe: 'serve --drive as the character device /dev/NAME (default NAME: the drive name)' })
      .option('device-mode', { type: 'string', describe: `mode of the device file (default ${DEFAULTS.deviceMode})` })
      .option('device-group', { type: 'string', describe: `group of the device file (default ${DEFAULTS.deviceGroup})` })
      .option('runtime-dir', { type: 'string', describe: `where the shims' sockets go (default ${DEFAULTS.runtimeDir})` })
      .option('catalog-dir', { type: 'string', describe: `where the catalog of sessions goes (default ${defaultCatalogDir()})` })
      .option('manifests', { type: 'boolean', describe: 'record manifests next to images and in the catalog (default on; --no-manifests)' })
      .option('manifest-hash', {
        type: 'string',
        choices: HASH_NAMES,
        describe: `the manifests' digests (default ${DEFAULTS.manifestHash}; sha256 where a FIPS-approved hash is required, slower)`,
      })
      .option('follow-writer', {
        type: 'boolean',
        describe: "the device's shim serves reads and writes on the CPU the writer last ran on, within its own CPUs (default on; --no-follow-writer)",
      })
      .option('metrics', { type: 'string', describe: 'serve Prometheus metrics at http://HOST:PORT/metrics (PORT alone: on 127.0.0.1; default off)' })
      .option('record-port', {
        type: 'string',
        describe: "port on the gRPC host where other daemons' grpc copies send their records, beside gRPC (default: the gRPC port + 1, if free; 0: any; off: none, records then go in gRPC messages)",
      })
      .option('tls-cert', { type: 'string', describe: 'serve gRPC over TLS with this certificate (PEM; with --tls-key): needed to listen beyond loopback' })
      .option('tls-key', { type: 'string', describe: "the certificate's private key (PEM)" })
      .option('tls-client-ca', { type: 'string', describe: 'ask clients for a certificate signed by this CA (PEM)' })
      .option('token-file', { type: 'string', describe: 'every gRPC call must carry the token in this file (authorization: Bearer TOKEN)' })
      .option('allow-plaintext', { type: 'boolean', describe: 'serve plaintext gRPC beyond loopback (only on a network you trust)' })
      .example(
        '$0 daemon --drive pnst0 --sink file:/srv/a-%v.tap?capacity=400G --sink file:/srv/b-%v.tap',
        'one drive mirrored to two image files, reached over gRPC and rmt',
      )
      .example('$0 daemon --drive pnst0 --cuse --sink file:/srv/a-%v.tap', 'the same drive as /dev/pnst0 (CUSE)')
      .example("$0 daemon --drive pnst0 --sink file:/srv/a-%v.tap --sink 'encrypt:keyfile=/etc/tapeproxy/offsite.key|file:/mnt/offsite/b-%v.tap'", 'a second copy, encrypted')
      .example('$0 daemon --drive pnst0 --fuse ./pnst0 --sink file:a.tap --sink file:b.tap', 'as the file ./pnst0 (FUSE)')
      .example('$0 daemon --config /etc/tapeproxy/tapeproxy.yaml', 'drives from a config file')
      .example('$0 daemon --config /etc/tapeproxy/tapeproxy.yaml --metrics 9464', 'with metrics at http://127.0.0.1:9464/metrics')
      .example(
        "$0 daemon --drive pnst0 --sink file:/srv/a-%v.tap --sink 'rmt://backup@tapehost/dev/nst0?early-warning=2G'",
        'a local image and a drive on tapehost through its rmt server over ssh',
      )
      .example(
        "$0 daemon --drive pnst0 --sink file:/srv/a-%v.tap --sink 'grpc://vault:7070/vault0?ca=ca.crt&token-file=token'",
        "a local image and drive vault0 of the tapeproxy daemon on vault, over TLS with a token",
      )
      .example(
        '$0 daemon --drive vault0 --sink file:/srv/a-%v.tap --listen 0.0.0.0:7070 --tls-cert server.crt --tls-key server.key --token-file token',
        "serve drive vault0 to other machines' grpc sinks, over TLS with a token",
      ),
  handler: async (args: Args) => {
    const config = await configFrom(args);
    const log = createLogger();
    const daemon = await startDaemon(config, log);
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      await daemon.stop();
      log.flush();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  },
};

function recordPortFlag(value: string): number | 'off' {
  const parsed = recordPort.safeParse(value);
  if (!parsed.success) throw new UsageError(`--record-port: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** The configuration from --config or from flags, checked against this machine (paths, devices). */
async function configFrom(args: Args): Promise<DaemonConfig> {
  if (args.config) {
    if (args.drive || args.sink) throw new UsageError('use either --config or --drive/--sink, not both');
    for (const [flag, key] of Object.entries(SECURITY_FLAGS)) {
      if (args[flag as keyof typeof SECURITY_FLAGS] !== undefined) throw new UsageError(`with --config, give ${key} in the config file, not --${flag}`);
    }
    const config = await loadCheckedConfig(args.config);
    if (args.listen) config.listen = args.listen;
    if (args['record-port'] !== undefined) config.recordPort = recordPortFlag(args['record-port']);
    try {
      if (args.metrics) config.metrics = parseMetricsAddress(args.metrics);
    } catch (err) {
      throw new ConfigError(`--metrics: ${(err as Error).message}`);
    }
    return config;
  }
  if (!args.drive) throw new UsageError('give --config FILE, or --drive NAME with one or more --sink URI');
  if (!args.sink?.length) throw new UsageError(`drive ${args.drive} needs at least one --sink URI`);
  if (!args['tls-cert'] !== !args['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
  if (args['tls-client-ca'] && !args['tls-cert']) throw new UsageError('--tls-client-ca needs --tls-cert and --tls-key');
  try {
    const config = validateConfig({
      listen: args.listen,
      metrics: args.metrics,
      'record-port': args['record-port'],
      tls: args['tls-cert'] && { cert: args['tls-cert'], key: args['tls-key'], 'client-ca': args['tls-client-ca'] },
      'token-file': args['token-file'],
      'allow-plaintext': args['allow-plaintext'],
      'runtime-dir': args['runtime-dir'],
      'catalog-dir': args['catalog-dir'],
      drives: [
        {
          name: args.drive,
          sinks: args.sink,
          'max-record': args['max-record'],
          window: args.window,
          'min-copies': args['min-copies'],
          'stall-timeout': args['stall-timeout'],
          autoload: args.autoload,
          fuse: args.fuse,
          cuse: args.cuse === undefined ? undefined : args.cuse || true,
          'device-mode': args['device-mode'],
          'device-group': args['device-group'],
          manifests: args.manifests,
          'manifest-hash': args['manifest-hash'],
          'follow-writer': args['follow-writer'],
        },
      ],
    });
    checkConfigPaths(config);
    return config;
  } catch (err) {
    // Flag values are named by flag, not by config key.
    throw new ConfigError(
      (err as Error).message
        .replace(/^drives\[0\]\.sinks\[\d+\]: /, '--sink: ')
        .replace(/^drives\[0\]\.([\w-]+)/, '--$1')
        .replace(/^metrics:/, '--metrics:'),
    );
  }
}
