// The network file an operator gives `node setup` (src/nodeconfig/network.ts): parseNodeNetwork
// throws only NodeConfigError naming the field; what it accepts, the stored-row schema accepts
// too, parses again to the same value, and renders (networking.json, -B boot args, NIC rows).
import { isDeepStrictEqual } from 'node:util';
import { NodeConfigError, networkBootArgs, nicRowsFor, nodeNetworkSchema, parseNodeNetwork, renderNetworkingJson } from '../../src/nodeconfig/network.ts';
import { check, jsonOf, type FuzzTarget } from '../target.ts';

export const nodeNetwork: FuzzTarget = {
  name: 'node-network',
  about: 'network files: a NodeConfigError naming the field, or a value that re-parses and renders',
  coverage: ['/src/nodeconfig/network.ts', '/src/config/schema.ts', '/src/mac.ts', '/node_modules/zod/'],
  dictionary: ['hostname', 'dnsDomain', 'resolvers', 'ntpServers', 'nics', 'mac', 'tags', 'mtu', 'aggregations', 'name', 'macs', 'lacpMode', 'interfaces', 'tag', 'ip', 'netmask', 'gateway', 'vlan', 'primary', 'routes', 'admin', 'external', 'dhcp', 'aggr0', '52:54:00:12:34:56', '10.0.0.5', '255.255.255.0', '10.0.0.1', '10.1.0.0/16', 'active', 'example.com'],
  format: 'json',
  maxLen: 64 * 1024,
  run(data) {
    const doc = jsonOf(data);
    if (!doc) return;
    let n;
    try {
      n = parseNodeNetwork(doc.value);
    } catch (err) {
      if (err instanceof NodeConfigError) {
        check(/^network[.:]/.test(err.message), () => `a refusal that names no field: ${err.message}`);
        return;
      }
      throw err;
    }
    check(nodeNetworkSchema.safeParse(n).success, () => 'node setup accepted a network the stored-row schema refuses');
    const again = parseNodeNetwork(JSON.parse(JSON.stringify(n)));
    check(isDeepStrictEqual(again, n), () => 'an accepted network parses to something else the second time');
    const rendered = renderNetworkingJson(n);
    check(/^[0-9a-f]{40}$/.test(rendered.sha1) && JSON.parse(rendered.text) !== null, () => 'networking.json is not JSON with a SHA-1');
    for (const [k, v] of Object.entries(networkBootArgs(n))) {
      // A -B key is a config.sh variable name (NIC tags keep their case, nictagadm valid_name); a value is one word (illumos boot(8) -B list).
      check(/^[A-Za-z0-9_]+$/.test(k) && v !== '' && !/\s/.test(v), () => `boot arg ${k}=${JSON.stringify(v)}`);
    }
    const rows = nicRowsFor(n, n.nics.map((nic) => nic.mac));
    check(rows.length === n.nics.length, () => `${rows.length} NIC rows for ${n.nics.length} NICs`);
  },
};
