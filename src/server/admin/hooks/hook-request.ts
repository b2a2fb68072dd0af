/**
 * What a runtime hook asks of the daemon, whatever the runtime: register a container by
 * its init's host pid (start hooks) or let go of it (stop hooks). The LXC and OCI modules
 * turn what their runtime hands a hook into one of these; `applyHook` carries it out.
 */
import type { OciStartFacts } from '../../containers/oci-binding.js';

/** Start hooks: adopt the container whose init is `pid`, with these config keys. */
export interface RegisterRequest {
  readonly action: 'register';
  /** For messages: "LXC" or "OCI". */
  readonly runtime: string;
  readonly name: string;
  readonly pid: number;
  readonly config: Readonly<Record<string, string>>;
  /** What the runtime calls this run (OCI: id and bundle), for its stop hook to name it. */
  readonly runtimeId?: string;
  /**
   * OCI only: `config` is from annotations (which may be an image's), and these facts
   * decide whether the hook may bind to an existing container (containers/oci-binding.ts).
   */
  readonly oci?: OciStartFacts;
}

/** Stop hooks: let go of the container, keeping its record and config for the next start. */
export interface UnregisterRequest {
  readonly action: 'unregister';
  readonly runtime: string;
  readonly name: string;
  /**
   * The init the stopping container had, when the runtime says (LXC does, OCI's poststop
   * state has pid 0), and what the runtime calls the run (OCI: id and bundle): a late stop
   * hook must not let go of a newer run of the same name.
   */
  readonly pid: number | undefined;
  readonly runtimeId?: string;
}

export type HookRequest = RegisterRequest | UnregisterRequest;
