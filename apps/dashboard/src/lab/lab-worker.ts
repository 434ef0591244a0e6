/**
 * The fetch lab's dedicated worker (see remote-run.ts): its runner and its API clients, off the page's main
 * thread. Same origin as the page, so the page's CSP (script-src 'self', connect-src 'self') covers it.
 */
import { hostLab } from './host-lab';

hostLab(self, self.location.origin);
