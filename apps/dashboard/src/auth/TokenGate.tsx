import { useId, useState } from 'react';

export function TokenGate({ error, onSubmit }: { error: string | null; onSubmit: (token: string) => void }) {
  const [value, setValue] = useState('');
  const [local, setLocal] = useState<string | null>(null);
  const id = useId();
  const message = local ?? error;
  return (
    <div className="gate">
      <form
        className="gate-card"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim().length < 16) {
            setLocal('A token is at least 16 characters. The server prints it at start, next to "Token".');
            return;
          }
          setLocal(null);
          onSubmit(value.trim());
        }}
      >
        <h1>asyncscope dashboard</h1>
        {error ? (
          <p className="gate-error" role="alert" data-testid="token-error">
            <strong>The server refused this token (UNAUTHORIZED).</strong> {error}
          </p>
        ) : (
          <p>
            This dashboard needs the server's API token. Open the link the server prints at start
            (<code>Dashboard http://…/#token=…</code>) or paste the token below. It is kept for this tab only.
          </p>
        )}
        <label htmlFor={id}>API token</label>
        <input
          id={id}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={value}
          aria-invalid={message !== null}
          aria-describedby={message ? `${id}-msg` : undefined}
          onChange={(e) => { setValue(e.target.value); }}
          autoFocus
        />
        {local && <p id={`${id}-msg`} className="field-error">{local}</p>}
        <button type="submit" className="btn btn-primary">Use token</button>
      </form>
    </div>
  );
}
