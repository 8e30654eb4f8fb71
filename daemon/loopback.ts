/** Whether a host name or address is this machine's loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** The same for a `host:port` address. */
export function isLoopback(address: string): boolean {
  return isLoopbackHost(address.slice(0, address.lastIndexOf(':')));
}
