/**
 * Agents in the database: types (defaults, required parameters), forks and
 * visibility, API keys and what an agent may do with its key.
 */
import { describe, expect, test } from "@jest/globals";
import { tokenHash } from "../../../src/server/request-settings.ts";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";
import { addMember, asAgent, createAgent, createAgentKey as createKey } from "../../helpers/schedules.ts";

async function typeId(client: Client, name: string): Promise<string> {
  return (await client.query<{ id: string }>("select id from app_public.agent_types where name = $1", [name])).rows[0]!.id;
}

describe("agent types", () => {
  test("a few types come with the migration, readable by signed-in users only", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const names = await asUser(client, user, async () =>
        (await client.query("select name from app_public.agent_types order by name")).rows.map((row) => row.name),
      );
      expect(names).toEqual(expect.arrayContaining(["assistant", "coder", "monitor", "reporter", "scraper"]));
      expect(await asUser(client, null, async () => (await client.query("select * from app_public.agent_types")).rowCount)).toBe(0);
    });
  });

  test("an agent gets its type's defaults, and one that misses a required parameter is refused, naming it", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const monitor = await typeId(client, "monitor");
      const agent = await createAgent(client, user, { type_id: monitor, config: { target_url: "https://example.test", timeout_seconds: 3 } });
      expect(agent.config).toEqual({ target_url: "https://example.test", interval_seconds: 60, timeout_seconds: 3 });
      const missing = await asUser(client, user, () =>
        expectError(client, "insert into app_public.agents (organization_id, name, type_id) values ($1, 'x', $2)", [user.organizationId, monitor]),
      );
      expect([missing.code, missing.message]).toEqual(["22023", 'agent type "monitor" requires the parameter "target_url" in config']);
      const removed = await asUser(client, user, () =>
        expectError(client, "update app_public.agents set config = config - 'target_url' where id = $1", [agent.id]),
      );
      expect(removed.message).toBe('agent type "monitor" requires the parameter "target_url" in config');
    });
  });
});

describe("agent visibility and forks", () => {
  test("public agents are readable by every signed-in user and forkable, never editable by others", async () => {
    await asRoot(async (client) => {
      const author = await createUser(client);
      const other = await createUser(client);
      const coder = await typeId(client, "coder");
      const published = await createAgent(client, author, {
        type_id: coder,
        visibility: "public",
        model: "claude-sonnet-4.5",
        system_prompt: "You review code.",
        config: { repository: "github.com/acme/app" },
        webhook_url: "https://agents.example.test/a",
      });
      await asUser(client, other, async () => {
        expect((await client.query("select name from app_public.agents where id = $1", [published.id])).rowCount).toBe(1);
        expect((await client.query("update app_public.agents set name = 'mine' where id = $1", [published.id])).rowCount).toBe(0);
        expect((await client.query("delete from app_public.agents where id = $1", [published.id])).rowCount).toBe(0);
      });
      expect(await asUser(client, null, async () => (await client.query("select 1 from app_public.agents where id = $1", [published.id])).rowCount)).toBe(0);

      const fork = await createAgent(client, other, { name: "my fork", parent_agent_id: published.id, config: { branch: "dev" } });
      expect(fork).toMatchObject({
        organization_id: other.organizationId,
        parent_agent_id: published.id,
        type_id: coder,
        model: "claude-sonnet-4.5",
        system_prompt: "You review code.",
        config: { repository: "github.com/acme/app", branch: "dev", open_pull_requests: false },
        visibility: "organization",
        webhook_url: null,
      });
    });
  });

  test("an agent of another organization that is not public cannot be seen nor forked", async () => {
    await asRoot(async (client) => {
      const author = await createUser(client);
      const other = await createUser(client);
      const hidden = await createAgent(client, author, { visibility: "organization" });
      const error = await asUser(client, other, () =>
        expectError(client, "insert into app_public.agents (organization_id, name, parent_agent_id) values ($1, 'fork', $2)", [
          other.organizationId,
          hidden.id,
        ]),
      );
      expect(error.message).toBe(`there is no agent ${String(hidden.id)} to fork (or you cannot see it)`);
    });
  });

  test("private agents are seen by their creator and the organization's admins, not by other members", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const [member, colleague] = [await createUser(client), await createUser(client)];
      for (const user of [member, colleague]) await addMember(client, owner.organizationId, user, "member");
      const secret = await createAgent(client, { ...member, organizationId: owner.organizationId }, { visibility: "private" });
      const sees = (user: TestUser) =>
        asUser(client, user, async () => (await client.query("select 1 from app_public.agents where id = $1", [secret.id])).rowCount);
      expect([await sees(member), await sees(owner), await sees(colleague)]).toEqual([1, 1, 0]);
      const edits = await asUser(client, colleague, async () =>
        (await client.query("update app_public.agents set name = 'x' where id = $1", [secret.id])).rowCount,
      );
      expect(edits).toBe(0);
    });
  });
});

