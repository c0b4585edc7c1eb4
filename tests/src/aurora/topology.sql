-- Aurora's topology functions, as the stand-in cluster serves them. The rows live in a table
-- on the writer and reach the readers by streaming replication, as Aurora's shared view does;
-- which instance answers comes from its own setting `aurora_standin.instance_id`.
CREATE SCHEMA aurora_standin;
CREATE TABLE aurora_standin.replicas (
    server_id text PRIMARY KEY,
    session_id text NOT NULL,
    replica_lag_in_msec real,
    cpu real NOT NULL DEFAULT 1.5
);
GRANT USAGE ON SCHEMA aurora_standin TO PUBLIC;
GRANT SELECT ON aurora_standin.replicas TO PUBLIC;

-- Aurora's columns (a subset, in its order); last_update_timestamp is NULL in the row of the
-- instance answering (Aurora PostgreSQL 13.9 and later).
CREATE FUNCTION pg_catalog.aurora_replica_status(
    OUT server_id text,
    OUT session_id text,
    OUT durable_lsn bigint,
    OUT highest_lsn_rcvd bigint,
    OUT current_read_lsn bigint,
    OUT cur_replay_latency_in_usec bigint,
    OUT active_txns text,
    OUT is_current boolean,
    OUT last_transport_error integer,
    OUT last_error_timestamp timestamptz,
    OUT last_update_timestamp timestamptz,
    OUT feedback_xmin bigint,
    OUT feedback_epoch integer,
    OUT replica_lag_in_msec real,
    OUT log_stream_speed_in_kib_per_second real,
    OUT log_buffer_sequence_number bigint,
    OUT oldest_read_view_trx_id bigint,
    OUT oldest_read_view_lsn bigint,
    OUT pending_read_ios integer,
    OUT read_ios bigint,
    OUT iops integer,
    OUT cpu real
) RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT r.server_id, r.session_id, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::text, r.server_id = current_setting('aurora_standin.instance_id'), 0,
           NULL::timestamptz,
           CASE WHEN r.server_id = current_setting('aurora_standin.instance_id') THEN NULL
                ELSE now() END::timestamptz,
           NULL::bigint, NULL::integer,
           CASE WHEN r.session_id = 'MASTER_SESSION_ID' THEN NULL ELSE r.replica_lag_in_msec END,
           NULL::real, NULL::bigint, NULL::bigint, NULL::bigint, 0, 0::bigint, 0, r.cpu
    FROM aurora_standin.replicas r
$$;

CREATE FUNCTION pg_catalog.aurora_db_instance_identifier() RETURNS text
    LANGUAGE sql STABLE AS $$ SELECT current_setting('aurora_standin.instance_id') $$;
