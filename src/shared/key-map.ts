/**
 * Maps keyed by what users type: config keys, container names, annotations, KEY=VALUE
 * arguments. They are plain objects (so that they are JSON as they are, on the wire and
 * in state files) with no prototype: `map[key]` is then only ever what was put there.
 * On an ordinary object `map['toString']` is a function, `map['constructor']` is
 * `Object` and `map['__proto__'] = value` replaces the prototype instead of setting a key
 * (docs/api.md, "Config keys": such a key is an unset key like any other).
 *
 * Object spread, Object.fromEntries and JSON.parse make ordinary objects again: build
 * with `keyMap`, or look up with `ownValue` where the object comes from elsewhere.
 */

/** A new object with no prototype, holding `entries` (later ones win). */
export function keyMap<V>(entries: Iterable<readonly [string, V]> = []): Record<string, V> {
  const map = Object.create(null) as Record<string, V>;
  for (const [key, value] of entries) map[key] = value;
  return map;
}

/** `object` itself when it has no prototype, else a copy of its own entries that has none. */
export function asKeyMap<V>(object: Readonly<Record<string, V>>): Readonly<Record<string, V>> {
  return Object.getPrototypeOf(object) === null ? object : keyMap(Object.entries(object));
}

/** `object[key]` if it is the object's own property: for objects from elsewhere (parsed JSON). */
export function ownValue<V>(object: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}
