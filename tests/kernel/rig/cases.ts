import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A guest case: tests/kernel/cases/NAME.sh, with the timeout its header asks for. */
export interface KernelCase {
  name: string;
  timeoutSeconds: number;
}

export const DEFAULT_CASE_TIMEOUT_SECONDS = 120;

/** Shell files in the cases folder that are helpers, not cases. */
const HELPERS = new Set(['lib.sh']);

/**
 * Every case in `dir`, in name order (the order the guest runs them in), or only those named in
 * `only` (comma or space separated names, for running a few cases by hand).
 */
export function listCases(dir: string, only?: string): KernelCase[] {
  const all = readdirSync(dir)
    .filter((f) => f.endsWith('.sh') && !HELPERS.has(f))
    .sort()
    .map((f) => ({ name: f.slice(0, -'.sh'.length), timeoutSeconds: headerTimeout(readFileSync(join(dir, f), 'utf8'), f) }));
  const wanted = only?.split(/[\s,]+/).filter(Boolean);
  if (!wanted?.length) return all;
  const unknown = wanted.filter((w) => !all.some((c) => c.name === w));
  if (unknown.length) throw new Error(`no kernel case named ${unknown.join(', ')} in ${dir}`);
  return all.filter((c) => wanted.includes(c.name));
}

/** `# timeout: SECONDS` in the first lines of a case. */
function headerTimeout(text: string, file: string): number {
  const header = text.split('\n').slice(0, 5);
  for (const line of header) {
    const m = /^#\s*timeout:\s*(\S+)\s*$/.exec(line);
    if (!m) continue;
    const seconds = Number(m[1]);
    if (!Number.isInteger(seconds) || seconds <= 0) throw new Error(`${file}: '# timeout:' needs whole seconds, not '${m[1]}'`);
    return seconds;
  }
  return DEFAULT_CASE_TIMEOUT_SECONDS;
}