describe("agent API keys", () => {
  test("a key is shown once as agt_…, stored as a SHA-256 with a prefix, and identifies its agent", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const agent = await createAgent(client, user);
      const key = await createKey(client, user, String(agent.id));
      expect(key).toMatch(/^agt_[0-9a-f]{48}$/);
      const stored = (
        await client.query(
          "select k.key_prefix, s.key_hash from app_public.agent_api_keys k join app_private.agent_api_key_secrets s on s.agent_api_key_id = k.id where k.agent_id = $1",
          [agent.id],
        )
      ).rows[0];
      expect(stored).toEqual({ key_prefix: key.slice(0, 12), key_hash: tokenHash(key) });
      expect(await asAgent(client, key, async () => (await client.query("select app_public.current_agent_id() as id")).rows[0]?.id)).toBe(agent.id);
      const audit = await client.query("select action from app_public.audit_log where organization_id = $1 and target_type = 'agent_api_key'", [
        user.organizationId,
      ]);
      expect(audit.rows.map((row) => row.action)).toEqual(["agent_api_key.created"]);
    });
  });

  test("revoked and expired keys, and keys of disabled agents, identify nobody", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const agent = await createAgent(client, user);
      const currentAgent = (key: string) => asAgent(client, key, async () => (await client.query("select app_public.current_agent_id() as id")).rows[0]?.id);
      const revoked = await createKey(client, user, String(agent.id));
      const keyId = (await client.query("select id from app_public.agent_api_keys where key_prefix = $1", [revoked.slice(0, 12)])).rows[0]!.id;
      await asUser(client, user, () => client.query("select app_public.revoke_agent_api_key($1)", [keyId]));
      expect(await currentAgent(revoked)).toBeNull();
      const expiring = await createKey(client, user, String(agent.id));
      await client.query("update app_public.agent_api_keys set expires_at = now() - interval '1 second' where key_prefix = $1", [expiring.slice(0, 12)]);
      expect(await currentAgent(expiring)).toBeNull();
      const valid = await createKey(client, user, String(agent.id));
      expect(await currentAgent(valid)).toBe(agent.id);
      await client.query("update app_public.agents set enabled = false where id = $1", [agent.id]);
      expect(await currentAgent(valid)).toBeNull();
    });
  });

  test("someone else's agent gets no key from you", async () => {
    await asRoot(async (client) => {
      const [user, other] = [await createUser(client), await createUser(client)];
      const agent = await createAgent(client, other);
      const error = await asUser(client, user, () => expectError(client, "select app_public.create_agent_api_key($1)", [agent.id]));
      expect([error.code, error.message]).toEqual(["42501", `there is no agent ${String(agent.id)} you can manage`]);
    });
  });
});

describe("with its key, an agent", () => {
  async function setUp(client: Client) {
    const user = await createUser(client);
    const agent = await createAgent(client, user);
    const sibling = await createAgent(client, user, { name: "sibling" });
    await asUser(client, user, () =>
      client.query(
        `insert into app_public.cronjobs (organization_id, agent_id, name, schedule, action, task, payload)
         values ($1, $2, 'job', '* * * * *', 'webhook', 't', '{"url": "https://x.test"}')`,
        [user.organizationId, agent.id],
      ),
    );
    await client.query("insert into app_public.agent_logs (agent_id, status, message) values ($1, 'success', 'sibling log')", [sibling.id]);
    return { user, agent, sibling, key: await createKey(client, user, String(agent.id)) };
  }

  test("writes its own logs (duration derived), whatever agent id it names", async () => {
    await asRoot(async (client) => {
      const { agent, sibling, key } = await setUp(client);
      const written = await asAgent(client, key, async () => {
        const own = await client.query(
          `insert into app_public.agent_logs (agent_id, status, message, started_at, completed_at)
           values ($1, 'success', 'done', '2025-01-01T00:00:00Z', '2025-01-01T00:00:01.5Z') returning agent_id, duration_ms`,
          [agent.id],
        );
        const spoofed = await client.query(
          "insert into app_public.agent_logs (agent_id, status, message) values ($1, 'error', 'pretend') returning agent_id",
          [sibling.id],
        );
        return [own.rows[0], spoofed.rows[0]];
      });
      expect(written).toEqual([{ agent_id: agent.id, duration_ms: 1500 }, { agent_id: agent.id }]);
      const negative = await asAgent(client, key, () =>
        expectError(client, "insert into app_public.agent_logs (agent_id, status, started_at, completed_at) values ($1, 'success', now(), now() - interval '1 s')", [
          agent.id,
        ]),
      );
      expect(negative.code).toBe("23514");
    });
  });

  test("cannot read another agent's data, nor anything else of its organization", async () => {
    await asRoot(async (client) => {
      const { key, agent, user } = await setUp(client);
      const seen = await asAgent(client, key, async () => {
        const counts: Record<string, number> = {};
        for (const table of ["agents", "agent_types", "agent_api_keys", "cronjobs", "cronjob_executions", "alert_rules", "alerts",
          "notification_channels", "notifications", "organizations", "organization_memberships", "users", "audit_log"]) {
          counts[table] = (await client.query(`select 1 from app_public.${table}`)).rowCount ?? 0;
        }
        counts.other_agents_logs = (await client.query("select 1 from app_public.agent_logs where message = 'sibling log'")).rowCount ?? 0;
        return counts;
      });
      expect(Object.entries(seen).filter(([, count]) => count > 0)).toEqual([]);
      const updated = await asAgent(client, key, async () => (await client.query("update app_public.agents set name = 'hijacked'")).rowCount);
      expect(updated).toBe(0);
      expect((await client.query("select name from app_public.agents where id = $1", [agent.id])).rows[0]?.name).toBe(agent.name);
      const created = await asAgent(client, key, () =>
        expectError(client, "insert into app_public.agents (organization_id, name) values ($1, 'spawn')", [user.organizationId]),
      );
      expect(created.code).toBe("42501");
    });
  });
});
