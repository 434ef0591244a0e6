import { useId, type HTMLAttributes } from 'react';

export interface FieldProps {
  label: string;
  value: string;
  error: string | undefined;
  onChange: (value: string) => void;
  testId: string;
  /** Shown under the input while there is no error (the error takes its place). */
  hint?: string;
  /** After the label, in brackets: "Timeout (ms)". */
  unit?: string;
  /** Inside a table row: the label only for screen readers, and no room kept for an error. */
  compact?: boolean;
  autoComplete?: string;
  inputMode?: HTMLAttributes<HTMLInputElement>['inputMode'];
}

/** A labelled text input with its error (or hint) below it: the users' forms and the lab's settings. */
export function Field({ label, value, error, onChange, testId, hint, unit, compact = false, autoComplete, inputMode }: FieldProps) {
  const id = useId();
  const note = error ?? hint;
  const noteId = `${id}-note`;
  return (
    <div className={`field ${compact ? 'field-compact' : ''} ${error ? 'field-invalid' : ''}`}>
      <label htmlFor={id} className={compact ? 'sr-only' : undefined}>
        {label}
        {unit && <span className="unit"> ({unit})</span>}
      </label>
      <input
        id={id}
        value={value}
        inputMode={inputMode}
        onChange={(e) => { onChange(e.target.value); }}
        aria-invalid={error !== undefined}
        aria-describedby={note ? noteId : undefined}
        autoComplete={autoComplete}
        data-testid={testId}
      />
      {note ? (
        <span id={noteId} className={error ? 'field-error' : 'hint'} data-testid={error ? `${testId}-error` : undefined}>
          {note}
        </span>
      ) : (
        !compact && <span className="field-error" aria-hidden="true">{'\u00a0'}</span> // keeps the form from jumping
      )}
    </div>
  );
}
