import Logging
@testable import RelayPostgres
import RelayTesting
import Testing

/// The PostgreSQL store against the test cluster (`RELAY_TEST_POSTGRES_URL`, started by
/// scripts/test): schema migration and the settings its guarantees rest on.
@Suite struct PostgresStoreTests {
    static let logger = Logger(label: "postgres-test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a running store in a new schema, dropped afterwards.
    func withStore<T: Sendable>(
        url: PostgresURL? = nil, schema: String = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36), prepare: Bool = true,
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = try PostgresStore(url: try url ?? StoreKind.postgresURL(), schema: schema, maxConnections: 4, logger: Self.logger)
        let running = Task { await store.run() }
        defer { running.cancel() }
        do {
            if prepare { try await store.prepare() }
            let result = try await body(store)
            _ = try? await store.dropSchema()
            return result
        } catch {
            _ = try? await store.dropSchema()
            throw error
        }
    }

    @Test func instancesStartingAtOnceMigrateOnce() async throws {
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let url = try StoreKind.postgresURL()
        try await withStore(schema: schema, prepare: false) { observer in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let store = try PostgresStore(url: url, schema: schema, maxConnections: 2, logger: Self.logger)
                        let running = Task { await store.run() }
                        defer { running.cancel() }
                        try await store.prepare()
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await observer.integer(sql: "SELECT count(*)::bigint FROM relay_schema") == Int64(PostgresSchema.migrations.count))
            #expect(try await observer.integer(sql: "SELECT max(version)::bigint FROM relay_schema") == Int64(PostgresSchema.latest))
            // Preparing again changes nothing.
            try await observer.prepare()
            #expect(try await observer.integer(sql: "SELECT count(*)::bigint FROM relay_schema") == Int64(PostgresSchema.migrations.count))
        }
    }

    /// A role whose default is `synchronous_commit = off` still commits synchronously through
    /// the store: the store sets it on every connection, so a 2xx always means flushed to disk.
    @Test func everyConnectionCommitsSynchronouslyWhateverTheRoleDefault() async throws {
        let url = try StoreKind.postgresURL()
        let role = "r_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try await withStore { admin in
            try await admin.execute(sql: "CREATE ROLE \(role) LOGIN SUPERUSER")
            try await admin.execute(sql: "ALTER ROLE \(role) SET synchronous_commit = off")
            var asRole = url
            asRole.user = role
            asRole.password = nil
            let setting = try await withStore(url: asRole) { store in
                try await store.text(sql: "SHOW synchronous_commit")
            }
            try await admin.execute(sql: "DROP ROLE \(role)")
            #expect(setting == "on")
        }
    }
}
