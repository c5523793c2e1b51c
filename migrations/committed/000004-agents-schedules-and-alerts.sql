--! Previous: sha1:744750ed6534dc27800bfb935dae048a1fddd675
--! Hash: sha1:6aaf770e4709bee7b48ed0b0ef06fbf7ca877584
--! Message: agents, schedules and alerts

--
-- Schedules: agent types, agents and their API keys, heartbeats and logs;
-- cron jobs and their executions; alert rules, alerts, notification channels
-- and the notification delivery log. (docs/schedules.md tells the story.)
--
-- Scheduling is shared with graphile-worker: a trigger adds one job per cron
-- job (job key `cronjob:<id>`); the `cronjob_run` task computes the next run
-- with cron-parser, in the job's time zone, and calls app_private.run_cronjob,
-- which runs what is due and queues the next job at its time.
--

--------------------------------------------------------------------------------
-- Cron expressions and time zones
--------------------------------------------------------------------------------

/*
 * The same grammar as src/schedules/cron.ts, message for message (a test runs
 * both over the same cases): five fields, each a comma-separated list of `*`,
 * values and ranges, each optionally with a `/step`; month and weekday names.
 */
create function app_hidden.cron_schedule_problem(schedule text) returns text as $$
declare
  v_fields text[] := array['minute', 'hour', 'day of month', 'month', 'day of week'];
  v_min int[] := array[0, 0, 1, 1, 0];
  v_max int[] := array[59, 23, 31, 12, 7];
  v_months text[] := array['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
  v_weekdays text[] := array['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
  v_days_in_month int[] := array[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  v_trimmed text := regexp_replace(coalesce(schedule, ''), '^\s+|\s+$', '', 'g');
  v_parts text[];
  v_item text;
  v_match text[];
  v_bounds text[];
  v_token text;
  v_names text[];
  v_step int;
  v_low int;
  v_high int;
  v_value int;
  v_days int[] := '{}';
  v_selected_months int[] := '{}';
begin
  if v_trimmed = '' then
    return 'expected 5 fields (minute hour day month weekday), got 0';
  end if;
  v_parts := regexp_split_to_array(v_trimmed, '\s+');
  if array_length(v_parts, 1) <> 5 then
    return format('expected 5 fields (minute hour day month weekday), got %s', array_length(v_parts, 1));
  end if;
  for i in 1..5 loop
    v_names := case i when 4 then v_months when 5 then v_weekdays end;
    foreach v_item in array string_to_array(v_parts[i], ',') loop
      v_match := regexp_match(v_item, '^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d{1,2}))?$');
      if v_match is null then
        return format('%s: "%s" is not a value, a range, * or a step', v_fields[i], v_item);
      end if;
      v_step := coalesce(v_match[2]::int, 1);
      if v_step < 1 or v_step > v_max[i] then
        return format('%s: a step must be from 1 to %s', v_fields[i], v_max[i]);
      end if;
      v_low := v_min[i];
      v_high := v_max[i];
      if v_match[1] <> '*' then
        v_bounds := string_to_array(v_match[1], '-');
        for b in 1..array_length(v_bounds, 1) loop
          v_token := v_bounds[b];
          if v_token ~ '^\d{1,2}$' then
            v_value := v_token::int;
          elsif array_position(v_names, upper(v_token)) is not null then
            v_value := array_position(v_names, upper(v_token)) - 1 + v_min[i];
          else
            return format('%s: "%s" is not a number%s', v_fields[i], v_token, case when v_names is null then '' else ' or a name' end);
          end if;
          if v_value < v_min[i] or v_value > v_max[i] then
            return format('%s: %s is outside %s-%s', v_fields[i], v_value, v_min[i], v_max[i]);
          end if;
          if b = 1 then
            v_low := v_value;
            v_high := case when array_length(v_bounds, 1) = 1 and v_match[2] is null then v_value else v_max[i] end;
          else
            v_high := v_value;
          end if;
        end loop;
        if v_low > v_high then
          return format('%s: the range %s runs backwards', v_fields[i], v_match[1]);
        end if;
      end if;
      if i = 3 then
        v_days := v_days || array(select generate_series(v_low, v_high, v_step));
      elsif i = 4 then
        v_selected_months := v_selected_months || array(select generate_series(v_low, v_high, v_step));
      end if;
    end loop;
  end loop;
  if v_parts[5] = '*' and not exists (
    select 1 from unnest(v_selected_months) m, unnest(v_days) d where d <= v_days_in_month[m]
  ) then
    return 'no month selected has the days selected: the schedule would never run';
  end if;
  return null;
end;
$$ language plpgsql immutable set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.cron_schedule_problem(text) is
  E'Why a text is not a 5-field cron schedule agentplane accepts (minute hour day month weekday; `*`, values, ranges, lists, steps, JAN-DEC and SUN-SAT), or null when it is.';

-- pg_timezone_names reads the zone files on every call (tens of milliseconds):
-- its IANA names are copied once here, and a miss still asks it (a newer tzdata).
create table app_private.time_zone_names (
  name text primary key
);
insert into app_private.time_zone_names (name)
  select name from pg_timezone_names
  where name !~ '^posix/' and name not in ('Factory', 'localtime', 'posixrules');
comment on table app_private.time_zone_names is
  E'IANA time zone names PostgreSQL knows (its posix/ copies and aliases left out), cached from pg_timezone_names.';

create function app_private.is_iana_time_zone(name text) returns boolean as $$
  select name ~ '^[A-Za-z][A-Za-z0-9_+\-/]*$'
    and name !~ '^posix/'
    and name not in ('Factory', 'localtime', 'posixrules')
    and (exists (select 1 from app_private.time_zone_names z where z.name = is_iana_time_zone.name)
         or exists (select 1 from pg_catalog.pg_timezone_names z where z.name = is_iana_time_zone.name));
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.is_iana_time_zone(text) is
  E'True for an IANA time zone name, such as `Europe/Berlin` or `UTC` (not abbreviations or POSIX strings).';

--------------------------------------------------------------------------------
-- Agent types
--------------------------------------------------------------------------------

create table app_public.agent_types (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
  description text,
  default_config jsonb not null default '{}' check (jsonb_typeof(default_config) = 'object'),
  required_params text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger _100_timestamps before insert or update on app_public.agent_types
  for each row execute procedure app_private.tg__timestamps();

insert into app_public.agent_types (name, description, default_config, required_params) values
  ('assistant', 'A conversational assistant: answers, summarises, drafts.', '{"temperature": 0.7}', '{}'),
  ('monitor', 'Watches a service or URL and reports when it misbehaves.', '{"interval_seconds": 60, "timeout_seconds": 10}', '{target_url}'),
  ('scraper', 'Collects pages from a site and extracts what it is asked for.', '{"max_pages": 20, "respect_robots_txt": true}', '{start_url}'),
  ('coder', 'Works in a repository: fixes, reviews and writes code.', '{"branch": "main", "open_pull_requests": false}', '{repository}'),
  ('reporter', 'Writes a periodic report and sends it to its recipients.', '{"format": "markdown"}', '{recipients}');

comment on table app_public.agent_types is
  E'@behavior -insert -update -delete\nTemplates for agents: default configuration and the parameters an agent of the type must set. Provided by agentplane; readable by every signed-in user.';
comment on column app_public.agent_types.id is E'The type''s id.';
comment on column app_public.agent_types.name is E'Short unique name, e.g. `monitor`.';
comment on column app_public.agent_types.description is E'What agents of this type do.';
comment on column app_public.agent_types.default_config is E'Configuration every new agent of this type starts from (its own `config` wins).';
comment on column app_public.agent_types.required_params is E'Keys an agent of this type must have in its configuration (after the defaults are applied).';
comment on column app_public.agent_types.created_at is E'When the type was added.';
comment on column app_public.agent_types.updated_at is E'When it last changed.';

alter table app_public.agent_types enable row level security;
create policy select_signed_in on app_public.agent_types for select
  using ((select app_public.current_user_id()) is not null);
grant select on app_public.agent_types to :DATABASE_VISITOR;

--------------------------------------------------------------------------------
-- Agents
--------------------------------------------------------------------------------

create table app_public.agents (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  box_id uuid,
  type_id uuid references app_public.agent_types on delete restrict,
  parent_agent_id uuid references app_public.agents on delete set null,
  name text not null check (length(name) between 1 and 200),
  description text check (length(description) <= 10000),
  model text check (length(model) between 1 and 200),
  system_prompt text check (length(system_prompt) <= 100000),
  config jsonb not null default '{}' check (jsonb_typeof(config) = 'object'),
  visibility text not null default 'organization' check (visibility in ('private', 'organization', 'public')),
  enabled boolean not null default true,
  status text not null default 'inactive' check (status in ('active', 'paused', 'error', 'inactive')),
  webhook_url text check (webhook_url ~ '^https?://' and length(webhook_url) <= 2000),
  heartbeat_interval_seconds int not null default 60 check (heartbeat_interval_seconds between 1 and 86400),
  last_heartbeat_at timestamptz,
  last_active_at timestamptz,
  consecutive_failures int not null default 0 check (consecutive_failures >= 0),
  created_by uuid default app_public.current_user_id() references app_public.users on delete set null,
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- What other tables reference to stay inside one organization.
  unique (organization_id, id)
);
create index on app_public.agents (organization_id, created_at desc);
create index on app_public.agents (box_id, organization_id);
create index on app_public.agents (type_id);
create index on app_public.agents (parent_agent_id);
create index on app_public.agents (created_by);
create index on app_public.agents (visibility) where visibility = 'public';
create index on app_public.agents (status);
create trigger _100_timestamps before insert or update on app_public.agents
  for each row execute procedure app_private.tg__timestamps();

comment on constraint agents_organization_id_id_key on app_public.agents is
  E'@behavior -single -update -delete\nLets other tables reference a row together with its organization, so that they cannot point into another one.';
comment on table app_public.agents is
  E'An AI agent: hosted on one of the organization''s boxes (`boxId`) or in the cloud (no box, reached through `webhookUrl`). `private` agents are seen by their creator and the organization''s admins, `organization` ones by its members, `public` ones by every signed-in user, who can fork them (create an agent with `parentAgentId`) but never change them.';
comment on column app_public.agents.id is E'The agent''s id.';
comment on column app_public.agents.organization_id is E'The organization it belongs to.';
comment on column app_public.agents.box_id is E'The box that runs it; null for a cloud agent.';
comment on column app_public.agents.type_id is E'Its agent type: defaults and required parameters come from it.';
comment on column app_public.agents.parent_agent_id is E'The agent it was forked from: on creation it copies that agent''s type, model, prompt, description and configuration (what you give wins).';
comment on column app_public.agents.name is E'Display name.';
comment on column app_public.agents.description is E'What it is for.';
comment on column app_public.agents.model is E'The model it uses, e.g. `claude-sonnet-4.5`.';
comment on column app_public.agents.system_prompt is E'Its system prompt.';
comment on column app_public.agents.config is E'Its configuration: the type''s default configuration with this agent''s values over it; must contain the type''s required parameters.';
comment on column app_public.agents.visibility is E'`private`, `organization` (default) or `public`.';
comment on column app_public.agents.enabled is E'False to switch it off: its key stops working and its schedules are not sent to it.';
comment on column app_public.agents.status is E'`active` (heard from recently), `paused` (by a user), `error` (it says so) or `inactive` (never heard from, or its heartbeat is overdue).';
comment on column app_public.agents.webhook_url is E'Where a cloud agent receives its tasks, as signed POSTs.';
comment on column app_public.agents.heartbeat_interval_seconds is E'How often it promises a heartbeat; it becomes `inactive` when a few are missed (AGENT_OFFLINE_AFTER_INTERVALS).';
comment on column app_public.agents.last_heartbeat_at is E'When its last heartbeat arrived.';
comment on column app_public.agents.last_active_at is E'When it last did anything (heartbeat, log, metrics).';
comment on column app_public.agents.consecutive_failures is E'`error` logs since its last `success` log.';
comment on column app_public.agents.created_by is E'Who created it.';
comment on column app_public.agents.metadata is E'Free-form data for clients.';
comment on column app_public.agents.created_at is E'When it was created.';
comment on column app_public.agents.updated_at is E'When it last changed.';

/*
 * A fork copies its parent. Security invoker on purpose: the parent is read
 * with the inserting user's row-level security, so only an agent they can see
 * (their organization's, or a public one) can be forked.
 */
create function app_private.tg_agents__fork() returns trigger as $$
declare
  v_parent app_public.agents;
begin
  select * into v_parent from app_public.agents a where a.id = new.parent_agent_id;
  if not found then
    raise exception 'there is no agent % to fork (or you cannot see it)', new.parent_agent_id using errcode = '22023';
  end if;
  new.type_id := coalesce(new.type_id, v_parent.type_id);
  new.model := coalesce(new.model, v_parent.model);
  new.system_prompt := coalesce(new.system_prompt, v_parent.system_prompt);
  new.description := coalesce(new.description, v_parent.description);
  new.config := v_parent.config || new.config;
  return new;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_agents__fork() is
  E'Trigger: a new agent with a parent copies what it does not set itself from that parent (which the inserting user must be able to see).';
create trigger _200_fork before insert on app_public.agents
  for each row when (new.parent_agent_id is not null) execute procedure app_private.tg_agents__fork();

create function app_private.tg_agents__apply_type() returns trigger as $$
declare
  v_type app_public.agent_types;
  v_param text;
begin
  if new.type_id is null then
    return new;
  end if;
  select * into v_type from app_public.agent_types t where t.id = new.type_id;
  if not found then
    raise exception 'there is no agent type %', new.type_id using errcode = '22023';
  end if;
  if tg_op = 'INSERT' or new.type_id is distinct from old.type_id then
    new.config := v_type.default_config || new.config;
  end if;
  foreach v_param in array v_type.required_params loop
    if coalesce(new.config -> v_param, 'null') = 'null' then
      raise exception 'agent type "%" requires the parameter "%" in config', v_type.name, v_param
        using errcode = '22023', hint = format('add "%s" to the agent''s config', v_param);
    end if;
  end loop;
  return new;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_agents__apply_type() is
  E'Trigger: applies the type''s default configuration (on creation and on a change of type) and refuses an agent that misses one of the type''s required parameters, naming it.';
create trigger _300_apply_type before insert or update of type_id, config on app_public.agents
  for each row execute procedure app_private.tg_agents__apply_type();

alter table app_public.agents enable row level security;
create policy select_visible on app_public.agents for select using (
  (organization_id in (select app_public.current_user_organization_ids())
    and (visibility <> 'private'
         or created_by = (select app_public.current_user_id())
         or organization_id in (select app_hidden.current_user_organization_ids('admin'))))
  or (visibility = 'public' and (select app_public.current_user_id()) is not null)
);
create policy insert_member on app_public.agents for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy update_member on app_public.agents for update
  using (organization_id in (select app_hidden.current_user_organization_ids('member'))
         and (visibility <> 'private'
              or created_by = (select app_public.current_user_id())
              or organization_id in (select app_hidden.current_user_organization_ids('admin'))))
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_member on app_public.agents for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('member'))
         and (visibility <> 'private'
              or created_by = (select app_public.current_user_id())
              or organization_id in (select app_hidden.current_user_organization_ids('admin'))));
grant select, delete on app_public.agents to :DATABASE_VISITOR;
grant insert (organization_id, box_id, type_id, parent_agent_id, name, description, model, system_prompt, config,
              visibility, enabled, status, webhook_url, heartbeat_interval_seconds, metadata)
  on app_public.agents to :DATABASE_VISITOR;
grant update (box_id, type_id, name, description, model, system_prompt, config, visibility, enabled, status,
              webhook_url, heartbeat_interval_seconds, metadata)
  on app_public.agents to :DATABASE_VISITOR;

-- Heartbeats and activity (last_*_at, status, consecutive_failures) are not audited.
create trigger _900_audit after insert or delete or update of organization_id, box_id, type_id, parent_agent_id, name, description,
  model, system_prompt, config, visibility, enabled, webhook_url, heartbeat_interval_seconds, created_by, metadata
  on app_public.agents for each row execute procedure app_private.tg__audit('agent', 'status');

--------------------------------------------------------------------------------
-- Agent API keys
--------------------------------------------------------------------------------

create table app_public.agent_api_keys (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  name text not null default 'default' check (length(name) between 1 and 100),
  key_prefix text not null,
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  created_by uuid default app_public.current_user_id() references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (organization_id, agent_id) references app_public.agents (organization_id, id) on delete cascade
);
create index on app_public.agent_api_keys (organization_id);
create index on app_public.agent_api_keys (agent_id, organization_id);
create index on app_public.agent_api_keys (created_by);
create trigger _100_timestamps before insert or update on app_public.agent_api_keys
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.agent_api_keys is
  E'@behavior -insert -update -delete\nAPI keys of agents (`agt_...`), made by `createAgentApiKey` and shown only then; only a SHA-256 of each key is kept. With its key an agent can send heartbeats and metrics and write its own logs, nothing else.';
comment on column app_public.agent_api_keys.id is E'The key''s id.';
comment on column app_public.agent_api_keys.organization_id is E'The agent''s organization.';
comment on column app_public.agent_api_keys.agent_id is E'The agent the key speaks for.';
comment on column app_public.agent_api_keys.name is E'A label, e.g. where it is deployed.';
comment on column app_public.agent_api_keys.key_prefix is E'The first characters of the key, to recognise it.';
comment on column app_public.agent_api_keys.last_used_at is E'When the agent last sent a heartbeat with it.';
comment on column app_public.agent_api_keys.expires_at is E'When it stops working, if ever.';
comment on column app_public.agent_api_keys.revoked_at is E'When it was revoked; it no longer works.';
comment on column app_public.agent_api_keys.created_by is E'Who created it.';
comment on column app_public.agent_api_keys.created_at is E'When it was created.';
comment on column app_public.agent_api_keys.updated_at is E'When it last changed.';

create table app_private.agent_api_key_secrets (
  agent_api_key_id uuid primary key references app_public.agent_api_keys on delete cascade,
  key_hash text not null unique
);
comment on table app_private.agent_api_key_secrets is
  E'The hex SHA-256 of each agent API key (compared with agentplane.token_hash).';

alter table app_public.agent_api_keys enable row level security;
create policy select_member on app_public.agent_api_keys for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.agent_api_keys to :DATABASE_VISITOR;

create function app_public.current_agent_id() returns uuid as $$
  select k.agent_id
  from app_private.agent_api_key_secrets s
  join app_public.agent_api_keys k on k.id = s.agent_api_key_id
  join app_public.agents a on a.id = k.agent_id
  where s.key_hash = nullif(current_setting('agentplane.token_hash', true), '')
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and a.enabled;
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.current_agent_id() is
  E'@behavior -queryField\nThe agent whose API key this request carries (agentplane.token_hash), or null: unknown, revoked and expired keys, and disabled agents, are nobody.';

create type app_public.new_agent_api_key as (
  agent_api_key_id uuid,
  key text
);
comment on type app_public.new_agent_api_key is E'A new agent API key: configure the agent with it now, it is never shown again.';
comment on column app_public.new_agent_api_key.agent_api_key_id is E'The key''s id (see `agentApiKeys`).';
comment on column app_public.new_agent_api_key.key is E'The key (`agt_...`): the agent sends `Authorization: Bearer <key>`.';

create function app_public.create_agent_api_key(agent_id uuid, name text default 'default', expires_at timestamptz default null)
returns app_public.new_agent_api_key as $$
declare
  v_agent app_public.agents;
  v_key text := 'agt_' || encode(gen_random_bytes(24), 'hex');
  v_id uuid;
begin
  select * into v_agent from app_public.agents a
  where a.id = create_agent_api_key.agent_id
    and a.organization_id in (select app_hidden.current_user_organization_ids('member'));
  if not found then
    raise exception 'there is no agent % you can manage', agent_id using errcode = '42501';
  end if;
  if expires_at is not null and expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = '22023';
  end if;
  insert into app_public.agent_api_keys (organization_id, agent_id, name, key_prefix, expires_at)
    values (v_agent.organization_id, v_agent.id, coalesce(name, 'default'), left(v_key, 12), expires_at)
    returning id into v_id;
  insert into app_private.agent_api_key_secrets (agent_api_key_id, key_hash) values (v_id, app_private.sha256_hex(v_key));
  perform app_private.write_audit_log(v_agent.organization_id, 'agent_api_key.created', 'agent_api_key', v_id::text,
    jsonb_build_object('agent_id', v_agent.id, 'name', coalesce(name, 'default'), 'key_prefix', left(v_key, 12)));
  return row(v_id, v_key)::app_public.new_agent_api_key;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.create_agent_api_key(uuid, text, timestamptz) is
  E'Makes an API key for an agent of your organization (members and up) and returns it: the only time it is seen.';

create function app_public.revoke_agent_api_key(agent_api_key_id uuid) returns app_public.agent_api_keys as $$
declare
  v_key app_public.agent_api_keys;
begin
  update app_public.agent_api_keys k set revoked_at = coalesce(k.revoked_at, now())
  where k.id = revoke_agent_api_key.agent_api_key_id
    and k.organization_id in (select app_hidden.current_user_organization_ids('member'))
  returning * into v_key;
  if not found then
    raise exception 'there is no agent API key % you can manage', agent_api_key_id using errcode = '42501';
  end if;
  perform app_private.write_audit_log(v_key.organization_id, 'agent_api_key.revoked', 'agent_api_key', v_key.id::text,
    jsonb_build_object('agent_id', v_key.agent_id, 'key_prefix', v_key.key_prefix));
  return v_key;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.revoke_agent_api_key(uuid) is
  E'Revokes an agent API key at once (members and up).';

--------------------------------------------------------------------------------
-- Agent logs
--------------------------------------------------------------------------------

create table app_public.agent_logs (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  status text not null check (status in ('success', 'error', 'warning')),
  message text check (length(message) <= 100000),
  details jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  started_at timestamptz,
  completed_at timestamptz,
  duration_ms int check (duration_ms >= 0),
  created_at timestamptz not null default now(),
  foreign key (organization_id, agent_id) references app_public.agents (organization_id, id) on delete cascade,
  check (completed_at >= started_at)
);
create index on app_public.agent_logs (organization_id, created_at desc);
create index on app_public.agent_logs (agent_id, organization_id, created_at desc);

comment on table app_public.agent_logs is
  E'@behavior -update -delete\nWhat an agent did: one entry per run or event. Agents write their own with their API key; members can write them too. `error` entries in a row count toward `consecutive_failures` alerts.';
comment on column app_public.agent_logs.id is E'The entry''s id.';
comment on column app_public.agent_logs.organization_id is E'The agent''s organization (set from the agent).';
comment on column app_public.agent_logs.agent_id is E'The agent (with an agent key: always that agent).';
comment on column app_public.agent_logs.status is E'`success`, `error` or `warning`.';
comment on column app_public.agent_logs.message is E'What happened.';
comment on column app_public.agent_logs.details is E'Structured details.';
comment on column app_public.agent_logs.started_at is E'When the run started.';
comment on column app_public.agent_logs.completed_at is E'When it ended (not before it started).';
comment on column app_public.agent_logs.duration_ms is E'How long it took, in milliseconds: derived from the two times when both are given.';
comment on column app_public.agent_logs.created_at is E'When the entry was written.';

create function app_private.tg_agent_logs__prepare() returns trigger as $$
begin
  -- An agent key writes for its own agent only; the organization always follows the agent.
  new.agent_id := coalesce(app_public.current_agent_id(), new.agent_id);
  select a.organization_id into new.organization_id from app_public.agents a where a.id = new.agent_id;
  new.created_at := now();
  if new.started_at is not null and new.completed_at is not null then
    new.duration_ms := round(extract(epoch from (new.completed_at - new.started_at)) * 1000);
  end if;
  return new;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_agent_logs__prepare() is
  E'Trigger: fills organization_id from the agent (an agent key always writes for its own agent) and derives duration_ms.';
create trigger _100_prepare before insert on app_public.agent_logs
  for each row execute procedure app_private.tg_agent_logs__prepare();

alter table app_public.agent_logs enable row level security;
create policy select_member_or_self on app_public.agent_logs for select
  using (organization_id in (select app_public.current_user_organization_ids())
         or agent_id = (select app_public.current_agent_id()));
create policy insert_member_or_self on app_public.agent_logs for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member'))
              or agent_id = (select app_public.current_agent_id()));
grant select on app_public.agent_logs to :DATABASE_VISITOR;
grant insert (agent_id, status, message, details, started_at, completed_at, duration_ms) on app_public.agent_logs to :DATABASE_VISITOR;

create function app_private.mark_agents_offline(missed_intervals numeric) returns int as $$
  with overdue as (
    update app_public.agents a set status = 'inactive'
    where a.status = 'active'
      and coalesce(a.last_heartbeat_at, a.created_at)
          < now() - make_interval(secs => a.heartbeat_interval_seconds * missed_intervals)
    returning 1
  )
  select count(*)::int from overdue;
$$ language sql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.mark_agents_offline(numeric) is
  E'Marks `active` agents whose heartbeat is more than missed_intervals intervals late as `inactive`; returns how many.';

--------------------------------------------------------------------------------
-- Cron jobs
--------------------------------------------------------------------------------

create table app_public.cronjobs (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  box_id uuid,
  agent_id uuid,
  name text not null check (length(name) between 1 and 200),
  description text check (length(description) <= 10000),
  schedule text not null,
  timezone text not null default 'UTC',
  action text not null check (action in ('run_bash_command', 'create_agent_with_task', 'run_agent_conversation', 'webhook')),
  task text check (length(task) <= 100000),
  payload jsonb not null default '{}' check (jsonb_typeof(payload) = 'object'),
  enabled boolean not null default true,
  catch_up_policy text not null default 'run_once' check (catch_up_policy in ('skip', 'run_once')),
  timeout_seconds int check (timeout_seconds between 1 and 86400),
  last_run_at timestamptz,
  next_run_at timestamptz,
  consecutive_failures int not null default 0 check (consecutive_failures >= 0),
  revision int not null default 1,
  created_by uuid default app_public.current_user_id() references app_public.users on delete set null,
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, agent_id) references app_public.agents (organization_id, id) on delete cascade
);
create index on app_public.cronjobs (organization_id, created_at desc);
create index on app_public.cronjobs (box_id, organization_id);
create index on app_public.cronjobs (agent_id, organization_id);
create index on app_public.cronjobs (created_by);
create index on app_public.cronjobs (next_run_at) where enabled;
create trigger _100_timestamps before insert or update on app_public.cronjobs
  for each row execute procedure app_private.tg__timestamps();

