/** A mistake in how a command was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Options every command has (set on the top-level parser). */
export interface GlobalArgs {
  server: string;
  'token-file'?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}
