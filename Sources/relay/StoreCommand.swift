import ArgumentParser
import Foundation
import Logging
import RelayCore
import RelayPostgres

/// `relay store migrate|status`: the PostgreSQL store, for operators.
struct StoreTools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Migrate or inspect the PostgreSQL store (what relay serve --store uses).",
        subcommands: [Migrate.self, Status.self]
    )

    struct StoreOptions: ParsableArguments {
        @Option(help: ArgumentHelp("The store: postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=… (also RELAY_STORE).", valueName: "url"))
        var store: String?

        @Option(help: "The schema the store's tables live in (as relay serve --store-schema).")
        var schema: String = "relay"

        /// The store, or one line naming what is wrong and exit 2.
        func open(command: String) throws -> PostgresStore {
            guard let text = store ?? ProcessInfo.processInfo.environment["RELAY_STORE"].flatMap({ $0.isEmpty ? nil : $0 }) else {
                throw fail("store \(command): --store: missing (or set RELAY_STORE)", code: 2)
            }
            do {
                return try PostgresStore(url: try PostgresURL(text), schema: schema, maxConnections: 2, logger: Logger(label: "relay-store", factory: { _ in SwiftLogNoOpLogHandler() }))
            } catch {
                throw fail("store \(command): --store: \(error)", code: 2)
            }
        }
    }

    /// Runs `body` with the store's pool running; a failure is one line.
    static func with<T: Sendable>(_ store: PostgresStore, command: String, _ body: @Sendable (PostgresStore) async throws -> T) async throws -> T {
        let pool = Task { await store.run() }
        defer { pool.cancel() }
        do {
            return try await body(store)
        } catch {
            throw fail("store \(command): \(error)")
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create or migrate the schema (relay serve does this at start too).")
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = try options.open(command: "migrate")
            let status = try await StoreTools.with(store, command: "migrate") { store in
                try await store.prepare()
                return try await store.status()
            }
            print("schema \(store.schema) at version \(status.schemaVersion) (\(store.url))")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Schema version, instances alive with their heartbeat age, deliveries per destination, day partitions kept.")
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = try options.open(command: "status")
            let status = try await StoreTools.with(store, command: "status") { try await $0.status() }
            print("store \(store.url), schema \(store.schema) version \(status.schemaVersion) (latest \(status.latestVersion))")
            print("instances: \(status.instances.count)")
            for instance in status.instances {
                print("  \(instance.id) host \(instance.host) pid \(instance.pid) heartbeat \(Double(instance.heartbeatAgeMillis) / 1000)s ago")
            }
            print("deliveries:")
            for destination in status.destinations {
                print("  \(destination.name): pending \(destination.pending), in flight \(destination.inFlight), dead \(destination.dead)")
            }
            // The day partitions retention has kept: a day older than the retention is one held
            // by an unfinished delivery or a running replay.
            if let oldest = status.days.first, let newest = status.days.last {
                print("days: \(status.days.count) partitions, \(oldest) to \(newest)")
            } else {
                print("days: none")
            }
        }
    }
}