comment on constraint cronjobs_organization_id_id_key on app_public.cronjobs is
  E'@behavior -single -update -delete\nLets other tables reference a row together with its organization, so that they cannot point into another one.';
comment on table app_public.cronjobs is
  E'A schedule: at each time its cron expression names, in its time zone, the action runs. `run_bash_command` queues `task` as a `bash.exec` command on `boxId`; `run_agent_conversation` and `create_agent_with_task` give `task` to `agentId` (an `agent.run` command on its box, or a signed POST to a cloud agent''s webhook URL; `create_agent_with_task` with only a box asks the box to start a new agent); `webhook` POSTs to `payload.url`, signed. An agent''s own schedule is a cron job with its `agentId`.';
comment on column app_public.cronjobs.id is E'The cron job''s id.';
comment on column app_public.cronjobs.organization_id is E'The organization it belongs to.';
comment on column app_public.cronjobs.box_id is E'The box it runs on (`run_bash_command`; set from the agent when an agent is given).';
comment on column app_public.cronjobs.agent_id is E'The agent that gets the task (`run_agent_conversation`, `create_agent_with_task`).';
comment on column app_public.cronjobs.name is E'Display name.';
comment on column app_public.cronjobs.description is E'What it is for.';
comment on column app_public.cronjobs.schedule is E'Cron expression, 5 fields: minute hour day month weekday (`*/15 * * * *`, `0 9 * * mon-fri`, `0,30 8-18/2 * * *`); refused when invalid.';
comment on column app_public.cronjobs.timezone is E'IANA time zone the schedule is read in (default UTC); daylight saving time is followed.';
comment on column app_public.cronjobs.action is E'`run_bash_command`, `create_agent_with_task`, `run_agent_conversation` or `webhook`.';
comment on column app_public.cronjobs.task is E'The command (`run_bash_command`) or the task given to the agent.';
comment on column app_public.cronjobs.payload is E'Extra parameters: for `webhook`, `url` (required) and `body`; for `run_bash_command`, fields added to the `bash.exec` payload (e.g. `cwd`); for agents, passed along with the task.';
comment on column app_public.cronjobs.enabled is E'False to stop running it (and clear next_run_at).';
comment on column app_public.cronjobs.catch_up_policy is E'After downtime, when a run was missed: `run_once` (default) runs once as soon as possible, `skip` records it as skipped and waits for the next time.';
comment on column app_public.cronjobs.timeout_seconds is E'How long a box command may run (default: the bridge''s).';
comment on column app_public.cronjobs.last_run_at is E'When it last ran.';
comment on column app_public.cronjobs.next_run_at is E'When it runs next: computed by the scheduler on creation, on every change and after every run (null while being computed, and when disabled).';
comment on column app_public.cronjobs.consecutive_failures is E'Failed or timed-out executions since the last successful one.';
comment on column app_public.cronjobs.revision is E'@behavior -*\nIncremented when the schedule, zone, policy or enabled flag change: jobs planned for an older revision are dropped.';
comment on column app_public.cronjobs.created_by is E'Who created it.';
comment on column app_public.cronjobs.metadata is E'Free-form data for clients.';
comment on column app_public.cronjobs.created_at is E'When it was created.';
comment on column app_public.cronjobs.updated_at is E'When it last changed.';

