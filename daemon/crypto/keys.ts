import { hkdfSync, randomBytes, scrypt } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { inspect } from 'node:util';

/**
 * Keys of the encrypt stage. A key source is a key file or an environment variable holding either
 * a raw 256-bit key (a file of exactly 32 bytes, or 64 hex digits) or a passphrase, which is
 * stretched with scrypt. The scrypt salt and cost are stored in each volume's header, so a volume
 * decrypts with the passphrase alone. Key material lives only in these objects and in crypto calls:
 * a key source prints as its label (`keyfile=PATH`, `keyenv=NAME`), never as its key.
 */

/** How a volume's master key was made from the key source (stored in the volume header). */
export type Kdf = { kind: 'raw' } | { kind: 'scrypt'; log2n: number; r: number; p: number; salt: Buffer };

/** The 256-bit key everything else is derived from, and its public id. */
export interface MasterKey {
  readonly key: Buffer;
  /** A short hash of the key (HKDF output, not the key): names the key in headers and messages. */
  readonly keyId: Buffer;
}

/** A key file or variable that cannot be used; the message says what to do. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyError';
  }
}

const KEY_BYTES = 32;
export const KEY_ID_BYTES = 8;
export const SCRYPT_SALT_BYTES = 16;

/** scrypt cost for new volumes: 128 MiB and about a quarter of a second here (OWASP's minimum for scrypt). */
const NEW_SCRYPT = { log2n: 17, r: 8, p: 1 };
/** Most memory a header may make scrypt use (128 * N * r bytes): bounds what a crafted header costs. */
const SCRYPT_MAX_MEMORY = 512 * 2 ** 20;

function keyIdOf(key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'tapeproxy key id v1', KEY_ID_BYTES));
}

type Secret = { kind: 'raw'; key: Buffer } | { kind: 'passphrase'; passphrase: Buffer };

export class KeySource {
  /** scrypt salt for the volumes this source starts (random, once per process and source). */
  private readonly newSalt = randomBytes(SCRYPT_SALT_BYTES);
  private readonly derived = new Map<string, Promise<MasterKey>>();

  private constructor(
    /** Where the key comes from, for names and messages: `keyfile=PATH` or `keyenv=NAME`. */
    readonly label: string,
    private readonly secret: Secret,
  ) {}

  /**
   * A key file: readable by its owner only (as ssh insists for private keys), holding 32 raw bytes,
   * 64 hex digits or a passphrase (one trailing newline is not part of it).
   */
  static fromFile(path: string): KeySource {
    let mode: number;
    let content: Buffer;
    try {
      mode = statSync(path).mode;
      content = readFileSync(path);
    } catch (err) {
      throw new KeyError(`cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if ((mode & 0o077) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyError(`key file ${path} is accessible by group or others (mode ${octal}): run chmod 600 ${path}`);
    }
    if (content.length === KEY_BYTES) return new KeySource(`keyfile=${path}`, { kind: 'raw', key: content });
    return new KeySource(`keyfile=${path}`, fromText(content, `key file ${path}`));
  }

  /** An environment variable holding 64 hex digits or a passphrase. */
  static fromEnv(name: string, env: NodeJS.ProcessEnv = process.env): KeySource {
    const value = env[name];
    if (!value) throw new KeyError(`environment variable ${name} (the key) is not set or empty`);
    return new KeySource(`keyenv=${name}`, fromText(Buffer.from(value), `environment variable ${name}`));
  }

  /** How new volumes derive their master key: raw, or scrypt with this source's salt. */
  newVolumeKdf(): Kdf {
    return this.secret.kind === 'raw' ? { kind: 'raw' } : { kind: 'scrypt', ...NEW_SCRYPT, salt: this.newSalt };
  }

  /** The master key for a volume made with `kdf` (scrypt runs on libuv's pool, once per salt). */
  masterKey(kdf: Kdf): Promise<MasterKey> {
    const secret = this.secret;
    if (secret.kind === 'raw') {
      if (kdf.kind !== 'raw') return Promise.reject(new KeyError(`the volume was encrypted with a passphrase, and ${this.label} holds a raw key`));
      return this.cached('raw', async () => secret.key);
    }
    if (kdf.kind !== 'scrypt') return Promise.reject(new KeyError(`the volume was encrypted with a raw key, and ${this.label} holds a passphrase`));
    const N = 2 ** kdf.log2n;
    const memory = 128 * N * kdf.r;
    if (kdf.log2n < 1 || kdf.log2n > 30 || kdf.r < 1 || kdf.p < 1 || kdf.p > 16 || memory > SCRYPT_MAX_MEMORY) {
      return Promise.reject(new KeyError(`unsupported scrypt parameters in the volume header (N=2^${kdf.log2n}, r=${kdf.r}, p=${kdf.p})`));
    }
    const id = `scrypt:${kdf.log2n}:${kdf.r}:${kdf.p}:${kdf.salt.toString('hex')}`;
    return this.cached(
      id,
      () =>
        new Promise<Buffer>((resolve, reject) =>
          scrypt(secret.passphrase, kdf.salt, KEY_BYTES, { N, r: kdf.r, p: kdf.p, maxmem: memory + 2 ** 20 }, (err, key) =>
            err ? reject(err) : resolve(key),
          ),
        ),
    );
  }

  toString(): string {
    return this.label;
  }
  toJSON(): string {
    return this.label;
  }
  [inspect.custom](): string {
    return `KeySource(${this.label})`;
  }

  private cached(id: string, make: () => Promise<Buffer>): Promise<MasterKey> {
    let master = this.derived.get(id);
    if (!master) {
      master = make().then((key) => ({ key, keyId: keyIdOf(key) }));
      this.derived.set(id, master);
      master.catch(() => this.derived.delete(id));
    }
    return master;
  }
}

function fromText(content: Buffer, what: string): Secret {
  const text = content.toString('utf8').replace(/\r?\n$/, '');
  if (/^[0-9a-fA-F]{64}$/.test(text)) return { kind: 'raw', key: Buffer.from(text, 'hex') };
  if (text.length === 0) throw new KeyError(`${what} is empty: it needs 32 bytes, 64 hex digits or a passphrase`);
  return { kind: 'passphrase', passphrase: Buffer.from(text, 'utf8') };
}
