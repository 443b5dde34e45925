/**
 * The addresses of this machine, for the 'self' class: dialling any of them reaches Turret's own
 * listeners (admin, metrics) and whatever else the operator runs on the host, even when the
 * address itself is public.
 */
import os from 'node:os';
import { canonicalAddress } from './classify.js';

/**
 * Canonical interface addresses of this host, plus `extra` (e.g. Turret's own listen addresses).
 * Unspecified addresses (0.0.0.0, ::) are left out: they keep their own, more precise class.
 * Call it again after interfaces change (DHCP, containers); the result is a snapshot.
 */
export function interfaceAddresses(extra: Iterable<string> = []): Set<string> {
  const out = new Set<string>();
  const add = (raw: string): void => {
    try {
      const a = canonicalAddress(raw.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
      if (a !== '0.0.0.0' && a !== '::') out.add(a);
    } catch {
      // not an address (a host name given as listen address): nothing to add
    }
  };
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) add(info.address);
  }
  for (const raw of extra) add(raw);
  return out;
}
