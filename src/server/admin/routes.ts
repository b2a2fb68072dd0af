/**
 * The admin API on DIR/unix.socket, for the host CLI, at a glance. Only host root (or
 * the configured admin group) reaches it; no guest can.
 */
import { ApolloError } from '../../shared/errors.js';
import { keyMap } from '../../shared/key-map.js';
import type { ContainerWire, RegistrationWire, StatusWire } from '../../shared/wire.js';
import type { Container } from '../containers/container.js';
import { streamLog } from '../containers/container-log.js';
import type { ContainerManager } from '../containers/manager.js';
import type { OciStartFacts } from '../containers/oci-binding.js';
import { type EventHub, parseEventTypes } from '../events/hub.js';
import { parseJsonBody } from '../http/body.js';
import { json, type StreamReply, text } from '../http/reply.js';
import type { RequestInfo, Route } from '../http/router.js';
import { identityAdminRoutes } from '../identity/admin-routes.js';
import type { IdentityIssuer } from '../identity/issuer.js';

export interface AdminContext {
  readonly manager: ContainerManager;
  /** The event hub both APIs share. */
  readonly events: EventHub;
  readonly status: () => StatusWire;
  /** Prometheus text. */
  readonly metrics: () => string;
  /** Identity keys and tokens (section 3b); undefined where the daemon serves none. */
  readonly identity?: IdentityIssuer | undefined;
}

export const adminRoutes: readonly Route<AdminContext>[] = [
  { method: 'GET', path: '/1.0', handler: getStatus },
  { method: 'GET', path: '/metrics', handler: getMetrics },
  { method: 'GET', path: '/1.0/containers', handler: listContainers },
  // {"name", "config", "privileged", "command", "start"}: "start": false only creates it.
  { method: 'POST', path: '/1.0/containers', handler: createContainer },
  { method: 'GET', path: '/1.0/containers/:name', handler: getContainer },
  { method: 'DELETE', path: '/1.0/containers/:name', handler: deleteContainer },
  // {"action": "start" | "stop" | "restart", "force", "timeout"}
  { method: 'PUT', path: '/1.0/containers/:name/state', handler: changeState },
  // ?lines=N (the last N lines), ?follow=true (then what is appended): raw bytes.
  { method: 'GET', path: '/1.0/containers/:name/log', handler: getLog },
  { method: 'PUT', path: '/1.0/containers/:name/init', handler: registerInit },
  { method: 'DELETE', path: '/1.0/containers/:name/init', handler: unregisterInit },
  { method: 'PATCH', path: '/1.0/containers/:name/config', handler: patchConfig },
  { method: 'GET', path: '/1.0/containers/:name/config/:key', handler: getConfigKey },
  { method: 'GET', path: '/1.0/events', handler: streamEvents },
  ...identityAdminRoutes,
];

function getStatus({ status }: AdminContext) {
  return json(status());
}

function getMetrics({ metrics }: AdminContext) {
  return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: metrics() };
}

function listContainers({ manager }: AdminContext) {
  return json(manager.list().map(containerWire));
}

/** Creates a container and, unless `"start": false`, starts it (launch). */
async function createContainer({ manager }: AdminContext, request: RequestInfo) {
  const body = objectBody(request);
  const start = body['start'] ?? true;
  if (typeof start !== 'boolean') throw new ApolloError('bad-request', 'start must be true or false');
  const definition = {
    name: stringField(body, 'name'),
    config: configField(body),
    privileged: body['privileged'] === true,
    command: commandField(body),
  };
  const container = start ? await manager.launch(definition) : await manager.create(definition);
  return json(containerWire(container), { status: 201 });
}

function getContainer({ manager }: AdminContext, request: RequestInfo) {
  return json(containerWire(manager.get(param(request, 'name'))));
}

async function deleteContainer({ manager }: AdminContext, request: RequestInfo) {
  await manager.delete(param(request, 'name'), { force: request.query.get('force') === 'true' });
  return json({});
}

async function changeState({ manager }: AdminContext, request: RequestInfo) {
  const body = objectBody(request);
  const name = param(request, 'name');
  const action = body['action'];
  const stopping = () => ({
    force: body['force'] === true,
    ...(typeof body['timeout'] === 'number' ? { timeoutMs: body['timeout'] * 1000 } : {}),
  });
  const container =
    action === 'start'
      ? await manager.start(name)
      : action === 'stop'
        ? await manager.stop(name, stopping())
        : action === 'restart'
          ? await manager.restart(name, stopping())
          : undefined;
  if (container === undefined)
    throw new ApolloError('bad-request', `action must be "start", "stop" or "restart", not ${JSON.stringify(action ?? null)}`);
  return json(containerWire(container));
}

/**
 * The container's output log, as the container wrote it (application/octet-stream: its
 * bytes are untrusted and passed on untouched). With `follow=true` the answer stays open
 * and carries what is appended, across rotations, until the client hangs up or the
 * container is deleted.
 */
function getLog({ manager }: AdminContext, request: RequestInfo): StreamReply {
  const container = manager.get(param(request, 'name'));
  const linesText = request.query.get('lines');
  if (linesText !== null && !/^[0-9]{1,9}$/.test(linesText)) {
    throw new ApolloError('bad-request', `lines must be a whole number, not ${JSON.stringify(linesText)}`);
  }
  const followText = request.query.get('follow') ?? 'false';
  if (followText !== 'true' && followText !== 'false') {
    throw new ApolloError('bad-request', `follow must be "true" or "false", not ${JSON.stringify(followText)}`);
  }
  const file = manager.logFile(container.name);
  return {
    stream: (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
      const hangUp = new AbortController();
      res.once('close', () => hangUp.abort());
      req.socket.setNoDelay(true);
      void streamLog(file, res, {
        lines: linesText === null ? undefined : Number(linesText),
        follow: followText === 'true',
        signal: hangUp.signal,
        exists: () => manager.containers.get(container.name) === container,
      })
        .catch(() => undefined)
        .finally(() => res.end());
    },
  };
}

