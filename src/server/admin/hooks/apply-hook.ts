/**
 * Carries out a hook's request against the daemon's admin API, and decides what a hook
 * does when the daemon cannot be reached:
 *
 * - A start hook fails (exit 69 when no daemon answers, the daemon's own code otherwise),
 *   so that the runtime refuses to start the container: a container running with a
 *   /dev/apollo/sock that answers 403 to everything it asks would look like a broken
 *   or absent config, not like a host that is down, and cloud-init would boot it with no
 *   user-data at all.
 * - A stop hook succeeds with a warning: the container's init has exited, so no process of
 *   it can ask anything, and a daemon drops an init that has exited, also while starting
 *   up (it re-adopts only an init that still runs). Failing would only make the runtime
 *   report a stop error for a container that did stop.
 */
import { ApolloError } from '../../../shared/errors.js';
import type { ContainerWire, RegistrationWire } from '../../../shared/wire.js';
import type { AdminClient } from '../client.js';
import type { HookRequest, RegisterRequest, UnregisterRequest } from './hook-request.js';

/** What a hook needs of the admin client. */
export type HookAdmin = Pick<AdminClient, 'json'>;

const initPath = (name: string) => `/1.0/containers/${encodeURIComponent(name)}/init`;

/** Applies the request; resolves with a warning for stderr, or undefined. */
export function applyHook(request: HookRequest, admin: HookAdmin): Promise<string | undefined> {
  return request.action === 'register' ? register(request, admin) : unregister(request, admin);
}

async function register(request: RegisterRequest, admin: HookAdmin): Promise<string | undefined> {
  try {
    const answer = await admin.json<RegistrationWire>('PUT', initPath(request.name), {
      pid: request.pid,
      config: request.config,
      runtime_id: request.runtimeId,
      ...(request.oci === undefined ? {} : { oci: { claim: request.oci.claim ?? null, podman: request.oci.podman } }),
    });
    const warnings = answer.warnings ?? [];
    return warnings.length === 0 ? undefined : `${request.runtime} container ${request.name}: ${warnings.join('; ')}`;
  } catch (error) {
    if (!(error instanceof ApolloError)) throw error;
    const refusal =
      error.code === 'no-daemon' ? '; refusing to start the container: its /dev/apollo/sock would answer nothing about it' : '';
    throw new ApolloError(error.code, `cannot register ${request.runtime} container ${request.name}: ${error.message}${refusal}`, {
      cause: error,
    });
  }
}

async function unregister(request: UnregisterRequest, admin: HookAdmin): Promise<string | undefined> {
  try {
    // The run this hook is for has stopped; if the name runs again as another run (a
    // newer init, another OCI container with the same devapollo.name), the daemon leaves
    // that one alone, and its answer still says Running.
    const query = new URLSearchParams();
    if (request.pid !== undefined) query.set('pid', String(request.pid));
    if (request.runtimeId !== undefined) query.set('runtime_id', request.runtimeId);
    const suffix = query.size > 0 ? `?${query}` : '';
    const after = await admin.json<ContainerWire>('DELETE', `${initPath(request.name)}${suffix}`);
    if (after.state !== 'Running') return undefined;
    const which = request.pid !== undefined ? `not ${request.pid}` : `not the run this ${request.runtime} stop hook is for`;
    return `${request.runtime} container ${request.name} runs again with init pid ${after.pid}, ${which}: left registered`;
  } catch (error) {
    if (!(error instanceof ApolloError)) throw error;
    // Never registered (its start hook failed, or it ran before devapollo knew it).
    if (error.code === 'not-found') return undefined;
    if (error.code === 'no-daemon') {
      return (
        `no daemon to tell that ${request.runtime} container ${request.name} stopped (${error.message}); ` +
        'nothing is lost: a daemon drops a container whose init has exited, also when it starts'
      );
    }
    throw new ApolloError(error.code, `cannot let go of ${request.runtime} container ${request.name}: ${error.message}`, {
      cause: error,
    });
  }
}
