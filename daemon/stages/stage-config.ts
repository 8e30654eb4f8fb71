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
export const sinkEntry: z.ZodType<string, unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z
      .object({
        encrypt: z.object({ keyfile: z.string().min(1).optional(), keyenv: z.string().min(1).optional() }).strict(),
        sink: sinkEntry,
      })
      .strict()
      .transform((stage) => `encrypt:${stageParams(stage.encrypt as Record<string, string>)}|${stage.sink}`),
  ]),
);