/**
 * A start hook (or `devapollo register`) adopts an init. `"oci": {"claim", "podman"}`
 * comes from an OCI hook: its config is from annotations, which may be an image's, and
 * the binding rules of containers/oci-binding.ts apply. The answer adds `warnings`.
 */
async function registerInit({ manager }: AdminContext, request: RequestInfo) {
  const body = objectBody(request);
  const pid = body['pid'];
  if (typeof pid !== 'number') throw new ApolloError('bad-request', 'pid must be a number');
  const runtimeId = body['runtime_id'];
  if (runtimeId !== undefined && typeof runtimeId !== 'string') throw new ApolloError('bad-request', 'runtime_id must be a string');
  const { container, warnings } = await manager.register(param(request, 'name'), pid, {
    config: configField(body),
    runtimeId,
    oci: ociField(body),
  });
  const answer: RegistrationWire = { ...containerWire(container), warnings };
  return json(answer);
}

function ociField(body: Record<string, unknown>): OciStartFacts | undefined {
  const oci = body['oci'];
  if (oci === undefined) return undefined;
  if (typeof oci !== 'object' || oci === null || Array.isArray(oci)) throw new ApolloError('bad-request', 'oci must be an object');
  const { claim = null, podman } = oci as Record<string, unknown>;
  if (claim !== null && typeof claim !== 'string') throw new ApolloError('bad-request', 'oci.claim must be a string or null');
  if (typeof podman !== 'boolean') throw new ApolloError('bad-request', 'oci.podman must be true or false');
  return { claim: claim ?? undefined, podman };
}

/**
 * `?pid=N` and `?runtime_id=S` name the run a stop hook is for: another run of the name
 * is left registered, and the answer shows it still Running.
 */
async function unregisterInit({ manager }: AdminContext, request: RequestInfo) {
  const pidText = request.query.get('pid');
  const pid = pidText === null ? undefined : Number(pidText);
  if (pid !== undefined && !(/^[0-9]+$/.test(pidText ?? '') && Number.isSafeInteger(pid) && pid > 0)) {
    throw new ApolloError('bad-request', `invalid pid ${JSON.stringify(pidText)}`);
  }
  const run = { pid, runtimeId: request.query.get('runtime_id') ?? undefined };
  return json(containerWire(await manager.unregister(param(request, 'name'), run)));
}

async function patchConfig({ manager }: AdminContext, request: RequestInfo) {
  const body = objectBody(request);
  const changes = keyMap<string | null>();
  for (const [key, value] of Object.entries(body)) {
    if (value !== null && typeof value !== 'string') throw new ApolloError('bad-request', `the value of ${key} must be a string or null`);
    changes[key] = value;
  }
  return json(containerWire(await manager.setConfig(param(request, 'name'), changes)));
}

function getConfigKey({ manager }: AdminContext, request: RequestInfo) {
  const container = manager.get(param(request, 'name'));
  const key = param(request, 'key');
  const value = container.record.config[key];
  if (value === undefined) throw new ApolloError('not-found', `config key ${key} is not set on ${container.name}`);
  return text(value);
}

/**
 * Every event of every container (or of `?container=NAME`), one JSON object per line, for
 * `devapollo monitor`. Root sees all keys, security.* included. The hub's limits hold
 * here too: a reader that stops reading is dropped.
 */
function streamEvents({ manager, events }: AdminContext, request: RequestInfo): StreamReply {
  const only = request.query.get('container');
  if (only !== null) manager.get(only);
  return events.adminStream(only ?? undefined, parseEventTypes(request.query.get('type')));
}

/** The wire form of a container (`list --format json`). */
export function containerWire(container: Container): ContainerWire {
  const { record } = container;
  const instance = container.instance;
  const running = instance?.running === true;
  return {
    name: record.name,
    state: running ? 'Running' : 'Stopped',
    guest_state: record.guest_state,
    pid: running ? instance.pid : 0,
    start_time: running ? instance.startTime : null,
    privileged: record.privileged,
    origin: record.origin,
    command: record.command,
    config: record.config,
    created_at: record.created_at,
    idmap: record.idmap,
    exit_code: running ? null : (record.exit_code ?? null),
  };
}

function param(request: RequestInfo, name: string): string {
  return request.params[name] ?? '';
}

function objectBody(request: RequestInfo): Record<string, unknown> {
  const body = parseJsonBody(request.body);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApolloError('bad-request', 'the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (typeof value !== 'string') throw new ApolloError('bad-request', `${field} must be a string`);
  return value;
}

function configField(body: Record<string, unknown>): Record<string, string> {
  const config = body['config'] ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ApolloError('bad-request', 'config must be an object');
  }
  const out = keyMap<string>();
  for (const [key, value] of Object.entries(config)) {
    if (typeof value !== 'string') throw new ApolloError('bad-request', `the value of ${key} must be a string`);
    out[key] = value;
  }
  return out;
}

function commandField(body: Record<string, unknown>): string[] | null {
  const command = body['command'] ?? null;
  if (command === null) return null;
  if (!Array.isArray(command) || !command.every((c) => typeof c === 'string')) {
    throw new ApolloError('bad-request', 'command must be an array of strings');
  }
  return command as string[];
}
