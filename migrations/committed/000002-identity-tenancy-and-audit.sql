--! Previous: sha1:f97a30109daf741d6932634217a920b7b1a683da
--! Hash: sha1:59a8e07c94c57317c4ffd4cfc08c3d41b2b349ff
--! Message: identity, tenancy and audit

--
-- Identity: users, organizations and their members, invitations, limits and
-- subscriptions, sessions, login attempts, password history and the audit log;
-- the helpers every row-level security policy uses; the identity API
-- (register, login, logout, organizations, invitations) as SQL functions.
--

--------------------------------------------------------------------------------
-- Request settings, set by the server for every GraphQL request
-- (src/server/request-settings.ts): agentplane.token_hash, agentplane.request_id,
-- agentplane.ip, agentplane.user_agent, agentplane.session_lifetime.
--------------------------------------------------------------------------------

create function app_private.request_ip() returns inet as $$
begin
  return nullif(current_setting('agentplane.ip', true), '')::inet;
exception when invalid_text_representation then
  return null;
end;
$$ language plpgsql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.request_ip() is
  E'The client''s IP address (agentplane.ip), or null when unknown or malformed.';

create function app_private.request_user_agent() returns text as $$
  select left(nullif(current_setting('agentplane.user_agent', true), ''), 512);
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.request_user_agent() is
  E'The client''s User-Agent (agentplane.user_agent), at most 512 characters.';

create function app_private.request_id() returns text as $$
  select nullif(current_setting('agentplane.request_id', true), '');
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.request_id() is
  E'The id of the HTTP request or WebSocket operation (agentplane.request_id), unique per request.';

create function app_private.session_lifetime() returns interval as $$
  select coalesce(nullif(current_setting('agentplane.session_lifetime', true), '')::interval, interval '7 days');
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.session_lifetime() is
  E'How long a new session lasts: agentplane.session_lifetime (SESSION_LIFETIME_HOURS), 7 days by default.';

create function app_private.sha256_hex(value text) returns text as $$
  select encode(digest(value, 'sha256'), 'hex');
$$ language sql immutable strict set search_path to pg_catalog, public, pg_temp;
comment on function app_private.sha256_hex(text) is
  E'Hex SHA-256 of a token, as tokens are stored (and as the server sends agentplane.token_hash).';

create function app_private.organization_role_rank(role text) returns int as $$
  select case role when 'owner' then 4 when 'admin' then 3 when 'member' then 2 when 'viewer' then 1 end;
$$ language sql immutable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.organization_role_rank(text) is
  E'owner > admin > member > viewer, as 4 > 3 > 2 > 1; null for anything else.';

--------------------------------------------------------------------------------
-- Users
--------------------------------------------------------------------------------

create table app_public.users (
  id uuid primary key default gen_random_uuid(),
  email citext not null unique check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and length(email) <= 320),
  username citext unique check (username ~ '^[a-zA-Z][a-zA-Z0-9_.-]{1,38}$'),
  name text check (length(name) between 1 and 200),
  avatar_url text check (avatar_url ~ '^https?://' and length(avatar_url) <= 2000),
  preferences jsonb not null default '{}' check (jsonb_typeof(preferences) = 'object'),
  is_admin boolean not null default false,
  is_active boolean not null default true,
  external_id text unique check (length(external_id) between 1 and 200),
  last_login_at timestamptz,
  last_active_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_public.users
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.users is
  E'@behavior -insert -delete\nA person who signs in. You see yourself and the members of your organizations. Accounts are created by `register`.';
comment on column app_public.users.id is E'The user''s id.';
comment on column app_public.users.email is E'Email address, unique (case-insensitive); used to sign in.';
comment on column app_public.users.username is E'Optional unique handle (letters, digits, `_.-`); can also be used to sign in.';
comment on column app_public.users.name is E'Display name.';
comment on column app_public.users.avatar_url is E'Picture URL (http or https).';
comment on column app_public.users.preferences is E'Free-form user preferences (a JSON object).';
comment on column app_public.users.is_admin is E'A platform administrator (set by the system; grants nothing through the API yet).';
comment on column app_public.users.is_active is E'False for a disabled account: it cannot sign in and its sessions stop working.';
comment on column app_public.users.external_id is E'Id in an external identity provider (e.g. a Clerk user id), set by the system.';
comment on column app_public.users.last_login_at is E'When the user last signed in.';
comment on column app_public.users.last_active_at is E'When the user last made a request (updated at most once a minute).';
comment on column app_public.users.created_at is E'When the account was created.';
comment on column app_public.users.updated_at is E'When the account was last changed.';

-- Credentials and lockout state, one row per user (created by a trigger).
create table app_private.user_secrets (
  user_id uuid primary key references app_public.users on delete cascade,
  password_hash text,
  failed_attempts int not null default 0 check (failed_attempts >= 0),
  locked_until timestamptz,
  password_changed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_private.user_secrets
  for each row execute procedure app_private.tg__timestamps();
comment on table app_private.user_secrets is
  E'Password hash (bcrypt, null for accounts without a password) and sign-in lockout state.';

create function app_private.tg_users__create_secrets() returns trigger as $$
begin
  insert into app_private.user_secrets (user_id) values (new.id);
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_users__create_secrets() is E'Trigger: gives every new user a user_secrets row.';
create trigger _500_create_secrets after insert on app_public.users
  for each row execute procedure app_private.tg_users__create_secrets();

create table app_private.password_history (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references app_public.users on delete cascade,
  password_hash text not null,
  changed_at timestamptz not null default now(),
  changed_by uuid references app_public.users on delete set null,
  ip inet
);
create index on app_private.password_history (user_id, changed_at desc);
create index on app_private.password_history (changed_by);
comment on table app_private.password_history is
  E'The latest password hashes of each user (5 are kept), so that a change cannot reuse them.';

create table app_private.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references app_public.users on delete cascade,
  token_hash text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
  ip inet,
  user_agent text,
  created_at timestamptz not null default now(),
  last_used_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz
);
create index on app_private.sessions (user_id);
create index on app_private.sessions (expires_at);
create index on app_private.sessions (revoked_at) where revoked_at is not null;
comment on table app_private.sessions is
  E'Sign-in sessions. The bearer token (`ses_...`) is shown once by login/register and stored only as its SHA-256.';

