export { AbortError, CancelledError, TimeoutError, isAbortError, throwIfAborted } from './errors';
export { systemClock, sleep, type Clock, type TimerHandle, type SleepOptions } from './clock';
export { createAbortController, sharedShapeSignals } from './abort-controller';
export { linkSignals, deadline, withTimeout, type SignalScope, type DeadlineOptions } from './signals';
export { retry, backoffDelay, isRetryable, type RetryOptions, type RetryPolicy, type RetryInfo } from './retry';
export {
  TaskGroup,
  TaskGroupError,
  gather,
  type TaskFn,
  type TaskHandle,
  type TaskOutcome,
  type TaskEvent,
  type TaskGroupOptions,
  type SpawnOptions,
  type GatherOptions,
} from './task-group';
export { Semaphore, Mutex, type Release, type AcquireOptions } from './semaphore';
export { AsyncQueue, QueueClosedError, type QueueOptions } from './async-queue';
export { AsyncEvent } from './async-event';
