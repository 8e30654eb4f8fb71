/**
 * What users write for remote copies and for serving drives to them: rmt and grpc sink URIs, the
 * daemon's TLS and token keys and flags, and the token check every call passes.
 */
import * as grpc from '@grpc/grpc-js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { connect } from '../../client/drive-session.js';
import { ConfigError, validateConfig } from '../../daemon/config/config.js';
import { startDaemon } from '../../daemon/daemon.js';
import { GrpcSink } from '../../daemon/sinks/grpc-sink.js';
import { RmtSink } from '../../daemon/sinks/rmt-sink.js';
import { SinkUriError, sinkFromUri } from '../../daemon/sinks/sink-uri.js';
import { cli } from '../support/daemon.js';
import { useTempDir } from '../support/temp-dir.js';

const tmp = useTempDir();
const silent = pino({ level: 'silent' });

function expectUriError(uri: string, message: string): void {
  expect(() => sinkFromUri(uri)).toThrow(new SinkUriError(uri, message));
}

describe('rmt sink URIs', () => {
  it('run RSH [-l USER] HOST RMT, as tar runs its remote shell', () => {
    const sink = sinkFromUri('rmt://backup@tapehost/dev/nst0?rmt=/usr/sbin/rmt-tar&early-warning=1G') as RmtSink;
    expect(sink).toBeInstanceOf(RmtSink);
    expect(sink.name).toBe('rmt://backup@tapehost/dev/nst0');
    expect(sink.earlyWarningZone).toBe(2 ** 30);
    expect(sink.command).toEqual([
      'ssh', '-o', 'BatchMode=yes', '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4', '-l', 'backup', 'tapehost', '/usr/sbin/rmt-tar',
    ]);
    expect((sinkFromUri('rmt://tapehost/dev/nst1?rsh=ssh+-p+2222') as RmtSink).command).toEqual(['ssh', '-p', '2222', 'tapehost', '/usr/sbin/rmt']);
    expect((sinkFromUri('rmt://localhost/dev/nst0?rsh=local&rmt=/usr/sbin/rmt-dump') as RmtSink).command).toEqual(['/usr/sbin/rmt-dump']);
  });

  it('say what is missing or wrong', () => {
    expectUriError('rmt:/dev/nst0', 'a host is needed, as in rmt://[user@]host/dev/nst0');
    expectUriError('rmt://tapehost', 'a device path is needed, as in rmt://backup@tapehost/dev/nst0');
    expectUriError('rmt://tapehost/dev/nst0?rsh=local', "rsh=local runs rmt on this machine: the host must be localhost, not 'tapehost'");
    expectUriError('rmt://tapehost/dev/nst0?timeout=soon', "timeout must be a number of seconds above 0, not 'soon'");
    expectUriError('rmt://tapehost/dev/nst0?ca=x', "unknown parameter 'ca' for rmt:; known: rsh, rmt, early-warning, timeout");
  });
});

describe('grpc sink URIs', () => {
  it('name the remote drive without any parameter (a token file path is no secret, but stays out too)', () => {
    const sink = sinkFromUri('grpc://vault.example.com:7443/pnst0?ca=/etc/tp/ca.crt&token-file=/etc/tp/token&grace=0');
    expect(sink).toBeInstanceOf(GrpcSink);
    expect(sink.name).toBe('grpc://vault.example.com:7443/pnst0');
    expect(sinkFromUri('grpc://[::1]/pnst0?plaintext').name).toBe('grpc://[::1]:7070/pnst0');
  });

  it('are TLS unless plaintext, which is for loopback unless said to be insecure', () => {
    expect(sinkFromUri('grpc://127.0.0.1:7070/pnst0?plaintext').name).toBe('grpc://127.0.0.1:7070/pnst0');
    expectUriError(
      'grpc://10.0.0.5:7070/pnst0?plaintext',
      'plaintext to 10.0.0.5 would send the backup and the token unencrypted: use TLS (ca=...), or plaintext=insecure on a network you trust',
    );
    expect(sinkFromUri('grpc://10.0.0.5:7070/pnst0?plaintext=insecure')).toBeInstanceOf(GrpcSink);
    expectUriError('grpc://10.0.0.5/pnst0?plaintext=maybe', "plaintext is a flag, or plaintext=insecure; not 'maybe'");
    expectUriError('grpc://127.0.0.1/pnst0?plaintext&ca=/ca.crt', 'ca, cert and key are for TLS: leave them out with plaintext');
    expectUriError('grpc://vault/pnst0?cert=/c.crt', 'cert and key go together');
  });

  it('need a drive name and whole parameters', () => {
    expectUriError('grpc://vault:7070', 'a drive name is needed, as in grpc://tapehost:7070/pnst0');
    expectUriError('grpc://vault:7070/a/b', 'a drive name is needed, as in grpc://tapehost:7070/pnst0');
    expectUriError('grpc://vault/pnst0?grace=-1', "grace must be a number of seconds, not '-1'");
    expectUriError('grpc://vault/pnst0?keepalive=0', "keepalive must be a number of seconds above 0, not '0'");
    for (const records of ['channel', 'grpc', '7171']) expect(sinkFromUri(`grpc://vault/pnst0?records=${records}`)).toBeInstanceOf(GrpcSink);
    for (const bad of ['tcp', '0', '65536', '']) expectUriError(`grpc://vault/pnst0?records=${bad}`, `records is channel, grpc or a port number (1-65535); not '${bad}'`);
  });
});

