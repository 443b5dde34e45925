/**
 * Console sessions. The login form takes the admin token (the same one /metrics needs); a right
 * token creates a session: a random id in an HttpOnly, SameSite=Strict cookie (JavaScript cannot
 * read it, other sites cannot send it), and a random form token every state-changing form must
 * carry. Sessions live in memory (a restart logs everyone out) and expire after 12 hours.
 * Without an admin token the console is off: anyone who could reach the port could otherwise
 * approve an agent's requests, including the agent.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { cookies } from './http.js';

export const COOKIE = 'turret_console';
const SESSION_MS = 12 * 3600_000;
const MAX_SESSIONS = 1000;

export interface Session {
  id: string;
  csrf: string;
  expires: number;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

export class Sessions {
  private readonly all = new Map<string, Session>();

  create(now = Date.now()): Session {
    if (this.all.size >= MAX_SESSIONS) this.all.delete(this.all.keys().next().value as string);
    const s = { id: randomBytes(24).toString('base64url'), csrf: randomBytes(24).toString('base64url'), expires: now + SESSION_MS };
    this.all.set(s.id, s);
    return s;
  }

  of(req: http.IncomingMessage, now = Date.now()): Session | null {
    const id = cookies(req).get(COOKIE);
    if (!id) return null;
    const s = this.all.get(id);
    if (!s) return null;
    if (s.expires <= now) {
      this.all.delete(id);
      return null;
    }
    return s;
  }

  end(s: Session): void {
    this.all.delete(s.id);
  }

  static cookie(s: Session): string {
    return `${COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}`;
  }

  static clearCookie(): string {
    return `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
  }

  /** The form token of a POST matches the session's (constant time). */
  static csrfOk(s: Session, given: string | null): boolean {
    return given !== null && tokenMatches(given, s.csrf);
  }
}
