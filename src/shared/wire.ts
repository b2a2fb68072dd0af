/** JSON shapes on the wire, shared by the daemon and its clients. */

/**
 * The largest admin API request body the daemon reads. Admin requests carry whole config
 * values (1 MiB each by default, `serve --max-value-size`), several at once; the CLI
 * refuses a larger value itself, before sending it (`config set KEY -`).
 */
export const maxAdminBodyBytes = 64 * 1024 * 1024;

/** A container as the admin API and `devapollo list --format json` show it. */
export interface ContainerWire {
  readonly name: string;
  readonly state: 'Running' | 'Stopped';
  readonly guest_state: 'Started' | 'Ready';
  /** The init's pid on the host; 0 when stopped. */
  readonly pid: number;
  /** The init's start time in clock ticks since boot; null when stopped. */
  readonly start_time: string | null;
  readonly privileged: boolean;
  /** `create`: not yet started; `launch`: devapollo runs it; `register`: another runtime does. */
  readonly origin: 'create' | 'launch' | 'register';
  readonly command: readonly string[] | null;
  readonly config: Readonly<Record<string, string>>;
  readonly created_at: string;
  /**
   * The container's own host id range (security.idmap.isolated), from its first start
   * with the key until it is deleted; null while it has none (the shared range).
   */
  readonly idmap: { readonly uid_base: number; readonly gid_base: number; readonly count: number } | null;
  /**
   * How its last run ended: the exit status of its init (with a command, the command's:
   * 0-255, 128+N for signal N); null while it runs, before it ever ran, and when devapollo
   * only let go of a run another runtime started.
   */
  readonly exit_code: number | null;
}

/**
 * The answer to a start hook's registration (PUT /1.0/containers/NAME/init): the
 * container, and what of the request was left out, for the hook's Warning: line.
 */
export interface RegistrationWire extends ContainerWire {
  readonly warnings: readonly string[];
}

/** `devapollo status`. */
export interface StatusWire {
  readonly version: string;
  readonly pid: number;
  readonly started_at: string;
  readonly uptime_seconds: number;
  readonly dir: string;
  readonly guest_socket: string;
  readonly admin_socket: string;
  readonly containers: { readonly total: number; readonly running: number };
  readonly connections: {
    readonly guest: number;
    readonly event_listeners: number;
    readonly admin_event_listeners: number;
    /** Change-waits pending, all containers. */
    readonly change_waits: number;
    /** Guest connections not being read (behind a request being answered, or over the rate). */
    readonly paused: number;
  };
  /** The guest socket's limits (`serve` options and fixed ones). */
  readonly limits: {
    readonly requests_per_second: number;
    readonly request_burst: number;
    readonly connections_per_container: number;
    readonly connections: number;
    readonly event_streams_per_container: number;
    readonly change_waits_per_container: number;
    readonly pipelined_requests_per_connection: number;
    /** The guest's writes of guest.* keys (PROTOCOL.md section 3a). */
    readonly guest_writes_per_second: number;
    readonly guest_write_burst: number;
    readonly guest_keys_per_container: number;
    readonly guest_key_bytes_per_container: number;
    readonly guest_value_bytes: number;
  };
  /** The kernel features identity uses (SO_PEERPIDFD, PIDFD_GET_PID_NAMESPACE, NS_GET_ID), detected at start. */
  readonly identity: { readonly peer_pidfd: boolean; readonly pidfd_namespace: boolean; readonly namespace_ids: boolean };
  /** Whether the sockets came from a service manager (systemd socket activation). */
  readonly socket_activation: boolean;
  /**
   * Socket paths the daemon re-created since it started, after they went missing or were
   * replaced (DIR/devapollo, its socket, the admin socket), and the running containers
   * that still have a DIR/devapollo that is not the one there now.
   */
  readonly socket_repairs: {
    readonly count: number;
    readonly last_at: string | null;
    readonly last: string | null;
    readonly stranded_containers: readonly string[];
  };
  /**
   * Debugging only, not part of the API: present only when the daemon runs with
   * DEVAPOLLO_DEBUG_INTERNALS=1 in its environment. The sizes of the daemon's maps and
   * caches kept by container, namespace, process or connection, so that a test can check
   * that nothing grows with the daemon's history. Names and contents may change.
   */
  readonly internals?: Readonly<Record<string, number>>;
}

/** GET /1.0 on the guest socket. */
export interface GuestInfoWire {
  readonly api_version: string;
  readonly instance_type: string;
  readonly location: string;
  readonly state: 'Started' | 'Ready';
}
