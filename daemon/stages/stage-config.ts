import { z } from 'zod';
import { stageParams } from './stage-uri.js';

/**
 * A sink in the YAML config: its URI, or a stage written out as a map around a sink, which is
 * turned into the stage URI (`encrypt:keyfile=PATH|URI`):
 *
 *   sinks:
 *     - file:/srv/tapes/a-%v.tap
 *     - encrypt: { keyfile: /etc/tapeproxy/offsite.key }   # or keyenv: NAME
 *       sink: file:/srv/tapes/b-%v.tap
 */
const EncryptSchema = z.object({ keyfile: z.string().min(1).optional(), keyenv: z.string().min(1).optional() }).strict();

export const sinkEntry: z.ZodType<string, unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z
      .object({
        encrypt: EncryptSchema,
        sink: sinkEntry,
      })
      .strict()
      .transform((stage) => `encrypt:${stageParams(stage.encrypt as Record<string, string>)}|${stage.sink}`),
  ]),
);

/** The keys known at `path` of a config when it is inside a sink's map form (for unknown-key messages). */
export function stageKeysAt(path: readonly PropertyKey[]): string[] | undefined {
  const at = path.lastIndexOf('sinks');
  if (at < 0) return undefined;
  return path.at(-1) === 'encrypt' ? Object.keys(EncryptSchema.shape) : ['encrypt', 'sink'];
}
