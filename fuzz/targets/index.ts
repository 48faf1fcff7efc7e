// Every TypeScript fuzz target, by name (fuzz/corpus/<name>, fuzz/crashes/<name>).
import type { FuzzTarget } from '../target.ts';
import { checkin } from './checkin.ts';
import { dhcpPacket } from './dhcp-packet.ts';
import { nodeNetwork } from './node-network.ts';
import { platformPaths } from './platform-paths.ts';
import { tftpRequest } from './tftp-request.ts';

export const targets: readonly FuzzTarget[] = [dhcpPacket, tftpRequest, platformPaths, nodeNetwork, checkin];
