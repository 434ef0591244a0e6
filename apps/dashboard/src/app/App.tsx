import { QueryClientProvider, type QueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';
import { useWideScreen } from './use-wide-screen';
import { CLOSE_UNAUTHORIZED, ServicesContext, useServices, type Services } from '../services';
import { TRPCProvider } from '../trpc';
import { FaultsBanner } from '../lab/FaultsBanner';
import { FetchLab } from '../lab/FetchLab';
import { Header } from './Header';
import { ServerPanel } from '../server/ServerPanel';
import { TokenGate } from '../auth/TokenGate';
import { UsersPanel } from '../users/UsersPanel';
import { useClusterInfo, useServerStats } from '../server/use-server-stats';

export function App({ services, queryClient }: { services: Services; queryClient: QueryClient }) {
  const token = useSyncExternalStore(services.tokens.subscribe, services.tokens.get);
  const [rejected, setRejected] = useState<string | null>(null);
  const onUnauthorized = useCallback(
    (message: string) => {
      // A token the server refuses is not worth keeping for this tab.
      services.tokens.clear();
      setRejected(message);
    },
    [services.tokens],
  );

  return (
    <ServicesContext.Provider value={services}>
      <QueryClientProvider client={queryClient}>
        {!token || rejected !== null ? (
          <TokenGate
            error={rejected}
            onSubmit={(value) => {
              queryClient.clear();
              services.tokens.set(value);
              setRejected(null);
            }}
          />
        ) : (
          // The page's client exists only with a token (its socket authenticates when it opens).
          <TRPCProvider trpcClient={services.api} queryClient={queryClient}>
            <Dashboard onUnauthorized={onUnauthorized} />
          </TRPCProvider>
        )}
      </QueryClientProvider>
    </ServicesContext.Provider>
  );
}

type Tab = 'lab' | 'users';

function Dashboard({ onUnauthorized }: { onUnauthorized: (message: string) => void }) {
  const { feed, labFaults, pageSocket } = useServices();
  const [tab, setTab] = useState<Tab>('lab');
  const stats = useServerStats();
  const cluster = useClusterInfo(stats.data);
  // The server panel takes 372 px: beside the main area on wide screens, behind a button below 1280 px
  // (where it would squeeze the lab's table), until the person says otherwise.
  const wide = useWideScreen();
  const [serverChoice, setServerChoice] = useState<boolean | null>(null);
  const serverOpen = serverChoice ?? wide;

  useEffect(() => {
    feed.start();
    return () => { feed.stop(); };
  }, [feed]);

  // A fault the lab set for its run must not outlive the page that would have cleared it.
  useEffect(() => {
    const onHide = (): void => { labFaults.releaseOnUnload(); };
    window.addEventListener('pagehide', onHide);
    return () => { window.removeEventListener('pagehide', onHide); };
  }, [labFaults]);

  // Refused over HTTP (UNAUTHORIZED), or over the WebSocket (the server closes the socket with 4401).
  const socket = useSyncExternalStore(pageSocket.subscribe, pageSocket.get);
  const refused = stats.unauthorized || socket.closeCode === CLOSE_UNAUTHORIZED;
  useEffect(() => {
    if (refused) onUnauthorized('Use the token the server printed at start (its “Token” line), or open the “Dashboard” link it printed.');
  }, [refused, onUnauthorized]);

  const tabs: { id: Tab; label: string }[] = [
    { id: 'lab', label: 'Fetch lab' },
    { id: 'users', label: 'Users' },
  ];

  return (
    <div className="app">
      <Header stats={stats} />
      <FaultsBanner />
      <div className={`layout ${serverOpen ? '' : 'layout-collapsed'}`}>
        <main className="main">
          <div className="tabs" role="tablist" aria-label="Dashboard sections">
            {tabs.map((t) => (
              <button
                key={t.id}
                id={`tab-${t.id}`}
                role="tab"
                type="button"
                aria-selected={tab === t.id}
                aria-controls={`panel-${t.id}`}
                tabIndex={tab === t.id ? 0 : -1}
                className="tab"
                onClick={() => { setTab(t.id); }}
                onKeyDown={(e) => {
                  if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
                    const next = tabs[(tabs.findIndex((x) => x.id === tab) + 1) % tabs.length];
                    if (next) {
                      setTab(next.id);
                      document.getElementById(`tab-${next.id}`)?.focus();
                    }
                  }
                }}
              >
                {t.label}
              </button>
            ))}
            <button
              type="button"
              className="btn btn-ghost server-toggle"
              aria-expanded={serverOpen}
              aria-controls="server-panel"
              onClick={() => { setServerChoice(!serverOpen); }}
              data-testid="server-toggle"
            >
              {/* The arrow shows which way the panel goes; the name stays "Server panel", aria-expanded says the rest. */}
              {!serverOpen && <span aria-hidden="true">◂ </span>}
              Server panel
              {serverOpen && <span aria-hidden="true"> ▸</span>}
            </button>
          </div>
          <section id="panel-lab" role="tabpanel" aria-labelledby="tab-lab" className="panel" hidden={tab !== 'lab'}>
            <FetchLab visible={tab === 'lab'} cluster={cluster} />
          </section>
          <section id="panel-users" role="tabpanel" aria-labelledby="tab-users" className="panel" hidden={tab !== 'users'}>
            {tab === 'users' && <UsersPanel />}
          </section>
        </main>
        <ServerPanel stats={stats} hidden={!serverOpen} />
      </div>
    </div>
  );
}
