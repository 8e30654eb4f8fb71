import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { EventBus } from '../../events/events.js';
import type { ServedDrive } from './server.js';

/** The service name the whole daemon answers for, besides '' and each drive's name. */
export const TAPEPROXY_SERVICE = 'tapeproxy.v1.TapeProxy';

/**
 * The standard gRPC health service (grpc.health.v1.Health). '' and tapeproxy.v1.TapeProxy are
 * SERVING while the daemon runs. Each drive's name is SERVING unless a copy's failure is the
 * writer's error (min-copies does not allow setting it aside); the next volume clears it.
 */
export class DriveHealth {
  private readonly health: HealthImplementation;

  constructor(server: grpc.Server, drives: ReadonlyMap<string, ServedDrive>, bus: EventBus) {
    this.health = new HealthImplementation({ '': 'SERVING', [TAPEPROXY_SERVICE]: 'SERVING' });
    for (const name of drives.keys()) this.health.setStatus(name, 'SERVING');
    this.health.addToServer(server);
    bus.subscribe((e) => {
      if (e.type === 'copy-failed' && !e.setAside) this.health.setStatus(e.drive, 'NOT_SERVING');
      if (e.type === 'volume-loaded') {
        const failed = drives.get(e.drive)?.mirror.active.some((s) => s.failure);
        this.health.setStatus(e.drive, failed ? 'NOT_SERVING' : 'SERVING');
      }
    });
  }

  /** The daemon is shutting down. */
  stopping(): void {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(TAPEPROXY_SERVICE, 'NOT_SERVING');
  }
}
