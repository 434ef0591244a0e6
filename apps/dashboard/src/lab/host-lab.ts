/**
 * The lab's end as the worker (or, where no worker starts, the page) runs it: a LabHost over the lab's own
 * API clients, one per transport, authenticated with the token the page sends.
 */
import { clientMaker } from '../transport/client-maker';
import { LabClients } from '../transport/clients';
import { LabHost, type LabPort } from './remote-run';

export function hostLab(port: LabPort, origin: string): LabHost {
  let token = '';
  let host: LabHost | null = null;
  // The rows show what the server answered their cancel (cancelled, already settled, unknown, instance gone).
  const clients = new LabClients(clientMaker(origin, () => token, Date.now, (outcomes) => { host?.cancelOutcomes(outcomes); }));
  host = new LabHost(port, {
    fetchFor: (transport) => {
      const client = clients.get(transport);
      return (id, opts) => client.users.byId.query({ id }, opts);
    },
    closeOthers: (keep) => { clients.closeOthers(keep); },
    setToken: (next) => { token = next; },
  });
  return host;
}
