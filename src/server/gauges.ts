/**
 * The gauges /metrics reads at scrape time: the guest socket's connections and waits,
 * containers by state, the event hub's streams, and the usual process figures.
 */
import fs from 'node:fs';
import type { ContainerManager } from './containers/manager.js';
import type { EventHub } from './events/hub.js';
import type { GuestServer, GuestServerLimits } from './guest/server.js';
import type { Metrics } from './metrics.js';

export function registerGauges(metrics: Metrics, manager: ContainerManager, guest: GuestServer, limits: GuestServerLimits): void {
  const events: EventHub = guest.events;
  metrics.register('devapollo_guest_connections', 'gauge', 'Open connections on the guest socket.', () => [
    { value: guest.openConnections() },
  ]);
  metrics.register(
    'devapollo_guest_paused_connections',
    'gauge',
    'Guest connections not being read (behind a request being answered, or over the rate).',
    () => [{ value: guest.pausedConnections() }],
  );
  metrics.register('devapollo_change_waits', 'gauge', 'Change-waits pending on the guest socket, all containers.', () => [
    { value: guest.pendingWaits() },
  ]);
  metrics.register('devapollo_change_waits_per_container_limit', 'gauge', 'Change-waits a container may have pending at once.', () => [
    { value: limits.maxWaitsPerContainer },
  ]);
  metrics.register('devapollo_containers', 'gauge', 'Containers by state.', () => {
    const { total, running } = manager.counts();
    return [
      { labels: { state: 'Running' }, value: running },
      { labels: { state: 'Stopped' }, value: total - running },
    ];
  });
  metrics.register('devapollo_event_listeners', 'gauge', 'Open guest event streams.', () => [{ value: events.size }]);
  metrics.register('devapollo_events_delivered_total', 'counter', 'Events sent to guest streams.', () => [
    { value: events.stats.guest.delivered },
  ]);
  metrics.register('devapollo_events_dropped_total', 'counter', 'Guest streams dropped for falling behind.', () => [
    { value: events.stats.guest.dropped },
  ]);
  metrics.register('devapollo_admin_event_listeners', 'gauge', 'Open admin event streams (devapollo monitor).', () => [
    { value: events.adminSize },
  ]);
  metrics.register('devapollo_admin_events_delivered_total', 'counter', 'Events sent to admin streams.', () => [
    { value: events.stats.admin.delivered },
  ]);
  metrics.register('devapollo_admin_events_dropped_total', 'counter', 'Admin streams dropped for falling behind.', () => [
    { value: events.stats.admin.dropped },
  ]);
  // The usual process figures, under the names Prometheus' client libraries give them.
  metrics.register('process_resident_memory_bytes', 'gauge', 'Resident memory of the daemon.', () => [
    { value: process.memoryUsage.rss() },
  ]);
  metrics.register('process_open_fds', 'gauge', 'Open file descriptors of the daemon.', () => [
    { value: fs.readdirSync('/proc/self/fd').length },
  ]);
  metrics.register('nodejs_heap_size_used_bytes', 'gauge', 'Used size of the JavaScript heap.', () => [
    { value: process.memoryUsage().heapUsed },
  ]);
  metrics.register('nodejs_external_memory_bytes', 'gauge', 'Memory of Buffers and other objects outside the heap.', () => [
    { value: process.memoryUsage().external },
  ]);
}
