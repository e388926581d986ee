import Foundation
import RelayPostgres

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL cluster of a test's own, for tests that stop and start the database: `initdb`
/// on a temporary directory, a loopback port, run as the `postgres` user when the test runs
/// as root (initdb and postgres refuse root). `stop(immediate:)` and `start()` act only on
/// this cluster's own postmaster (pg_ctl reads its PID from the data directory); `with` stops
/// it and deletes the directory at the end.
public final class ThrowawayPostgres: Sendable {
    public let port: Int
    public let directory: String
    private let bin: String

    public var url: PostgresURL {
        get throws { try PostgresURL("postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable") }
    }

    /// Makes and starts a cluster, runs `body` with it, and removes it, however `body` ends.
    /// Throws (the test fails, never skips) without PostgreSQL installed; scripts/test installs
    /// it. The tools run on a thread of their own (see `runOffPool`): initdb and pg_ctl take
    /// seconds, and a test waiting for them on a cooperative thread would stall every other
    /// test's relay in this process meanwhile.
    public static func with<T: Sendable>(_ body: (ThrowawayPostgres) async throws -> T) async throws -> T {
        let cluster = try await runOffPool("initdb") { try ThrowawayPostgres() }
        do {
            let result = try await body(cluster)
            await cluster.remove()
            return result
        } catch {
            await cluster.remove()
            throw error
        }
    }

    private init() throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.compactMap(Int.init).max() else {
            throw TestHTTPClient.Failure(description: "PostgreSQL is not installed (/usr/lib/postgresql/*/bin); scripts/test installs it")
        }
        bin = "/usr/lib/postgresql/\(version)/bin"
        directory = try TemporaryDirectory(prefix: "relay-pg").path
        port = unusedLoopbackPort()
        releaseReservedPort(port)
        if getuid() == 0 { try Self.run("/usr/bin/chown", ["postgres:", directory], log: "/dev/null") }
        try asPostgres("initdb", ["-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync"])
        try startBlocking()
    }

    /// Starts the cluster and waits until it accepts connections.
    public func start() async throws {
        try await runOffPool("pg_ctl") { try self.startBlocking() }
    }

    private func startBlocking() throws {
        try asPostgres("pg_ctl", [
            "-D", directory + "/data", "-w", "-l", directory + "/postgres.log",
            "-o", "-c listen_addresses=127.0.0.1 -p \(port) -k \(directory) -c max_connections=100", "start",
        ])
    }

    /// Stops the cluster: `immediate` is a crash (no shutdown checkpoint; recovery at the next start).
    public func stop(immediate: Bool = false) async throws {
        try await runOffPool("pg_ctl") { try self.stopBlocking(immediate: immediate) }
    }

    private func stopBlocking(immediate: Bool) throws {
        try asPostgres("pg_ctl", ["-D", directory + "/data", "-m", immediate ? "immediate" : "fast", "-w", "stop"])
    }

    /// Stops the cluster if it runs and deletes its directory.
    private func remove() async {
        _ = try? await runOffPool("pg_ctl") {
            try? self.stopBlocking(immediate: false)
            try? FileManager.default.removeItem(atPath: self.directory)
        }
    }

    private func asPostgres(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/" + tool] + arguments, log: directory + "/tools.log")
        } else {
            try Self.run(bin + "/" + tool, arguments, log: directory + "/tools.log")
        }
    }

    /// Runs a tool to its end (posix_spawn and waitpid), its output in the cluster's `tools.log`.
    private static func run(_ executable: String, _ arguments: [String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of this process (its sockets, its servers' listeners) may live on in the
        // server pg_ctl starts: a connection it kept open would never end (nor release its locks).
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            throw TestHTTPClient.Failure(description: "this C library has no posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later)")
        }
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw TestHTTPClient.Failure(description: "cannot run \(executable): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw TestHTTPClient.Failure(description: "\(executable) \(arguments.joined(separator: " ")) failed (status \(status)): \(text.suffix(2_000))")
        }
    }
}
