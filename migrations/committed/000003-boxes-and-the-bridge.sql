--! Previous: sha1:59a8e07c94c57317c4ffd4cfc08c3d41b2b349ff
--! Hash: sha1:744750ed6534dc27800bfb935dae048a1fddd675
--! Message: boxes and the bridge

--
-- Boxes: boxes and their API keys, the commands sent to them (partitioned by
-- month), their metric samples (partitioned by day), presence, and the narrow
-- functions the bridge and the worker call (docs/bridge-protocol.md).
--
--   app_public   boxes, box_api_keys, box_commands, metric_samples, and the
--                mutations create_box, create_box_key, rotate_box_key,
--                revoke_box_key, send_box_command, cancel_box_command
--   app_private  key hashes, connections, bridge instances, and the trusted
--                functions: queue_box_command, bridge_*, sweeps, partition upkeep
--

--------------------------------------------------------------------------------
-- Settings. The server passes its configuration (src/config.ts) to every
-- database session as agentplane.* settings (src/db/pools.ts); SQL run without
-- them (psql, tests) gets the defaults named here.
--------------------------------------------------------------------------------

create function app_private.box_setting(name text, fallback bigint) returns bigint as $$
  select coalesce(nullif(current_setting('agentplane.' || name, true), '')::bigint, fallback);
$$ language sql stable set search_path to pg_catalog, public, pg_temp;
comment on function app_private.box_setting(text, bigint) is
  E'A whole-number setting agentplane.<name> of this session, or the fallback: box_commands_per_minute (100), organization_box_commands_per_hour (1000), box_command_timeout_ms (60000), box_command_expiry_ms (3600000), box_key_grace_hours (24), box_max_output_bytes (1048576).';

--------------------------------------------------------------------------------
-- Partitions: box_commands by month, metric_samples by day, each partition in
-- app_private (never exposed), created ahead and dropped past retention by the
-- worker (tasks/box_partitions_maintain.ts).
--------------------------------------------------------------------------------

create function app_private.maintain_partitions(parent regclass, unit text, ahead int, keep int)
returns table (action text, partition_name text) as $$
declare
  v_step interval := ('1 ' || unit)::interval;
  v_start timestamptz := date_trunc(unit, now(), 'UTC');
  v_from timestamptz;
  v_name text;
  v_partition record;
  v_upper timestamptz;
