/**
 * cloud-init meta-data for a container: the generated instance-id and local-hostname,
 * then `user.meta-data` verbatim. A top-level line of `user.meta-data` that sets one of
 * the generated keys takes that key's place instead of repeating it (a repeated key is
 * invalid YAML, and cloud-init would reject the whole document).
 */
const generatedKeys = ['instance-id', 'local-hostname'] as const;

export function buildMetaData(name: string, userMetaData: string | undefined): string {
  const generated = new Map<string, string>(generatedKeys.map((key) => [key, `${key}: ${name}`]));
  let rest = '';
  if (userMetaData !== undefined) {
    const kept: string[] = [];
    for (const line of userMetaData.split('\n')) {
      const key = /^([A-Za-z-]+)\s*:/.exec(line)?.[1];
      if (key !== undefined && generated.has(key)) generated.set(key, line.replace(/\r$/, ''));
      else kept.push(line);
    }
    rest = kept.join('\n');
  }
  return `#cloud-config\n${[...generated.values()].join('\n')}\n${rest}`;
}
