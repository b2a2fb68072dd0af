/**
 * The guest API on /dev/apollo/sock, at a glance (docs/api.md, "Guest API"). Every handler
 * runs after the connection's container has been checked: running, served, caller allowed.
 */
import os from 'node:os';
import { ApolloError } from '../../shared/errors.js';
import { isGuestReadableKey } from '../../shared/names.js';
import { changeTopics } from '../containers/change-waiters.js';
import { instanceIdOf } from '../containers/instance-id.js';
import { parseEventTypes } from '../events/hub.js';
import { parseJsonBody } from '../http/body.js';
import type { RequestInfo, Route } from '../http/router.js';
import { identityGuestRoutes } from '../identity/guest-routes.js';
import type { GuestContext } from './context.js';
import { errorReply, json, text } from './http.js';
import { buildMetaData } from './meta-data.js';
import { admitWrite, deleteConfigKey, putConfigKey } from './writes.js';

export const guestRoutes: readonly Route<GuestContext>[] = [
  { method: 'GET', path: '/', handler: listApis },
  { method: 'GET', path: '/1.0', handler: getInfo, waitsOn: () => changeTopics.state },
  // A state change rewrites the state file, durably: it pays the write rate as a guest key's write does.
  { method: 'PATCH', path: '/1.0', handler: setGuestState, beforeBody: (context) => context.admitStateChange() },
  { method: 'GET', path: '/1.0/config', handler: listConfigKeys, waitsOn: () => changeTopics.keyList },
  { method: 'GET', path: '/1.0/config/:key', handler: getConfigKey, waitsOn: (request) => changeTopics.key(request.params['key'] ?? '') },
  { method: 'PUT', path: '/1.0/config/:key', handler: putConfigKey, beforeBody: admitWrite },
  { method: 'DELETE', path: '/1.0/config/:key', handler: deleteConfigKey, beforeBody: admitWrite },
  { method: 'GET', path: '/1.0/meta-data', handler: getMetaData, waitsOn: () => changeTopics.metaData },
  { method: 'GET', path: '/1.0/devices', handler: listDevices },
  { method: 'GET', path: '/1.0/events', handler: streamEvents },
  ...identityGuestRoutes,
];

/** What never changes for a container gets the ETag of revision 0. */
function listApis({ container }: GuestContext) {
  return json(['/1.0'], { etag: container.etag(0) });
}

function getInfo({ container }: GuestContext) {
  return json(
    {
      api_version: '1.0',
      instance_type: 'container',
      location: os.hostname(),
      state: container.record.guest_state,
    },
    { etag: container.etag(container.record.state_revision) },
  );
}

async function setGuestState(context: GuestContext, request: RequestInfo) {
  const body = parseJsonBody(request.body) as { state?: unknown } | null;
  const state = body?.state;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || (state !== 'Ready' && state !== 'Started')) {
    throw new ApolloError('bad-request', 'the body must be {"state":"Ready"} or {"state":"Started"}');
  }
  if (Object.keys(body).length !== 1) throw new ApolloError('bad-request', 'only "state" can be changed');
  await context.setGuestState(state);
  return json({});
}

function listConfigKeys({ container }: GuestContext) {
  const keys = Object.keys(container.record.config)
    .filter(isGuestReadableKey)
    .sort()
    .map((key) => `/1.0/config/${key}`);
  return json(keys, { etag: container.etag(container.record.list_revision) });
}

function getConfigKey({ container }: GuestContext, request: RequestInfo) {
  const key = request.params['key'] ?? '';
  if (!isGuestReadableKey(key)) throw new ApolloError('forbidden', 'Forbidden: only user.*, cloud-init.* and guest.* keys are readable');
  const value = container.record.config[key];
  const etag = container.keyEtag(key);
  // The 404 carries the ETag too, so that a client can wait for an unset key to be set.
  if (value === undefined) return errorReply('not-found', `config key ${key} is not set`, etag);
  return text(value, { etag });
}

/** Its ETag changes with `user.meta-data` and with the instance-id, whichever changed last. */
function getMetaData({ container }: GuestContext) {
  const { record } = container;
  return text(buildMetaData(container.name, record.config['user.meta-data'], instanceIdOf(record)), { etag: container.metaDataEtag() });
}

function listDevices({ container }: GuestContext) {
  return json({}, { etag: container.etag(0) });
}

/** One JSON object per line (or websocket messages, see events/hub.ts) for this container. */
function streamEvents(context: GuestContext, request: RequestInfo) {
  return context.streamEvents(parseEventTypes(request.query.get('type')));
}
