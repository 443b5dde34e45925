/**
 * Connections whose agent is known from how they arrived — the run bridge (listen/bridge.ts)
 * authenticated them once, when they opened — rather than from a credential on each request or
 * a source address. Per connection object: every request on it is that agent, and a
 * Proxy-Authorization header inside cannot change it (transparent-plain.ts removes it).
 */
const boundAgents = new WeakMap<object, string>();

export function bindAgent<T extends object>(connection: T, agent: string | null): T {
  if (agent !== null) boundAgents.set(connection, agent);
  return connection;
}

export function boundAgent(connection: object): string | null {
  return boundAgents.get(connection) ?? null;
}