describe('serving drives to remote peers', () => {
  it('the config keys of TLS, the token and plaintext beyond loopback', () => {
    const config = validateConfig({
      listen: '0.0.0.0:7070',
      tls: { cert: '/etc/tp/server.crt', key: '/etc/tp/server.key', 'client-ca': '/etc/tp/ca.crt' },
      'token-file': '/etc/tp/token',
      drives: [{ name: 'vault0', sinks: ['mem:'] }],
    });
    expect(config).toMatchObject({ tls: { cert: '/etc/tp/server.crt', key: '/etc/tp/server.key', clientCa: '/etc/tp/ca.crt' }, tokenFile: '/etc/tp/token' });
    expect(() => validateConfig({ tls: { cert: '/c.crt' }, drives: [{ name: 'a', sinks: ['mem:'] }] })).toThrow(ConfigError);
    expect(() => validateConfig({ tls: { cert: '/c', key: '/k', ca: '/x' }, drives: [{ name: 'a', sinks: ['mem:'] }] })).toThrow(/tls: unknown key 'ca'; known keys here: cert, key, client-ca/);
  });

  it('a daemon refuses plaintext beyond loopback, unless allowed', async () => {
    const config = validateConfig({ listen: '0.0.0.0:0', drives: [{ name: 'a', sinks: ['mem:'] }] });
    await expect(startDaemon(config, silent)).rejects.toThrow(/refusing to serve plaintext gRPC on 0\.0\.0\.0:0: remote peers need TLS \(tls\.cert and tls\.key, or --tls-cert and --tls-key\)/);
    const allowed = await startDaemon({ ...config, allowPlaintext: true }, silent);
    await allowed.stop();
  });

  it('the daemon flags: --tls-cert and --tls-key together; with --config, the keys go in the file', async () => {
    const flags = ['daemon', '--drive', 'a', '--sink', 'mem:'];
    expect((await cli([...flags, '--tls-cert', '/c.crt'])).stderr).toContain('--tls-cert and --tls-key go together');
    expect((await cli([...flags, '--tls-client-ca', '/ca.crt'])).stderr).toContain('--tls-client-ca needs --tls-cert and --tls-key');
    const r = await cli(['daemon', '--config', '/etc/tp.yaml', '--token-file', '/t']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('with --config, give token-file in the config file, not --token-file');
    const missing = await cli([...flags, '--listen', '127.0.0.1:0', '--token-file', join(tmp.path, 'none')]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`token-file: cannot read ${join(tmp.path, 'none')}`);
  });

  it('every call must carry the token: none, or a wrong one, is UNAUTHENTICATED; the right one passes', async () => {
    const tokenFile = join(tmp.path, 'token');
    await writeFile(tokenFile, 's3cret-token\n');
    const daemon = await startDaemon({ ...validateConfig({ listen: '127.0.0.1:0', drives: [{ name: 'a', sinks: ['mem:'] }] }), tokenFile }, silent);
    const client = connect(daemon.address);
    const status = (token?: string) =>
      new Promise<grpc.ServiceError | null>((resolve) => {
        const metadata = new grpc.Metadata();
        if (token) metadata.set('authorization', `Bearer ${token}`);
        client.driveStatus({ drive: 'a' }, metadata, (err) => resolve(err));
      });
    try {
      expect(await status()).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'this daemon needs a token (authorization: Bearer ...)' });
      expect(await status('s3cret')).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'the token is not the one this daemon accepts' });
      expect(await status('s3cret-token')).toBeNull();
    } finally {
      client.close();
      await daemon.stop();
    }
  });
});
