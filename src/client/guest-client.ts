/**
 * `devapollo/guest-client`: the guest API for programs, what `devapollo-guest` itself uses.
 * A program inside a container reads its config and meta-data through /dev/apollo/sock
 * with a GuestClient; every failure is an ApolloError whose stable `code` says what went
 * wrong ('not-found', 'forbidden', 'no-daemon', ...), with the HTTP `status` and the
 * `exitCode` the CLI would end with (README, "From a program").
 */

export { ApolloError, type ErrorCode, errorFaces } from '../shared/errors.js';
export {
  answerLimits,
  defaultSocketPath,
  GuestClient,
  type GuestClientOptions,
  type GuestResponse,
  rateLimitRetries,
} from './api-client.js';
