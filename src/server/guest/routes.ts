/**
 * The guest API on /dev/apollo/sock, at a glance (PROTOCOL.md section 3). Every handler
 * runs after the connection's container has been checked: running, served, caller allowed.
 */
import os from 'node:os';
import { ApolloError } from '../../shared/errors.js';
import { isGuestReadableKey } from '../../shared/names.js';
import type { Container, Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import { json, parseJsonBody, type RequestInfo, type Route, text } from '../http/router.js';
import { buildMetaData } from './meta-data.js';

/** What every guest handler gets: the caller's own container, nothing else. */
export interface GuestContext {
  readonly instance: Instance;
  readonly container: Container;
  readonly manager: ContainerManager;
}

export const guestRoutes: readonly Route<GuestContext>[] = [
  { method: 'GET', path: '/', handler: listApis },
  { method: 'GET', path: '/1.0', handler: getInfo },
  { method: 'PATCH', path: '/1.0', handler: setGuestState },
  { method: 'GET', path: '/1.0/config', handler: listConfigKeys },
  { method: 'GET', path: '/1.0/config/:key', handler: getConfigKey },
  { method: 'GET', path: '/1.0/meta-data', handler: getMetaData },
  { method: 'GET', path: '/1.0/devices', handler: listDevices },
];

function listApis({ container }: GuestContext) {
  return json(['/1.0'], { etag: container.etag });
}

function getInfo({ container }: GuestContext) {
  return json(
    {
      api_version: '1.0',
      instance_type: 'container',
      location: os.hostname(),
      state: container.record.guest_state,
    },
    { etag: container.etag },
  );
}

async function setGuestState({ instance, manager }: GuestContext, request: RequestInfo) {
  const body = parseJsonBody(request.body) as { state?: unknown } | null;
  const state = body?.state;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || (state !== 'Ready' && state !== 'Started')) {
    throw new ApolloError('bad-request', 'the body must be {"state":"Ready"} or {"state":"Started"}');
  }
  if (Object.keys(body).length !== 1) throw new ApolloError('bad-request', 'only "state" can be changed');
  await manager.setGuestState(instance, state);
  return json({});
}

function listConfigKeys({ container }: GuestContext) {
  const keys = Object.keys(container.record.config)
    .filter(isGuestReadableKey)
    .sort()
    .map((key) => `/1.0/config/${key}`);
  return json(keys, { etag: container.etag });
}

function getConfigKey({ container }: GuestContext, request: RequestInfo) {
  const key = request.params['key'] ?? '';
  if (!isGuestReadableKey(key)) throw new ApolloError('forbidden', 'Forbidden: only user.* and cloud-init.* keys are readable');
  const value = container.record.config[key];
  if (value === undefined) throw new ApolloError('not-found', `config key ${key} is not set`);
  return text(value, { etag: container.etag });
}

function getMetaData({ container }: GuestContext) {
  return text(buildMetaData(container.name, container.record.config['user.meta-data']), { etag: container.etag });
}

function listDevices({ container }: GuestContext) {
  return json({}, { etag: container.etag });
}
