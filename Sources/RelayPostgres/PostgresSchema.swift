import Logging
import PostgresNIO

/// The store's tables, as numbered migrations recorded in `relay_schema`. Applied in order at
/// start, each in its own transaction, while holding an advisory lock: instances starting at
/// once wait for each other and migrate once.
enum PostgresSchema {
    /// The advisory lock key: "relay-schema" folded into 63 bits.
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
    ]

    static var latest: Int32 { migrations.last?.version ?? 0 }

    /// Creates the schema if missing and applies every migration it lacks.
    static func migrate(_ store: PostgresStore) async throws {
        let logger = store.logger
        try await store.client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
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
                for migration in migrations where migration.version > applied {
                    try await connection.withTransaction(logger: logger) { transaction in
                        for statement in migration.statements {
                            try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await transaction.query("INSERT INTO relay_schema (version) VALUES (\(migration.version))", logger: logger)
                    }
                    logger.info("database schema migrated", metadata: ["schema": "\(store.schema)", "version": "\(migration.version)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
        }
    }
}
