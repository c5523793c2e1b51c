/**
 * Changing a password: the current one is needed, the last 5 are refused,
 * and the other sessions end.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";

async function changePassword(client: Client, user: TestUser, from: string, to: string) {
  return asUser(client, user, () => client.query("select app_public.change_password($1, $2)", [from, to]));
}

async function refusal(client: Client, user: TestUser, from: string, to: string) {
  return asUser(client, user, () => expectError(client, "select app_public.change_password($1, $2)", [from, to]));
}

describe("changePassword", () => {
  test("needs the current password, and a valid new one", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      expect(await refusal(client, user, "not my password", "a brand new password")).toMatchObject({
        code: "CREDS",
        message: "the current password is wrong",
      });
      expect(await refusal(client, user, user.password, "short")).toMatchObject({ code: "WEAKP" });
      const anonymous = await asUser(client, null, () =>
        expectError(client, "select app_public.change_password($1, 'a brand new password')", [user.password]),
      );
      expect(anonymous).toMatchObject({ code: "LOGIN" });
    });
  });

  test("refuses the last 5 passwords (the current one included) and accepts an older one", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client, { password: "password number 1" });
      let current = "password number 1";
      for (const next of [2, 3, 4, 5].map((n) => `password number ${n}`)) {
        await changePassword(client, user, current, next);
        current = next;
      }
      for (const reused of [1, 2, 5].map((n) => `password number ${n}`)) {
        expect(await refusal(client, user, current, reused)).toMatchObject({
          code: "WEAKP",
          message: "choose a password you have not used recently (the last 5 are refused)",
        });
      }
      await changePassword(client, user, current, "password number 6");
      await changePassword(client, user, "password number 6", "password number 1");
      const history = await client.query("select count(*)::int as count from app_private.password_history where user_id = $1", [user.id]);
      expect(history.rows[0]?.count).toBe(5);
    });
  }, 20_000);

  test("ends the user's other sessions and keeps this one", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const other = (await client.query("select token from app_private.create_session($1)", [user.id])).rows[0]?.token as string;
      await changePassword(client, user, user.password, "a brand new password");
      const who = (token: string) =>
        asUser(client, { token }, async () => (await client.query("select app_public.current_user_id() as id")).rows[0]?.id);
      expect(await who(user.token)).toBe(user.id);
      expect(await who(other)).toBeNull();
      const login = await asUser(client, null, async () =>
        (await client.query("select token from app_public.login($1, 'a brand new password')", [user.email])).rows[0]?.token,
      );
      expect(login).toMatch(/^ses_/);
    });
  });
});