create table app_private.login_attempts (
  id uuid primary key default gen_random_uuid(),
  identifier citext not null,
  user_id uuid references app_public.users on delete cascade,
  ip inet,
  user_agent text,
  success boolean not null default false,
  request_id text,
  attempted_at timestamptz not null default now()
);
create index on app_private.login_attempts (identifier, attempted_at desc);
create index on app_private.login_attempts (user_id);
create index on app_private.login_attempts (attempted_at);
-- One attempt per request, whatever aliases or batching it uses.
create unique index login_attempts_request_id_key on app_private.login_attempts (request_id) where request_id is not null;
comment on table app_private.login_attempts is
  E'Every sign-in attempt, successful or not (kept 7 days).';

--------------------------------------------------------------------------------
-- Organizations, memberships, invitations, limits, subscriptions
--------------------------------------------------------------------------------

create table app_public.organizations (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  name text not null check (length(name) between 1 and 200),
  company text check (length(company) <= 200),
  external_id text unique check (length(external_id) between 1 and 200),
  plan text not null default 'starter' check (plan in ('starter', 'professional', 'enterprise')),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_public.organizations
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.organizations is
  E'@behavior -insert\nA tenant: it owns boxes, agents, schedules and everything else. Members see it; owners rename or delete it. Create one with `createOrganization`.';
comment on column app_public.organizations.id is E'The organization''s id.';
comment on column app_public.organizations.slug is E'Unique short name for URLs: lower-case letters, digits and dashes.';
comment on column app_public.organizations.name is E'Display name.';
comment on column app_public.organizations.company is E'Company name, for billing.';
comment on column app_public.organizations.external_id is E'Id in an external identity provider (e.g. a Clerk organization id), set by the system.';
comment on column app_public.organizations.plan is E'`starter`, `professional` or `enterprise`; set by the system (billing). The limits follow it.';
comment on column app_public.organizations.metadata is E'Free-form data (a JSON object).';
comment on column app_public.organizations.created_at is E'When the organization was created.';
comment on column app_public.organizations.updated_at is E'When the organization was last changed.';

create table app_public.organization_memberships (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  user_id uuid not null references app_public.users on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, user_id)
);
create index on app_public.organization_memberships (user_id);
create trigger _100_timestamps before insert or update on app_public.organization_memberships
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.organization_memberships is
  E'@behavior -insert -update -delete\nWho belongs to an organization, with which role: `owner` > `admin` > `member` > `viewer`. Viewers read, members write the organization''s resources, admins manage members, owners manage the organization and billing. Changed through `acceptInvitation`, `changeOrganizationMemberRole`, `removeOrganizationMember` and `leaveOrganization`.';
comment on column app_public.organization_memberships.id is E'The membership''s id.';
comment on column app_public.organization_memberships.organization_id is E'The organization.';
comment on column app_public.organization_memberships.user_id is E'The member.';
comment on column app_public.organization_memberships.role is E'`owner`, `admin`, `member` or `viewer`.';
comment on column app_public.organization_memberships.created_at is E'When the user joined.';
comment on column app_public.organization_memberships.updated_at is E'When the role last changed.';

create table app_public.organization_invitations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  email citext not null check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and length(email) <= 320),
  role text not null default 'member' check (role in ('owner', 'admin', 'member', 'viewer')),
  token_hash text not null check (token_hash ~ '^[0-9a-f]{64}$'),
  invited_by uuid references app_public.users on delete set null,
  expires_at timestamptz not null default now() + interval '7 days',
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, email)
);
-- An index, not a constraint: PostGraphile would offer a lookup by the hash.
create unique index organization_invitations_token_hash_key on app_public.organization_invitations (token_hash);
create index on app_public.organization_invitations (invited_by);
create index on app_public.organization_invitations (expires_at);
create trigger _100_timestamps before insert or update on app_public.organization_invitations
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.organization_invitations is
  E'@behavior -insert -update\nAn invitation to join an organization, sent to an email address; accepted once, by that address, before it expires. Admins see and revoke (delete) them; `inviteToOrganization` creates one.';
comment on column app_public.organization_invitations.id is E'The invitation''s id.';
comment on column app_public.organization_invitations.organization_id is E'The organization to join.';
comment on column app_public.organization_invitations.email is E'Only the user with this email address can accept.';
comment on column app_public.organization_invitations.role is E'The role the invitee gets.';
comment on column app_public.organization_invitations.token_hash is E'@behavior -*\nSHA-256 of the invitation token (never exposed).';
comment on column app_public.organization_invitations.invited_by is E'Who sent it.';
comment on column app_public.organization_invitations.expires_at is E'After this it can no longer be accepted (and is deleted).';
comment on column app_public.organization_invitations.accepted_at is E'When it was accepted; an accepted invitation cannot be used again.';
comment on column app_public.organization_invitations.created_at is E'When it was sent.';
comment on column app_public.organization_invitations.updated_at is E'When it last changed.';