begin
  if unit not in ('month', 'day') or ahead < 0 or keep < 1 then
    raise exception 'maintain_partitions: unit must be month or day, ahead >= 0, keep >= 1' using errcode = '22023';
  end if;
  -- Serialise upkeep of one table (two workers, or a migration and a worker).
  perform pg_advisory_xact_lock(parent::oid::bigint);
  for i in 0..ahead loop
    v_from := v_start + i * v_step;
    v_name := format('%s_p%s', (select c.relname from pg_class c where c.oid = parent),
                     to_char(v_from at time zone 'UTC', case unit when 'month' then 'YYYYMM' else 'YYYYMMDD' end));
    if to_regclass(format('app_private.%I', v_name)) is null then
      execute format('create table app_private.%I partition of %s for values from (%L) to (%L)',
                     v_name, parent, v_from, v_from + v_step);
      action := 'created';
      partition_name := 'app_private.' || v_name;
      return next;
    end if;
  end loop;
  for v_partition in
    select c.oid::regclass::text as name, pg_get_expr(c.relpartbound, c.oid) as bound
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    where i.inhparent = parent
  loop
    v_upper := (regexp_match(v_partition.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz;
    if v_upper is not null and v_upper <= now() - keep * v_step then
      execute format('drop table %s', v_partition.name);
      action := 'dropped';
      partition_name := v_partition.name;
      return next;
    end if;
  end loop;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.maintain_partitions(regclass, text, int, int) is
  E'Creates the partitions of a table partitioned by range of time for the current `unit` (month or day) and `ahead` more, and drops those whose end is more than `keep` units ago. Idempotent; returns what it did.';

--------------------------------------------------------------------------------
-- Boxes
--------------------------------------------------------------------------------

create table app_public.boxes (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references app_public.organizations on delete cascade,
  name text not null check (length(name) between 1 and 100 and name = btrim(name)),
  hostname text check (length(hostname) <= 255),
  os text check (os in ('linux', 'windows', 'darwin')),
  arch text check (arch in ('amd64', 'arm64')),
  hardware_id text unique check (hardware_id ~ '^[!-~]{1,128}$'),
  status text not null default 'pending' check (status in ('pending', 'online', 'offline', 'error')),
  last_seen_at timestamptz,
  last_ip inet,
  agent_version text check (length(agent_version) <= 64),
  capabilities text[] not null default '{}' check (cardinality(capabilities) <= 64),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_by uuid references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, name),
  -- Lets the tables below tie a box and its organization together in one foreign key.
  unique (id, organization_id)
);
create index on app_public.boxes (organization_id, status);
create index on app_public.boxes (created_by);
-- last_seen_at moves with every presence flush: it does not touch updated_at.
create trigger _100_timestamps
  before insert or update of organization_id, name, hostname, os, arch, hardware_id, status, agent_version, capabilities, metadata
  on app_public.boxes
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.boxes is
  E'@behavior -insert\nA box: a mini-PC or edge device of an organization that connects to the bridge with an API key and runs commands. Create one with `createBox` (which shows its first key once).';
comment on column app_public.boxes.id is E'The box''s id.';
comment on column app_public.boxes.organization_id is E'The organization it belongs to.';
comment on column app_public.boxes.name is E'Its name, unique in the organization.';
comment on column app_public.boxes.hostname is E'The host name the box reported when it last connected.';
comment on column app_public.boxes.os is E'`linux`, `windows` or `darwin`, as reported by the box.';
comment on column app_public.boxes.arch is E'`amd64` or `arm64`, as reported by the box.';
comment on column app_public.boxes.hardware_id is E'The hardware id the box is bound to (set on its first connection; later connections from other hardware are refused).';
comment on column app_public.boxes.status is E'`pending` (never connected), `online`, `offline` or `error`.';
comment on column app_public.boxes.last_seen_at is E'When the bridge last heard from it (written in batches, every few seconds).';
comment on column app_public.boxes.last_ip is E'The address it last connected from.';
comment on column app_public.boxes.agent_version is E'The version of the box software, as reported by the box.';
comment on column app_public.boxes.capabilities is E'The command types the box said it handles.';
comment on column app_public.boxes.metadata is E'Free-form JSON.';
comment on column app_public.boxes.created_by is E'Who created it.';
comment on column app_public.boxes.created_at is E'When it was created.';
comment on column app_public.boxes.updated_at is E'When it last changed (presence included, last_seen_at excepted).';

create function app_private.tg_boxes__limit() returns trigger as $$
declare
  v_max int;
  v_count int;
begin
  -- Serialise box creation per organization, so that two at once cannot both slip under the limit.
  select l.max_boxes into v_max
  from app_public.organization_limits l
  where l.organization_id = new.organization_id
  for update;
  v_max := coalesce(v_max, 1);
  select count(*) into v_count from app_public.boxes b where b.organization_id = new.organization_id;
  if v_count >= v_max then
    raise exception 'this organization may have at most % box(es) (organization_limits.max_boxes): delete a box or change the plan', v_max
      using errcode = 'BXLIM';
  end if;
  return new;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_boxes__limit() is
  E'Trigger: refuses a box beyond the organization''s organization_limits.max_boxes (error BXLIM).';
create trigger _200_limit before insert on app_public.boxes
  for each row execute procedure app_private.tg_boxes__limit();

-- What people change is audited; presence and what the box reports (every few seconds) are not.
create trigger _900_audit after insert or delete or update of organization_id, name, metadata on app_public.boxes
  for each row execute procedure app_private.tg__audit(
    'box', 'status', 'last_seen_at', 'last_ip', 'hostname', 'os', 'arch', 'agent_version', 'capabilities', 'hardware_id');

--------------------------------------------------------------------------------
-- Box API keys: `box_<random>` shown once; SHA-256 kept in app_private.
--------------------------------------------------------------------------------

create table app_public.box_api_keys (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  box_id uuid not null,
  name text not null default 'default' check (length(name) between 1 and 100),
  prefix text not null check (prefix ~ '^box_[A-Za-z0-9_-]{8}$'),
  created_by uuid references app_public.users on delete set null,
  last_used_at timestamptz,
  last_used_ip inet,
  expires_at timestamptz,
  revoked_at timestamptz,
  replaced_by uuid references app_public.box_api_keys on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (box_id, organization_id) references app_public.boxes (id, organization_id) on delete cascade
);
create index on app_public.box_api_keys (box_id, organization_id);
create index on app_public.box_api_keys (organization_id);
create index on app_public.box_api_keys (created_by);
create index on app_public.box_api_keys (replaced_by);
create trigger _100_timestamps
  before insert or update of name, expires_at, revoked_at, replaced_by on app_public.box_api_keys
  for each row execute procedure app_private.tg__timestamps();

comment on table app_public.box_api_keys is
  E'@behavior -insert -update -delete\nThe API keys of a box (several at once, e.g. during a rotation). The key itself is shown once, when issued; only its first characters are kept here.';
comment on column app_public.box_api_keys.id is E'The key''s id.';
comment on column app_public.box_api_keys.organization_id is E'The organization of the box.';
comment on column app_public.box_api_keys.box_id is E'The box it opens.';
comment on column app_public.box_api_keys.name is E'What it is for.';
comment on column app_public.box_api_keys.prefix is E'Its first 12 characters (`box_` and 8 more), to recognise it.';
comment on column app_public.box_api_keys.created_by is E'Who issued it.';
comment on column app_public.box_api_keys.last_used_at is E'When a box last connected with it.';
comment on column app_public.box_api_keys.last_used_ip is E'The address it was last used from.';
comment on column app_public.box_api_keys.expires_at is E'After this it is refused (null: never; a rotated key expires at the end of its grace period).';
comment on column app_public.box_api_keys.revoked_at is E'When it was revoked; a revoked key is refused at once.';
comment on column app_public.box_api_keys.replaced_by is E'The key that replaced it in a rotation.';
comment on column app_public.box_api_keys.created_at is E'When it was issued.';
comment on column app_public.box_api_keys.updated_at is E'When it last changed.';

create table app_private.box_api_key_secrets (
  key_id uuid primary key references app_public.box_api_keys on delete cascade,
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$')
);
comment on table app_private.box_api_key_secrets is
  E'The SHA-256 (hex) of each box key: what the bridge looks a presented key up by.';

create type app_public.issued_box_key as (
  box_id uuid,
  key_id uuid,
  api_key text
);
comment on type app_public.issued_box_key is
  E'@foreignKey (box_id) references app_public.boxes (id)|@fieldName box\n@foreignKey (key_id) references app_public.box_api_keys (id)|@fieldName key\nA new box key. `apiKey` is shown only this once: give it to the box (`Authorization: Bearer box_…`).';
comment on column app_public.issued_box_key.box_id is E'The box.';
comment on column app_public.issued_box_key.key_id is E'The key''s record (without the key).';
comment on column app_public.issued_box_key.api_key is E'The key, `box_` and 43 characters; only its SHA-256 is stored.';

create function app_private.issue_box_key(box_id uuid, name text, expires_at timestamptz, created_by uuid)
returns app_public.issued_box_key as $$
declare
  v_box app_public.boxes;
  v_key app_public.box_api_keys;
  v_api_key text := 'box_' || rtrim(translate(encode(gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
begin
  select * into strict v_box from app_public.boxes b where b.id = issue_box_key.box_id;
  insert into app_public.box_api_keys (organization_id, box_id, name, prefix, expires_at, created_by)
    values (v_box.organization_id, v_box.id, coalesce(issue_box_key.name, 'default'), left(v_api_key, 12),
            issue_box_key.expires_at, issue_box_key.created_by)
    returning * into v_key;
  insert into app_private.box_api_key_secrets (key_id, key_hash) values (v_key.id, app_private.sha256_hex(v_api_key));
  perform app_private.write_audit_log(v_box.organization_id, 'box_key.created', 'box_key', v_key.id::text,
    jsonb_build_object('box_id', v_box.id, 'name', v_key.name, 'prefix', v_key.prefix, 'expires_at', v_key.expires_at));
  return row(v_box.id, v_key.id, v_api_key)::app_public.issued_box_key;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.issue_box_key(uuid, text, timestamptz, uuid) is
  E'Issues a key for a box: stores its SHA-256 and prefix, writes box_key.created to the audit log, and returns the key (the only time it exists in clear).';

--------------------------------------------------------------------------------
-- Bridge instances and box connections (presence)
--------------------------------------------------------------------------------

create table app_private.bridge_instances (
  id uuid primary key,
  hostname text,
  pid int,
  heartbeat_interval_ms int not null check (heartbeat_interval_ms > 0),
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now()
);
comment on table app_private.bridge_instances is
  E'Running bridge processes and their last heartbeat: an instance silent for three of its intervals is presumed dead, and its boxes marked offline (sweep_box_presence).';

create sequence app_private.box_connection_seq;
comment on sequence app_private.box_connection_seq is
  E'Orders box connections: a connection gets its number when its key is checked; a higher number is a newer connection.';

create table app_private.box_connections (
  box_id uuid primary key references app_public.boxes on delete cascade,
  connection_seq bigint not null,
  instance_id uuid references app_private.bridge_instances on delete set null,
  key_id uuid references app_public.box_api_keys on delete set null,
  ip inet,
  connected_at timestamptz not null default now(),
  disconnected_at timestamptz
);
create index on app_private.box_connections (instance_id);
create index on app_private.box_connections (key_id);
comment on table app_private.box_connections is
  E'The newest connection of each box: its number, the bridge instance holding it (null once closed) and the key it used. Presence changes only for the connection named here, so the late close of an older connection never marks a box offline.';

--------------------------------------------------------------------------------
-- Commands, partitioned by month of queued_at
--------------------------------------------------------------------------------

create sequence app_private.box_command_seq;
comment on sequence app_private.box_command_seq is E'Queue order of box commands.';

create table app_public.box_commands (
  id uuid not null default gen_random_uuid(),
  seq bigint not null default nextval('app_private.box_command_seq'),
  organization_id uuid not null,
  box_id uuid not null,
  agent_id uuid,
  command_type text not null check (command_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' and length(command_type) <= 128),
  payload jsonb not null default '{}' check (jsonb_typeof(payload) = 'object' and octet_length(payload::text) <= 524288),
  status text not null default 'queued'
    check (status in ('queued', 'sent', 'acked', 'succeeded', 'failed', 'timed_out', 'expired', 'canceled')),
  origin text not null default 'manual' check (origin in ('manual', 'schedule', 'agent', 'system')),
  created_by uuid references app_public.users on delete set null,
  response jsonb,
  error text,
  error_code text check (error_code ~ '^[A-Z][A-Z_]{0,63}$'),
  exit_code int,
  stdout text,
  stderr text,
  output_chunks int not null default 0 check (output_chunks >= 0),
  output_truncated boolean not null default false,
  timeout_ms int not null check (timeout_ms between 1 and 86400000),
  queued_at timestamptz not null default now(),
  sent_at timestamptz,
  acked_at timestamptz,
  finished_at timestamptz,
  deadline_at timestamptz,
  expires_at timestamptz not null,
  duration_ms int check (duration_ms >= 0),
  delivery_count int not null default 0 check (delivery_count >= 0),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  primary key (id, queued_at),
  foreign key (box_id, organization_id) references app_public.boxes (id, organization_id) on delete cascade,
  check ((status in ('succeeded', 'failed', 'timed_out', 'expired', 'canceled')) = (finished_at is not null))
) partition by range (queued_at);
-- A box's commands of the last hour, newest first (and the per-box rate limit).
create index on app_public.box_commands (box_id, queued_at desc);
-- Row-level security, the per-organization rate limit.
create index on app_public.box_commands (organization_id, queued_at desc);
-- Results, acks and cancels name a command by id alone.
create index on app_public.box_commands (id);
-- The queue of each box, in order.
create index on app_public.box_commands (box_id, seq) where status = 'queued';
-- The sweeps.
create index on app_public.box_commands (deadline_at) where status in ('sent', 'acked');
create index on app_public.box_commands (expires_at) where status = 'queued';
create index on app_public.box_commands (created_by);
create index on app_public.box_commands (agent_id) where agent_id is not null;

comment on table app_public.box_commands is
  E'@behavior -insert -update -delete\n@primaryKey id\nA command sent to a box (`bash.exec`, `file.read`, `system.status`, …): queued, delivered by the bridge, answered by the box, and ended in exactly one terminal state. Send one with `sendBoxCommand`; kept 3 months.';
comment on column app_public.box_commands.id is E'The command''s id (the `id` of its protocol frames).';
comment on column app_public.box_commands.seq is E'@behavior -*\nQueue order.';
comment on column app_public.box_commands.organization_id is E'The organization of the box.';
comment on column app_public.box_commands.box_id is E'The box.';
comment on column app_public.box_commands.agent_id is E'The agent it was sent for or by, if any.';
comment on column app_public.box_commands.command_type is E'What to do, `area.action`: `bash.exec`, `file.read`, `system.ping`, ….';
comment on column app_public.box_commands.payload is E'The command''s parameters (a JSON object).';
comment on column app_public.box_commands.status is E'@isIndexed\n`queued`, `sent`, `acked` (running), then one of `succeeded`, `failed`, `timed_out`, `expired` (never delivered), `canceled`.';
comment on column app_public.box_commands.origin is E'Who asked: `manual` (a person), `schedule`, `agent` or `system`.';
comment on column app_public.box_commands.created_by is E'The person who sent it, if any.';
comment on column app_public.box_commands.response is E'What the box answered (JSON).';
comment on column app_public.box_commands.error is E'Why it failed, in words.';
comment on column app_public.box_commands.error_code is E'Why it failed: UNKNOWN_COMMAND, INVALID_PARAMS, PERMISSION_DENIED, NOT_FOUND, TIMEOUT, EXEC_ERROR, CANCELED, INTERNAL_ERROR, EXPIRED.';
comment on column app_public.box_commands.exit_code is E'The exit code of a process it ran.';
comment on column app_public.box_commands.stdout is E'Its standard output, as streamed by the box (at most 1 MiB).';
comment on column app_public.box_commands.stderr is E'Its standard error, as streamed by the box (at most 1 MiB).';
comment on column app_public.box_commands.output_chunks is E'How many output chunks have been received.';
comment on column app_public.box_commands.output_truncated is E'Some output was lost or cut at the size limit.';
comment on column app_public.box_commands.timeout_ms is E'How long after being sent it may run before it is marked `timed_out`.';
comment on column app_public.box_commands.queued_at is E'When it was written.';
comment on column app_public.box_commands.sent_at is E'When the bridge last sent it to the box.';
comment on column app_public.box_commands.acked_at is E'When the box acknowledged it.';
comment on column app_public.box_commands.finished_at is E'When it reached its terminal state.';
comment on column app_public.box_commands.deadline_at is E'When it times out, while in flight.';
comment on column app_public.box_commands.expires_at is E'When it expires if never delivered.';
comment on column app_public.box_commands.duration_ms is E'Milliseconds from sending to the result.';
comment on column app_public.box_commands.delivery_count is E'How many times it was sent (more than once after a lost connection).';
comment on column app_public.box_commands.metadata is E'Free-form JSON.';

--------------------------------------------------------------------------------
-- Metric samples, partitioned by day of recorded_at, kept 7 days
--------------------------------------------------------------------------------

create sequence app_private.metric_sample_seq;
comment on sequence app_private.metric_sample_seq is E'Ids of metric samples.';

create table app_public.metric_samples (
  id bigint not null default nextval('app_private.metric_sample_seq'),
  organization_id uuid not null,
  box_id uuid not null,
  agent_id uuid,
  name text not null check (name ~ '^[a-z][a-z0-9_.]{0,62}$'),
  value double precision not null,
  labels jsonb not null default '{}' check (jsonb_typeof(labels) = 'object'),
  recorded_at timestamptz not null default now(),
  primary key (id, recorded_at),
  foreign key (box_id, organization_id) references app_public.boxes (id, organization_id) on delete cascade
) partition by range (recorded_at);
create index on app_public.metric_samples (box_id, name, recorded_at desc);
create index on app_public.metric_samples (organization_id, recorded_at desc);
create index on app_public.metric_samples (name, recorded_at desc);
create index on app_public.metric_samples (agent_id, recorded_at desc) where agent_id is not null;

comment on table app_public.metric_samples is
  E'@behavior -insert -update -delete\nMeasurements reported by boxes in their heartbeats (CPU, memory, disk, GPU, temperature, …); kept 7 days. Use `aggregates`/`groupedAggregates` with a filter on `recordedAt` for averages and maxima over a window.';
comment on column app_public.metric_samples.id is E'The sample''s id.';
comment on column app_public.metric_samples.organization_id is E'The organization of the box.';
comment on column app_public.metric_samples.box_id is E'The box that reported it.';
comment on column app_public.metric_samples.agent_id is E'The agent it is about, if any.';
comment on column app_public.metric_samples.name is E'What was measured, e.g. `cpu.percent`, `memory.used_percent`, `gpu.temperature_c`.';
comment on column app_public.metric_samples.value is E'The value.';
comment on column app_public.metric_samples.labels is E'Further dimensions, e.g. `{"mount": "/"}` or `{"gpu": "0"}`.';
comment on column app_public.metric_samples.recorded_at is E'When the bridge received it.';

-- How the foreign keys and unique keys appear in GraphQL.
comment on constraint boxes_created_by_fkey on app_public.boxes is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint boxes_id_organization_id_key on app_public.boxes is E'@behavior -*';
comment on constraint boxes_hardware_id_key on app_public.boxes is E'@behavior -update -delete';
comment on constraint boxes_organization_id_name_key on app_public.boxes is E'@behavior -update -delete';
comment on constraint box_api_keys_box_id_organization_id_fkey on app_public.box_api_keys is E'@fieldName box\n@foreignFieldName apiKeys';
comment on constraint box_api_keys_created_by_fkey on app_public.box_api_keys is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint box_api_keys_replaced_by_fkey on app_public.box_api_keys is E'@fieldName replacement\n@backwardBehavior -*';
comment on constraint box_commands_box_id_organization_id_fkey on app_public.box_commands is E'@fieldName box\n@foreignFieldName boxCommands';
comment on constraint box_commands_created_by_fkey on app_public.box_commands is E'@fieldName creator\n@backwardBehavior -*';
comment on constraint box_commands_pkey on app_public.box_commands is E'@behavior -single';
comment on constraint metric_samples_box_id_organization_id_fkey on app_public.metric_samples is E'@fieldName box\n@foreignFieldName metricSamples';
comment on constraint metric_samples_pkey on app_public.metric_samples is E'@behavior -single';

select app_private.maintain_partitions('app_public.box_commands', 'month', 3, 3);
select app_private.maintain_partitions('app_public.metric_samples', 'day', 7, 7);

--------------------------------------------------------------------------------
-- Notifications. Two kinds of listeners:
--   the bridge, on channel agentplane_bridge: {"k": "queued"|"cancel"|"revoked"|"deleted", "b": box, ...}
--   GraphQL subscriptions, on channel agentplane:box:<box id>: {"event": "command"|"presence", "box_id", "command_id", "status"};
--     the payload names rows only: subscribers re-read them under row-level security.
--------------------------------------------------------------------------------

create function app_private.tg_box_commands__notify() returns trigger as $$
begin
  if tg_op = 'INSERT' or new.status = 'queued' and old.status <> 'queued' then
    perform pg_notify('agentplane_bridge', json_build_object('k', 'queued', 'b', new.box_id)::text);
  elsif new.status in ('canceled', 'timed_out') and old.status in ('sent', 'acked') then
    perform pg_notify('agentplane_bridge', json_build_object('k', 'cancel', 'b', new.box_id, 'c', new.id, 'r', new.status)::text);
  end if;
  perform pg_notify('agentplane:box:' || new.box_id,
    json_build_object('event', 'command', 'box_id', new.box_id, 'command_id', new.id, 'status', new.status)::text);
  return null;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_box_commands__notify() is
  E'Trigger: wakes the bridge for a queued command or a cancel, and tells subscribers of the box that a command changed.';
create trigger _800_notify after insert on app_public.box_commands
  for each row execute procedure app_private.tg_box_commands__notify();
create trigger _801_notify_update after update on app_public.box_commands
  for each row
  when (old.status is distinct from new.status or old.output_chunks is distinct from new.output_chunks)
  execute procedure app_private.tg_box_commands__notify();

create function app_private.tg_boxes__notify() returns trigger as $$
begin
  if tg_op = 'DELETE' then
    perform pg_notify('agentplane_bridge', json_build_object('k', 'deleted', 'b', old.id)::text);
    return null;
  end if;
  perform pg_notify('agentplane:box:' || new.id, json_build_object('event', 'presence', 'box_id', new.id, 'status', new.status)::text);
  return null;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_boxes__notify() is
  E'Trigger: tells subscribers when a box goes online or offline, and the bridge when a box is deleted (it closes its connection).';
create trigger _800_notify after update of status on app_public.boxes
  for each row when (old.status is distinct from new.status)
  execute procedure app_private.tg_boxes__notify();
create trigger _801_notify_delete after delete on app_public.boxes
  for each row execute procedure app_private.tg_boxes__notify();

create function app_private.tg_box_api_keys__notify() returns trigger as $$
begin
  perform pg_notify('agentplane_bridge', json_build_object('k', 'revoked', 'b', new.box_id, 'key', new.id)::text);
  return null;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.tg_box_api_keys__notify() is
  E'Trigger: tells the bridge that a key was revoked, so that a box connected with it is disconnected at once.';
create trigger _800_notify after update of revoked_at on app_public.box_api_keys
  for each row when (old.revoked_at is null and new.revoked_at is not null)
  execute procedure app_private.tg_box_api_keys__notify();

--------------------------------------------------------------------------------
-- Queueing a command (every path: GraphQL, schedules, the system)
--------------------------------------------------------------------------------

create function app_private.queue_box_command(
  box_id uuid,
  command_type text,
  payload jsonb,
  origin text,
  timeout_ms int default null,
  created_by uuid default null
) returns app_public.box_commands as $$
declare
  v_box app_public.boxes;
  v_command app_public.box_commands;
  v_per_minute bigint := app_private.box_setting('box_commands_per_minute', 100);
  v_per_hour bigint := app_private.box_setting('organization_box_commands_per_hour', 1000);
  v_oldest timestamptz;
  v_limit record;
  v_timeout_ms int := queue_box_command.timeout_ms;
begin
  select * into v_box from app_public.boxes b where b.id = queue_box_command.box_id;
  if not found then
    raise exception 'box % not found', queue_box_command.box_id using errcode = 'NTFND';
  end if;
  if queue_box_command.command_type is null
     or queue_box_command.command_type !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' then
    raise exception 'command type must look like area.action (e.g. bash.exec), got %', queue_box_command.command_type
      using errcode = 'INVAL';
  end if;
  if jsonb_typeof(coalesce(queue_box_command.payload, '{}')) <> 'object' then
    raise exception 'a command''s payload must be a JSON object' using errcode = 'INVAL';
  end if;
  if v_timeout_ms is null and queue_box_command.command_type = 'bash.exec'
     and jsonb_typeof(queue_box_command.payload -> 'timeout_ms') = 'number' then
    -- bash.exec brings its own time-out, which the box enforces; the bridge waits 5 s longer.
    v_timeout_ms := least((queue_box_command.payload ->> 'timeout_ms')::numeric, 86395000)::int + 5000;
  end if;
  v_timeout_ms := coalesce(v_timeout_ms, app_private.box_setting('box_command_timeout_ms', 60000)::int);
  if v_timeout_ms not between 1 and 86400000 then
    raise exception 'timeout_ms must be from 1 to 86400000 (24 hours), got %', v_timeout_ms using errcode = 'INVAL';
  end if;

  -- Rate limits (0 turns one off), counted on the table itself over sliding windows: exact across
  -- API instances and workers. The count reads at most `limit` index entries; the organization's
  -- commands are queued one at a time so that two at once cannot both slip under a limit.
  if v_per_minute > 0 or v_per_hour > 0 then
    perform pg_advisory_xact_lock(hashtextextended('agentplane.box_commands:' || v_box.organization_id, 0));
  end if;
  for v_limit in
    select * from (values
      ('box_id', v_box.id, v_per_minute, interval '1 minute', 'a minute per box'),
      ('organization_id', v_box.organization_id, v_per_hour, interval '1 hour', 'an hour per organization')
    ) as l (column_name, scope_id, max_commands, per, what)
  loop
    continue when v_limit.max_commands <= 0;
    -- The queue time of the max_commands-th newest command in the window, if there are that many.
    execute format(
      'select c.queued_at from app_public.box_commands c where c.%I = $1 and c.queued_at > now() - $2
       order by c.queued_at desc offset $3 - 1 limit 1', v_limit.column_name)
      into v_oldest using v_limit.scope_id, v_limit.per, v_limit.max_commands;
    if v_oldest is not null then
      raise exception 'rate limit exceeded: at most % commands %', v_limit.max_commands, v_limit.what
        using errcode = 'RATEL',
              detail = json_build_object('retry_after_seconds',
                greatest(1, ceil(extract(epoch from v_oldest + v_limit.per - now()))))::text;
    end if;
  end loop;

  insert into app_public.box_commands
    (organization_id, box_id, command_type, payload, origin, created_by, timeout_ms, expires_at)
  values
    (v_box.organization_id, v_box.id, queue_box_command.command_type, coalesce(queue_box_command.payload, '{}'),
     queue_box_command.origin, queue_box_command.created_by, v_timeout_ms,
     now() + app_private.box_setting('box_command_expiry_ms', 3600000) * interval '1 millisecond')
  returning * into v_command;
  return v_command;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_private.queue_box_command(uuid, text, jsonb, text, int, uuid) is
  E'Queues a command for a box, for any origin (manual, schedule, agent, system), and wakes the bridge (on commit). Enforces the rate limits box_commands_per_minute and organization_box_commands_per_hour (RATEL, with retry_after_seconds in the detail; 0 turns one off). timeout_ms defaults to 60 s, or for bash.exec to its payload''s timeout_ms + 5 s.';

--------------------------------------------------------------------------------
-- Terminal states: the one place a command ends
--------------------------------------------------------------------------------

create function app_private.finish_box_command(
  command app_public.box_commands,
  status text,
  error_code text default null,
  error text default null,
  response jsonb default null,
  exit_code int default null
) returns app_public.box_commands as $$
  update app_public.box_commands c set
    status = finish_box_command.status,
    error_code = finish_box_command.error_code,
    error = left(finish_box_command.error, 65536),
    response = finish_box_command.response,
    exit_code = finish_box_command.exit_code,
    finished_at = now(),
    deadline_at = null,
    duration_ms = case when c.sent_at is null then null
                       else greatest(0, round(extract(epoch from now() - c.sent_at) * 1000))::int end
  where c.id = (finish_box_command.command).id
    and c.queued_at = (finish_box_command.command).queued_at
    and c.status in ('queued', 'sent', 'acked')
  returning c.*;
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.finish_box_command(app_public.box_commands, text, text, text, jsonb, int) is
  E'Moves a command that has not ended yet to a terminal state; returns nothing if it had already ended (so that it ends exactly once).';

create function app_private.requeue_box_commands(box_ids uuid[]) returns int as $$
  with requeued as (
    update app_public.box_commands c set status = 'queued', deadline_at = null
    where c.box_id = any (requeue_box_commands.box_ids) and c.status = 'sent'
    returning 1
  )
  select count(*)::int from requeued;
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.requeue_box_commands(uuid[]) is
  E'Puts commands that were sent but never acknowledged back in the queue of their box (its connection ended): they are sent again on its next connection.';

--------------------------------------------------------------------------------
-- The API: boxes, keys, commands
--------------------------------------------------------------------------------

create function app_public.create_box(organization_id uuid, name text, metadata jsonb default '{}')
returns app_public.issued_box_key as $$
declare
  v_box app_public.boxes;
begin
  if create_box.organization_id not in (select app_hidden.current_user_organization_ids('member')) then
    raise exception 'you cannot create boxes in this organization' using errcode = '42501';
  end if;
  insert into app_public.boxes (organization_id, name, metadata, created_by)
    values (create_box.organization_id, btrim(create_box.name), coalesce(create_box.metadata, '{}'), app_public.current_user_id())
    returning * into v_box;
  return app_private.issue_box_key(v_box.id, 'default', null, app_public.current_user_id());
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.create_box(uuid, text, jsonb) is
  E'Creates a box in an organization (members and above) with its first key, which is shown only in this answer. Fails with BXLIM beyond the organization''s max_boxes.';

create function app_public.create_box_key(box_id uuid, name text, expires_at timestamptz default null)
returns app_public.issued_box_key as $$
begin
  if not exists (
    select 1 from app_public.boxes b
    where b.id = create_box_key.box_id
      and b.organization_id in (select app_hidden.current_user_organization_ids('member'))
  ) then
    raise exception 'box not found' using errcode = 'NTFND';
  end if;
  if create_box_key.expires_at is not null and create_box_key.expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = 'INVAL';
  end if;
  return app_private.issue_box_key(create_box_key.box_id, create_box_key.name, create_box_key.expires_at,
                                   app_public.current_user_id());
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.create_box_key(uuid, text, timestamptz) is
  E'Issues another key for a box (members and above), shown only in this answer.';

create function app_public.rotate_box_key(key_id uuid, grace_period_hours int default null)
returns app_public.issued_box_key as $$
declare
  v_old app_public.box_api_keys;
  v_issued app_public.issued_box_key;
  v_grace interval := coalesce(rotate_box_key.grace_period_hours, app_private.box_setting('box_key_grace_hours', 24))
                      * interval '1 hour';
begin
  select k.* into v_old
  from app_public.box_api_keys k
  where k.id = rotate_box_key.key_id
    and k.organization_id in (select app_hidden.current_user_organization_ids('member'))
  for update;
  if not found then
    raise exception 'box key not found' using errcode = 'NTFND';
  end if;
  if v_grace < interval '0' then
    raise exception 'grace_period_hours must not be negative' using errcode = 'INVAL';
  end if;
  if v_old.revoked_at is not null or v_old.expires_at <= now() or v_old.replaced_by is not null then
    raise exception 'this key is revoked, expired or already rotated: issue a new one with createBoxKey' using errcode = 'KYDED';
  end if;
  v_issued := app_private.issue_box_key(v_old.box_id, v_old.name, null, app_public.current_user_id());
  update app_public.box_api_keys k set
    expires_at = least(coalesce(k.expires_at, 'infinity'), now() + v_grace),
    replaced_by = v_issued.key_id
  where k.id = v_old.id;
  perform app_private.write_audit_log(v_old.organization_id, 'box_key.rotated', 'box_key', v_old.id::text,
    jsonb_build_object('box_id', v_old.box_id, 'replaced_by', v_issued.key_id, 'valid_until', now() + v_grace));
  return v_issued;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.rotate_box_key(uuid, int) is
  E'Replaces a key with a new one (shown only in this answer). The old key keeps working for a grace period (grace_period_hours, 24 by default) so that the box can be given the new one, then expires.';

create function app_public.revoke_box_key(key_id uuid) returns app_public.box_api_keys as $$
declare
  v_key app_public.box_api_keys;
begin
  update app_public.box_api_keys k set revoked_at = coalesce(k.revoked_at, now())
  where k.id = revoke_box_key.key_id
    and k.organization_id in (select app_hidden.current_user_organization_ids('member'))
  returning * into v_key;
  if not found then
    raise exception 'box key not found' using errcode = 'NTFND';
  end if;
  perform app_private.write_audit_log(v_key.organization_id, 'box_key.revoked', 'box_key', v_key.id::text,
    jsonb_build_object('box_id', v_key.box_id, 'prefix', v_key.prefix));
  return v_key;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.revoke_box_key(uuid) is
  E'Revokes a key at once: it is refused from now on, and a box connected with it is disconnected.';

create function app_public.send_box_command(box_id uuid, command_type text, payload jsonb default '{}', timeout_ms int default null)
returns app_public.box_commands as $$
begin
  if not exists (
    select 1 from app_public.boxes b
    where b.id = send_box_command.box_id
      and b.organization_id in (select app_hidden.current_user_organization_ids('member'))
  ) then
    raise exception 'box not found' using errcode = 'NTFND';
  end if;
  return app_private.queue_box_command(send_box_command.box_id, send_box_command.command_type,
    send_box_command.payload, 'manual', send_box_command.timeout_ms, app_public.current_user_id());
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.send_box_command(uuid, text, jsonb, int) is
  E'Sends a command to a box (members and above): an online box gets it at once, an offline one when it reconnects (within an hour, else it expires). timeout_ms: how long it may run after being sent (60 s by default; for bash.exec, its payload''s timeout_ms + 5 s). Limited to 100 a minute per box and 1,000 an hour per organization (RATEL).';

create function app_public.cancel_box_command(id uuid) returns app_public.box_commands as $$
declare
  v_command app_public.box_commands;
  v_finished app_public.box_commands;
begin
  select c.* into v_command
  from app_public.box_commands c
  where c.id = cancel_box_command.id
    and c.organization_id in (select app_hidden.current_user_organization_ids('member'))
  for update;
  if not found then
    raise exception 'box command not found' using errcode = 'NTFND';
  end if;
  v_finished := app_private.finish_box_command(v_command, 'canceled', 'CANCELED', 'canceled by a user');
  -- A composite is "not null" only when every field is: test the id.
  if v_finished.id is null then
    return v_command;
  end if;
  return v_finished;
end;
$$ language plpgsql volatile security definer set search_path to pg_catalog, public, pg_temp;
comment on function app_public.cancel_box_command(uuid) is
  E'Cancels a command that has not ended (members and above); a box running it is told to stop. A command that has already ended is returned unchanged.';

--------------------------------------------------------------------------------
-- The bridge's functions (owner connection, src/bridge/store.ts)
--------------------------------------------------------------------------------

create type app_private.bridge_auth as (
  outcome text,
  box_id uuid,
  organization_id uuid,
  key_id uuid,
  connection_seq bigint
);
comment on type app_private.bridge_auth is
  E'What bridge_authenticate answers: outcome `ok`, `unauthorized`, `hardware_id_mismatch` or `hardware_id_in_use`, and for `ok` the box, its key and the connection''s number.';

create function app_private.bridge_authenticate(key_hash text, hardware_id text, ip inet)
returns app_private.bridge_auth as $$
declare
  v_key app_public.box_api_keys;
  v_box app_public.boxes;
begin
  select k.* into v_key
  from app_private.box_api_key_secrets s
  join app_public.box_api_keys k on k.id = s.key_id
  where s.key_hash = bridge_authenticate.key_hash;
  if not found or v_key.revoked_at is not null or v_key.expires_at <= now() then
    return row('unauthorized', null, null, null, null)::app_private.bridge_auth;
  end if;
  -- One authentication of a box at a time: binding and connection numbers are ordered.
  select b.* into v_box from app_public.boxes b where b.id = v_key.box_id for update;
  if not found then
    return row('unauthorized', null, null, null, null)::app_private.bridge_auth;
  end if;
  perform set_config('agentplane.actor_type', 'box', true);
  perform set_config('agentplane.actor_id', v_box.id::text, true);
  if v_box.hardware_id is null then
    if exists (select 1 from app_public.boxes b where b.hardware_id = bridge_authenticate.hardware_id) then
      return row('hardware_id_in_use', v_box.id, v_box.organization_id, v_key.id, null)::app_private.bridge_auth;
    end if;
    update app_public.boxes b set hardware_id = bridge_authenticate.hardware_id where b.id = v_box.id;
    perform app_private.write_audit_log(v_box.organization_id, 'box.hardware_bound', 'box', v_box.id::text,
      jsonb_build_object('hardware_id', bridge_authenticate.hardware_id, 'ip', bridge_authenticate.ip));
  elsif v_box.hardware_id <> bridge_authenticate.hardware_id then
    perform app_private.write_audit_log(v_box.organization_id, 'box.hardware_mismatch', 'box', v_box.id::text,
      jsonb_build_object('hardware_id', bridge_authenticate.hardware_id, 'ip', bridge_authenticate.ip, 'key_id', v_key.id));
    return row('hardware_id_mismatch', v_box.id, v_box.organization_id, v_key.id, null)::app_private.bridge_auth;
  end if;
  update app_public.box_api_keys k set last_used_at = now(), last_used_ip = bridge_authenticate.ip where k.id = v_key.id;
  return row('ok', v_box.id, v_box.organization_id, v_key.id, nextval('app_private.box_connection_seq'))::app_private.bridge_auth;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_authenticate(text, text, inet) is
  E'Checks a presented box key (by its SHA-256) and hardware id before the WebSocket upgrade: binds the hardware id on first use, refuses another one later, and numbers the connection.';

create function app_private.bridge_box_connected(
  box_id uuid,
  connection_seq bigint,
  instance_id uuid,
  key_id uuid,
  ip inet,
  hostname text,
  os text,
  arch text,
  agent_version text,
  capabilities text[]
) returns boolean as $$
declare
  v_current bigint;
begin
  perform 1 from app_public.boxes b where b.id = bridge_box_connected.box_id for update;
  if not found then
    return false;
  end if;
  select c.connection_seq into v_current from app_private.box_connections c where c.box_id = bridge_box_connected.box_id;
  if v_current >= bridge_box_connected.connection_seq then
    -- A newer connection already took over.
    return false;
  end if;
  insert into app_private.box_connections as c (box_id, connection_seq, instance_id, key_id, ip)
    values (bridge_box_connected.box_id, bridge_box_connected.connection_seq, bridge_box_connected.instance_id,
            bridge_box_connected.key_id, bridge_box_connected.ip)
  on conflict on constraint box_connections_pkey do update set
    connection_seq = excluded.connection_seq, instance_id = excluded.instance_id, key_id = excluded.key_id,
    ip = excluded.ip, connected_at = now(), disconnected_at = null;
  update app_public.boxes b set
    status = 'online',
    last_seen_at = now(),
    last_ip = bridge_box_connected.ip,
    hostname = coalesce(bridge_box_connected.hostname, b.hostname),
    os = coalesce(bridge_box_connected.os, b.os),
    arch = coalesce(bridge_box_connected.arch, b.arch),
    agent_version = coalesce(bridge_box_connected.agent_version, b.agent_version),
    capabilities = coalesce(bridge_box_connected.capabilities, b.capabilities)
  where b.id = bridge_box_connected.box_id;
  -- Whatever an earlier connection was sent and never acknowledged is sent again on this one.
  perform app_private.requeue_box_commands(array[bridge_box_connected.box_id]);
  return true;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_box_connected(uuid, bigint, uuid, uuid, inet, text, text, text, text, text[]) is
  E'A connection said hello: if it is the newest one of its box, the box goes online with what it reported, and commands sent on earlier connections but never acknowledged go back to the queue. False when a newer connection exists (this one must close).';

create function app_private.mark_connections_offline(box_ids uuid[]) returns int as $$
declare
  v_count int;
begin
  update app_private.box_connections c set instance_id = null, disconnected_at = now()
  where c.box_id = any (mark_connections_offline.box_ids);
  update app_public.boxes b set status = 'offline', last_seen_at = greatest(b.last_seen_at, now())
  where b.id = any (mark_connections_offline.box_ids) and b.status = 'online';
  get diagnostics v_count = row_count;
  perform app_private.requeue_box_commands(mark_connections_offline.box_ids);
  return v_count;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.mark_connections_offline(uuid[]) is
  E'Marks boxes offline whose connection ended, and puts what was sent to them but never acknowledged back in their queue.';

create function app_private.bridge_box_disconnected(box_id uuid, connection_seq bigint) returns boolean as $$
begin
  perform 1
  from app_private.box_connections c
  where c.box_id = bridge_box_disconnected.box_id
    and c.connection_seq = bridge_box_disconnected.connection_seq
    and c.instance_id is not null
  for update;
  if not found then
    return false;
  end if;
  perform app_private.mark_connections_offline(array[bridge_box_disconnected.box_id]);
  return true;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_box_disconnected(uuid, bigint) is
  E'A connection closed: the box goes offline only if this was its newest connection (false otherwise: a newer one holds the box).';

create function app_private.bridge_heartbeat(
  instance_id uuid,
  hostname text,
  pid int,
  heartbeat_interval_ms int,
  box_ids uuid[],
  connection_seqs bigint[],
  seen_at timestamptz[]
) returns table (box_id uuid, connection_seq bigint, reason text) as $$
begin
  -- The first heartbeat registers the instance (and registers it again if it was presumed dead:
  -- its connections were then marked offline, and are returned below as to be closed).
  insert into app_private.bridge_instances as i (id, hostname, pid, heartbeat_interval_ms)
    values (bridge_heartbeat.instance_id, bridge_heartbeat.hostname, bridge_heartbeat.pid, bridge_heartbeat.heartbeat_interval_ms)
  on conflict (id) do update set heartbeat_at = now(), heartbeat_interval_ms = excluded.heartbeat_interval_ms;
  update app_public.boxes b set last_seen_at = greatest(b.last_seen_at, s.seen_at)
  from unnest(bridge_heartbeat.box_ids, bridge_heartbeat.connection_seqs, bridge_heartbeat.seen_at) as s (box_id, connection_seq, seen_at)
  join app_private.box_connections c on c.box_id = s.box_id and c.connection_seq = s.connection_seq
  where b.id = s.box_id;
  -- Connections that must close (a newer one took over, the box is gone, or its key no longer opens
  -- it), and boxes with commands waiting (a wake-up that was missed, a claim that failed).
  return query
    select s.box_id, s.connection_seq,
           case when b.id is null or k.id is null or k.revoked_at is not null or k.expires_at <= now() then 'unauthorized'
                when c.connection_seq is distinct from s.connection_seq or c.instance_id is null then 'replaced'
                else 'queued' end
    from unnest(bridge_heartbeat.box_ids, bridge_heartbeat.connection_seqs) as s (box_id, connection_seq)
    left join app_public.boxes b on b.id = s.box_id
    left join app_private.box_connections c on c.box_id = s.box_id
    left join app_public.box_api_keys k on k.id = c.key_id
    where b.id is null
       or c.connection_seq is distinct from s.connection_seq
       or c.instance_id is null
       or k.id is null
       or k.revoked_at is not null
       or k.expires_at <= now()
       or exists (select 1 from app_public.box_commands q
                  where q.box_id = s.box_id and q.status = 'queued' and q.expires_at > now());
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_heartbeat(uuid, text, int, int, uuid[], bigint[], timestamptz[]) is
  E'A bridge instance''s start and periodic flush: its own heartbeat, and last_seen_at of the boxes it holds, in one call. Returns the connections it must close, with why (`replaced` or `unauthorized`), and those whose box has commands waiting (`queued`: deliver them).';

create function app_private.bridge_stopped(instance_id uuid) returns int as $$
declare
  v_box_ids uuid[];
  v_count int;
begin
  select coalesce(array_agg(c.box_id), '{}') into v_box_ids
  from app_private.box_connections c where c.instance_id = bridge_stopped.instance_id;
  v_count := app_private.mark_connections_offline(v_box_ids);
  delete from app_private.bridge_instances i where i.id = bridge_stopped.instance_id;
  return v_count;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_stopped(uuid) is
  E'A bridge instance stops (or was found dead): every box it held goes offline. Returns how many.';

create function app_private.bridge_claim_commands(box_id uuid, connection_seq bigint, max_commands int)
returns setof app_public.box_commands as $$
  with connection as materialized (
    -- Locked, so that a close (or a newer connection) committing meanwhile is seen: nothing is sent on a dead connection.
    select 1 from app_private.box_connections c
    where c.box_id = bridge_claim_commands.box_id
      and c.connection_seq = bridge_claim_commands.connection_seq
      and c.instance_id is not null
    for share
  ), next as (
    select c.id, c.queued_at
    from app_public.box_commands c
    where c.box_id = bridge_claim_commands.box_id
      and c.status = 'queued'
      and c.expires_at > now()
      and exists (select 1 from connection)
    order by c.seq
    limit bridge_claim_commands.max_commands
    for update skip locked
  )
  update app_public.box_commands c set
    status = 'sent',
    sent_at = now(),
    deadline_at = now() + c.timeout_ms * interval '1 millisecond',
    delivery_count = c.delivery_count + 1
  from next
  where c.id = next.id and c.queued_at = next.queued_at
  returning c.*;
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_claim_commands(uuid, bigint, int) is
  E'Takes up to max_commands of a box''s queue, oldest first, and marks them sent, if the connection is still the box''s newest. The caller sends them in `seq` order.';

create function app_private.bridge_record_acks(box_ids uuid[], ids uuid[]) returns int as $$
  with acked as (
    update app_public.box_commands c set status = 'acked', acked_at = now()
    from unnest(bridge_record_acks.box_ids, bridge_record_acks.ids) as a (box_id, id)
    where c.id = a.id and c.box_id = a.box_id and c.status = 'sent'
    returning 1
  )
  select count(*)::int from acked;
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_record_acks(uuid[], uuid[]) is
  E'Records acknowledgements (box, command) in one statement; only commands of that box that are `sent` become `acked`.';

create function app_private.bridge_record_outputs(box_ids uuid[], ids uuid[], seqs int[], streams text[], chunks text[])
returns int as $$
  with chunk as (
    select distinct on (u.id, u.seq) u.box_id, u.id, u.seq, u.stream, u.data
    from unnest(bridge_record_outputs.box_ids, bridge_record_outputs.ids, bridge_record_outputs.seqs,
                bridge_record_outputs.streams, bridge_record_outputs.chunks) as u (box_id, id, seq, stream, data)
    order by u.id, u.seq
  ), fresh as (
    -- Only chunks not stored yet, of commands of that box that are still running.
    select k.*, c.queued_at, c.output_chunks
    from chunk k
    join app_public.box_commands c on c.id = k.id and c.box_id = k.box_id
    where c.status in ('sent', 'acked', 'queued') and c.sent_at is not null and k.seq >= c.output_chunks
  ), gathered as (
    select f.id, f.queued_at,
           string_agg(f.data, '' order by f.seq) filter (where f.stream = 'stdout') as stdout,
           string_agg(f.data, '' order by f.seq) filter (where f.stream = 'stderr') as stderr,
           max(f.seq) as last_seq,
           -- A gap (a chunk lost with a connection) makes the output incomplete.
           max(f.seq) - min(f.seq) + 1 <> count(*) or min(f.seq) <> min(f.output_chunks) as gap
    from fresh f
    group by f.id, f.queued_at
  ), stored as (
    update app_public.box_commands c set
      stdout = case when g.stdout is null then c.stdout
                    else left(coalesce(c.stdout, '') || g.stdout, app_private.box_setting('box_max_output_bytes', 1048576)::int) end,
      stderr = case when g.stderr is null then c.stderr
                    else left(coalesce(c.stderr, '') || g.stderr, app_private.box_setting('box_max_output_bytes', 1048576)::int) end,
      output_chunks = g.last_seq + 1,
      output_truncated = c.output_truncated or g.gap
        or length(coalesce(c.stdout, '')) + length(coalesce(g.stdout, '')) > app_private.box_setting('box_max_output_bytes', 1048576)
        or length(coalesce(c.stderr, '')) + length(coalesce(g.stderr, '')) > app_private.box_setting('box_max_output_bytes', 1048576)
    from gathered g
    where c.id = g.id and c.queued_at = g.queued_at
    returning 1
  )
  select count(*)::int from stored;
$$ language sql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_record_outputs(uuid[], uuid[], int[], text[], text[]) is
  E'Appends output chunks (box, command, seq, stream, data) in one statement, in seq order: a chunk already stored is ignored, a gap marks the output truncated, and each stream is capped at box_max_output_bytes.';

create type app_private.bridge_recorded as (
  id uuid,
  recorded boolean,
  status text
);
comment on type app_private.bridge_recorded is
  E'What became of a result: recorded (it ended the command) or not (a duplicate, or too late), the command''s status; a null status for an unknown command.';

create function app_private.bridge_record_results(
  box_ids uuid[],
  ids uuid[],
  successes boolean[],
  responses jsonb[],
  errors text[],
  error_codes text[],
  exit_codes int[]
) returns setof app_private.bridge_recorded as $$
declare
  v_command app_public.box_commands;
  v_finished app_public.box_commands;
  v_status text;
begin
  for i in 1 .. coalesce(cardinality(bridge_record_results.ids), 0) loop
    select c.* into v_command
    from app_public.box_commands c
    where c.id = bridge_record_results.ids[i] and c.box_id = bridge_record_results.box_ids[i]
    for update;
    if not found then
      return next row(bridge_record_results.ids[i], false, null)::app_private.bridge_recorded;
      continue;
    end if;
    v_finished := null;
    -- A result counts only for a command that was delivered and has not ended.
    if v_command.sent_at is not null then
      v_status := case
        when bridge_record_results.successes[i] then 'succeeded'
        when bridge_record_results.error_codes[i] = 'TIMEOUT' then 'timed_out'
        when bridge_record_results.error_codes[i] = 'CANCELED' then 'canceled'
        else 'failed' end;
      v_finished := app_private.finish_box_command(v_command, v_status, bridge_record_results.error_codes[i],
        bridge_record_results.errors[i], bridge_record_results.responses[i], bridge_record_results.exit_codes[i]);
    end if;
    return next row(v_command.id, v_finished.id is not null, coalesce(v_finished.status, v_command.status))::app_private.bridge_recorded;
  end loop;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_record_results(uuid[], uuid[], boolean[], jsonb[], text[], text[], int[]) is
  E'Records results (one per index of the arrays) exactly once: a result ends a delivered command that has not ended; a duplicate or late one changes nothing and creates nothing.';

create function app_private.bridge_record_metrics(box_ids uuid[], agent_ids uuid[], names text[], vals double precision[], labels jsonb[])
returns int as $$
declare
  v_count int;
begin
  -- An agent id is kept only for an agent of the box's organization (once the schedules module has agents).
  execute format($sql$
    insert into app_public.metric_samples (organization_id, box_id, agent_id, name, value, labels)
    select b.organization_id, m.box_id, %s, m.name, m.value, coalesce(m.labels, '{}')
    from unnest($1, $2, $3, $4, $5) as m (box_id, agent_id, name, value, labels)
    join app_public.boxes b on b.id = m.box_id
  $sql$, case when to_regclass('app_public.agents') is null then 'null::uuid'
              else '(select a.id from app_public.agents a where a.id = m.agent_id and a.organization_id = b.organization_id)' end)
  using bridge_record_metrics.box_ids, bridge_record_metrics.agent_ids, bridge_record_metrics.names,
        bridge_record_metrics.vals, bridge_record_metrics.labels;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_record_metrics(uuid[], uuid[], text[], double precision[], jsonb[]) is
  E'Stores heartbeat metrics of many boxes in one statement (samples of deleted boxes are skipped; an agent id not of the box''s organization is dropped).';

create function app_private.bridge_record_frames(
  ack_box_ids uuid[],
  ack_ids uuid[],
  output_box_ids uuid[],
  output_ids uuid[],
  output_seqs int[],
  output_streams text[],
  output_chunks text[],
  result_box_ids uuid[],
  result_ids uuid[],
  result_successes boolean[],
  result_responses jsonb[],
  result_errors text[],
  result_error_codes text[],
  result_exit_codes int[]
) returns setof app_private.bridge_recorded as $$
begin
  -- In the order a box sends them: acknowledgements, then output, then results.
  if cardinality(ack_ids) > 0 then
    perform app_private.bridge_record_acks(ack_box_ids, ack_ids);
  end if;
  if cardinality(output_ids) > 0 then
    perform app_private.bridge_record_outputs(output_box_ids, output_ids, output_seqs, output_streams, output_chunks);
  end if;
  if cardinality(result_ids) > 0 then
    return query select * from app_private.bridge_record_results(result_box_ids, result_ids, result_successes,
      result_responses, result_errors, result_error_codes, result_exit_codes);
  end if;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.bridge_record_frames(uuid[], uuid[], uuid[], uuid[], int[], text[], text[], uuid[], uuid[], boolean[], jsonb[], text[], text[], int[]) is
  E'What the bridge received from boxes since its last call, in one round trip: acknowledgements, output chunks, then results (see the functions it calls). Returns what became of each result.';

--------------------------------------------------------------------------------
-- Time-outs, expiry, presence: the sweeps (the worker runs them every minute;
-- the bridge times out the commands it sent as their deadline passes)
--------------------------------------------------------------------------------

create function app_private.time_out_box_commands(ids uuid[] default null) returns int as $$
declare
  v_command app_public.box_commands;
  v_count int := 0;
begin
  for v_command in
    select c.* from app_public.box_commands c
    where c.status in ('sent', 'acked') and c.deadline_at <= now()
      and (time_out_box_commands.ids is null or c.id = any (time_out_box_commands.ids))
    for update skip locked
  loop
    if (app_private.finish_box_command(v_command, 'timed_out', 'TIMEOUT',
         format('no result within %s ms of sending', v_command.timeout_ms))).id is not null then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.time_out_box_commands(uuid[]) is
  E'Marks commands in flight past their deadline `timed_out` (those named, or all); returns how many.';

create function app_private.sweep_box_commands() returns table (timed_out int, expired int) as $$
declare
  v_command app_public.box_commands;
begin
  timed_out := app_private.time_out_box_commands(null);
  expired := 0;
  for v_command in
    select c.* from app_public.box_commands c
    where c.status = 'queued' and c.expires_at <= now()
    for update skip locked
  loop
    if (app_private.finish_box_command(v_command, 'expired', 'EXPIRED', 'never delivered: the box was not connected in time')).id is not null then
      expired := expired + 1;
    end if;
  end loop;
  return next;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.sweep_box_commands() is
  E'Times out commands in flight past their deadline and expires queued ones past expires_at. Idempotent.';

create function app_private.sweep_box_presence() returns table (dead_instances int, offline_boxes int) as $$
declare
  v_instance uuid;
  v_orphans uuid[];
begin
  dead_instances := 0;
  offline_boxes := 0;
  for v_instance in
    select i.id from app_private.bridge_instances i
    where i.heartbeat_at < now() - 3 * i.heartbeat_interval_ms * interval '1 millisecond'
    for update skip locked
  loop
    dead_instances := dead_instances + 1;
    offline_boxes := offline_boxes + app_private.bridge_stopped(v_instance);
  end loop;
  -- Online boxes no live instance holds (e.g. an instance row removed by hand).
  select array_agg(b.id) into v_orphans
  from app_public.boxes b
  left join app_private.box_connections c on c.box_id = b.id
  where b.status = 'online' and (c.instance_id is null);
  if v_orphans is not null then
    offline_boxes := offline_boxes + app_private.mark_connections_offline(v_orphans);
  end if;
  return next;
end;
$$ language plpgsql volatile set search_path to pg_catalog, public, pg_temp;
comment on function app_private.sweep_box_presence() is
  E'Marks offline the boxes held by bridge instances silent for three heartbeat intervals (crashed), and any online box no instance holds. Idempotent.';

--------------------------------------------------------------------------------
-- Row-level security and grants
--------------------------------------------------------------------------------

alter table app_public.boxes enable row level security;
create policy select_member on app_public.boxes for select
  using (organization_id in (select app_public.current_user_organization_ids()));
create policy update_member on app_public.boxes for update
  using (organization_id in (select app_hidden.current_user_organization_ids('member')));
create policy delete_admin on app_public.boxes for delete
  using (organization_id in (select app_hidden.current_user_organization_ids('admin')));
grant select on app_public.boxes to :DATABASE_VISITOR;
grant update (name, metadata) on app_public.boxes to :DATABASE_VISITOR;
grant delete on app_public.boxes to :DATABASE_VISITOR;

alter table app_public.box_api_keys enable row level security;
create policy select_member on app_public.box_api_keys for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.box_api_keys to :DATABASE_VISITOR;

alter table app_public.box_commands enable row level security;
create policy select_member on app_public.box_commands for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.box_commands to :DATABASE_VISITOR;

alter table app_public.metric_samples enable row level security;
create policy select_member on app_public.metric_samples for select
  using (organization_id in (select app_public.current_user_organization_ids()));
grant select on app_public.metric_samples to :DATABASE_VISITOR;
