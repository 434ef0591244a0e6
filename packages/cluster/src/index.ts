export { connectBroker, bootIdOf, NO_RESPONDERS, BrokerUnavailableError, RemoteHandlerError } from './broker.ts';
export type { Broker, BrokerOptions, BrokerStatus, BrokerStatusChange, FollowHandler, FollowedRecord, MissedReason, InstancePresence } from './broker.ts';
export { sanitizeToken, encodeToken, decodeToken, redactUrl } from './util.ts';
