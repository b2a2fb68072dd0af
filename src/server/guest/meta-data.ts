/**
 * cloud-init meta-data for a container: the generated instance-id (NAME, or
 * `volatile.cloud-init.instance-id` once cloud-init's data changed) and local-hostname,
 * then `user.meta-data` verbatim. A top-level entry of `user.meta-data` that sets one of
 * the generated keys takes that key's place instead of repeating it (a repeated key is
 * invalid YAML, and cloud-init would reject the whole document). The entry moves whole:
 * its key line and the indented lines that continue its value.
 */

/** A top-level YAML key line for one of the generated keys, plain or quoted. */
const overrideLine = /^(?:"(instance-id|local-hostname)"|'(instance-id|local-hostname)'|(instance-id|local-hostname))\s*:(?:\s|$)/;

/** The meta-data of container `name` whose instance-id is `instanceId` (NAME unless changed). */
export function buildMetaData(name: string, userMetaData: string | undefined, instanceId = name): string {
  const generated = new Map<string, string>([
    ['instance-id', `instance-id: ${instanceId}`],
    ['local-hostname', `local-hostname: ${name}`],
  ]);
  let rest = '';
  if (userMetaData !== undefined) {
    const lines = userMetaData.split('\n');
    const kept: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      const match = overrideLine.exec(line);
      if (match === null) {
        kept.push(line);
        continue;
      }
      const key = (match[1] ?? match[2] ?? match[3]) as string;
      const entry = [line.replace(/\r$/, '')];
      // Indented (or blank, then indented) lines continue this entry's value.
      while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1] as string)) entry.push((lines[++i] as string).replace(/\r$/, ''));
      generated.set(key, entry.join('\n'));
    }
    rest = kept.join('\n');
  }
  return `#cloud-config\n${[...generated.values()].join('\n')}\n${rest}`;
}
