import { execa } from 'execa';

/**
 * A network namespace joined to this one by a veth pair, for a server across a link the test can
 * cut: `down()` takes the host end down (packets stop, nobody is told), `up()` brings it back.
 */
export interface NetnsLink {
  /** Prefix a command with this to run it in the namespace. */
  exec: string[];
  /** The namespace's address on the link. */
  address: string;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Deletes the namespace and the veth pair (stop what runs in it first). */
  remove(): Promise<void>;
}

export async function makeNetnsLink(): Promise<NetnsLink> {
  const id = process.pid % 10000;
  const ns = `tapeproxy-${id}`;
  const [hostEnd, nsEnd] = [`tph${id}`, `tpn${id}`];
  const subnet = `10.231.${id % 250}`;
  const ip = (...args: string[]) => execa('ip', args);
  const inNs = (...args: string[]) => execa('ip', ['netns', 'exec', ns, 'ip', ...args]);
  await ip('netns', 'add', ns);
  try {
    await ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
    await ip('link', 'set', nsEnd, 'netns', ns);
    await ip('addr', 'add', `${subnet}.1/30`, 'dev', hostEnd);
    await ip('link', 'set', hostEnd, 'up');
    await inNs('addr', 'add', `${subnet}.2/30`, 'dev', nsEnd);
    await inNs('link', 'set', nsEnd, 'up');
    await inNs('link', 'set', 'lo', 'up');
  } catch (err) {
    await execa('ip', ['netns', 'del', ns], { reject: false });
    throw err;
  }
  return {
    exec: ['ip', 'netns', 'exec', ns],
    address: `${subnet}.2`,
    down: async () => void (await ip('link', 'set', hostEnd, 'down')),
    up: async () => void (await ip('link', 'set', hostEnd, 'up')),
    remove: async () => void (await execa('ip', ['netns', 'del', ns], { reject: false })),
  };
}