create function app_private.tg_cronjobs__validate() returns trigger as $$
declare
  v_problem text := app_hidden.cron_schedule_problem(new.schedule);
  v_agent app_public.agents;
begin
  if v_problem is not null then
    raise exception 'invalid cron schedule "%": %', new.schedule, v_problem
      using errcode = '22023', hint = 'five fields: minute hour day month weekday, e.g. */15 * * * *';
  end if;
  if tg_op = 'INSERT' or new.timezone is distinct from old.timezone then
    if not app_private.is_iana_time_zone(new.timezone) then
      raise exception 'unknown time zone "%"', new.timezone
        using errcode = '22023', hint = 'use an IANA name such as Europe/Berlin or UTC';
    end if;
  end if;
  if new.agent_id is not null then
    select * into v_agent from app_public.agents a where a.id = new.agent_id;
    if v_agent.box_id is not null then
      if new.box_id is not null and new.box_id <> v_agent.box_id then
        raise exception 'agent % runs on box %, not on box %', new.agent_id, v_agent.box_id, new.box_id using errcode = '22023';
      end if;
      new.box_id := v_agent.box_id;
    end if;
  end if;
  if new.action = 'run_bash_command' and (new.box_id is null or new.task is null) then
    raise exception 'a run_bash_command cron job needs a box (box_id) and the command (task)' using errcode = '22023';
  elsif new.action = 'run_agent_conversation' and (new.agent_id is null or new.task is null) then
    raise exception 'a run_agent_conversation cron job needs an agent (agent_id) and a task' using errcode = '22023';
  elsif new.action = 'create_agent_with_task' and ((new.agent_id is null and new.box_id is null) or new.task is null) then
    raise exception 'a create_agent_with_task cron job needs an agent or a box, and a task' using errcode = '22023';
  elsif new.action = 'webhook' and coalesce(new.payload ->> 'url', '') !~ '^https?://' then
    raise exception 'a webhook cron job needs payload.url, an http(s) URL' using errcode = '22023';
  end if;
  if tg_op = 'INSERT' then
    new.revision := 1;
    new.next_run_at := null;
  elsif (new.schedule, new.timezone, new.enabled, new.catch_up_policy)
        is distinct from (old.schedule, old.timezone, old.enabled, old.catch_up_policy) then
    new.revision := old.revision + 1;
    new.next_run_at := null;
  end if;
  return new;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_cronjobs__validate() is
  E'Trigger: refuses an invalid schedule or time zone and an action without what it needs, with a clear message; a new or changed schedule gets a new revision and waits for its next run to be computed.';
-- What users write; the scheduler's own bookkeeping (next_run_at, last_run_at, consecutive_failures) skips it.
create trigger _200_validate before insert or update of schedule, timezone, action, task, payload, box_id, agent_id, enabled, catch_up_policy
  on app_public.cronjobs for each row execute procedure app_private.tg_cronjobs__validate();

/*
 * One graphile-worker job per cron job, key `cronjob:<id>`: created or
 * replaced, to run now, whenever a revision starts; the task computes the
 * first run and replaces it with a job at that time (app_private.run_cronjob).
 * The payload carries the revision's schedule and zone, so that the task
 * needs no query before it computes.
 */
create function app_private.tg_cronjobs__schedule() returns trigger as $$
begin
  if tg_op = 'DELETE' or not new.enabled then
    perform graphile_worker.remove_job('cronjob:' || coalesce(new.id, old.id));
  else
    perform 1 from graphile_worker.add_jobs(array[
      row('cronjob_run', json_build_object('cronjobId', new.id, 'revision', new.revision, 'schedule', new.schedule,
                                           'timezone', new.timezone, 'plannedAt', now()),
          null, null, 10, 'cronjob:' || new.id, null, null)::graphile_worker.job_spec
    ]);
  end if;
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_cronjobs__schedule() is
  E'Trigger: (re)plans a cron job''s worker job when it is created, rescheduled, enabled or disabled, and removes it on delete.';
create trigger _500_schedule_insert after insert on app_public.cronjobs
  for each row execute procedure app_private.tg_cronjobs__schedule();
create trigger _500_schedule_update after update on app_public.cronjobs
  for each row when (old.revision is distinct from new.revision) execute procedure app_private.tg_cronjobs__schedule();
create trigger _500_schedule_delete after delete on app_public.cronjobs
  for each row execute procedure app_private.tg_cronjobs__schedule();

alter table app_public.cronjobs enable row level security;
create policy select_member on app_public.cronjobs for select
  using (organization_id in (select app_public.current_user_organization_ids()));
create policy insert_member on app_public.cronjobs for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy update_member on app_public.cronjobs for update
  using (organization_id in (select app_hidden.current_user_organization_ids('member')))
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_member on app_public.cronjobs for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('member')));
grant select (id, organization_id, box_id, agent_id, name, description, schedule, timezone, action, task, payload,
              enabled, catch_up_policy, timeout_seconds, last_run_at, next_run_at, consecutive_failures,
              created_by, metadata, created_at, updated_at)
  on app_public.cronjobs to :DATABASE_VISITOR;
grant delete on app_public.cronjobs to :DATABASE_VISITOR;
grant insert (organization_id, box_id, agent_id, name, description, schedule, timezone, action, task, payload,
              enabled, catch_up_policy, timeout_seconds, metadata)
  on app_public.cronjobs to :DATABASE_VISITOR;
grant update (box_id, agent_id, name, description, schedule, timezone, action, task, payload,
              enabled, catch_up_policy, timeout_seconds, metadata)
  on app_public.cronjobs to :DATABASE_VISITOR;

create trigger _900_audit after insert or delete or update of organization_id, box_id, agent_id, name, description, schedule, timezone,
  action, task, payload, enabled, catch_up_policy, timeout_seconds, created_by, metadata
  on app_public.cronjobs for each row execute procedure app_private.tg__audit('cronjob', 'revision');

--------------------------------------------------------------------------------
-- Cron job executions
--------------------------------------------------------------------------------

create table app_public.cronjob_executions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  cronjob_id uuid not null,
  scheduled_for timestamptz not null,
  status text not null check (status in ('running', 'success', 'failure', 'skipped', 'timed_out')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms int check (duration_ms >= 0),
  output text,
  error text,
  -- No foreign key: box_commands is partitioned by month and pruned on its own schedule.
  box_command_id uuid,
  attempts int not null default 0 check (attempts >= 0),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  foreign key (organization_id, cronjob_id) references app_public.cronjobs (organization_id, id) on delete cascade,
  -- One execution per scheduled time, however many workers try.
  unique (cronjob_id, scheduled_for),
  check (finished_at >= started_at)
);
create index on app_public.cronjob_executions (organization_id, started_at desc);
create index on app_public.cronjob_executions (cronjob_id, organization_id, started_at desc);
create index on app_public.cronjob_executions (started_at);
create index on app_public.cronjob_executions (box_command_id) where box_command_id is not null;

comment on table app_public.cronjob_executions is
  E'@behavior -insert -update -delete\nOne row per run of a cron job (or per run skipped after downtime), written by the scheduler. Kept 90 days.';
