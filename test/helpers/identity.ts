/**
 * Users for tests, and running SQL as one of them.
 *
 *   createUser(client, options)       registers a user inside the caller's transaction (rolled back with it)
 *   createCommittedUser(options)      registers a user for real (server tests); removeUser(user) deletes it
 *   asUser(client, user | null, fn)   runs fn on the same client as the visitor with that user's token
 *                                     (null: anonymous), then switches back
 *   userSettings(user)                the pgSettings of a request with that user's token (for asVisitor)
 *
 * Every user comes with a personal organization they own (register creates it).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { tokenHash } from "../../src/server/request-settings.ts";
import { testDatabase } from "../setup/test-database.ts";
import { pool, type Client } from "./db.ts";

export interface TestUser {
  id: string;
  email: string;
  username: string;
  password: string;
  /** The bearer token of the session register opened. */
  token: string;
  sessionId: string;
  /** The personal organization the user owns. */
  organizationId: string;
}

export interface UserOptions {
  email?: string;
  username?: string;
  password?: string;
  name?: string;
}

/** A short random suffix for names that must be unique across tests. */
export function uniqueSuffix(): string {
  return randomBytes(5).toString("hex");
}

/** Registers a user with `client` (any role that may call app_public.register: root, owner, visitor). */
export async function registerUser(client: Client, options: UserOptions = {}): Promise<TestUser> {
  const suffix = uniqueSuffix();
  const email = options.email ?? `user-${suffix}@example.com`;
  const username = options.username ?? `user_${suffix}`;
  const password = options.password ?? `password-${suffix}`;
  const { rows } = await client.query<{ user_id: string; session_id: string; token: string }>(
    "select user_id, session_id, token from app_public.register($1, $2, $3, $4)",
    [email, password, username, options.name ?? null],
  );
  const credentials = rows[0];
  if (credentials === undefined) throw new Error("register returned nothing");
  const organization = await client.query<{ organization_id: string }>(
    "select organization_id from app_public.organization_memberships where user_id = $1 and role = 'owner'",
    [credentials.user_id],
  );
  return {
    id: credentials.user_id,
    email,
    username,
    password,
    token: credentials.token,
    sessionId: credentials.session_id,
    organizationId: organization.rows[0]?.organization_id ?? "",
  };
}

/** A user in the caller's (root) transaction: gone when it rolls back. */
export function createUser(client: Client, options: UserOptions = {}): Promise<TestUser> {
  return registerUser(client, options);
}

/** A committed user, for tests that go through a server; delete it with removeUser. */
export async function createCommittedUser(options: UserOptions = {}): Promise<TestUser> {
  const client = await pool("owner").connect();
  try {
    return await registerUser(client, options);
  } finally {
    client.release();
  }
}

/** Deletes a committed user and every organization they own. */
export async function removeUser(user: TestUser): Promise<void> {
  const client = await pool("root").connect();
  try {
    await client.query(
      `delete from app_public.organizations where id in (
         select organization_id from app_public.organization_memberships where user_id = $1 and role = 'owner')`,
      [user.id],
    );
    await client.query("delete from app_public.users where id = $1", [user.id]);
  } finally {
    client.release();
  }
}

/** The settings a GraphQL request carrying this user's bearer token runs with. */
export function userSettings(user: Pick<TestUser, "token"> | null): Record<string, string> {
  const settings: Record<string, string> = { "agentplane.request_id": randomUUID() };
  if (user !== null) settings["agentplane.token_hash"] = tokenHash(user.token);
  return settings;
}

const REQUEST_SETTINGS = ["agentplane.token_hash", "agentplane.request_id", "agentplane.ip", "agentplane.user_agent"];

/**
 * Runs `fn` on `client` (a root client inside a transaction) as the visitor
 * role with `user`'s token, or with no token for null; then switches back to
 * the client's own role. `extra` adds request settings (agentplane.ip, …).
 */
export async function asUser<T>(
  client: Client,
  user: Pick<TestUser, "token"> | null,
  fn: (client: Client) => Promise<T>,
  extra: Record<string, string> = {},
): Promise<T> {
  await client.query("select set_config('role', $1, true)", [testDatabase().visitorRole]);
  for (const [key, value] of Object.entries({ ...userSettings(user), ...extra })) {
    await client.query("select set_config($1, $2, true)", [key, value]);
  }
  try {
    return await fn(client);
  } finally {
    // Fails only when fn left the transaction aborted; rolling back undoes it all anyway.
    await client
      .query(
        `reset role; ${REQUEST_SETTINGS.map((key) => `select set_config('${key}', '', true);`).join(" ")}`,
      )
      .catch(() => undefined);
  }
}