create table app_public.organization_limits (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  max_boxes int not null default 1 check (max_boxes >= 0),
  max_agents_per_box int not null default 5 check (max_agents_per_box >= 0),
  max_storage_gb int not null default 10 check (max_storage_gb >= 0),
  max_egress_gb int not null default 10 check (max_egress_gb >= 0),
  max_concurrent_sandboxes int not null default 1 check (max_concurrent_sandboxes >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_public.organization_limits
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.organization_limits is
  E'@behavior -insert -update -delete\nWhat an organization may use. Set from its plan when the plan is set, and otherwise only by the system; members read them.';
comment on column app_public.organization_limits.organization_id is E'The organization.';
comment on column app_public.organization_limits.max_boxes is E'Most boxes it can register.';
comment on column app_public.organization_limits.max_agents_per_box is E'Most agents on one box.';
comment on column app_public.organization_limits.max_storage_gb is E'Storage quota, in GB.';
comment on column app_public.organization_limits.max_egress_gb is E'Monthly egress quota, in GB.';
comment on column app_public.organization_limits.max_concurrent_sandboxes is E'Most sandboxes running at once.';
comment on column app_public.organization_limits.created_at is E'When the limits were first set.';
comment on column app_public.organization_limits.updated_at is E'When the limits last changed.';

create function app_private.plan_default_limits(plan text)
returns table (max_boxes int, max_agents_per_box int, max_storage_gb int, max_egress_gb int, max_concurrent_sandboxes int) as $$
  select d.max_boxes, d.max_agents_per_box, d.max_storage_gb, d.max_egress_gb, d.max_concurrent_sandboxes
  from (values
    ('starter', 1, 5, 10, 10, 1),
    ('professional', 10, 20, 100, 100, 5),
    ('enterprise', 100, 50, 1000, 1000, 25)
  ) as d (plan, max_boxes, max_agents_per_box, max_storage_gb, max_egress_gb, max_concurrent_sandboxes)
  where d.plan = plan_default_limits.plan;
$$ language sql immutable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.plan_default_limits(text) is E'The limits each plan comes with.';

create function app_private.tg_organizations__plan_limits() returns trigger as $$
begin
  if tg_op = 'UPDATE' and old.plan = new.plan then
    return null;
  end if;
  insert into app_public.organization_limits as l
    (organization_id, max_boxes, max_agents_per_box, max_storage_gb, max_egress_gb, max_concurrent_sandboxes)
  select new.id, d.max_boxes, d.max_agents_per_box, d.max_storage_gb, d.max_egress_gb, d.max_concurrent_sandboxes
  from app_private.plan_default_limits(new.plan) d
  on conflict (organization_id) do update set
    max_boxes = excluded.max_boxes,
    max_agents_per_box = excluded.max_agents_per_box,
    max_storage_gb = excluded.max_storage_gb,
    max_egress_gb = excluded.max_egress_gb,
    max_concurrent_sandboxes = excluded.max_concurrent_sandboxes;
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_organizations__plan_limits() is
  E'Trigger: a new organization, or a new plan, gets the plan''s default limits.';
create trigger _200_plan_limits after insert or update of plan on app_public.organizations
  for each row execute procedure app_private.tg_organizations__plan_limits();

create table app_public.subscriptions (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  stripe_customer_id text unique,
  stripe_subscription_id text unique,
  status text not null default 'active' check (status in ('active', 'trialing', 'past_due', 'canceled')),
  current_period_end timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_public.subscriptions
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.subscriptions is
  E'@name billing_subscriptions\n@behavior -insert -update -delete\nAn organization''s paid subscription, written only by the system (billing); owners read it.';
comment on column app_public.subscriptions.organization_id is E'The organization.';
comment on column app_public.subscriptions.stripe_customer_id is E'Stripe customer id.';
comment on column app_public.subscriptions.stripe_subscription_id is E'Stripe subscription id.';
comment on column app_public.subscriptions.status is E'`active`, `trialing`, `past_due` or `canceled`.';
comment on column app_public.subscriptions.current_period_end is E'When the current billing period ends.';
comment on column app_public.subscriptions.created_at is E'When the subscription started.';
comment on column app_public.subscriptions.updated_at is E'When it last changed.';

--------------------------------------------------------------------------------
-- Who is asking: the helpers every policy uses
--------------------------------------------------------------------------------

create function app_public.current_session_id() returns uuid as $$
  select s.id
  from app_private.sessions s
  join app_public.users u on u.id = s.user_id
  where s.token_hash = nullif(current_setting('agentplane.token_hash', true), '')
    and s.revoked_at is null
    and s.expires_at > now()
    and u.is_active;
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.current_session_id() is
  E'@behavior -queryField\nThe session of this request''s bearer token (agentplane.token_hash), or null: unknown, expired and revoked tokens, and disabled users, are anonymous.';

create function app_public.current_user_id() returns uuid as $$
  select s.user_id from app_private.sessions s where s.id = app_public.current_session_id();
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.current_user_id() is
  E'@behavior -queryField\nThe signed-in user''s id, or null.';

create function app_public.current_user_organization_ids() returns setof uuid as $$
  select m.organization_id
  from app_public.organization_memberships m
  where m.user_id = app_public.current_user_id();
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.current_user_organization_ids() is
  E'@behavior -queryField\nThe organizations the signed-in user belongs to, whatever the role. Use in policies as `organization_id in (select app_public.current_user_organization_ids())`.';

create function app_hidden.current_user_organization_ids(min_role text) returns setof uuid as $$
  select m.organization_id
  from app_public.organization_memberships m
  where m.user_id = app_public.current_user_id()
    and app_private.organization_role_rank(m.role) >= app_private.organization_role_rank(min_role);
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.current_user_organization_ids(text) is
  E'The organizations where the signed-in user''s role is at least min_role (owner > admin > member > viewer); none for an unknown role.';

create function app_hidden.current_user_colleague_ids() returns setof uuid as $$
  select distinct m.user_id
  from app_public.organization_memberships m
  where m.organization_id in (select app_public.current_user_organization_ids());
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.current_user_colleague_ids() is
  E'The users who share an organization with the signed-in user (themselves included).';

--------------------------------------------------------------------------------
-- Audit log
--------------------------------------------------------------------------------

create table app_public.audit_log (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid references app_public.organizations on delete set null,
  actor_type text not null check (actor_type in ('user', 'box', 'agent', 'system')),
  actor_id uuid,
  action text not null check (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  target_type text not null check (target_type ~ '^[a-z][a-z0-9_]*$'),
  target_id text,
  details jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  ip inet,
  user_agent text,
  created_at timestamptz not null default now()
);
create index on app_public.audit_log (organization_id, created_at desc);
create index on app_public.audit_log (actor_id);
create index on app_public.audit_log (created_at);

comment on table app_public.audit_log is
  E'@behavior -insert -update -delete\nWhat happened in an organization, who did it, from where: written by triggers, readable by the organization''s owners and admins, never changed through the API. Entries outlive a deleted organization (with no organization).';
comment on column app_public.audit_log.id is E'The entry''s id.';
comment on column app_public.audit_log.organization_id is E'The organization it happened in (null once the organization is deleted).';
comment on column app_public.audit_log.actor_type is E'`user`, `box`, `agent` or `system`.';
comment on column app_public.audit_log.actor_id is E'The user, box or agent; null for the system.';
comment on column app_public.audit_log.action is E'What happened, `<target type>.<verb>`, e.g. `membership.updated`.';
comment on column app_public.audit_log.target_type is E'The kind of thing it happened to, e.g. `membership`.';
comment on column app_public.audit_log.target_id is E'The id of that thing.';
comment on column app_public.audit_log.details is E'What changed: the row for `created`/`deleted`, `{"changes": {column: {"from", "to"}}}` for `updated` (never secrets).';
comment on column app_public.audit_log.ip is E'The client''s IP address, when it came from a request.';
comment on column app_public.audit_log.user_agent is E'The client''s User-Agent, when it came from a request.';
comment on column app_public.audit_log.created_at is E'When it happened.';

create function app_private.write_audit_log(
  organization_id uuid,
  action text,
  target_type text,
  target_id text,
  details jsonb default '{}'
) returns uuid as $$
declare
  v_organization_id uuid := write_audit_log.organization_id;
  v_actor_type text := 'system';
  v_actor_id uuid := app_public.current_user_id();
  v_entry_id uuid;
begin
  if v_organization_id is not null
     and not exists (select 1 from app_public.organizations o where o.id = v_organization_id) then
    -- The organization is being deleted: only its own deletion is recorded (with no organization).
    if write_audit_log.target_type <> 'organization' then
      return null;
    end if;
    v_organization_id := null;
  end if;
  if v_actor_id is not null then
    v_actor_type := 'user';
  else
    -- An agent's API key (the schedules module defines current_agent_id()).
    if to_regprocedure('app_public.current_agent_id()') is not null then
      execute 'select app_public.current_agent_id()' into v_actor_id;
    end if;
    if v_actor_id is not null then
      v_actor_type := 'agent';
    elsif current_setting('agentplane.actor_type', true) in ('box', 'agent', 'system') then
      -- A trusted service (the bridge, the worker) names the actor with set_config(..., true).
      v_actor_type := current_setting('agentplane.actor_type', true);
      v_actor_id := nullif(current_setting('agentplane.actor_id', true), '')::uuid;
    end if;
  end if;
  insert into app_public.audit_log
    (organization_id, actor_type, actor_id, action, target_type, target_id, details, ip, user_agent)
  values
    (v_organization_id, v_actor_type, v_actor_id, write_audit_log.action, write_audit_log.target_type,
     write_audit_log.target_id, coalesce(write_audit_log.details, '{}'), app_private.request_ip(),
     app_private.request_user_agent())
  returning id into v_entry_id;
  return v_entry_id;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.write_audit_log(uuid, text, text, text, jsonb) is
  E'Records an event in the audit log and returns its id. The actor comes from the request: the signed-in user, else an agent key, else agentplane.actor_type/actor_id set by a trusted service, else `system`. Events of an organization being deleted are skipped, except its own deletion.';

/*
 * Generic audit trigger: `after insert or update or delete ... for each row
 * execute procedure app_private.tg__audit('<target type>' [, 'hidden column', ...])`.
 * Records `<target type>.created|updated|deleted` with the row (or the changed
 * columns), leaving out timestamps, the listed columns and anything that looks
 * like a credential (hash, secret, token, password, cipher, encrypted).
 */
create function app_private.tg__audit() returns trigger as $$
declare
  v_target_type text := tg_argv[0];
  v_hidden text[] := array['created_at', 'updated_at'] || coalesce(tg_argv[1:tg_nargs - 1], '{}');
  v_row jsonb := to_jsonb(case when tg_op = 'DELETE' then old else new end);
  v_details jsonb;
begin
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, jsonb_build_object('from', o.value, 'to', n.value))
      into v_details
    from jsonb_each(to_jsonb(new)) n
    join jsonb_each(to_jsonb(old)) o using (key)
    where n.value is distinct from o.value
      and n.key <> all (v_hidden)
      and n.key !~ '(hash|secret|token|password|cipher|encrypted)';
    if v_details is null then
      return null;
    end if;
    v_details := jsonb_build_object('changes', v_details);
  else
    select coalesce(jsonb_object_agg(r.key, r.value), '{}')
      into v_details
    from jsonb_each(v_row) r
    where r.key <> all (v_hidden)
      and r.key !~ '(hash|secret|token|password|cipher|encrypted)';
  end if;
  perform app_private.write_audit_log(
    coalesce(v_row ->> 'organization_id', case when v_target_type = 'organization' then v_row ->> 'id' end)::uuid,
    v_target_type || case tg_op when 'INSERT' then '.created' when 'UPDATE' then '.updated' else '.deleted' end,
    v_target_type,
    coalesce(v_row ->> 'id', v_row ->> 'organization_id'),
    v_details
  );
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg__audit() is
  E'Trigger: records inserts, updates and deletes in the audit log (which columns, and why: see the comment before this function in the identity migration).';

create trigger _900_audit after insert or update or delete on app_public.organizations
  for each row execute procedure app_private.tg__audit('organization');
create trigger _900_audit after insert or update or delete on app_public.organization_memberships
  for each row execute procedure app_private.tg__audit('membership');
create trigger _900_audit after insert or update or delete on app_public.organization_invitations
  for each row execute procedure app_private.tg__audit('invitation');
create trigger _900_audit after update on app_public.organization_limits
  for each row execute procedure app_private.tg__audit('limits');
create trigger _900_audit after insert or update or delete on app_public.subscriptions
  for each row execute procedure app_private.tg__audit('subscription');

--------------------------------------------------------------------------------
-- Memberships: an organization always keeps an owner
--------------------------------------------------------------------------------

create function app_private.tg_organization_memberships__keep_an_owner() returns trigger as $$
begin
  if old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner') then
    -- Serialise membership changes of this organization; nothing to keep when it is being deleted.
    perform 1 from app_public.organizations o where o.id = old.organization_id for update;
    if found and not exists (
      select 1 from app_public.organization_memberships m
      where m.organization_id = old.organization_id and m.role = 'owner' and m.id <> old.id
    ) then
      raise exception 'an organization needs an owner: make another member an owner first, or delete the organization'
        using errcode = 'OWNER';
    end if;
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_organization_memberships__keep_an_owner() is
  E'Trigger: the last owner of an organization can neither leave, be removed nor be demoted.';
create trigger _300_keep_an_owner before update of role or delete on app_public.organization_memberships
  for each row execute procedure app_private.tg_organization_memberships__keep_an_owner();

--------------------------------------------------------------------------------
-- Row-level security and grants
--------------------------------------------------------------------------------

alter table app_public.users enable row level security;
create policy select_self_and_colleagues on app_public.users for select
  using (id = (select app_public.current_user_id()) or id in (select app_hidden.current_user_colleague_ids()));
create policy update_self on app_public.users for update
  using (id = (select app_public.current_user_id()));
grant select on app_public.users to :DATABASE_VISITOR;
grant update (username, name, avatar_url, preferences) on app_public.users to :DATABASE_VISITOR;

alter table app_public.organizations enable row level security;
create policy select_member on app_public.organizations for select
  using (id in (select app_public.current_user_organization_ids()));
create policy update_owner on app_public.organizations for update
  using (id in (select app_hidden.current_user_organization_ids('owner')));
create policy delete_owner on app_public.organizations for delete
  using (id in (select app_hidden.current_user_organization_ids('owner')));
grant select, delete on app_public.organizations to :DATABASE_VISITOR;
grant update (slug, name, company, metadata) on app_public.organizations to :DATABASE_VISITOR;

alter table app_public.organization_memberships enable row level security;
create policy select_member on app_public.organization_memberships for select
  using (organization_id in (select app_public.current_user_organization_ids()));
-- Admins manage members; only owners touch owners or make new ones.
create policy update_admin on app_public.organization_memberships for update
  using (organization_id in (select app_hidden.current_user_organization_ids('admin'))
         and (role <> 'owner' or organization_id in (select app_hidden.current_user_organization_ids('owner'))))
  with check (organization_id in (select app_hidden.current_user_organization_ids('admin'))
         and (role <> 'owner' or organization_id in (select app_hidden.current_user_organization_ids('owner'))));
-- Anybody may leave; admins remove members; only owners remove owners.
create policy delete_self_or_admin on app_public.organization_memberships for delete
  using (user_id = (select app_public.current_user_id())
         or (organization_id in (select app_hidden.current_user_organization_ids('admin'))
             and (role <> 'owner' or organization_id in (select app_hidden.current_user_organization_ids('owner')))));
grant select, delete on app_public.organization_memberships to :DATABASE_VISITOR;
grant update (role) on app_public.organization_memberships to :DATABASE_VISITOR;

alter table app_public.organization_invitations enable row level security;
create policy select_admin on app_public.organization_invitations for select
  using (organization_id in (select app_hidden.current_user_organization_ids('admin')));
create policy delete_admin on app_public.organization_invitations for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('admin')));
grant select (id, organization_id, email, role, invited_by, expires_at, accepted_at, created_at, updated_at)
  on app_public.organization_invitations to :DATABASE_VISITOR;
grant delete on app_public.organization_invitations to :DATABASE_VISITOR;

alter table app_public.organization_limits enable row level security;
create policy select_member on app_public.organization_limits for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.organization_limits to :DATABASE_VISITOR;

alter table app_public.subscriptions enable row level security;
create policy select_owner on app_public.subscriptions for select
  using (organization_id in (select app_hidden.current_user_organization_ids('owner')));
grant select on app_public.subscriptions to :DATABASE_VISITOR;

alter table app_public.audit_log enable row level security;
create policy select_admin on app_public.audit_log for select
  using (organization_id in (select app_hidden.current_user_organization_ids('admin')));
grant select on app_public.audit_log to :DATABASE_VISITOR;

--------------------------------------------------------------------------------
-- Passwords and sessions
--------------------------------------------------------------------------------

create type app_public.session_token as (
  user_id uuid,
  session_id uuid,
  token text,
  expires_at timestamptz
);
comment on type app_public.session_token is
  E'A new session: send `Authorization: Bearer <token>` with every request. The token is shown only this once.';
comment on column app_public.session_token.user_id is E'The signed-in user.';
comment on column app_public.session_token.session_id is E'The new session.';
comment on column app_public.session_token.token is E'The bearer token (`ses_...`); only its SHA-256 is stored.';
comment on column app_public.session_token.expires_at is E'When the session ends, unless you log out first.';

create type app_public.session_info as (
  session_id uuid,
  created_at timestamptz,
  last_used_at timestamptz,
  expires_at timestamptz,
  ip inet,
  user_agent text
);
comment on type app_public.session_info is E'A sign-in session (never its token).';
comment on column app_public.session_info.session_id is E'The session''s id.';
comment on column app_public.session_info.created_at is E'When it was opened (login or register).';
comment on column app_public.session_info.last_used_at is E'When it was last used (updated at most once a minute).';
comment on column app_public.session_info.expires_at is E'When it ends.';
comment on column app_public.session_info.ip is E'The IP address it was opened from.';
comment on column app_public.session_info.user_agent is E'The User-Agent it was opened with.';

create function app_private.assert_valid_password(password text) returns void as $$
begin
  if password is null or length(password) < 8 then
    raise exception 'passwords must be at least 8 characters long' using errcode = 'WEAKP';
  end if;
  if octet_length(password) > 72 then
    raise exception 'passwords must be at most 72 bytes long' using errcode = 'WEAKP';
  end if;
end;
$$ language plpgsql immutable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.assert_valid_password(text) is
  E'Refuses passwords shorter than 8 characters or longer than bcrypt''s 72 bytes.';

create function app_private.set_password(user_id uuid, password text) returns void as $$
declare
  v_hash text;
begin
  perform app_private.assert_valid_password(password);
  v_hash := crypt(password, gen_salt('bf', 10));
  update app_private.user_secrets s
    set password_hash = v_hash, password_changed_at = now(), failed_attempts = 0, locked_until = null
    where s.user_id = set_password.user_id;
  -- clock_timestamp(): several changes in one transaction still have an order.
  insert into app_private.password_history (user_id, password_hash, changed_at, changed_by, ip)
    values (set_password.user_id, v_hash, clock_timestamp(), app_public.current_user_id(), app_private.request_ip());
  -- Keep the 5 latest: the ones a new password may not reuse.
  delete from app_private.password_history h
    where h.user_id = set_password.user_id
      and h.id not in (
        select k.id from app_private.password_history k
        where k.user_id = set_password.user_id
        order by k.changed_at desc, k.id
        limit 5
      );
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.set_password(uuid, text) is
  E'Sets a user''s password (bcrypt, cost 10), unlocks the account and records it in the history.';

create function app_private.create_session(user_id uuid) returns app_public.session_token as $$
declare
  v_token text := 'ses_' || encode(gen_random_bytes(32), 'hex');
  v_session app_private.sessions;
begin
  insert into app_private.sessions (user_id, token_hash, ip, user_agent, expires_at)
    values (create_session.user_id, app_private.sha256_hex(v_token), app_private.request_ip(),
            app_private.request_user_agent(), now() + app_private.session_lifetime())
    returning * into v_session;
  return row(v_session.user_id, v_session.id, v_token, v_session.expires_at)::app_public.session_token;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.create_session(uuid) is
  E'Opens a session for a user and returns its token (the only time it is seen).';

--------------------------------------------------------------------------------
-- Organizations (the helpers register needs)
--------------------------------------------------------------------------------

create function app_private.available_slug(base text) returns text as $$
declare
  v_base text := left(trim(both '-' from lower(regexp_replace(coalesce(base, ''), '[^a-zA-Z0-9]+', '-', 'g'))), 40);
  v_slug text;
begin
  v_base := trim(both '-' from v_base);
  if v_base = '' then
    v_base := 'org';
  end if;
  v_slug := v_base;
  while exists (select 1 from app_public.organizations o where o.slug = v_slug) loop
    v_slug := v_base || '-' || encode(gen_random_bytes(3), 'hex');
  end loop;
  return v_slug;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.available_slug(text) is
  E'A free organization slug made from any text (a random suffix when taken).';

create function app_private.create_organization(slug text, name text, owner_id uuid)
returns app_public.organizations as $$
declare
  v_organization app_public.organizations;
begin
  if slug is null or slug !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' then
    raise exception 'a slug is 1 to 63 lower-case letters, digits and dashes, not starting or ending with a dash'
      using errcode = '22023';
  end if;
  if exists (select 1 from app_public.organizations o where o.slug = create_organization.slug) then
    raise exception 'the slug "%" is taken', slug using errcode = 'NUNIQ';
  end if;
  insert into app_public.organizations (slug, name) values (slug, name) returning * into v_organization;
  insert into app_public.organization_memberships (organization_id, user_id, role)
    values (v_organization.id, owner_id, 'owner');
  return v_organization;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.create_organization(text, text, uuid) is
  E'Creates an organization (with its plan''s limits) owned by owner_id.';

--------------------------------------------------------------------------------
-- The sign-in API
--------------------------------------------------------------------------------

create function app_public.register(email citext, password text, username citext default null, name text default null)
returns app_public.session_token as $$
declare
  v_user app_public.users;
  v_credentials app_public.session_token;
  v_previous_token_hash text := current_setting('agentplane.token_hash', true);
  v_handle text;
begin
  perform app_private.assert_valid_password(password);
  if exists (select 1 from app_public.users u where u.email = register.email) then
    raise exception 'an account with this email address already exists' using errcode = 'NUNIQ';
  end if;
  if register.username is not null and exists (select 1 from app_public.users u where u.username = register.username) then
    raise exception 'this username is taken' using errcode = 'NUNIQ';
  end if;
  insert into app_public.users (email, username, name, last_login_at, last_active_at)
    values (register.email, register.username, register.name, now(), now())
    returning * into v_user;
  perform app_private.set_password(v_user.id, password);
  v_credentials := app_private.create_session(v_user.id);
  -- The rest of this transaction acts as the new user, so the audit log names them.
  perform set_config('agentplane.token_hash', app_private.sha256_hex(v_credentials.token), true);
  v_handle := coalesce(register.username::text, split_part(register.email::text, '@', 1));
  perform app_private.create_organization(app_private.available_slug(v_handle), coalesce(register.name, v_handle), v_user.id);
  perform set_config('agentplane.token_hash', coalesce(v_previous_token_hash, ''), true);
  return v_credentials;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.register(citext, text, citext, text) is
  E'Creates an account and a personal organization it owns, and signs in. Passwords need at least 8 characters.';

create function app_public.login(username_or_email citext, password text) returns app_public.session_token as $$
declare
  -- A bcrypt (cost 10) hash of nothing anybody knows: unknown accounts cost the same time.
  c_dummy_hash constant text := '$2a$10$uilkFjouU5RXc5lSVkvdQeSvZ4Fg5tCIaUSRn/FdP3fHxWli4bgHK';
  v_attempt_id uuid;
  v_user app_public.users;
  v_secrets app_private.user_secrets;
  v_password_ok boolean;
begin
  insert into app_private.login_attempts (identifier, ip, user_agent, request_id)
    values (left(username_or_email, 320), app_private.request_ip(), app_private.request_user_agent(), app_private.request_id())
    on conflict (request_id) where request_id is not null do nothing
    returning id into v_attempt_id;
  if v_attempt_id is null then
    raise exception 'only one sign-in attempt is allowed per request' using errcode = 'LOGIN';
  end if;

  select u.* into v_user from app_public.users u
    where u.email = username_or_email or u.username = username_or_email;
  if v_user.id is null then
    perform crypt(password, c_dummy_hash);
    return null;
  end if;

  update app_private.login_attempts a set user_id = v_user.id where a.id = v_attempt_id;
  select s.* into v_secrets from app_private.user_secrets s where s.user_id = v_user.id for update;
  v_password_ok := coalesce(crypt(password, coalesce(v_secrets.password_hash, c_dummy_hash)) = v_secrets.password_hash, false);

  if v_secrets.locked_until > now() or not v_user.is_active then
    return null;
  end if;
  if not v_password_ok then
    -- 5 failures in a row lock the account for 15 minutes.
    update app_private.user_secrets s set
      failed_attempts = case when s.failed_attempts + 1 >= 5 then 0 else s.failed_attempts + 1 end,
      locked_until = case when s.failed_attempts + 1 >= 5 then now() + interval '15 minutes' end
      where s.user_id = v_user.id;
    return null;
  end if;

  update app_private.user_secrets s set failed_attempts = 0, locked_until = null where s.user_id = v_user.id;
  update app_private.login_attempts a set success = true where a.id = v_attempt_id;
  update app_public.users u set last_login_at = now(), last_active_at = now() where u.id = v_user.id;
  return app_private.create_session(v_user.id);
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.login(citext, text) is
  E'Signs in with an email address or username and returns a bearer token. Every failure gives the same error, whether the account is unknown, the password wrong or the account locked (5 failures in a row lock it for 15 minutes). One attempt per request.';

create function app_public.logout() returns boolean as $$
begin
  update app_private.sessions s set revoked_at = now()
    where s.id = app_public.current_session_id();
  return found;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.logout() is
  E'Ends this request''s session: its token stops working. False when there was none.';

create function app_public.logout_everywhere() returns int as $$
declare
  v_count int;
begin
  update app_private.sessions s set revoked_at = now()
    where s.user_id = app_public.current_user_id() and s.revoked_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.logout_everywhere() is
  E'Ends every session of the signed-in user, this one included; returns how many.';

create function app_public.change_password(old_password text, new_password text) returns boolean as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_hash text;
begin
  if v_user_id is null then
    raise exception 'sign in first' using errcode = 'LOGIN';
  end if;
  select s.password_hash into v_hash from app_private.user_secrets s where s.user_id = v_user_id for update;
  if v_hash is null or crypt(old_password, v_hash) <> v_hash then
    raise exception 'the current password is wrong' using errcode = 'CREDS';
  end if;
  perform app_private.assert_valid_password(new_password);
  if exists (
    select 1 from (
      select h.password_hash from app_private.password_history h
      where h.user_id = v_user_id order by h.changed_at desc, h.id limit 5
    ) recent
    where crypt(new_password, recent.password_hash) = recent.password_hash
  ) then
    raise exception 'choose a password you have not used recently (the last 5 are refused)' using errcode = 'WEAKP';
  end if;
  perform app_private.set_password(v_user_id, new_password);
  -- Other sessions may belong to whoever knew the old password.
  update app_private.sessions s set revoked_at = now()
    where s.user_id = v_user_id and s.revoked_at is null and s.id <> app_public.current_session_id();
  return true;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.change_password(text, text) is
  E'Changes the signed-in user''s password, given the current one; refuses the last 5 passwords, and ends the user''s other sessions.';

create function app_public."current_user"() returns app_public.users as $$
  select u.* from app_public.users u where u.id = app_public.current_user_id();
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_public."current_user"() is E'The signed-in user, or null.';

create function app_public.current_session() returns app_public.session_info as $$
  select s.id, s.created_at, s.last_used_at, s.expires_at, s.ip, s.user_agent
  from app_private.sessions s
  where s.id = app_public.current_session_id();
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.current_session() is E'This request''s session, or null.';

--------------------------------------------------------------------------------
-- The organization API
--------------------------------------------------------------------------------

create function app_public.create_organization(name text, slug text default null) returns app_public.organizations as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    raise exception 'sign in first' using errcode = 'LOGIN';
  end if;
  return app_private.create_organization(coalesce(slug, app_private.available_slug(name)), name, v_user_id);
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.create_organization(text, text) is
  E'Creates an organization owned by the signed-in user (on the starter plan). Without a slug, one is made from the name.';

create function app_public.change_organization_member_role(organization_id uuid, user_id uuid, role text)
returns app_public.organization_memberships as $$
declare
  v_membership app_public.organization_memberships;
begin
  update app_public.organization_memberships m set role = change_organization_member_role.role
    where m.organization_id = change_organization_member_role.organization_id
      and m.user_id = change_organization_member_role.user_id
    returning * into v_membership;
  if v_membership.id is null then
    raise exception 'no such member, or you may not change their role' using errcode = 'DNIED';
  end if;
  return v_membership;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_public.change_organization_member_role(uuid, uuid, text) is
  E'Gives a member another role. Admins manage admins, members and viewers; only owners make or unmake owners; the last owner stays an owner.';

create function app_public.remove_organization_member(organization_id uuid, user_id uuid) returns boolean as $$
begin
  delete from app_public.organization_memberships m
    where m.organization_id = remove_organization_member.organization_id
      and m.user_id = remove_organization_member.user_id;
  if not found then
    raise exception 'no such member, or you may not remove them' using errcode = 'DNIED';
  end if;
  return true;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_public.remove_organization_member(uuid, uuid) is
  E'Removes a member from an organization (admins remove non-owners, owners anyone but the last owner).';

create function app_public.leave_organization(organization_id uuid) returns boolean as $$
begin
  delete from app_public.organization_memberships m
    where m.organization_id = leave_organization.organization_id
      and m.user_id = app_public.current_user_id();
  if not found then
    raise exception 'you are not a member of this organization' using errcode = 'DNIED';
  end if;
  return true;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_public.leave_organization(uuid) is
  E'The signed-in user leaves an organization (the last owner cannot: delete it or make another owner first).';

create type app_public.issued_invitation as (
  invitation_id uuid,
  token text,
  expires_at timestamptz
);
comment on type app_public.issued_invitation is
  E'A new invitation. Send the token to the invitee; it is shown only this once.';
comment on column app_public.issued_invitation.invitation_id is E'The invitation.';
comment on column app_public.issued_invitation.token is E'The invitation token (`inv_...`) for `acceptInvitation`; only its SHA-256 is stored.';
comment on column app_public.issued_invitation.expires_at is E'Accept before this.';

create function app_public.invite_to_organization(organization_id uuid, email citext, role text default 'member')
returns app_public.issued_invitation as $$
declare
  v_token text := 'inv_' || encode(gen_random_bytes(32), 'hex');
  v_invitation app_public.organization_invitations;
begin
  if invite_to_organization.organization_id not in (select app_hidden.current_user_organization_ids('admin')) then
    raise exception 'only the organization''s admins and owners can invite' using errcode = 'DNIED';
  end if;
  if role = 'owner' and invite_to_organization.organization_id not in (select app_hidden.current_user_organization_ids('owner')) then
    raise exception 'only owners can invite owners' using errcode = 'DNIED';
  end if;
  if exists (
    select 1 from app_public.organization_memberships m join app_public.users u on u.id = m.user_id
    where m.organization_id = invite_to_organization.organization_id and u.email = invite_to_organization.email
  ) then
    raise exception 'this person is already a member' using errcode = 'NUNIQ';
  end if;
  -- Inviting again replaces the previous invitation (and its token).
  delete from app_public.organization_invitations i
    where i.organization_id = invite_to_organization.organization_id and i.email = invite_to_organization.email;
  insert into app_public.organization_invitations (organization_id, email, role, token_hash, invited_by)
    values (invite_to_organization.organization_id, invite_to_organization.email, invite_to_organization.role,
            app_private.sha256_hex(v_token), app_public.current_user_id())
    returning * into v_invitation;
  return row(v_invitation.id, v_token, v_invitation.expires_at)::app_public.issued_invitation;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.invite_to_organization(uuid, citext, text) is
  E'Invites an email address to an organization with a role (admins and owners; only owners invite owners). Valid for 7 days.';

create function app_public.accept_invitation(token text) returns app_public.organization_memberships as $$
declare
  v_user app_public.users;
  v_invitation app_public.organization_invitations;
  v_membership app_public.organization_memberships;
begin
  select u.* into v_user from app_public.users u where u.id = app_public.current_user_id();
  if v_user.id is null then
    raise exception 'sign in first' using errcode = 'LOGIN';
  end if;
  select i.* into v_invitation from app_public.organization_invitations i
    where i.token_hash = app_private.sha256_hex(token) for update;
  if v_invitation.id is null or v_invitation.accepted_at is not null then
    raise exception 'this invitation does not exist or has already been used' using errcode = 'NTFND';
  end if;
  if v_invitation.expires_at <= now() then
    raise exception 'this invitation has expired: ask for a new one' using errcode = 'EXPRD';
  end if;
  if v_invitation.email <> v_user.email then
    raise exception 'this invitation was sent to another email address' using errcode = 'DNIED';
  end if;
  if exists (select 1 from app_public.organization_memberships m
             where m.organization_id = v_invitation.organization_id and m.user_id = v_user.id) then
    raise exception 'you are already a member of this organization' using errcode = 'NUNIQ';
  end if;
  update app_public.organization_invitations i set accepted_at = now() where i.id = v_invitation.id;
  insert into app_public.organization_memberships (organization_id, user_id, role)
    values (v_invitation.organization_id, v_user.id, v_invitation.role)
    returning * into v_membership;
  return v_membership;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.accept_invitation(text) is
  E'Joins an organization with an invitation token. Only the invited email address can accept, once, before it expires.';

--------------------------------------------------------------------------------
-- For the server and the worker (owner connection)
--------------------------------------------------------------------------------

create function app_private.touch_session(token_hash text) returns void as $$
declare
  v_user_id uuid;
begin
  update app_private.sessions s set last_used_at = now()
    where s.token_hash = touch_session.token_hash
      and s.revoked_at is null and s.expires_at > now()
      and s.last_used_at < now() - interval '1 minute'
    returning s.user_id into v_user_id;
  if v_user_id is not null then
    update app_public.users u set last_active_at = now() where u.id = v_user_id;
  end if;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.touch_session(text) is
  E'Records that a session was used: writes at most once a minute per session (the server also throttles its calls).';

/*
 * Retention helper: deletes up to batch_size rows of `target` (a table with an
 * `id` key) matching `expired`, a trusted SQL condition; returns how many.
 * The worker calls the purge_* functions below until a batch comes back short.
 */
create function app_private.delete_expired_rows(target regclass, expired text, batch_size int) returns int as $$
declare
  v_count int;
begin
  execute format('delete from %s where id in (select id from %s where %s limit %s)', target, target, expired, batch_size);
  get diagnostics v_count = row_count;
  return v_count;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.delete_expired_rows(regclass, text, int) is
  E'Deletes up to batch_size rows of a table that match a (trusted) condition; returns how many.';

create function app_private.purge_sessions(batch_size int default 10000) returns int as $$
  select app_private.delete_expired_rows('app_private.sessions',
    $c$expires_at < now() - interval '7 days' or revoked_at < now() - interval '7 days'$c$, batch_size);
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.purge_sessions(int) is
  E'Deletes up to batch_size sessions that expired or were revoked more than 7 days ago; returns how many.';

create function app_private.purge_login_attempts(batch_size int default 10000) returns int as $$
  select app_private.delete_expired_rows('app_private.login_attempts', $c$attempted_at < now() - interval '7 days'$c$, batch_size);
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.purge_login_attempts(int) is
  E'Deletes up to batch_size login attempts older than 7 days; returns how many.';

create function app_private.purge_expired_invitations(batch_size int default 10000) returns int as $$
  select app_private.delete_expired_rows('app_public.organization_invitations', $c$expires_at < now()$c$, batch_size);
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.purge_expired_invitations(int) is
  E'Deletes up to batch_size expired invitations (accepted ones included); returns how many.';
