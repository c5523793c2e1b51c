/**
 * Boxes and their keys in SQL: creation within the organization's limit, keys
 * shown once and stored hashed, rotation with a grace period, revocation,
 * hardware binding, who may do what, and the audit log.
 */
import { describe, expect, test } from "@jest/globals";
import { authenticate, createBox, sha256 } from "../../helpers/boxes.ts";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";

async function setMaxBoxes(client: Client, user: TestUser, max: number) {
  await client.query("update app_public.organization_limits set max_boxes = $2 where organization_id = $1", [user.organizationId, max]);
}

async function auditActions(client: Client, organizationId: string): Promise<string[]> {
  const { rows } = await client.query<{ action: string }>(
    "select action from app_public.audit_log where organization_id = $1 order by created_at, action",
    [organizationId],
  );
  return rows.map((row) => row.action);
}

describe("boxes", () => {
  test("a member creates a box with a key shown once, stored as SHA-256 and prefix", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner, "edge-1");
      expect(box.apiKey).toMatch(/^box_[A-Za-z0-9_-]{43}$/);
      const { rows } = await client.query(
        `select k.prefix, s.key_hash from app_public.box_api_keys k join app_private.box_api_key_secrets s on s.key_id = k.id
         where k.box_id = $1`,
        [box.id],
      );
      expect(rows).toEqual([{ prefix: box.apiKey.slice(0, 12), key_hash: sha256(box.apiKey) }]);
      const stored = await client.query("select to_jsonb(k)::text as row from app_public.box_api_keys k where box_id = $1", [box.id]);
      expect(stored.rows[0].row).not.toContain(box.apiKey.slice(12));
      expect(await auditActions(client, owner.organizationId)).toEqual(expect.arrayContaining(["box.created", "box_key.created"]));
    });
  });

  test("creating a box beyond organization_limits.max_boxes fails with a clear error", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      await setMaxBoxes(client, owner, 2);
      await createBox(client, owner);
      await createBox(client, owner);
      const error = await asUser(client, owner, (asOwner) =>
        expectError(asOwner, "select app_public.create_box($1, 'one too many')", [owner.organizationId]),
      );
      expect(error.code).toBe("BXLIM");
      expect(error.message).toMatch(/at most 2 box\(es\) \(organization_limits\.max_boxes\)/);
    });
  });

  test("viewers and outsiders cannot create boxes; names are unique in an organization", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const viewer = await createUser(client);
      const outsider = await createUser(client);
      await setMaxBoxes(client, owner, 5);
      await client.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'viewer')", [
        owner.organizationId,
        viewer.id,
      ]);
      for (const user of [viewer, outsider]) {
        const error = await asUser(client, user, (asUserClient) =>
          expectError(asUserClient, "select app_public.create_box($1, 'intruder')", [owner.organizationId]),
        );
        expect(error.code).toBe("42501");
      }
      await createBox(client, owner, "same");
      const duplicate = await asUser(client, owner, (asOwner) =>
        expectError(asOwner, "select app_public.create_box($1, 'same')", [owner.organizationId]),
      );
      expect(duplicate.code).toBe("23505");
    });
  });

  test("members rename boxes; only admins and owners delete them", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const member = await createUser(client);
      await client.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'member')", [
        owner.organizationId,
        member.id,
      ]);
      const box = await createBox(client, owner, "old-name");
      await asUser(client, member, async (asMember) => {
        expect((await asMember.query("update app_public.boxes set name = 'new-name' where id = $1", [box.id])).rowCount).toBe(1);
        expect((await asMember.query("delete from app_public.boxes where id = $1", [box.id])).rowCount).toBe(0);
        expect((await expectError(asMember, "update app_public.boxes set hardware_id = 'x' where id = $1", [box.id])).code).toBe("42501");
      });
      await asUser(client, owner, async (asOwner) => {
        expect((await asOwner.query("delete from app_public.boxes where id = $1", [box.id])).rowCount).toBe(1);
      });
      expect(await auditActions(client, owner.organizationId)).toEqual(expect.arrayContaining(["box.updated", "box.deleted"]));
    });
  });
});