comment on column app_public.cronjob_executions.id is E'The execution''s id.';
comment on column app_public.cronjob_executions.organization_id is E'The cron job''s organization.';
comment on column app_public.cronjob_executions.cronjob_id is E'The cron job.';
comment on column app_public.cronjob_executions.scheduled_for is E'The time the schedule named for this run (its lateness is startedAt - scheduledFor).';
comment on column app_public.cronjob_executions.status is E'`running`, `success`, `failure`, `skipped` (missed during downtime, policy `skip`) or `timed_out`.';
comment on column app_public.cronjob_executions.started_at is E'When it started.';
comment on column app_public.cronjob_executions.finished_at is E'When it reached its final status.';
comment on column app_public.cronjob_executions.duration_ms is E'finishedAt - startedAt, in milliseconds.';
comment on column app_public.cronjob_executions.output is E'What it produced: the command''s output, or the webhook''s answer.';
comment on column app_public.cronjob_executions.error is E'Why it failed (or why it was skipped).';
comment on column app_public.cronjob_executions.box_command_id is E'The box command it queued (`run_bash_command`, and agents on boxes).';
comment on column app_public.cronjob_executions.attempts is E'Delivery attempts made (webhooks and cloud agents).';
comment on column app_public.cronjob_executions.metadata is E'Details: how late it started, the HTTP status of a delivery.';

alter table app_public.cronjob_executions enable row level security;
create policy select_member on app_public.cronjob_executions for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.cronjob_executions to :DATABASE_VISITOR;

/*
 * An execution reached its final status: keep the cron job's failure count
 * and let consecutive_failures alert rules see it.
 */
create function app_private.tg_cronjob_executions__finished() returns trigger as $$
declare
  v_job app_public.cronjobs;
begin
  update app_public.cronjobs c
    set consecutive_failures = case when new.status = 'success' then 0 else c.consecutive_failures + 1 end
    where c.id = new.cronjob_id
    returning * into v_job;
  if found then
    perform app_private.evaluate_failure_rules(v_job.organization_id, 'cronjob', v_job.id, v_job.consecutive_failures,
                                               v_job.box_id, v_job.agent_id);
  end if;
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_cronjob_executions__finished() is
  E'Trigger: counts failures in a row on the cron job and evaluates consecutive_failures alert rules.';
create trigger _500_finished after update of status on app_public.cronjob_executions
  for each row when (old.status = 'running' and new.status in ('success', 'failure', 'timed_out'))
  execute procedure app_private.tg_cronjob_executions__finished();

create function app_private.finish_cronjob_execution(execution_id uuid, status text, output text, error text)
returns app_public.cronjob_executions as $$
  update app_public.cronjob_executions e set
    status = finish_cronjob_execution.status,
    finished_at = greatest(now(), e.started_at),
    duration_ms = round(extract(epoch from (greatest(now(), e.started_at) - e.started_at)) * 1000),
    output = coalesce(finish_cronjob_execution.output, e.output),
    error = finish_cronjob_execution.error
  where e.id = finish_cronjob_execution.execution_id and e.status = 'running'
  returning *;
$$ language sql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.finish_cronjob_execution(uuid, text, text, text) is
  E'Gives a running execution its final status (success, failure or timed_out); does nothing to one that already has one.';

create function app_private.record_cronjob_delivery(execution_id uuid, delivered boolean, output text, error text, give_up boolean)
returns app_public.cronjob_executions as $$
declare
  v_execution app_public.cronjob_executions;
begin
  update app_public.cronjob_executions e set attempts = e.attempts + 1, error = record_cronjob_delivery.error
    where e.id = record_cronjob_delivery.execution_id and e.status = 'running'
    returning * into v_execution;
  if found and (delivered or give_up) then
    v_execution := app_private.finish_cronjob_execution(v_execution.id, case when delivered then 'success' else 'failure' end,
                                                        left(output, 100000), error);
  end if;
  return v_execution;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.record_cronjob_delivery(uuid, boolean, text, text, boolean) is
  E'Logs one delivery attempt of an execution (webhook, cloud agent): success finishes it, give_up fails it, otherwise it keeps running until the retry.';

create function app_private.purge_cronjob_executions(batch_size int default 10000) returns int as $$
  with old as (
    delete from app_public.cronjob_executions e
    where e.id in (select id from app_public.cronjob_executions
                   where started_at < now() - interval '90 days' limit batch_size)
    returning 1
  )
  select count(*)::int from old;
$$ language sql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.purge_cronjob_executions(int) is
  E'Deletes up to batch_size executions older than 90 days; returns how many.';

--------------------------------------------------------------------------------
-- Notification channels, their secrets, webhook signing secrets
--------------------------------------------------------------------------------

create table app_public.notification_channels (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  name text not null check (length(name) between 1 and 200),
  kind text not null check (kind in ('webhook', 'slack', 'telegram', 'email')),
  config jsonb not null default '{}' check (jsonb_typeof(config) = 'object'),
  secret_fields text[] not null default '{}',
  enabled boolean not null default true,
  created_by uuid default app_public.current_user_id() references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id)
);
create index on app_public.notification_channels (organization_id, created_at desc);
create index on app_public.notification_channels (created_by);
create trigger _100_timestamps before insert or update on app_public.notification_channels
  for each row execute procedure app_private.tg__timestamps();

comment on constraint notification_channels_organization_id_id_key on app_public.notification_channels is
  E'@behavior -single -update -delete\nLets other tables reference a row together with its organization, so that they cannot point into another one.';
comment on table app_public.notification_channels is
  E'Where alerts are sent. `config` holds what is not secret: `webhook` {url}, `slack` {} (its URL is a secret), `telegram` {chat_id}, `email` {to: [...], from?, smtp_host?, smtp_port?, smtp_secure?, smtp_user?}. Secrets (`webhook` signing_secret, `slack` webhook_url, `telegram` bot_token, `email` smtp_password) are set with `setNotificationChannelSecrets`, stored encrypted and never readable.';
comment on column app_public.notification_channels.id is E'The channel''s id.';
comment on column app_public.notification_channels.organization_id is E'The organization it belongs to.';
comment on column app_public.notification_channels.name is E'Display name.';
comment on column app_public.notification_channels.kind is E'`webhook`, `slack`, `telegram` or `email`.';
comment on column app_public.notification_channels.config is E'Settings that are not secret (see the table''s description).';
comment on column app_public.notification_channels.secret_fields is E'Which secrets are set (their names, never their values).';
comment on column app_public.notification_channels.enabled is E'False to stop sending to it.';
comment on column app_public.notification_channels.created_by is E'Who created it.';
comment on column app_public.notification_channels.created_at is E'When it was created.';
comment on column app_public.notification_channels.updated_at is E'When it last changed.';

create function app_hidden.notification_channel_config_problem(kind text, config jsonb) returns text as $$
  select case kind
    when 'webhook' then
      case when coalesce(config ->> 'url', '') !~ '^https?://' then 'a webhook channel needs config.url, an http(s) URL' end
    when 'slack' then
      case when config ? 'webhook_url' then 'a Slack webhook URL is a secret: set it with setNotificationChannelSecrets' end
    when 'telegram' then
      case when coalesce(config ->> 'chat_id', '') !~ '^-?\d+$|^@\w+$' then 'a telegram channel needs config.chat_id (a chat id or @channel)'
           when config ? 'bot_token' then 'a bot token is a secret: set it with setNotificationChannelSecrets' end
    when 'email' then
      case when jsonb_typeof(config -> 'to') <> 'array' or jsonb_array_length(config -> 'to') = 0
             or exists (select 1 from jsonb_array_elements(config -> 'to') t where jsonb_typeof(t) <> 'string' or t #>> '{}' !~ '^[^@\s]+@[^@\s]+$')
             then 'an email channel needs config.to, a list of e-mail addresses'
           when config ? 'smtp_port' and (jsonb_typeof(config -> 'smtp_port') <> 'number' or (config ->> 'smtp_port')::numeric not between 1 and 65535)
             then 'config.smtp_port must be a port number'
           when config ? 'smtp_password' then 'the SMTP password is a secret: set it with setNotificationChannelSecrets' end
  end;
$$ language sql immutable set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.notification_channel_config_problem(text, jsonb) is
  E'Why a channel''s config does not suit its kind, or null.';

alter table app_public.notification_channels add constraint notification_channels_config_valid
  check (app_hidden.notification_channel_config_problem(kind, config) is null);

create table app_private.notification_channel_secrets (
  notification_channel_id uuid primary key references app_public.notification_channels on delete cascade,
  ciphertext bytea not null,
  updated_at timestamptz not null default now()
);
comment on table app_private.notification_channel_secrets is
  E'A channel''s secrets as one JSON object, encrypted with pgp_sym_encrypt (AES-256) and ENCRYPTION_KEY, which only the server and the worker hold.';

create table app_private.webhook_signing_secrets (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  ciphertext bytea not null,
  created_at timestamptz not null default now(),
  -- A rotated secret keeps signing (beside the new one) until then.
  retires_at timestamptz
);
create index on app_private.webhook_signing_secrets (organization_id, created_at desc);
comment on table app_private.webhook_signing_secrets is
  E'Each organization''s webhook signing secrets (`whsec_...`), encrypted like channel secrets; a rotated one signs beside the new one for 24 hours.';

alter table app_public.notification_channels enable row level security;
create policy select_member on app_public.notification_channels for select
  using (organization_id in (select app_public.current_user_organization_ids()));
create policy insert_member on app_public.notification_channels for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy update_member on app_public.notification_channels for update
  using (organization_id in (select app_hidden.current_user_organization_ids('member')))
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_member on app_public.notification_channels for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('member')));
grant select, delete on app_public.notification_channels to :DATABASE_VISITOR;
grant insert (organization_id, name, kind, config, enabled) on app_public.notification_channels to :DATABASE_VISITOR;
grant update (name, config, enabled) on app_public.notification_channels to :DATABASE_VISITOR;

create trigger _900_audit after insert or update or delete on app_public.notification_channels
  for each row execute procedure app_private.tg__audit('notification_channel');

/*
 * Called by the server's `setNotificationChannelSecrets` mutation, as the
 * visitor, with the key as a query parameter (never a setting): merges the
 * given secrets into the channel's (a null value removes one).
 */
create function app_hidden.set_notification_channel_secrets(notification_channel_id uuid, secrets jsonb, encryption_key text)
returns app_public.notification_channels as $$
declare
  v_channel app_public.notification_channels;
  v_allowed text := case (select kind from app_public.notification_channels c where c.id = notification_channel_id)
    when 'webhook' then 'signing_secret' when 'slack' then 'webhook_url' when 'telegram' then 'bot_token' when 'email' then 'smtp_password' end;
  v_current jsonb := '{}';
  v_merged jsonb;
  v_key text;
begin
  select * into v_channel from app_public.notification_channels c
  where c.id = set_notification_channel_secrets.notification_channel_id
    and c.organization_id in (select app_hidden.current_user_organization_ids('member'));
  if not found then
    raise exception 'there is no notification channel % you can manage', notification_channel_id using errcode = '42501';
  end if;
  if coalesce(encryption_key, '') = '' then
    raise exception 'no encryption key was given' using errcode = '22023';
  end if;
  if jsonb_typeof(secrets) <> 'object' then
    raise exception 'secrets must be a JSON object' using errcode = '22023';
  end if;
  for v_key in select jsonb_object_keys(secrets) loop
    if v_key <> v_allowed then
      raise exception 'a % channel has no secret "%" (it has "%")', v_channel.kind, v_key, v_allowed using errcode = '22023';
    end if;
    if jsonb_typeof(secrets -> v_key) not in ('string', 'null') or length(secrets ->> v_key) > 4000 then
      raise exception 'the secret "%" must be a string (or null to remove it)', v_key using errcode = '22023';
    end if;
  end loop;
  if v_channel.kind = 'slack' and coalesce(secrets ->> 'webhook_url', 'https://') !~ '^https?://' then
    raise exception 'webhook_url must be an http(s) URL' using errcode = '22023';
  end if;
  select pgp_sym_decrypt(s.ciphertext, encryption_key)::jsonb into v_current
    from app_private.notification_channel_secrets s
    where s.notification_channel_id = v_channel.id;
  v_merged := jsonb_strip_nulls(coalesce(v_current, '{}') || secrets);
  insert into app_private.notification_channel_secrets (notification_channel_id, ciphertext, updated_at)
    values (v_channel.id, pgp_sym_encrypt(v_merged::text, encryption_key, 'cipher-algo=aes256'), now())
    on conflict on constraint notification_channel_secrets_pkey do update set ciphertext = excluded.ciphertext, updated_at = now();
  update app_public.notification_channels c
    set secret_fields = array(select jsonb_object_keys(v_merged) order by 1)
    where c.id = v_channel.id
    returning * into v_channel;
  perform app_private.write_audit_log(v_channel.organization_id, 'notification_channel.secrets_set', 'notification_channel',
    v_channel.id::text, jsonb_build_object('fields', v_channel.secret_fields));
  return v_channel;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.set_notification_channel_secrets(uuid, jsonb, text) is
  E'Sets (merges) a channel''s secrets, encrypted with the given key. Only for the server, which holds ENCRYPTION_KEY.';

