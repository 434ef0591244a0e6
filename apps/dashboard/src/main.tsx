import './strict-csp';
import { QueryClient } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app/App';
import { initialToken, TokenStore } from './auth/token';
import { createServices } from './services';
import './styles.css';

const tokens = new TokenStore(window.sessionStorage);
initialToken(tokens, window.location, (href) => { window.history.replaceState(window.history.state, '', href); });
const services = createServices(tokens, window.location.origin, window.location);
const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false, staleTime: 0 } },
});

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <App services={services} queryClient={queryClient} />
  </StrictMode>,
);
