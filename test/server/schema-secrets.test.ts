/**
 * The GraphQL schema exposes no hash, secret, ciphertext or password, and a
 * token only where one is handed out once (login/register, invitations) or
 * handed in (acceptInvitation). Checked on every name in the SDL: types,
 * fields, arguments, input fields, enum values (orderBy, groupBy, aggregates).
 */
import { readFile } from "node:fs/promises";
import { describe, expect, test } from "@jest/globals";
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  type GraphQLNamedType,
} from "postgraphile/graphql";
import { SCHEMA_FILE } from "../../src/server/schema-sdl.ts";

const NEVER = /hash|secret|cipher|encrypted|salt|password/i;
const TOKEN = /token/i;

/** Where credentials may legitimately appear: shown once, or given by the client. */
const ALLOWED = new Set([
  "SessionToken.token",
  "IssuedInvitation.token",
  "AcceptInvitationInput.token",
  "LoginInput.password",
  "RegisterInput.password",
  "ChangePasswordInput.oldPassword",
  "ChangePasswordInput.newPassword",
  "Mutation.changePassword",
]);

interface Member {
  /** e.g. `Query.user(rowId)` */
  path: string;
  /** The name a client reads or writes: a field, an argument, an input field, an enum value. */
  name: string;
}

function membersOf(type: GraphQLNamedType): Member[] {
  const members: Member[] = [];
  if (isObjectType(type) || isInterfaceType(type)) {
    for (const field of Object.values(type.getFields())) {
      members.push({ path: `${type.name}.${field.name}`, name: field.name });
      for (const arg of field.args) members.push({ path: `${type.name}.${field.name}(${arg.name})`, name: arg.name });
    }
  } else if (isInputObjectType(type)) {
    for (const field of Object.values(type.getFields())) members.push({ path: `${type.name}.${field.name}`, name: field.name });
  } else if (isEnumType(type)) {
    for (const value of type.getValues()) members.push({ path: `${type.name}.${value.name}`, name: value.name });
  }
  return members;
}

describe("the GraphQL schema", () => {
  test("exposes no hash, secret or password, and tokens only where they are handed out or in", async () => {
    const schema = buildSchema(await readFile(SCHEMA_FILE, "utf8"));
    const members = Object.values(schema.getTypeMap())
      .filter((type) => !type.name.startsWith("__"))
      .flatMap(membersOf);
    expect(members.length).toBeGreaterThan(500);
    const leaks = members
      .filter(({ path, name }) => (NEVER.test(name) || TOKEN.test(name)) && !ALLOWED.has(path))
      .map(({ path }) => path);
    expect(leaks).toEqual([]);
    // The allowed ones exist, so this test notices if they are renamed.
    const paths = members.map(({ path }) => path);
    for (const path of ALLOWED) expect(paths).toContain(path);
  });
});
