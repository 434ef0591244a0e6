/**
 * `createAbortController()`: an AbortController whose signal is a real AbortSignal (instanceof, every method,
 * accepted by Node's APIs and by `AbortSignal.any`), made without Node 20's per-signal hidden class.
 *
 * Why: Node 20 makes every AbortSignal with `createAbortSignal` (lib/internal/abort_controller.js), which builds
 * an EventTarget and then swaps its prototype; V8 then gives each signal a hidden class of its own, in the old
 * generation, and every access to signals goes megamorphic. A server makes at least one signal per call: on
 * Node 20.20.2 a signal used as a `users.byId` call uses it costs 6.9 µs from Node's controller, 2.4 µs from this
 * one (`bench:signal`), and `AbortController` / `EventTarget` fell from 5.0 % to 1.7 % of the server's CPU in a
 * profile under load (README, *What the profiles taught*). Node 22 builds signals with a class constructor
 * (nodejs/node#52505), so there — and in browsers — this returns `new AbortController()` and none of the code
 * below runs.
 *
 * How (Node 20 only): a subclass of EventTarget whose prototype chain is AbortSignal's, so instances share one
 * hidden class, carrying Node's own internal fields (found by their names on a signal Node made: kAborted,
 * kReason, kComposite, and kDependantSignals, which `AbortSignal.any` adds to its sources); `abort` does what
 * Node 20.20's internal `abortSignal()` does: set both fields, dispatch a trusted 'abort' event (the trust flag
 * is Event's own option, kTrustEvent, found by the key Event's constructor reads), abort the signals that
 * `AbortSignal.any` made from this one. Where any of those is not found, Node's own controller is used.
 * Fenced by abort-controller.test.ts: each behaviour against Node's own signal, the internals found, and the
 * premise itself (Node's signals do not share a hidden class on this Node; ours do).
 */

/** Node's internal fields of an AbortSignal, or undefined where this is not Node 20 or they are not found. */
interface SignalInternals {
  kAborted: symbol;
  kReason: symbol;
  kComposite: symbol;
  kDependantSignals: symbol;
  kTrustEvent: symbol;
}

type InternalSignal = AbortSignal & Record<symbol, unknown>;

function symbolNamed(target: object, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((symbol) => symbol.description === name);
}

function findInternals(): SignalInternals | undefined {
  const version = typeof process === 'undefined' ? undefined : process.versions.node;
  if (version === undefined || !version.startsWith('20.')) return undefined;
  const sample = new AbortController().signal;
  AbortSignal.any([sample]);
  const kAborted = symbolNamed(sample, 'kAborted');
  const kReason = symbolNamed(sample, 'kReason');
  const kComposite = symbolNamed(sample, 'kComposite');
  const kDependantSignals = symbolNamed(sample, 'kDependantSignals');
  let kTrustEvent: symbol | undefined;
  const options = new Proxy({}, {
    get(_target, key) {
      if (typeof key === 'symbol' && key.description === 'kTrustEvent') kTrustEvent = key;
      return undefined;
    },
  });
  Reflect.construct(Event, ['probe', options]);
  if (!kAborted || !kReason || !kComposite || !kDependantSignals || !kTrustEvent) return undefined;
  // The fields must be what Node's getters read: a signal marked aborted through them must say so.
  const check = new AbortController().signal as InternalSignal;
  if (check[kAborted] !== false || !Object.hasOwn(check, kReason) || check[kComposite] !== false) return undefined;
  const reason = new Error('probe');
  check[kAborted] = true;
  check[kReason] = reason;
  if (!check.aborted || check.reason !== reason) return undefined;
  return { kAborted, kReason, kComposite, kDependantSignals, kTrustEvent };
}

function sharedShapeController(internals: SignalInternals): new () => AbortController {
  const { kAborted, kReason, kComposite, kDependantSignals, kTrustEvent } = internals;

  class SharedShapeSignal extends EventTarget {
    constructor() {
      super();
      const self = this as unknown as Record<symbol, unknown>;
      self[kAborted] = false;
      self[kReason] = undefined;
      self[kComposite] = false;
    }
  }
  // AbortSignal's getters, methods and `constructor` (so `signal.constructor === AbortSignal`), EventTarget's below.
  Object.setPrototypeOf(SharedShapeSignal.prototype, AbortSignal.prototype);
  Reflect.deleteProperty(SharedShapeSignal.prototype, 'constructor');

  function abortSignal(signal: InternalSignal, reason: unknown): void {
    if (signal[kAborted] === true) return;
    signal[kAborted] = true;
    signal[kReason] = reason;
    signal.dispatchEvent(new Event('abort', { [kTrustEvent]: true }));
    const dependants = signal[kDependantSignals] as Set<WeakRef<InternalSignal>> | undefined;
    if (dependants) {
      for (const ref of dependants) {
        const dependant = ref.deref();
        if (dependant) abortSignal(dependant, reason);
      }
    }
  }

  return class SharedShapeAbortController implements AbortController {
    #signal: InternalSignal | undefined;

    get signal(): AbortSignal {
      return (this.#signal ??= new SharedShapeSignal() as unknown as InternalSignal);
    }

    abort(reason: unknown = new DOMException('This operation was aborted', 'AbortError')): void {
      abortSignal((this.#signal ??= new SharedShapeSignal() as unknown as InternalSignal), reason);
    }
  };
}

const internals = findInternals();
const Controller: new () => AbortController = internals ? sharedShapeController(internals) : AbortController;

/** Whether createAbortController makes its own signals here (Node 20, internals found) or Node's. */
export const sharedShapeSignals: boolean = internals !== undefined;

/** An AbortController: Node's own, except on Node 20, where its signal shares a hidden class (header). */
export function createAbortController(): AbortController {
  return new Controller();
}
