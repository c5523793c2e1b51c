--! Previous: -
--! Hash: sha1:f97a30109daf741d6932634217a920b7b1a683da
--! Message: foundation

--
-- Foundation: schemas, extensions, locked-down privileges and the shared
-- updated_at trigger. Everything later builds on this.
--
--   app_public   exposed through GraphQL (PostGraphile introspects it)
--   app_hidden   callable by the visitor, not exposed
--   app_private  credentials, hashes, ciphertext: never visible to the visitor
--

drop schema if exists app_public cascade;
drop schema if exists app_hidden cascade;
drop schema if exists app_private cascade;

-- Nothing the owner creates is usable by anybody else unless granted.
alter default privileges revoke all on sequences from public;
alter default privileges revoke all on functions from public;

-- The public schema only holds extensions; nobody else may create in it.
revoke all on schema public from public;
grant usage on schema public to :DATABASE_VISITOR;

create extension if not exists pgcrypto with schema public;
create extension if not exists citext with schema public;

create schema app_public;
create schema app_hidden;
create schema app_private;

comment on schema app_public is 'The agentplane API: every table and function here is exposed through GraphQL.';

grant usage on schema app_public, app_hidden to :DATABASE_VISITOR;

alter default privileges in schema app_public, app_hidden
  grant usage, select on sequences to :DATABASE_VISITOR;
alter default privileges in schema app_public, app_hidden
  grant execute on functions to :DATABASE_VISITOR;

/*
 * Shared trigger: keeps created_at immutable and stamps updated_at.
 * Use as: before insert or update ... execute procedure app_private.tg__timestamps()
 */
create function app_private.tg__timestamps() returns trigger as $$
begin
  new.created_at = (case when tg_op = 'INSERT' then now() else old.created_at end);
  new.updated_at = (case when tg_op = 'UPDATE' and old.updated_at >= now() then old.updated_at + interval '1 millisecond' else now() end);
  return new;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg__timestamps() is
  E'Trigger: sets created_at on insert (and keeps it on update) and updated_at on every write.';
