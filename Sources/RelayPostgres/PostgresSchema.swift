import Logging
import PostgresNIO

/// The store's tables, as numbered migrations recorded in `relay_schema`. Applied in order at
/// start, each in its own transaction, while holding an advisory lock: instances starting at
/// once wait for each other and migrate once.
enum PostgresSchema {
    /// The advisory lock key: "relay-schema" folded into 63 bits (mixed with the schema's name).
    static let lockKey: Int64 = 0x7265_6C61_795F_7363

    static let migrations: [(version: Int32, statements: [String])] = [
        (1, [
            """
            CREATE TABLE relay_event (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                received_at bigint NOT NULL,
                source text NOT NULL,
                provider text NOT NULL,
                type text NOT NULL,
                status text NOT NULL,
                provider_event_id text NOT NULL,
                event bytea NOT NULL,
                decision bytea NOT NULL
            )
            """,
            "CREATE INDEX relay_event_received ON relay_event (received_at)",
            "CREATE INDEX relay_event_source ON relay_event (source, seq)",
            """
            CREATE TABLE relay_dedup (
                source text NOT NULL,
                provider_event_id text NOT NULL,
                event_id text NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (source, provider_event_id)
            )
            """,
            """
            CREATE TABLE relay_delivery (
                event_seq bigint NOT NULL REFERENCES relay_event (seq),
                destination text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                attempts integer NOT NULL DEFAULT 0,
                due_at bigint NOT NULL,
                PRIMARY KEY (event_seq, destination)
            )
            """,
            "CREATE INDEX relay_delivery_due ON relay_delivery (destination, due_at) WHERE state = 'pending'",
            """
            CREATE TABLE relay_attempt (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_seq bigint NOT NULL,
                destination text NOT NULL,
                replay_id text NOT NULL,
                record bytea NOT NULL
            )
            """,
            "CREATE INDEX relay_attempt_event ON relay_attempt (event_seq, id)",
        ]),
        (2, [
            // Claims: the instance holding a delivery, until when, and the token a result must carry.
            "ALTER TABLE relay_delivery ADD COLUMN lease_owner text, ADD COLUMN lease_until bigint, ADD COLUMN claim_token bigint",
            "CREATE INDEX relay_delivery_in_flight ON relay_delivery (destination, lease_until) WHERE state = 'in_flight'",
            "CREATE SEQUENCE relay_claim_token",
            // A late result from a lost claim is recorded, marked, and not applied.
            "ALTER TABLE relay_attempt ADD COLUMN fenced boolean NOT NULL DEFAULT false",
            // Per destination, shared by every instance: the breaker, the 410 pause, the totals.
            """
            CREATE TABLE relay_lane (
                destination text PRIMARY KEY,
                consecutive_failures integer NOT NULL DEFAULT 0,
                probes integer NOT NULL DEFAULT 0,
                probe_not_before bigint,
                paused boolean NOT NULL DEFAULT false,
                succeeded bigint NOT NULL DEFAULT 0,
                dead bigint NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE relay_instance (
                id text PRIMARY KEY,
                host text NOT NULL,
                pid integer NOT NULL,
                heartbeat_at bigint NOT NULL
            )
            """,
        ]),
        (3, [
            // Replays: started on one instance, taken over by another when it stops.
            """
            CREATE TABLE relay_replay (
                id text PRIMARY KEY,
                started_at bigint NOT NULL,
                matched_events integer NOT NULL,
                deliveries integer NOT NULL,
                concurrency integer NOT NULL,
                rate_per_s double precision,
                owner text,
                finished_at bigint
            )
            """,
            "CREATE INDEX relay_replay_running ON relay_replay (owner) WHERE finished_at IS NULL",
            """
            CREATE TABLE relay_replay_item (
                replay_id text NOT NULL REFERENCES relay_replay (id) ON DELETE CASCADE,
                position integer NOT NULL,
                event_seq bigint NOT NULL,
                event_id text NOT NULL,
                destination text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                attempts integer NOT NULL DEFAULT 0,
                PRIMARY KEY (replay_id, position)
            )
            """,
        ]),
        (4, [
            // Events, deliveries and attempts partitioned by the event's UTC day (received_at),
            // so retention drops whole days. Unique keys must include the partition key, hence
            // (seq, received_at); global uniqueness of provider ids stays in relay_dedup.
            "ALTER TABLE relay_event RENAME TO relay_event_v3",
            "ALTER TABLE relay_delivery RENAME TO relay_delivery_v3",
            "ALTER TABLE relay_attempt RENAME TO relay_attempt_v3",
            "CREATE SEQUENCE relay_event_seq",
            "SELECT setval('relay_event_seq', coalesce((SELECT max(seq) FROM relay_event_v3), 0) + 1, false)",
            "CREATE SEQUENCE relay_attempt_seq",
            "SELECT setval('relay_attempt_seq', coalesce((SELECT max(id) FROM relay_attempt_v3), 0) + 1, false)",
            """
            CREATE TABLE relay_event (
                seq bigint NOT NULL DEFAULT nextval('relay_event_seq'),
                id text NOT NULL,
                received_at bigint NOT NULL,
                source text NOT NULL,
                provider text NOT NULL,
                type text NOT NULL,
                status text NOT NULL,
                provider_event_id text NOT NULL,
                event bytea NOT NULL,
                decision bytea NOT NULL,
                PRIMARY KEY (seq, received_at)
            ) PARTITION BY RANGE (received_at)
            """,
            "CREATE INDEX relay_event_by_id ON relay_event (id)",
            "CREATE INDEX relay_event_by_time ON relay_event (received_at)",
            "CREATE INDEX relay_event_by_source ON relay_event (source, seq)",
            """
            CREATE TABLE relay_delivery (
                event_seq bigint NOT NULL,
                received_at bigint NOT NULL,
                destination text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                attempts integer NOT NULL DEFAULT 0,
                due_at bigint NOT NULL,
                lease_owner text,
                lease_until bigint,
                claim_token bigint,
                PRIMARY KEY (event_seq, destination, received_at)
            ) PARTITION BY RANGE (received_at)
            """,
            "CREATE INDEX relay_delivery_by_due ON relay_delivery (destination, due_at) WHERE state = 'pending'",
            "CREATE INDEX relay_delivery_by_lease ON relay_delivery (destination, lease_until) WHERE state = 'in_flight'",
            """
            CREATE TABLE relay_attempt (
                id bigint NOT NULL DEFAULT nextval('relay_attempt_seq'),
                event_seq bigint NOT NULL,
                received_at bigint NOT NULL,
                destination text NOT NULL,
                replay_id text NOT NULL,
                record bytea NOT NULL,
                fenced boolean NOT NULL DEFAULT false
            ) PARTITION BY RANGE (received_at)
            """,
            "CREATE INDEX relay_attempt_by_event ON relay_attempt (event_seq, id)",
            // The day's three partitions, named by date (relay_event_20261130); idempotent, and
            // safe when two instances create the same day at once.
            """
            CREATE FUNCTION relay_ensure_day(d bigint) RETURNS void LANGUAGE plpgsql AS $$
            DECLARE
                suffix text := to_char(timestamp '1970-01-01' + d * interval '1 day', 'YYYYMMDD');
                t text;
            BEGIN
                FOREACH t IN ARRAY ARRAY['relay_event', 'relay_delivery', 'relay_attempt'] LOOP
                    IF to_regclass(quote_ident(t || '_' || suffix)) IS NULL THEN
                        BEGIN
                            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                                t || '_' || suffix, t, d * 86400000, (d + 1) * 86400000);
                        EXCEPTION WHEN duplicate_table OR unique_violation THEN NULL;
                        END;
                    END IF;
                END LOOP;
            END $$
            """,
            "SELECT relay_ensure_day(d) FROM (SELECT DISTINCT floor(received_at / 86400000.0)::bigint AS d FROM relay_event_v3) days",
            """
            INSERT INTO relay_event (seq, id, received_at, source, provider, type, status, provider_event_id, event, decision)
            SELECT seq, id, received_at, source, provider, type, status, provider_event_id, event, decision FROM relay_event_v3
            """,
            """
            INSERT INTO relay_delivery (event_seq, received_at, destination, state, attempts, due_at, lease_owner, lease_until, claim_token)
            SELECT d.event_seq, e.received_at, d.destination, d.state, d.attempts, d.due_at, d.lease_owner, d.lease_until, d.claim_token
            FROM relay_delivery_v3 d JOIN relay_event_v3 e ON e.seq = d.event_seq
            """,
            """
            INSERT INTO relay_attempt (id, event_seq, received_at, destination, replay_id, record, fenced)
            SELECT a.id, a.event_seq, e.received_at, a.destination, a.replay_id, a.record, a.fenced
            FROM relay_attempt_v3 a JOIN relay_event_v3 e ON e.seq = a.event_seq
            """,
            "ALTER TABLE relay_replay_item ADD COLUMN received_at bigint NOT NULL DEFAULT 0",
            "UPDATE relay_replay_item i SET received_at = e.received_at FROM relay_event_v3 e WHERE e.seq = i.event_seq",
            "DROP TABLE relay_attempt_v3, relay_delivery_v3, relay_event_v3",
            // De-duplication keys expire after their window.
            "CREATE INDEX relay_dedup_by_time ON relay_dedup (received_at)",
        ]),
        (5, [
            // An operator's pause: held until resumed, whatever the config says.
            "ALTER TABLE relay_lane ADD COLUMN operator_paused boolean NOT NULL DEFAULT false",
        ]),
        (6, [
            // A destination's rate limit (rate_per_s), one token bucket shared by every instance;
            // NULL tokens: a full bucket.
            "ALTER TABLE relay_lane ADD COLUMN rate_tokens double precision, ADD COLUMN rate_updated_at bigint, ADD COLUMN rate_limited bigint NOT NULL DEFAULT 0",
        ]),
        (7, [
            // When each attempt ended, its outcome and duration, for the console's minute counts
            // across every instance (older rows: NULL, not counted).
            "ALTER TABLE relay_attempt ADD COLUMN at bigint, ADD COLUMN outcome smallint, ADD COLUMN duration_ms integer",
            "CREATE INDEX relay_attempt_at ON relay_attempt (at)",
        ]),
        (8, [
            // Per-key ordering: a delivery's key (NULL: not ordered), and whether, dead, it holds
            // its key (on_dead: hold) since held_at. A claim takes a keyed delivery only when no
            // earlier one of its key is unfinished or held; this index answers that.
            "ALTER TABLE relay_delivery ADD COLUMN ordering_key text, ADD COLUMN held boolean NOT NULL DEFAULT false, ADD COLUMN held_at bigint",
            // A replay taken over by another instance keeps its per-key order.
            "ALTER TABLE relay_replay_item ADD COLUMN ordering_key text",
            """
            CREATE INDEX relay_delivery_by_key ON relay_delivery (destination, ordering_key, event_seq)
            WHERE ordering_key IS NOT NULL AND (state IN ('pending', 'in_flight') OR held)
            """,
        ]),
        (9, [
            // A stored event is a webhook body with its headers, over PostgreSQL's 2 kB
            // compression threshold for a typical order: compressed with lz4 rather than the
            // default pglz, which took about a quarter of the database's CPU per ingested event
            // (perf, scripts/bench --store postgres). Partitions made later inherit the setting.
            // A server built without lz4 (or older than PostgreSQL 14) keeps pglz. SET
            // COMPRESSION does not recurse, so the days already there are set one by one.
            """
            DO $$
            DECLARE
                part regclass;
            BEGIN
                EXECUTE 'ALTER TABLE relay_event ALTER COLUMN event SET COMPRESSION lz4';
                EXECUTE 'ALTER TABLE relay_attempt ALTER COLUMN record SET COMPRESSION lz4';
                FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'relay_event'::regclass LOOP
                    EXECUTE format('ALTER TABLE %s ALTER COLUMN event SET COMPRESSION lz4', part);
                END LOOP;
                FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'relay_attempt'::regclass LOOP
                    EXECUTE format('ALTER TABLE %s ALTER COLUMN record SET COMPRESSION lz4', part);
                END LOOP;
            EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN NULL;
            END $$
            """,
        ]),
        (10, [
            // An ingest batch in one call: its keys, events and deliveries (as one statement, see
            // PostgresIngest.swift), then the event id under each keyed candidate's key. The
            // second query is a statement of its own in a VOLATILE function, so it takes a new
            // snapshot (READ COMMITTED) and sees a key that a concurrent batch committed while
            // this one's insert waited for it. A function, not the statements themselves, so
            // each connection parses and plans them once, not once per batch (about a tenth of
            // a batch's time in the database on 2 cores). Parameters by position: some share
            // their names with columns. A keyed candidate whose key has no row (deleted by
            // retention between the two statements) fails the call, so the transaction rolls
            // back and the whole batch is answered 503, never half-stored.
            """
            CREATE FUNCTION relay_ingest(
                text[], bigint[], text[], text[], text[], text[], text[], bytea[], bytea[], boolean[], text[], text[], text[]
            ) RETURNS TABLE (key_source text, key_provider_event_id text, key_event_id text) LANGUAGE plpgsql VOLATILE AS $$
            DECLARE
                keys_found bigint;
            BEGIN
                WITH c AS (
                    SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                        AS c(id, received_at, source, provider, type, status, provider_event_id, event, decision, keyed)
                ), k AS (
                    INSERT INTO relay_dedup (source, provider_event_id, event_id, received_at)
                    SELECT c.source, c.provider_event_id, c.id, c.received_at FROM c WHERE c.keyed ORDER BY c.source, c.provider_event_id
                    ON CONFLICT DO NOTHING RETURNING relay_dedup.event_id
                ), e AS (
                    INSERT INTO relay_event (id, received_at, source, provider, type, status, provider_event_id, event, decision)
                    SELECT c.id, c.received_at, c.source, c.provider, c.type, c.status, c.provider_event_id, c.event, c.decision FROM c
                    WHERE NOT c.keyed OR c.id IN (SELECT k.event_id FROM k)
                    RETURNING relay_event.seq, relay_event.id, relay_event.received_at
                )
                INSERT INTO relay_delivery (event_seq, received_at, destination, due_at, ordering_key)
                SELECT e.seq, e.received_at, x.destination, e.received_at, nullif(x.ordering_key, '')
                FROM e JOIN unnest($11, $12, $13) AS x(event_id, destination, ordering_key) ON x.event_id = e.id;
                RETURN QUERY
                    SELECT d.source, d.provider_event_id, d.event_id FROM relay_dedup d
                    JOIN unnest($3, $7, $10) AS k(source, provider_event_id, keyed)
                    ON k.keyed AND d.source = k.source AND d.provider_event_id = k.provider_event_id;
                GET DIAGNOSTICS keys_found = ROW_COUNT;
                IF keys_found <> (SELECT count(*) FROM unnest($10) AS k(keyed) WHERE k.keyed) THEN
                    RAISE EXCEPTION 'a de-duplication key vanished just after it was written';
                END IF;
            END $$
            """,
        ]),
    ]

    static var latest: Int32 { migrations.last?.version ?? 0 }

    /// Creates the schema if missing and applies every migration it lacks (up to `target`).
    static func migrate(_ store: PostgresStore, upTo target: Int32 = Int32.max) async throws {
        let logger = store.logger
        try await store.client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(store.lockKey(lockKey)))", logger: logger)
            do {
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(store.schema)"), logger: logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS relay_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                    logger: logger
                )
                var applied: Int32 = 0
                for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM relay_schema", logger: logger).decode(Int32.self) {
                    applied = version
                }
                for migration in migrations where migration.version > applied && migration.version <= target {
                    try await connection.withTransaction(logger: logger) { transaction in
                        for statement in migration.statements {
                            try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await transaction.query("INSERT INTO relay_schema (version) VALUES (\(migration.version))", logger: logger)
                    }
                    logger.info("database schema migrated", metadata: ["schema": "\(store.schema)", "version": "\(migration.version)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(store.lockKey(lockKey)))", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(store.lockKey(lockKey)))", logger: logger)
        }
    }
}
