/** Order statistics for benchmark samples. */

/** The q-quantile (0..1) by nearest rank; NaN for no samples. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** (max - min) / median: how far apart the samples of one figure were. */
export function spread(samples: readonly number[]): number {
  if (samples.length < 2) return 0;
  return (Math.max(...samples) - Math.min(...samples)) / median(samples);
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * A distribution-free confidence interval for the median, from order statistics: with
 * n samples, the k-th smallest and the k-th largest bracket the true median with
 * probability 1 - 2·P(Binomial(n, ½) < k). The widest k whose coverage is still at least
 * `confidence` is taken; undefined when n is too small for that.
 */
export function medianInterval(samples: readonly number[], confidence = 0.95): readonly [number, number] | undefined {
  const n = samples.length;
  const sorted = [...samples].sort((a, b) => a - b);
  let below = 0; // P(Binomial(n, ½) < k)
  let coefficient = 1; // n choose (k - 1)
  let best: number | undefined;
  for (let k = 1; k <= Math.ceil(n / 2); k++) {
    below += coefficient / 2 ** n;
    coefficient = (coefficient * (n - k + 1)) / k;
    if (1 - 2 * below >= confidence) best = k;
    else break;
  }
  if (best === undefined) return undefined;
  return [sorted[best - 1] as number, sorted[n - best] as number];
}