create function app_private.notification_channel_secrets(notification_channel_id uuid, encryption_key text) returns jsonb as $$
  select coalesce((
    select pgp_sym_decrypt(s.ciphertext, encryption_key)::jsonb
    from app_private.notification_channel_secrets s
    where s.notification_channel_id = notification_channel_secrets.notification_channel_id
  ), '{}');
$$ language sql stable security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.notification_channel_secrets(uuid, text) is
  E'A channel''s secrets, decrypted (for the worker, which holds the key).';

create function app_hidden.rotate_webhook_signing_secret(organization_id uuid, encryption_key text) returns text as $$
declare
  v_secret text := 'whsec_' || encode(gen_random_bytes(24), 'hex');
begin
  if not rotate_webhook_signing_secret.organization_id in (select app_hidden.current_user_organization_ids('admin')) then
    raise exception 'only an owner or admin of the organization can rotate its webhook signing secret' using errcode = '42501';
  end if;
  if coalesce(encryption_key, '') = '' then
    raise exception 'no encryption key was given' using errcode = '22023';
  end if;
  update app_private.webhook_signing_secrets s set retires_at = now() + interval '24 hours'
    where s.organization_id = rotate_webhook_signing_secret.organization_id and s.retires_at is null;
  insert into app_private.webhook_signing_secrets (organization_id, ciphertext)
    values (rotate_webhook_signing_secret.organization_id, pgp_sym_encrypt(v_secret, encryption_key, 'cipher-algo=aes256'));
  perform app_private.write_audit_log(rotate_webhook_signing_secret.organization_id, 'webhook_signing_secret.rotated',
    'organization', rotate_webhook_signing_secret.organization_id::text, '{}');
  return v_secret;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_hidden.rotate_webhook_signing_secret(uuid, text) is
  E'Makes a new webhook signing secret for an organization (owners and admins) and returns it, the only time it is shown; the previous one keeps signing for 24 hours. Only for the server, which holds ENCRYPTION_KEY.';

create function app_private.webhook_signing_secrets(organization_id uuid, encryption_key text) returns setof text as $$
begin
  -- One secret is made the first time an organization sends a webhook; `rotateWebhookSigningSecret` shows a new one.
  if not exists (select 1 from app_private.webhook_signing_secrets s
                 where s.organization_id = webhook_signing_secrets.organization_id and s.retires_at is null) then
    perform pg_advisory_xact_lock(hashtext('webhook_signing_secrets'), hashtext(organization_id::text));
    insert into app_private.webhook_signing_secrets (organization_id, ciphertext)
      select webhook_signing_secrets.organization_id,
             pgp_sym_encrypt('whsec_' || encode(gen_random_bytes(24), 'hex'), encryption_key, 'cipher-algo=aes256')
      where not exists (select 1 from app_private.webhook_signing_secrets s
                        where s.organization_id = webhook_signing_secrets.organization_id and s.retires_at is null);
  end if;
  return query
    select pgp_sym_decrypt(s.ciphertext, encryption_key)
    from app_private.webhook_signing_secrets s
    where s.organization_id = webhook_signing_secrets.organization_id
      and (s.retires_at is null or s.retires_at > now())
    order by s.retires_at is not null, s.created_at desc;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.webhook_signing_secrets(uuid, text) is
  E'The secrets an organization''s webhooks are signed with, current first (made on first use), decrypted for the worker.';

--------------------------------------------------------------------------------
-- Alert rules, alerts, notifications
--------------------------------------------------------------------------------

create table app_public.alert_rules (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  name text not null check (length(name) between 1 and 200),
  description text check (length(description) <= 10000),
  enabled boolean not null default true,
  scope text not null check (scope in ('agent', 'box', 'organization')),
  agent_id uuid,
  box_id uuid,
  condition text not null check (condition in ('consecutive_failures', 'metric_threshold', 'offline')),
  failure_threshold int check (failure_threshold between 1 and 1000),
  metric text check (metric ~ '^[a-z][a-z0-9_.]{0,99}$'),
  comparison text check (comparison in ('>', '>=', '<', '<=', '=', '<>')),
  threshold double precision,
  window_seconds int check (window_seconds between 0 and 86400),
  offline_after_seconds int check (offline_after_seconds between 1 and 604800),
  severity text not null default 'warning' check (severity in ('warning', 'critical')),
  cooldown_seconds int not null default 900 check (cooldown_seconds between 0 and 604800),
  notify_on_resolve boolean not null default false,
  created_by uuid default app_public.current_user_id() references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  foreign key (organization_id, agent_id) references app_public.agents (organization_id, id) on delete cascade,
  constraint alert_rules_scope_target check (case scope
    when 'agent' then agent_id is not null and box_id is null
    when 'box' then box_id is not null and agent_id is null
    else agent_id is null and box_id is null end),
  constraint alert_rules_condition_parameters check (case condition
    when 'consecutive_failures' then failure_threshold is not null
    when 'metric_threshold' then metric is not null and comparison is not null and threshold is not null and window_seconds is not null
    else offline_after_seconds is not null end)
);
create index on app_public.alert_rules (organization_id, created_at desc);
create index on app_public.alert_rules (agent_id, organization_id);
create index on app_public.alert_rules (box_id, organization_id);
create index on app_public.alert_rules (created_by);
create index on app_public.alert_rules (organization_id, condition, metric) where enabled;
create trigger _100_timestamps before insert or update on app_public.alert_rules
  for each row execute procedure app_private.tg__timestamps();

comment on constraint alert_rules_organization_id_id_key on app_public.alert_rules is
  E'@behavior -single -update -delete\nLets other tables reference a row together with its organization, so that they cannot point into another one.';
comment on table app_public.alert_rules is
  E'When to raise an alert, about what, how loudly and to which channels. Scope: one `agent`, one `box`, or the whole `organization` (every agent, box and cron job). Conditions: `consecutive_failures` (`failureThreshold` errors in a row in an agent''s logs or a cron job''s executions), `metric_threshold` (`metric` `comparison` `threshold` held for `windowSeconds`, e.g. cpu >= 95 for 300 s), `offline` (a box or agent unseen for `offlineAfterSeconds`). At most one alert is open per rule and subject; after one is raised, none is raised again for `cooldownSeconds`.';
comment on column app_public.alert_rules.id is E'The rule''s id.';
comment on column app_public.alert_rules.organization_id is E'The organization it belongs to.';
comment on column app_public.alert_rules.name is E'Display name, used in notifications.';
comment on column app_public.alert_rules.description is E'What it watches for.';
comment on column app_public.alert_rules.enabled is E'False to stop evaluating it.';
comment on column app_public.alert_rules.scope is E'`agent`, `box` or `organization`.';
comment on column app_public.alert_rules.agent_id is E'The agent watched (scope `agent`; its cron jobs too).';
comment on column app_public.alert_rules.box_id is E'The box watched (scope `box`; its agents and cron jobs too).';
comment on column app_public.alert_rules.condition is E'`consecutive_failures`, `metric_threshold` or `offline`.';
comment on column app_public.alert_rules.failure_threshold is E'`consecutive_failures`: how many errors in a row raise the alert.';
comment on column app_public.alert_rules.metric is E'`metric_threshold`: the metric''s name, e.g. `cpu`.';
comment on column app_public.alert_rules.comparison is E'`metric_threshold`: `>`, `>=`, `<`, `<=`, `=` or `<>`.';
comment on column app_public.alert_rules.threshold is E'`metric_threshold`: the value compared with.';
comment on column app_public.alert_rules.window_seconds is E'`metric_threshold`: how long every sample must meet the condition (0: the latest sample alone).';
comment on column app_public.alert_rules.offline_after_seconds is E'`offline`: how long unseen before the alert.';
comment on column app_public.alert_rules.severity is E'`warning` or `critical`.';
comment on column app_public.alert_rules.cooldown_seconds is E'After an alert is raised, no new one for the same subject for this long (default 900).';
comment on column app_public.alert_rules.notify_on_resolve is E'Also notify the channels when the alert resolves itself.';
comment on column app_public.alert_rules.created_by is E'Who created it.';
comment on column app_public.alert_rules.created_at is E'When it was created.';
comment on column app_public.alert_rules.updated_at is E'When it last changed.';

alter table app_public.alert_rules enable row level security;
create policy select_member on app_public.alert_rules for select
  using (organization_id in (select app_public.current_user_organization_ids()));
create policy insert_member on app_public.alert_rules for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy update_member on app_public.alert_rules for update
  using (organization_id in (select app_hidden.current_user_organization_ids('member')))
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_member on app_public.alert_rules for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('member')));
grant select, delete on app_public.alert_rules to :DATABASE_VISITOR;
grant insert (organization_id, name, description, enabled, scope, agent_id, box_id, condition, failure_threshold, metric,
              comparison, threshold, window_seconds, offline_after_seconds, severity, cooldown_seconds, notify_on_resolve)
  on app_public.alert_rules to :DATABASE_VISITOR;
grant update (name, description, enabled, scope, agent_id, box_id, condition, failure_threshold, metric,
              comparison, threshold, window_seconds, offline_after_seconds, severity, cooldown_seconds, notify_on_resolve)
  on app_public.alert_rules to :DATABASE_VISITOR;

create trigger _900_audit after insert or update or delete on app_public.alert_rules
  for each row execute procedure app_private.tg__audit('alert_rule');

create table app_public.alert_rule_channels (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  alert_rule_id uuid not null,
  notification_channel_id uuid not null,
  created_at timestamptz not null default now(),
  constraint alert_rule_channels_once unique (organization_id, alert_rule_id, notification_channel_id),
  constraint alert_rule_channels_rule_fkey foreign key (organization_id, alert_rule_id)
    references app_public.alert_rules (organization_id, id) on delete cascade,
  constraint alert_rule_channels_channel_fkey foreign key (organization_id, notification_channel_id)
    references app_public.notification_channels (organization_id, id) on delete cascade
);
create index on app_public.alert_rule_channels (alert_rule_id);
create index on app_public.alert_rule_channels (notification_channel_id);

comment on table app_public.alert_rule_channels is
  E'@behavior -update\nWhich channels a rule notifies (rule and channel of the same organization).';
comment on column app_public.alert_rule_channels.id is E'The link''s id.';
comment on column app_public.alert_rule_channels.organization_id is E'The organization of both.';
comment on column app_public.alert_rule_channels.alert_rule_id is E'The rule.';
comment on column app_public.alert_rule_channels.notification_channel_id is E'A channel it notifies.';
comment on column app_public.alert_rule_channels.created_at is E'When the channel was added.';

alter table app_public.alert_rule_channels enable row level security;
create policy select_member on app_public.alert_rule_channels for select
  using (organization_id in (select app_public.current_user_organization_ids()));
create policy insert_member on app_public.alert_rule_channels for insert
  with check (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_member on app_public.alert_rule_channels for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('member')));
grant select, delete on app_public.alert_rule_channels to :DATABASE_VISITOR;
grant insert (organization_id, alert_rule_id, notification_channel_id) on app_public.alert_rule_channels to :DATABASE_VISITOR;

create table app_public.alerts (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  alert_rule_id uuid not null,
  subject_type text not null check (subject_type in ('agent', 'box', 'cronjob')),
  agent_id uuid,
  box_id uuid,
  cronjob_id uuid,
  subject_id uuid not null generated always as (coalesce(agent_id, box_id, cronjob_id)) stored,
  severity text not null check (severity in ('warning', 'critical')),
  status text not null default 'open' check (status in ('open', 'acknowledged', 'resolved')),
  title text not null,
  details jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  triggered_at timestamptz not null default now(),
  acknowledged_by uuid references app_public.users on delete set null,
  acknowledged_at timestamptz,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (organization_id, alert_rule_id) references app_public.alert_rules (organization_id, id) on delete cascade,
  foreign key (organization_id, agent_id) references app_public.agents (organization_id, id) on delete cascade,
  foreign key (organization_id, cronjob_id) references app_public.cronjobs (organization_id, id) on delete cascade,
  constraint alerts_one_subject check (case subject_type
    when 'agent' then num_nonnulls(agent_id, box_id, cronjob_id) = 1 and agent_id is not null
    when 'box' then num_nonnulls(agent_id, box_id, cronjob_id) = 1 and box_id is not null
    else num_nonnulls(agent_id, box_id, cronjob_id) = 1 and cronjob_id is not null end)
);
-- At most one open (or acknowledged) alert per rule and subject.
create unique index alerts_one_active_per_rule_and_subject on app_public.alerts (alert_rule_id, subject_id)
  where status <> 'resolved';
