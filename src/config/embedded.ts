/**
 * Used when no litefs.yml is found: a single node that is its own static primary, so a fresh
 * machine can mount and try LiteFS without writing a file.
 */
export const EMBEDDED_CONFIG_YAML = `\
fuse:
  dir: /litefs
data:
  dir: /var/lib/litefs
http:
  addr: ":20202"
lease:
  type: static
  candidate: true
  advertise-url: http://localhost:20202
`;
