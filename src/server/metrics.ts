import type { IncomingMessage } from 'node:http';
import type { Logger } from './log.js';

/**
 * The daemon's metrics in Prometheus' text format (GET /metrics on the admin socket).
 * Counters are plain numbers in maps, so counting on the request path costs a map
 * update; gauges are read when the metrics are asked for.
 */

/** Request latency buckets, in seconds. */
const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

class Histogram {
  readonly counts = new Array<number>(buckets.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < buckets.length && seconds > (buckets[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += seconds;
    this.count++;
  }
}

/** A gauge or counter read at scrape time, with its labels. */
export type Sampler = () => readonly { readonly labels?: Readonly<Record<string, string>>; readonly value: number }[];

interface Family {
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly sample: Sampler;
}

export class Metrics {
  /** Request counts by API, then route pattern, then status: no key is built per request. */
  private readonly requests = new Map<string, Map<string, Map<number, number>>>();
  private readonly latency = new Map<string, Histogram>();
  private readonly refused = new Map<string, number>();
  private readonly families = new Map<string, Family>();

  /** One finished request: `route` is the route's pattern (never a key name or value). */
  observeRequest(api: string, route: string, status: number, seconds: number): void {
    let byRoute = this.requests.get(api);
    if (byRoute === undefined) {
      byRoute = new Map();
      this.requests.set(api, byRoute);
    }
    let byStatus = byRoute.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      byRoute.set(route, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    let histogram = this.latency.get(api);
    if (histogram === undefined) {
      histogram = new Histogram();
      this.latency.set(api, histogram);
    }
    histogram.observe(seconds);
  }

  /** Label sets of the request counters and histograms (status `internals`): by API, route and status, never by container. */
  get labelSets(): number {
    let sets = this.latency.size + this.refused.size;
    for (const byRoute of this.requests.values()) for (const byStatus of byRoute.values()) sets += byStatus.size;
    return sets;
  }

  countRefusal(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** Registers a value read at scrape time (open connections, containers by state, …). */
  register(name: string, type: 'counter' | 'gauge', help: string, sample: Sampler): void {
    this.families.set(name, { help, type, sample });
  }

  render(): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family('devapollo_requests_total', 'counter', 'Requests answered, by API, route and status.');
    for (const [api, byRoute] of this.requests) {
      for (const [route, byStatus] of byRoute) {
        for (const [status, count] of byStatus) {
          lines.push(`devapollo_requests_total${labels({ api, route, status: String(status) })} ${count}`);
        }
      }
    }
    family('devapollo_request_duration_seconds', 'histogram', 'Time from request to the end of the answer, by API.');
    for (const [api, histogram] of this.latency) {
      let cumulative = 0;
      buckets.forEach((le, i) => {
        cumulative += histogram.counts[i] ?? 0;
        lines.push(`devapollo_request_duration_seconds_bucket${labels({ api, le: String(le) })} ${cumulative}`);
      });
      lines.push(`devapollo_request_duration_seconds_bucket${labels({ api, le: '+Inf' })} ${histogram.count}`);
      lines.push(`devapollo_request_duration_seconds_sum${labels({ api })} ${histogram.sum}`);
      lines.push(`devapollo_request_duration_seconds_count${labels({ api })} ${histogram.count}`);
    }
    family('devapollo_refused_peers_total', 'counter', 'Guest connections and requests refused, by reason.');
    for (const [reason, count] of this.refused) lines.push(`devapollo_refused_peers_total${labels({ reason })} ${count}`);
    for (const [name, { help, type, sample }] of this.families) {
      family(name, type, help);
      for (const { labels: l, value } of sample()) lines.push(`${name}${l === undefined ? '' : labels(l)} ${value}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

function labels(values: Readonly<Record<string, string>>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return `{${parts.join(',')}}`;
}

/** What both servers report each answered request to. */
export interface RequestObserver {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** One log line per request (off by default: `serve --log-requests`). */
  readonly logRequests: boolean;
}

/**
 * The `onAnswered` hook of an API: counts the request, and logs it when asked to. The
 * line names the path without its query and the container, never a value.
 */
export function answeredHook(
  api: 'guest' | 'admin',
  observer: RequestObserver,
  containerOf: (req: IncomingMessage) => string | undefined = () => undefined,
): (req: IncomingMessage, route: string, status: number, seconds: number) => void {
  return (req, route, status, seconds) => {
    observer.metrics.observeRequest(api, route, status, seconds);
    if (!observer.logRequests) return;
    observer.logger.info('request', {
      api,
      method: req.method,
      path: (req.url ?? '').split('?')[0],
      status,
      container: containerOf(req),
      ms: Math.round(seconds * 10_000) / 10,
    });
  };
}