create index on app_public.alerts (organization_id, triggered_at desc);
create index on app_public.alerts (alert_rule_id, organization_id, subject_id, triggered_at desc);
create index on app_public.alerts (agent_id, organization_id);
create index on app_public.alerts (box_id, organization_id);
create index on app_public.alerts (cronjob_id, organization_id);
create index on app_public.alerts (acknowledged_by);
create index on app_public.alerts (status) where status <> 'resolved';
create trigger _100_timestamps before insert or update on app_public.alerts
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.alerts is
  E'@behavior -insert -update -delete\nAn alert raised by a rule about one subject (an agent, a box or a cron job). It resolves itself when the condition clears; members acknowledge it with `acknowledgeAlert`.';
comment on column app_public.alerts.id is E'The alert''s id.';
comment on column app_public.alerts.organization_id is E'The organization it belongs to.';
comment on column app_public.alerts.alert_rule_id is E'The rule that raised it.';
comment on column app_public.alerts.subject_type is E'`agent`, `box` or `cronjob`.';
comment on column app_public.alerts.agent_id is E'The agent, when it is about one.';
comment on column app_public.alerts.box_id is E'The box, when it is about one.';
comment on column app_public.alerts.cronjob_id is E'The cron job, when it is about one.';
comment on column app_public.alerts.subject_id is E'The id of the agent, box or cron job.';
comment on column app_public.alerts.severity is E'`warning` or `critical` (the rule''s, when raised).';
comment on column app_public.alerts.status is E'`open`, `acknowledged` or `resolved`.';
comment on column app_public.alerts.title is E'One line saying what is wrong.';
comment on column app_public.alerts.details is E'What was seen: counts, values, times.';
comment on column app_public.alerts.triggered_at is E'When it was raised.';
comment on column app_public.alerts.acknowledged_by is E'Who acknowledged it.';
comment on column app_public.alerts.acknowledged_at is E'When it was acknowledged.';
comment on column app_public.alerts.resolved_at is E'When the condition cleared.';
comment on column app_public.alerts.created_at is E'When the row was written.';
comment on column app_public.alerts.updated_at is E'When it last changed.';

alter table app_public.alerts enable row level security;
create policy select_member on app_public.alerts for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.alerts to :DATABASE_VISITOR;

create table app_public.notifications (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  notification_channel_id uuid not null,
  alert_id uuid,
  event text not null check (event in ('alert.opened', 'alert.resolved', 'test')),
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts int not null default 0 check (attempts >= 0),
  last_error text,
  last_attempt_at timestamptz,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (organization_id, notification_channel_id) references app_public.notification_channels (organization_id, id) on delete cascade,
  foreign key (alert_id) references app_public.alerts on delete cascade
);
create index on app_public.notifications (organization_id, created_at desc);
create index on app_public.notifications (notification_channel_id, organization_id, created_at desc);
create index on app_public.notifications (alert_id);
create trigger _100_timestamps before insert or update on app_public.notifications
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.notifications is
  E'@behavior -insert -update -delete\nThe delivery log: one row per message to a channel (an alert raised or resolved, or a test), with its attempts. The worker retries with growing delays (NOTIFICATION_MAX_ATTEMPTS).';
comment on column app_public.notifications.id is E'The notification''s id (also sent to receivers, to drop duplicates).';
comment on column app_public.notifications.organization_id is E'The organization it belongs to.';
comment on column app_public.notifications.notification_channel_id is E'The channel it goes to.';
comment on column app_public.notifications.alert_id is E'The alert it is about (none for a test).';
comment on column app_public.notifications.event is E'`alert.opened`, `alert.resolved` or `test`.';
comment on column app_public.notifications.status is E'`pending` (being delivered or retried), `sent` or `failed` (gave up).';
comment on column app_public.notifications.attempts is E'Delivery attempts so far.';
comment on column app_public.notifications.last_error is E'Why the last attempt failed.';
comment on column app_public.notifications.last_attempt_at is E'When it was last tried.';
comment on column app_public.notifications.sent_at is E'When it was delivered.';
comment on column app_public.notifications.created_at is E'When it was queued.';
comment on column app_public.notifications.updated_at is E'When it last changed.';

alter table app_public.notifications enable row level security;
create policy select_member on app_public.notifications for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.notifications to :DATABASE_VISITOR;

create function app_private.queue_notification(organization_id uuid, notification_channel_id uuid, alert_id uuid, event text)
returns uuid as $$
declare
  v_id uuid;
begin
  insert into app_public.notifications (organization_id, notification_channel_id, alert_id, event)
    values (organization_id, notification_channel_id, alert_id, event)
    returning id into v_id;
  perform graphile_worker.add_job('notification_deliver', json_build_object('notificationId', v_id),
    job_key := 'notification:' || v_id, max_attempts := 25);
  return v_id;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.queue_notification(uuid, uuid, uuid, text) is
  E'Writes a pending notification and queues its delivery.';

create function app_private.record_notification_attempt(notification_id uuid, delivered boolean, error text, give_up boolean)
returns app_public.notifications as $$
  update app_public.notifications n set
    attempts = n.attempts + 1,
    last_attempt_at = now(),
    status = case when delivered then 'sent' when give_up then 'failed' else 'pending' end,
    sent_at = case when delivered then now() else n.sent_at end,
    last_error = case when delivered then n.last_error else error end
  where n.id = record_notification_attempt.notification_id and n.status = 'pending'
  returning *;
$$ language sql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.record_notification_attempt(uuid, boolean, text, boolean) is
  E'Logs one delivery attempt: sent, failed for good (give_up), or still pending for a retry.';

create function app_public.send_test_notification(notification_channel_id uuid) returns app_public.notifications as $$
declare
  v_channel app_public.notification_channels;
  v_id uuid;
begin
  select * into v_channel from app_public.notification_channels c
  where c.id = send_test_notification.notification_channel_id
    and c.organization_id in (select app_hidden.current_user_organization_ids('member'));
  if not found then
    raise exception 'there is no notification channel % you can manage', notification_channel_id using errcode = '42501';
  end if;
  v_id := app_private.queue_notification(v_channel.organization_id, v_channel.id, null, 'test');
  return (select n from app_public.notifications n where n.id = v_id);
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.send_test_notification(uuid) is
  E'Sends a test message to a channel (members and up); follow its delivery in the returned notification.';

create function app_private.open_alert(rule app_public.alert_rules, subject_type text, subject_id uuid, title text, details jsonb)
returns uuid as $$
#variable_conflict use_column
declare
  v_alert_id uuid;
  v_channel_id uuid;
begin
  -- Already open: keep it (with what was seen last).
  update app_public.alerts a set details = open_alert.details
    where a.alert_rule_id = rule.id and a.subject_id = open_alert.subject_id and a.status <> 'resolved'
      and a.details is distinct from open_alert.details;
  if exists (select 1 from app_public.alerts a
             where a.alert_rule_id = rule.id and a.organization_id = rule.organization_id and a.subject_id = open_alert.subject_id
               and (a.status <> 'resolved' or a.triggered_at > now() - make_interval(secs => rule.cooldown_seconds))) then
    return null;
  end if;
  insert into app_public.alerts (organization_id, alert_rule_id, subject_type, agent_id, box_id, cronjob_id, severity, title, details)
    values (rule.organization_id, rule.id, subject_type,
            case when subject_type = 'agent' then subject_id end,
            case when subject_type = 'box' then subject_id end,
            case when subject_type = 'cronjob' then subject_id end,
            rule.severity, title, details)
    on conflict (alert_rule_id, subject_id) where status <> 'resolved' do nothing
    returning id into v_alert_id;
  if v_alert_id is not null then
    for v_channel_id in
      select rc.notification_channel_id from app_public.alert_rule_channels rc
      join app_public.notification_channels c on c.id = rc.notification_channel_id
      where rc.alert_rule_id = rule.id and c.enabled
    loop
      perform app_private.queue_notification(rule.organization_id, v_channel_id, v_alert_id, 'alert.opened');
    end loop;
  end if;
  return v_alert_id;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.open_alert(app_public.alert_rules, text, uuid, text, jsonb) is
  E'Raises a rule''s alert about a subject and notifies the rule''s channels, unless one is already open or the cooldown since the last one has not passed; returns the new alert''s id, or null.';

create function app_private.resolve_alert(rule app_public.alert_rules, subject_type text, subject_id uuid) returns uuid as $$
declare
  v_alert_id uuid;
  v_channel_id uuid;
begin
  update app_public.alerts a set status = 'resolved', resolved_at = now()
    where a.alert_rule_id = rule.id and a.subject_id = resolve_alert.subject_id and a.status <> 'resolved'
    returning a.id into v_alert_id;
  if v_alert_id is not null and rule.notify_on_resolve then
    for v_channel_id in
      select rc.notification_channel_id from app_public.alert_rule_channels rc
      join app_public.notification_channels c on c.id = rc.notification_channel_id
      where rc.alert_rule_id = rule.id and c.enabled
    loop
      perform app_private.queue_notification(rule.organization_id, v_channel_id, v_alert_id, 'alert.resolved');
    end loop;
  end if;
  return v_alert_id;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.resolve_alert(app_public.alert_rules, text, uuid) is
  E'Resolves a rule''s open alert about a subject, if any (notifying when the rule asks); returns its id, or null.';

create function app_public.acknowledge_alert(alert_id uuid) returns app_public.alerts as $$
declare
  v_alert app_public.alerts;
begin
  update app_public.alerts a set status = 'acknowledged', acknowledged_by = app_public.current_user_id(), acknowledged_at = now()
    where a.id = acknowledge_alert.alert_id and a.status = 'open'
      and a.organization_id in (select app_hidden.current_user_organization_ids('member'))
    returning * into v_alert;
  if not found then
    select * into v_alert from app_public.alerts a
      where a.id = acknowledge_alert.alert_id and a.organization_id in (select app_hidden.current_user_organization_ids('member'));
    if not found then
      raise exception 'there is no alert % you can manage', alert_id using errcode = '42501';
    end if;
  end if;
  return v_alert;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.acknowledge_alert(uuid) is
  E'Acknowledges an open alert (members and up): someone is on it. It still resolves itself when the condition clears.';

/*
 * consecutive_failures: a subject (an agent, from its logs; a cron job, from
 * its executions) has `failures` errors in a row. Every enabled rule whose
 * scope covers the subject opens or resolves its alert.
 */
create function app_private.evaluate_failure_rules(organization_id uuid, subject_type text, subject_id uuid, failures int, box_id uuid, agent_id uuid)
returns void as $$
declare
  v_rule app_public.alert_rules;
  v_name text := case subject_type
    when 'agent' then (select a.name from app_public.agents a where a.id = subject_id)
    else (select c.name from app_public.cronjobs c where c.id = subject_id) end;
begin
  for v_rule in
    select * from app_public.alert_rules r
    where r.organization_id = evaluate_failure_rules.organization_id
      and r.enabled and r.condition = 'consecutive_failures'
      and (r.scope = 'organization'
           or (r.scope = 'agent' and r.agent_id = evaluate_failure_rules.agent_id)
           or (r.scope = 'box' and r.box_id = evaluate_failure_rules.box_id))
  loop
    if failures >= v_rule.failure_threshold then
      perform app_private.open_alert(v_rule, subject_type, subject_id,
        format('%s %s failed %s times in a row', replace(subject_type, 'cronjob', 'cron job'), coalesce(v_name, subject_id::text), failures),
        jsonb_build_object('consecutive_failures', failures, 'failure_threshold', v_rule.failure_threshold));
    elsif failures = 0 then
      perform app_private.resolve_alert(v_rule, subject_type, subject_id);
    end if;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.evaluate_failure_rules(uuid, text, uuid, int, uuid, uuid) is
  E'Applies the consecutive_failures rules covering a subject (an agent or a cron job, on box_id / of agent_id) to its count of failures in a row: at the threshold an alert opens, at zero it resolves.';

create function app_private.tg_agent_logs__count_failures() returns trigger as $$
declare
  v_agent app_public.agents;
begin
  update app_public.agents a set
    consecutive_failures = case new.status when 'error' then a.consecutive_failures + 1 when 'success' then 0 else a.consecutive_failures end,
    last_active_at = greatest(a.last_active_at, now())
  where a.id = new.agent_id
  returning * into v_agent;
  if new.status <> 'warning' then
    perform app_private.evaluate_failure_rules(v_agent.organization_id, 'agent', v_agent.id, v_agent.consecutive_failures,
                                               v_agent.box_id, v_agent.id);
  end if;
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_agent_logs__count_failures() is
  E'Trigger: counts an agent''s errors in a row and evaluates consecutive_failures alert rules.';
