import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: the server's certificate cannot be verified with it. */
  otherCa: string;
  token: string;
  tokenFile: string;
  wrongTokenFile: string;
}

/**
 * Certificates and tokens made at test time (nothing secret is committed): a CA, a server
 * certificate for `serverNames` (IP addresses or DNS names), a client certificate from the same
 * CA, an unrelated CA, and two token files.
 */
export async function makeTestPki(dir: string, serverNames: string[]): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  await selfSignedCa(p('ca'));
  await selfSignedCa(p('other-ca'));
  const san = serverNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  await issue(p('server'), p('ca'), 'tapeproxy test server', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  await issue(p('client'), p('ca'), 'tapeproxy test client', 'extendedKeyUsage=clientAuth\n');
  const token = randomBytes(24).toString('hex');
  await writeFile(p('token'), `${token}\n`, { mode: 0o600 });
  await writeFile(p('wrong-token'), `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.crt'),
    token,
    tokenFile: p('token'),
    wrongTokenFile: p('wrong-token'),
  };
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function selfSignedCa(base: string): Promise<void> {
  await execa('openssl', [
    'req', '-x509', ...EC, '-keyout', `${base}.key`, '-out', `${base}.crt`, '-days', '2', '-subj', `/CN=${base.split('/').pop()} test CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

async function issue(base: string, ca: string, name: string, extensions: string): Promise<void> {
  await execa('openssl', ['req', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${name}`]);
  await writeFile(`${base}.ext`, extensions);
  await execa('openssl', [
    'x509', '-req', '-in', `${base}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${base}.crt`, '-days', '2', '-extfile', `${base}.ext`,
  ]);
}