describe("box keys", () => {
  test("a wrong, revoked or expired key is refused; a good one is accepted and numbers the connection", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      expect(await authenticate(client, "box_" + "x".repeat(43), "hw-1")).toMatchObject({ outcome: "unauthorized", box_id: null });
      const first = await authenticate(client, box.apiKey, "hw-1");
      const second = await authenticate(client, box.apiKey, "hw-1");
      expect(first).toMatchObject({ outcome: "ok", box_id: box.id, key_id: box.keyId });
      expect(BigInt(second.connection_seq ?? 0)).toBeGreaterThan(BigInt(first.connection_seq ?? 0));

      await client.query("update app_public.box_api_keys set expires_at = now() - interval '1 second' where id = $1", [box.keyId]);
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("unauthorized");
      await client.query("update app_public.box_api_keys set expires_at = null where id = $1", [box.keyId]);
      await asUser(client, owner, (asOwner) => asOwner.query("select app_public.revoke_box_key($1)", [box.keyId]));
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("unauthorized");
      expect(await auditActions(client, owner.organizationId)).toContain("box_key.revoked");
    });
  });

  test("rotation issues a new key and keeps the old one valid for the grace period only", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      const rotated = await asUser(client, owner, async (asOwner) => {
        const { rows } = await asOwner.query<{ key_id: string; api_key: string }>(
          "select key_id, api_key from app_public.rotate_box_key($1)",
          [box.keyId],
        );
        return rows[0] as { key_id: string; api_key: string };
      });
      expect(rotated.api_key).not.toBe(box.apiKey);
      const { rows } = await client.query(
        "select extract(epoch from expires_at - now())::int as grace_seconds, replaced_by from app_public.box_api_keys where id = $1",
        [box.keyId],
      );
      expect(rows[0]).toEqual({ grace_seconds: 24 * 3600, replaced_by: rotated.key_id });
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("ok");
      expect((await authenticate(client, rotated.api_key, "hw-1")).outcome).toBe("ok");

      // Past the grace period, only the new key opens the box.
      await client.query("update app_public.box_api_keys set expires_at = now() - interval '1 second' where id = $1", [box.keyId]);
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("unauthorized");
      expect((await authenticate(client, rotated.api_key, "hw-1")).outcome).toBe("ok");
      const again = await asUser(client, owner, (asOwner) => expectError(asOwner, "select app_public.rotate_box_key($1)", [box.keyId]));
      expect(again.code).toBe("KYDED");
      expect(await auditActions(client, owner.organizationId)).toEqual(expect.arrayContaining(["box_key.rotated"]));
    });
  });

  test("a custom grace period, and a rotation with none", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      await asUser(client, owner, (asOwner) => asOwner.query("select app_public.rotate_box_key($1, 0)", [box.keyId]));
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("unauthorized");
    });
  });

  test("another organization can neither rotate, revoke nor add keys, nor read them", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const outsider = await createUser(client);
      const box = await createBox(client, owner);
      await asUser(client, outsider, async (asOutsider) => {
        expect((await expectError(asOutsider, "select app_public.rotate_box_key($1)", [box.keyId])).code).toBe("NTFND");
        expect((await expectError(asOutsider, "select app_public.revoke_box_key($1)", [box.keyId])).code).toBe("NTFND");
        expect((await expectError(asOutsider, "select app_public.create_box_key($1, 'mine')", [box.id])).code).toBe("NTFND");
        expect((await asOutsider.query("select * from app_public.box_api_keys where box_id = $1", [box.id])).rowCount).toBe(0);
        expect((await expectError(asOutsider, "select * from app_private.box_api_key_secrets")).code).toBe("42501");
        expect(
          (await expectError(asOutsider, "select * from app_private.bridge_authenticate($1, 'hw', null)", [sha256(box.apiKey)])).code,
        ).toBe("42501");
      });
      expect((await authenticate(client, box.apiKey, "hw-1")).outcome).toBe("ok");
    });
  });

  test("the hardware id is bound on first connect; another is refused later, and two boxes cannot share one", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      await setMaxBoxes(client, owner, 5);
      const box = await createBox(client, owner);
      const other = await createBox(client, owner);
      expect((await authenticate(client, box.apiKey, "machine-a")).outcome).toBe("ok");
      const bound = await client.query("select hardware_id from app_public.boxes where id = $1", [box.id]);
      expect(bound.rows[0].hardware_id).toBe("machine-a");
      expect((await authenticate(client, box.apiKey, "machine-b")).outcome).toBe("hardware_id_mismatch");
      expect((await authenticate(client, box.apiKey, "machine-a")).outcome).toBe("ok");
      expect((await authenticate(client, other.apiKey, "machine-a")).outcome).toBe("hardware_id_in_use");
      const actions = await auditActions(client, owner.organizationId);
      expect(actions).toEqual(expect.arrayContaining(["box.hardware_bound", "box.hardware_mismatch"]));
      const actor = await client.query(
        "select actor_type, actor_id from app_public.audit_log where action = 'box.hardware_bound' and organization_id = $1",
        [owner.organizationId],
      );
      expect(actor.rows[0]).toEqual({ actor_type: "box", actor_id: box.id });
    });
  });
});
