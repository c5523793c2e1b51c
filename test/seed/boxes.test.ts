/**
 * The development box of `npm run db:seed`: created once, a fresh working key
 * on every run, the previous one revoked.
 */
import { expect, test } from "@jest/globals";
import { DEVELOPMENT_BOX, seedBoxes } from "../../src/seed/boxes.ts";
import { authenticate } from "../helpers/boxes.ts";
import { asRoot } from "../helpers/db.ts";
import { createUser } from "../helpers/identity.ts";

test("the seed makes one development box and prints a key that opens it, new on every run", async () => {
  await asRoot(async (client) => {
    const admin = await createUser(client);
    const context = { client, adminUserId: admin.id, organizationId: admin.organizationId } as Parameters<typeof seedBoxes>[0];
    const first = Object.fromEntries(await seedBoxes(context));
    const second = Object.fromEntries(await seedBoxes(context));
    expect(first.box).toBe(second.box);
    expect(first.box).toContain(DEVELOPMENT_BOX);
    expect(second["run the box"]).toBe(`npm run box -- --url ws://127.0.0.1:3000/bridge --key ${second["box key"]}`);
    expect((await authenticate(client, second["box key"] ?? "", "dev-hw")).outcome).toBe("ok");
    expect((await authenticate(client, first["box key"] ?? "", "dev-hw")).outcome).toBe("unauthorized");
  });
});
