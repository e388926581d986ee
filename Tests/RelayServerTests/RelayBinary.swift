import Foundation
import RelayTesting

/// `relay serve` as a child process on one data directory (and, for PostgreSQL, a schema of its
/// own in the test cluster), started again as often as a test needs: for tests of restarts and
/// of the CLI against the real binary.
final class ServedRelay {
    enum Store: String, CaseIterable, CustomStringConvertible {
        case journal, postgres
        var description: String { rawValue }
    }

    let config: String
    let directory: String
    /// `--store URL --store-schema NAME` on PostgreSQL, else none.
    let storeArguments: [String]
    private var starts = 0

    init(config: String, directory: String, store: Store) throws {
        (self.config, self.directory) = (config, directory)
        if store == .postgres {
            _ = try StoreKind.postgresURL()  // fails clearly without the test cluster
            storeArguments = ["--store", ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES_URL"] ?? "", "--store-schema", "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)]
        } else {
            storeArguments = []
        }
    }

    /// Starts it and waits until both listeners are up: the process, its ingest port and the CLI's `--admin URL`.
    func start() async throws -> (RelayProcess, ingest: Int, admin: [String]) {
        starts += 1
        let process = try RelayProcess(
            arguments: ["serve", "--config", config, "--data", directory + "/data", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"] + storeArguments,
            logPath: directory + "/relay\(starts).log"
        )
        let ingest = try await process.waitForPort(message: "ingest listening")
        let admin = try await process.waitForPort(message: "admin listening")
        return (process, ingest, ["--admin", "http://127.0.0.1:\(admin)"])
    }

    /// Drops the PostgreSQL schema, if any.
    func dispose() async {
        guard !storeArguments.isEmpty, let schema = storeArguments.last, let url = try? StoreKind.postgresURL() else { return }
        await dropPostgresSchema(url: url, schema: schema)
    }
}
