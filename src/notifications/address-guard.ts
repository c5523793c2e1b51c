/**
 * Outbound requests go to customers' URLs: unless private networks are
 * allowed (DELIVERY_ALLOW_PRIVATE_NETWORKS, on by default outside
 * production), a host that resolves to a loopback, private, link-local or
 * otherwise internal address is refused, so that a webhook URL cannot reach
 * the services next to agentplane (databases, metadata endpoints).
 *
 * The check resolves the name before the request; a name that changes its
 * answer between the check and the connection (DNS rebinding) is not caught.
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { DeliveryError } from "./http.ts";

const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8]] as const) {
  INTERNAL.addSubnet(network, prefix, "ipv6");
}

/** True for an address no customer endpoint should have. */
export function isInternalAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return INTERNAL.check(mapped, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return INTERNAL.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Throws a permanent DeliveryError when `hostname` is, or resolves to, an internal address. */
export async function assertPublicHost(hostname: string): Promise<void> {
  const bare = hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  try {
    addresses = isIP(bare) !== 0 ? [bare] : (await lookup(bare, { all: true, verbatim: true })).map((entry) => entry.address);
  } catch (error) {
    throw new DeliveryError(`cannot resolve ${bare}`, { permanent: false, cause: error });
  }
  const internal = addresses.find(isInternalAddress);
  if (internal !== undefined) {
    throw new DeliveryError(`${bare} is an internal address (${internal}): deliveries go to public endpoints only`, { permanent: true });
  }
}
