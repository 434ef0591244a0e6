import { hostLab } from './host-lab';
import type { LabPort } from './remote-run';

/**
 * The lab's port: a dedicated worker; after it broke (`failures` > 0), or where workers cannot start, the same
 * host in the page over a MessageChannel (slower: the calls share the main thread with the rendering again).
 */
export function connectLab(origin: string, failures: number, onBroken: (message: string) => void): LabPort {
  if (failures === 0 && typeof Worker === 'function') {
    try {
      const worker = new Worker(new URL('./lab-worker.ts', import.meta.url), { type: 'module', name: 'fetch-lab' });
      worker.addEventListener('error', (event) => {
        event.preventDefault();
        worker.terminate();
        onBroken(`The lab’s worker stopped (${event.message || 'it could not be loaded'}); the next run goes in the page.`);
      });
      return worker;
    } catch {
      // Not allowed here (a CSP without worker-src 'self', an old browser): the page hosts the lab.
    }
  }
  const channel = new MessageChannel();
  hostLab(channel.port2, origin);
  return channel.port1;
}
