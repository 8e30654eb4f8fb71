import type { DriveState } from '../drive/pseudo-drive.js';
import type { Mirror } from '../mirror/mirror.js';
import type { SinkStatus } from '../sinks/sink.js';

/** What a copy is doing, in the words `tapeproxy watch` and the metrics use. */
export type CopyState = 'failed' | 'set-aside' | 'waiting-for-volume' | 'no-volume' | 'early-warning' | 'writing' | 'reading' | 'idle';

/** The copy's state, the most pressing first: a failure, then a missing volume, then early warning. */
export function copyState(drive: DriveState, mirror: Mirror, status: SinkStatus, setAside: boolean): CopyState {
  if (setAside) return 'set-aside';
  if (status.failure) return 'failed';
  if (!status.loaded) return mirror.loading ? 'waiting-for-volume' : 'no-volume';
  if (status.earlyWarning) return 'early-warning';
  if (drive.rw === 'writing' || drive.rw === 'reading') return drive.rw;
  return 'idle';
}