create trigger _500_count_failures after insert on app_public.agent_logs
  for each row execute procedure app_private.tg_agent_logs__count_failures();

--------------------------------------------------------------------------------
-- Running cron jobs (called by the worker's cronjob_run task)
--------------------------------------------------------------------------------

/*
 * Starts what an execution does. Box commands are queued here, in the same
 * transaction as the execution; HTTP deliveries get a job of their own
 * (`cronjob_deliver`, retried), which run_cronjob queues together with the
 * next run. A failure to start is the execution's
 * failure, never the scheduler's: the next run is planned all the same.
 */
create function app_private.dispatch_cronjob_execution(job app_public.cronjobs, execution app_public.cronjob_executions)
returns boolean as $$
declare
  v_agent app_public.agents;
  v_box_id uuid := job.box_id;
  v_deliver boolean := job.action = 'webhook';
  v_command_type text;
  v_payload jsonb;
  v_command_id uuid;
begin
  if job.action = 'run_bash_command' then
    v_command_type := 'bash.exec';
    -- bash.exec takes its time-out in its payload (the box enforces it, the bridge allows 5 s more).
    v_payload := job.payload || jsonb_build_object('command', job.task)
      || case when job.timeout_seconds is null then '{}' else jsonb_build_object('timeout_ms', job.timeout_seconds * 1000) end;
  elsif not v_deliver then
    if job.agent_id is not null then
      select * into v_agent from app_public.agents a where a.id = job.agent_id;
      if not v_agent.enabled or (v_agent.box_id is null and v_agent.webhook_url is null) then
        perform app_private.finish_cronjob_execution(execution.id, 'failure', null,
          case when not v_agent.enabled then 'the agent is disabled'
               else 'the agent has no box and no webhook_url: nowhere to send the task' end);
        return false;
      end if;
      v_box_id := v_agent.box_id;
      v_deliver := v_box_id is null;
    end if;
    v_command_type := 'agent.run';
    v_payload := jsonb_build_object(
      'agent_id', job.agent_id,
      'mode', case job.action when 'create_agent_with_task' then 'new' else 'conversation' end,
      'task', job.task,
      'payload', job.payload,
      'cronjob_id', job.id,
      'execution_id', execution.id
    );
  end if;
  if v_deliver then
    return true;
  end if;
  -- Only queueing a command can fail (rate limits, a deleted box): that fails the execution, not the scheduler.
  begin
    select c.id into v_command_id
      from app_private.queue_box_command(v_box_id, v_command_type, v_payload, 'schedule',
        case when v_command_type = 'bash.exec' then null else job.timeout_seconds * 1000 end, job.created_by) c;
    update app_public.cronjob_executions e set box_command_id = v_command_id where e.id = execution.id;
  exception when others then
    perform app_private.finish_cronjob_execution(execution.id, 'failure', null, sqlerrm);
  end;
  return false;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.dispatch_cronjob_execution(app_public.cronjobs, app_public.cronjob_executions) is
  E'Starts an execution''s action: queues its box command (bash.exec, agent.run), or returns true when it is an HTTP delivery (the caller queues a cronjob_deliver job). An error fails the execution.';

/*
 * The worker computed, with cron-parser, the time that is due (due_at, or
 * null when only planning) and the one after it (next_run_at). Under the cron
 * job's row lock: drop the call if the cron job changed since (another
 * revision) or is gone; record the due run once (unique per scheduled time:
 * a second worker, or a retry, finds it done); start it, or record it skipped
 * when it was missed and the policy is `skip`; and queue the job for the next
 * time (job key `cronjob:<id>`, replacing any other).
 */
create function app_private.run_cronjob(cronjob_id uuid, revision int, due_at timestamptz, next_run_at timestamptz, missed boolean)
returns text as $$
declare
  v_job app_public.cronjobs;
  v_execution app_public.cronjob_executions;
  v_skip boolean;
  v_deliver boolean := false;
  v_outcome text := 'planned';
begin
  select * into v_job from app_public.cronjobs c where c.id = run_cronjob.cronjob_id for update;
  if not found or not v_job.enabled or v_job.revision <> run_cronjob.revision then
    return 'stale';
  end if;
  if due_at is not null then
    v_skip := missed and v_job.catch_up_policy = 'skip';
    insert into app_public.cronjob_executions
      (organization_id, cronjob_id, scheduled_for, status, started_at, finished_at, duration_ms, error, metadata)
    values (
      v_job.organization_id, v_job.id, due_at,
      case when v_skip then 'skipped' else 'running' end,
      greatest(clock_timestamp(), due_at),
      case when v_skip then greatest(clock_timestamp(), due_at) end,
      case when v_skip then 0 end,
      case when v_skip then format('missed by %s s (catch-up policy skip)', round(extract(epoch from clock_timestamp() - due_at))) end,
      jsonb_build_object('lateness_ms', greatest(0, round(extract(epoch from clock_timestamp() - due_at) * 1000)), 'missed', missed)
    )
    on conflict on constraint cronjob_executions_cronjob_id_scheduled_for_key do nothing
    returning * into v_execution;
    if v_execution.id is null then
      v_outcome := 'duplicate';
    elsif v_skip then
      v_outcome := 'skipped';
    else
      v_outcome := 'started';
      v_deliver := app_private.dispatch_cronjob_execution(v_job, v_execution);
    end if;
  end if;
  update app_public.cronjobs c set
    next_run_at = run_cronjob.next_run_at,
    last_run_at = case when v_outcome = 'started' then v_execution.started_at else c.last_run_at end
  where c.id = v_job.id;
  -- One add_jobs call for the next run and, for an HTTP action, its delivery (half the cost of two add_job calls).
  -- The delivery needs no job key: it delivers only a running execution.
  perform 1 from graphile_worker.add_jobs(array[
    row('cronjob_run', json_build_object('cronjobId', v_job.id, 'revision', v_job.revision, 'schedule', v_job.schedule,
                                         'timezone', v_job.timezone, 'dueAt', run_cronjob.next_run_at),
        null, run_cronjob.next_run_at, 10, 'cronjob:' || v_job.id, null, null)::graphile_worker.job_spec
  ] || case when v_deliver then array[
    row('cronjob_deliver', json_build_object('executionId', v_execution.id), null, null, 25, null, null, null)::graphile_worker.job_spec
  ] else '{}' end);
  return v_outcome;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.run_cronjob(uuid, int, timestamptz, timestamptz, boolean) is
  E'For the scheduler: runs (or skips) a cron job''s due time once, and plans its next run. Returns stale, duplicate, skipped, started or planned.';

--------------------------------------------------------------------------------
-- The alert sweep (worker task alerts_sweep, every minute)
--------------------------------------------------------------------------------

create function app_private.sweep_alerts(missed_intervals numeric) returns void as $$
declare
  v_rule app_public.alert_rules;
  v_subject record;
begin
  perform app_private.mark_agents_offline(missed_intervals);
  for v_rule in select * from app_public.alert_rules r where r.enabled and r.condition = 'offline' loop
    -- Agents that have ever sent a heartbeat (paused and disabled ones are left alone).
    for v_subject in
      select a.id, a.name, a.last_heartbeat_at as seen_at, a.last_heartbeat_at < now() - make_interval(secs => v_rule.offline_after_seconds) as offline
      from app_public.agents a
      where a.organization_id = v_rule.organization_id
        and a.enabled and a.status <> 'paused' and a.last_heartbeat_at is not null
        and (v_rule.scope = 'organization'
             or (v_rule.scope = 'agent' and a.id = v_rule.agent_id)
             or (v_rule.scope = 'box' and a.box_id = v_rule.box_id))
    loop
      if v_subject.offline then
        perform app_private.open_alert(v_rule, 'agent', v_subject.id,
          format('agent %s has not been seen for %s', v_subject.name, date_trunc('second', now() - v_subject.seen_at)),
          jsonb_build_object('last_seen_at', v_subject.seen_at, 'offline_after_seconds', v_rule.offline_after_seconds));
      else
        perform app_private.resolve_alert(v_rule, 'agent', v_subject.id);
      end if;
    end loop;
    perform app_private.sweep_offline_boxes(v_rule);
  end loop;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.sweep_alerts(numeric) is
  E'Every minute: marks agents with overdue heartbeats inactive, and opens or resolves `offline` alerts for the agents and boxes each rule covers.';

--------------------------------------------------------------------------------
-- What ties this module to boxes (the boxes and bridge migration)
--------------------------------------------------------------------------------

-- A box and what references it are always of one organization.
alter table app_public.agents add foreign key (box_id, organization_id)
  references app_public.boxes (id, organization_id) on delete cascade;
alter table app_public.cronjobs add foreign key (box_id, organization_id)
  references app_public.boxes (id, organization_id) on delete cascade;
alter table app_public.alert_rules add foreign key (box_id, organization_id)
  references app_public.boxes (id, organization_id) on delete cascade;
alter table app_public.alerts add foreign key (box_id, organization_id)
  references app_public.boxes (id, organization_id) on delete cascade;

/*
 * Cloud agents (no box) report metrics too: their samples have no box. The
 * foreign key to boxes (box_id, organization_id) simply does not apply to them.
 */
alter table app_public.metric_samples alter column box_id drop not null;
comment on column app_public.metric_samples.box_id is E'The box that reported it (none for a cloud agent''s own metrics).';

create function app_private.tg_agents__check_box_limit() returns trigger as $$
declare
  v_max int;
  v_count int;
begin
  -- One box's agents are counted one insert at a time.
  perform 1 from app_public.boxes b where b.id = new.box_id for update;
  select l.max_agents_per_box into v_max from app_public.organization_limits l where l.organization_id = new.organization_id;
  select count(*) into v_count from app_public.agents a where a.box_id = new.box_id and a.id <> new.id;
  if v_max is not null and v_count >= v_max then
    raise exception 'this box already runs % agent(s), the most this organization may have on one box (organization_limits.max_agents_per_box)', v_count
      using errcode = 'AGLIM', hint = 'move or delete an agent, or change the plan';
  end if;
  return new;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_agents__check_box_limit() is
  E'Trigger: refuses an agent on a box that already has organization_limits.max_agents_per_box agents (error AGLIM).';
create trigger _400_check_box_limit before insert or update of box_id on app_public.agents
  for each row when (new.box_id is not null) execute procedure app_private.tg_agents__check_box_limit();

--------------------------------------------------------------------------------
-- Heartbeats and metrics, with an agent key
--------------------------------------------------------------------------------

create function app_private.record_agent_metrics(agent app_public.agents, metrics jsonb, recorded_at timestamptz) returns int as $$
declare
  v_count int;
begin
  if metrics is null or metrics = '{}'::jsonb then
    return 0;
  end if;
  if jsonb_typeof(metrics) <> 'object' then
    raise exception 'metrics must be a JSON object of numbers, e.g. {"cpu.percent": 12.5}' using errcode = '22023';
  end if;
  if (select count(*) from jsonb_object_keys(metrics)) > 100 then
    raise exception 'at most 100 metrics at a time' using errcode = '22023';
  end if;
  if exists (select 1 from jsonb_each(metrics) m where jsonb_typeof(m.value) <> 'number' or m.key !~ '^[a-z][a-z0-9_.]{0,62}$') then
    raise exception 'metrics must map names (lower case, digits, _ and .) to numbers, e.g. {"cpu.percent": 12.5}' using errcode = '22023';
  end if;
  if recorded_at < now() - interval '1 day' or recorded_at > now() + interval '1 minute' then
    raise exception 'recorded_at must be within the last day' using errcode = '22023';
  end if;
  insert into app_public.metric_samples (organization_id, box_id, agent_id, name, value, recorded_at)
    select agent.organization_id, agent.box_id, agent.id, m.key, (m.value #>> '{}')::double precision, recorded_at
    from jsonb_each(metrics) m;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.record_agent_metrics(app_public.agents, jsonb, timestamptz) is
  E'Stores an agent''s metrics ({"name": number, ...}) as metric samples of the agent (and its box, if any).';

create function app_public.send_agent_heartbeat(metrics jsonb default null, status text default null) returns text as $$
declare
  v_agent app_public.agents;
begin
  if app_public.current_agent_id() is null then
    raise exception 'a heartbeat needs an agent API key (Authorization: Bearer agt_...)' using errcode = '42501';
  end if;
  if status is not null and status not in ('active', 'error') then
    raise exception 'an agent reports its status as active or error, not %', status using errcode = '22023';
  end if;
  update app_public.agents a set
    last_heartbeat_at = now(),
    last_active_at = now(),
    status = case when a.status = 'paused' then 'paused' else coalesce(send_agent_heartbeat.status, 'active') end
    where a.id = app_public.current_agent_id()
    returning * into v_agent;
  update app_public.agent_api_keys k set last_used_at = now()
    from app_private.agent_api_key_secrets s
    where s.agent_api_key_id = k.id and s.key_hash = current_setting('agentplane.token_hash', true)
      and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
  perform app_private.record_agent_metrics(v_agent, metrics, now());
  return v_agent.status;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.send_agent_heartbeat(jsonb, text) is
  E'For an agent, with its API key: "I am alive", with optional metrics ({"cpu.percent": 12.5, ...}) and status (`active` or `error`). Returns the agent''s status, so that it learns when it is `paused`.';

create function app_public.report_agent_metrics(metrics jsonb, recorded_at timestamptz default null) returns int as $$
declare
  v_agent app_public.agents;
begin
  select * into v_agent from app_public.agents a where a.id = app_public.current_agent_id();
  if not found then
    raise exception 'reporting metrics needs an agent API key (Authorization: Bearer agt_...)' using errcode = '42501';
  end if;
  update app_public.agents a set last_active_at = now() where a.id = v_agent.id;
  return app_private.record_agent_metrics(v_agent, metrics, coalesce(recorded_at, now()));
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.report_agent_metrics(jsonb, timestamptz) is
  E'For an agent, with its API key: stores its metrics ({"name": number, ...}, recorded now or at recorded_at, within the last day); returns how many.';

--------------------------------------------------------------------------------
-- Scheduled box commands end their executions
--------------------------------------------------------------------------------

create function app_private.tg_box_commands__finish_cronjob_execution() returns trigger as $$
begin
  perform app_private.finish_cronjob_execution(
    e.id,
    case new.status when 'succeeded' then 'success' when 'timed_out' then 'timed_out' else 'failure' end,
    coalesce(nullif(concat_ws(E'\n', new.stdout, new.stderr), ''), new.response::text),
    case when new.status <> 'succeeded' then concat_ws(': ', coalesce(new.error_code, upper(new.status)), new.error) end
  )
  from app_public.cronjob_executions e
  where e.box_command_id = new.id and e.status = 'running';
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_box_commands__finish_cronjob_execution() is
  E'Trigger: a command queued by a cron job reached its terminal state; its execution ends with it (succeeded: success, timed_out: timed_out, otherwise failure, with the output and the error).';
create trigger _600_finish_cronjob_execution after update of status on app_public.box_commands
  for each row when (new.origin = 'schedule'
                     and new.status in ('succeeded', 'failed', 'timed_out', 'expired', 'canceled')
                     and old.status not in ('succeeded', 'failed', 'timed_out', 'expired', 'canceled'))
  execute procedure app_private.tg_box_commands__finish_cronjob_execution();

create function app_public.cronjob_executions_box_command(execution app_public.cronjob_executions)
returns app_public.box_commands as $$
  select c.* from app_public.box_commands c where c.id = execution.box_command_id;
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_public.cronjob_executions_box_command(app_public.cronjob_executions) is
  E'The box command the execution queued (while it is kept: box commands go after 3 months).';

--------------------------------------------------------------------------------
-- metric_threshold and offline alerts about boxes and agents
--------------------------------------------------------------------------------

/*
 * A metric of one subject (an agent's samples, or a box's own: agent_id null)
 * against every enabled metric_threshold rule covering it. The condition
 * holds when the latest sample meets it and every sample since
 * window_seconds before that one did too; it clears with the first sample
 * that does not.
 */
create function app_private.evaluate_metric_rules(organization_id uuid, box_id uuid, agent_id uuid, metric text) returns void as $$
declare
  v_rule app_public.alert_rules;
  v_latest record;
  v_run_start timestamptz;
  v_subject_type text := case when evaluate_metric_rules.agent_id is null then 'box' else 'agent' end;
  v_subject_id uuid := coalesce(evaluate_metric_rules.agent_id, evaluate_metric_rules.box_id);
  v_name text;
begin
  for v_rule in
    select * from app_public.alert_rules r
    where r.organization_id = evaluate_metric_rules.organization_id
      and r.enabled and r.condition = 'metric_threshold' and r.metric = evaluate_metric_rules.metric
      and (r.scope = 'organization'
           or (r.scope = 'agent' and r.agent_id = evaluate_metric_rules.agent_id)
           or (r.scope = 'box' and r.box_id = evaluate_metric_rules.box_id and evaluate_metric_rules.agent_id is null))
  loop
    with window_samples as (
      select s.id, s.value, s.recorded_at,
             case v_rule.comparison
               when '>' then s.value > v_rule.threshold when '>=' then s.value >= v_rule.threshold
               when '<' then s.value < v_rule.threshold when '<=' then s.value <= v_rule.threshold
               when '=' then s.value = v_rule.threshold else s.value <> v_rule.threshold end as ok
      from app_public.metric_samples s
      where s.name = evaluate_metric_rules.metric
        and s.recorded_at > now() - make_interval(secs => v_rule.window_seconds * 2 + 120)
        and case when evaluate_metric_rules.agent_id is null
                 then s.box_id = evaluate_metric_rules.box_id and s.agent_id is null
                 else s.agent_id = evaluate_metric_rules.agent_id end
    )
    select l.value, l.recorded_at, l.ok,
           (select min(w.recorded_at) from window_samples w
             where w.recorded_at > coalesce((select max(b.recorded_at) from window_samples b where not b.ok), '-infinity')) as run_start
      into v_latest
      from (select * from window_samples order by recorded_at desc, id desc limit 1) l;
    continue when v_latest.recorded_at is null;
    if not v_latest.ok then
      perform app_private.resolve_alert(v_rule, v_subject_type, v_subject_id);
      continue;
    end if;
    v_run_start := v_latest.run_start;
    if v_latest.recorded_at - v_run_start >= make_interval(secs => v_rule.window_seconds) then
      v_name := case v_subject_type
        when 'agent' then (select a.name from app_public.agents a where a.id = v_subject_id)
        else (select b.name from app_public.boxes b where b.id = v_subject_id) end;
      perform app_private.open_alert(v_rule, v_subject_type, v_subject_id,
        format('%s %s: %s %s %s for %s s', v_subject_type, coalesce(v_name, v_subject_id::text), v_rule.metric,
               v_rule.comparison, v_rule.threshold, round(extract(epoch from v_latest.recorded_at - v_run_start))),
        jsonb_build_object('metric', v_rule.metric, 'comparison', v_rule.comparison, 'threshold', v_rule.threshold,
                           'latest_value', v_latest.value, 'since', v_run_start, 'window_seconds', v_rule.window_seconds));
    end if;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.evaluate_metric_rules(uuid, uuid, uuid, text) is
  E'Applies the metric_threshold rules covering one metric of a box (agent_id null) or an agent to its recent samples: opens the alert when the condition has held for the window, resolves it when the latest sample clears it.';

create function app_private.tg_metric_samples__evaluate_alerts() returns trigger as $$
declare
  v_subject record;
begin
  for v_subject in
    select distinct n.organization_id, n.box_id, n.agent_id, n.name
    from new_samples n
    where exists (select 1 from app_public.alert_rules r
                  where r.organization_id = n.organization_id and r.enabled
                    and r.condition = 'metric_threshold' and r.metric = n.name)
  loop
    perform app_private.evaluate_metric_rules(v_subject.organization_id, v_subject.box_id, v_subject.agent_id, v_subject.name);
  end loop;
  return null;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_metric_samples__evaluate_alerts() is
  E'Trigger: new samples of a metric some rule watches are checked against those rules at once.';
create trigger _500_evaluate_alerts after insert on app_public.metric_samples
  referencing new table as new_samples
  for each statement execute procedure app_private.tg_metric_samples__evaluate_alerts();

create function app_private.sweep_offline_boxes(rule app_public.alert_rules) returns void as $$
declare
  v_box record;
begin
  for v_box in
    select b.id, b.name, b.last_seen_at,
           b.status <> 'online' and coalesce(b.last_seen_at, b.created_at) < now() - make_interval(secs => rule.offline_after_seconds) as offline
    from app_public.boxes b
    where b.organization_id = rule.organization_id
      and b.status <> 'pending'
      and (rule.scope = 'organization' or (rule.scope = 'box' and b.id = rule.box_id))
  loop
    if v_box.offline then
      perform app_private.open_alert(rule, 'box', v_box.id,
        format('box %s has not been seen for %s', v_box.name, coalesce(date_trunc('second', now() - v_box.last_seen_at)::text, 'ever')),
        jsonb_build_object('last_seen_at', v_box.last_seen_at, 'offline_after_seconds', rule.offline_after_seconds));
    else
      perform app_private.resolve_alert(rule, 'box', v_box.id);
    end if;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.sweep_offline_boxes(app_public.alert_rules) is
  E'For one `offline` rule: opens an alert for each box it covers that is not online and unseen for offline_after_seconds (boxes never connected are left alone), resolves the others.';

--------------------------------------------------------------------------------
-- How the foreign keys appear in GraphQL
--------------------------------------------------------------------------------

comment on constraint agents_box_id_organization_id_fkey on app_public.agents is E'@fieldName box\n@foreignFieldName agents';
comment on constraint agents_type_id_fkey on app_public.agents is E'@fieldName type\n@foreignFieldName agents';
comment on constraint agents_parent_agent_id_fkey on app_public.agents is E'@fieldName parentAgent\n@foreignFieldName forks';
comment on constraint agents_created_by_fkey on app_public.agents is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint agent_api_keys_organization_id_agent_id_fkey on app_public.agent_api_keys is E'@fieldName agent\n@foreignFieldName apiKeys';
comment on constraint agent_api_keys_created_by_fkey on app_public.agent_api_keys is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint agent_logs_organization_id_agent_id_fkey on app_public.agent_logs is E'@fieldName agent\n@foreignFieldName logs';
comment on constraint cronjobs_organization_id_agent_id_fkey on app_public.cronjobs is E'@fieldName agent\n@foreignFieldName cronjobs';
comment on constraint cronjobs_box_id_organization_id_fkey on app_public.cronjobs is E'@fieldName box\n@foreignFieldName cronjobs';
comment on constraint cronjobs_created_by_fkey on app_public.cronjobs is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint cronjob_executions_organization_id_cronjob_id_fkey on app_public.cronjob_executions is E'@fieldName cronjob\n@foreignFieldName executions';
comment on constraint cronjob_executions_cronjob_id_scheduled_for_key on app_public.cronjob_executions is E'@behavior -*';
comment on constraint notification_channels_created_by_fkey on app_public.notification_channels is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint alert_rules_organization_id_agent_id_fkey on app_public.alert_rules is E'@fieldName agent\n@foreignFieldName alertRules';
comment on constraint alert_rules_box_id_organization_id_fkey on app_public.alert_rules is E'@fieldName box\n@foreignFieldName alertRules';
comment on constraint alert_rules_created_by_fkey on app_public.alert_rules is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint alert_rule_channels_rule_fkey on app_public.alert_rule_channels is E'@fieldName alertRule\n@foreignFieldName channelLinks';
comment on constraint alert_rule_channels_channel_fkey on app_public.alert_rule_channels is E'@fieldName notificationChannel\n@foreignFieldName ruleLinks';
comment on constraint alert_rule_channels_once on app_public.alert_rule_channels is E'@behavior -*';
comment on constraint alerts_organization_id_alert_rule_id_fkey on app_public.alerts is E'@fieldName alertRule\n@foreignFieldName alerts';
comment on constraint alerts_organization_id_agent_id_fkey on app_public.alerts is E'@fieldName agent\n@foreignFieldName alerts';
comment on constraint alerts_box_id_organization_id_fkey on app_public.alerts is E'@fieldName box\n@foreignFieldName alerts';
comment on constraint alerts_organization_id_cronjob_id_fkey on app_public.alerts is E'@fieldName cronjob\n@foreignFieldName alerts';
comment on constraint alerts_acknowledged_by_fkey on app_public.alerts is E'@fieldName acknowledger\n@backwardBehavior -*';
comment on constraint notifications_organization_id_notification_channel_id_fkey on app_public.notifications is E'@fieldName notificationChannel\n@foreignFieldName notifications';
comment on constraint notifications_alert_id_fkey on app_public.notifications is E'@fieldName alert\n@foreignFieldName notifications';
