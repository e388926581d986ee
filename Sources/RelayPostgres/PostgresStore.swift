import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import RelayCore
import Synchronization

/// The PostgreSQL store: events, routing decisions, deliveries and attempts in one database that
/// several relay instances share. A 2xx means the event's transaction committed with
/// `synchronous_commit=on` (forced on every connection); a server running with `fsync=off` is
/// refused. The schema is created and migrated on `prepare()`, under an advisory lock, so two
/// instances starting at once migrate once.
///
/// Queries run on postgres-nio's `PostgresClient`, which must be running (`run()`) while the
/// store is used. No SQL or postgres-nio type leaves this target.
public final class PostgresStore: Sendable {
    public let url: PostgresURL
    /// The schema every table lives in (each test uses its own).
    public let schema: String
    let client: PostgresClient
    let logger: Logger
    let ingest: IngestBatcher
    /// How long any one database call may take before its caller gives up on it (an ingest
    /// request then answers 503; a claim or a result is tried again).
    public let callLimit: Duration
    /// Told when this instance stored new deliveries.
    let workSignal = WorkSignal()
    /// Tells the other instances (`NOTIFY`).
    let wakeUps = WakeUpSender()
    /// Days whose partitions are known to exist.
    let knownDays = Mutex<Set<Int64>>([])

    /// A store on `url`, its tables in `schema` (letters, digits and `_`, starting with a letter
    /// or `_`; created if missing). Nothing connects until `run()` and `prepare()`.
    public init(url: PostgresURL, schema: String = "relay", maxConnections: Int = 16, callLimit: Duration = .seconds(5), logger: Logger) throws(PostgresURLError) {
        guard let first = schema.utf8.first, first == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
              schema.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              schema.utf8.count <= 63
        else { throw PostgresURLError("schema", "must be lower-case letters, digits and _, starting with a letter or _, not \(JSONWriter.quote(schema))") }
        self.url = url
        self.schema = schema
        self.logger = logger
        self.callLimit = callLimit
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: Self.tls(url.sslMode)
        )
        configuration.options.maximumConnections = max(2, maxConnections)
        configuration.options.connectTimeout = .seconds(5)
        // Every statement finds the store's tables first; every commit waits for the WAL flush.
        configuration.options.additionalStartupParameters = [("search_path", schema), ("synchronous_commit", "on"), ("application_name", "relay")]
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        // The ingest flusher's own connection, with the same settings, on one of the loops the
        // ingest listener also runs on.
        var ingestConfiguration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: try Self.connectionTLS(url.sslMode)
        )
        ingestConfiguration.options.connectTimeout = .seconds(5)
        ingestConfiguration.options.additionalStartupParameters = configuration.options.additionalStartupParameters
        ingest = IngestBatcher(loop: MultiThreadedEventLoopGroup.singleton.next(), configuration: ingestConfiguration)
    }

    /// The TLS settings `mode` asks for; nil for none.
    private static func tlsConfiguration(_ mode: PostgresURL.SSLMode) -> TLSConfiguration? {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case .disable: return nil
        case .prefer, .verifyFull: return tls
        case .require:
            // Encrypted, but the server's certificate is not checked (libpq's `require`).
            tls.certificateVerification = .none
            return tls
        }
    }

    private static func tls(_ mode: PostgresURL.SSLMode) -> PostgresClient.Configuration.TLS {
        guard let tls = tlsConfiguration(mode) else { return .disable }
        return mode == .prefer ? .prefer(tls) : .require(tls)
    }

    /// `tls(_:)` for a single connection, which takes a TLS context made up front.
    private static func connectionTLS(_ mode: PostgresURL.SSLMode) throws(PostgresURLError) -> PostgresConnection.Configuration.TLS {
        guard let tls = tlsConfiguration(mode) else { return .disable }
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: tls) } catch {
            throw PostgresURLError("sslmode", "cannot set up TLS for sslmode=\(mode.rawValue): \(error)")
        }
        return mode == .prefer ? .prefer(context) : .require(context)
    }

    /// Runs the connection pool until cancelled.
    public func run() async {
        await client.run()
        stopIngest()
    }

    /// Checks the server keeps commits durable, then creates or migrates the schema; gives up
    /// after `limit` if the database does not answer.
    public func prepare(limit: Duration = .seconds(30)) async throws {
        try await withDeadline(limit, "cannot reach PostgreSQL at \(url) within \(limit)") { try await self.prepareNow() }
    }

    private func prepareNow() async throws {
        let fsync = try await scalar(String.self, "SHOW fsync")
        guard fsync == "on" else {
            throw PostgresStoreError("the PostgreSQL server runs with fsync=\(fsync ?? "?"): acknowledged events could be lost in a crash; turn fsync on")
        }
        try await PostgresSchema.migrate(self)
        try await ensureDaysAround(SystemClock().now())
    }

    /// Drops the store's schema and everything in it (tests).
    public func dropSchema() async throws {
        try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(schema) CASCADE"), logger: logger)
    }

    /// Runs `sql` as given (tests and operator commands; never with input in it).
    func execute(sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    /// The first column of the first row of `sql` as text, if any.
    func text(sql: String) async throws -> String? {
        try await scalar(String.self, PostgresQuery(unsafeSQL: sql))
    }

    /// The first column of the first row of `sql` as an integer (cast it to bigint), if any.
    func integer(sql: String) async throws -> Int64? {
        try await scalar(Int64.self, PostgresQuery(unsafeSQL: sql))
    }

    /// The first column of the first row of `query`, if any.
    func scalar<T: PostgresDecodable & Sendable>(_ type: T.Type, _ query: PostgresQuery) async throws -> T? {
        try await bounded("a query") { try await self.client.query(query, logger: self.logger).first(T.self) }
    }

    /// An advisory lock key of this store's own: `base` mixed with the schema name (FNV-1a), so
    /// relays on different schemas of one database never wait for each other's locks.
    func lockKey(_ base: Int64) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in schema.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return base ^ Int64(bitPattern: hash >> 1)
    }

    /// Runs one database call (its rows read to the end inside it), giving up after `callLimit`
    /// with an error naming `what`: a database that is down or cut off never holds a caller.
    func bounded<T: Sendable>(_ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(callLimit, "PostgreSQL did not answer \(what) within \(callLimit)", operation)
    }
}

extension PostgresRowSequence {
    /// The first column of the first row, if any. Every row is read: a row stream left unread
    /// keeps its connection leased (from the pool) or holds the connection's next query.
    func first<T: PostgresDecodable & Sendable>(_ type: T.Type) async throws -> T? {
        var first: T?
        for try await value in decode(T.self) where first == nil { first = value }
        return first
    }
}

/// A PostgreSQL store that cannot be used as asked.
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Runs `operation`, giving up with `PostgresStoreError(message)` after `limit`: a database that
/// does not answer (down, unreachable, a network partition) never leaves a caller waiting. The
/// abandoned operation is cancelled and finishes on its own.
func withDeadline<T: Sendable>(_ limit: Duration, _ message: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        race.start(continuation, limit: limit, message: message, operation)
    }
}

/// The two sides of `withDeadline`: whichever finishes first answers, once. The deadline is
/// kept by `DeadlineWatch` (one timer for every call), not by a sleeping task per call: a
/// timer task per database call, cancelled when the call answers, costs a thrown
/// `CancellationError` per call.
final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var answered = false
        var work: Task<Void, Never>?
        var watch: UInt64?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>, limit: Duration, message: String, _ operation: @escaping @Sendable () async throws -> T) {
        let watch = DeadlineWatch.shared.add(ContinuousClock.now + limit) { self.finish(continuation, .failure(PostgresStoreError(message))) }
        let work = Task { self.finish(continuation, await Result(catching: operation)) }
        let answered = state.withLock { state -> Bool in
            (state.work, state.watch) = (work, watch)
            return state.answered
        }
        if answered { DeadlineWatch.shared.remove(watch) }
    }

    private func finish(_ continuation: CheckedContinuation<T, any Error>, _ result: Result<T, any Error>) {
        let (first, work, watch) = state.withLock { state -> (Bool, Task<Void, Never>?, UInt64?) in
            defer { state.answered = true }
            return (!state.answered, state.work, state.watch)
        }
        guard first else { return }
        continuation.resume(with: result)
        if case .failure(let error) = result, error is PostgresStoreError { work?.cancel() }
        if let watch { DeadlineWatch.shared.remove(watch) }
    }
}

/// Deadlines of calls in progress, checked by one task every 50 ms while there are any (it
/// ends when none are left and starts again with the next).
final class DeadlineWatch: Sendable {
    static let shared = DeadlineWatch()

    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: (deadline: ContinuousClock.Instant, expire: @Sendable () -> Void)] = [:]
        var running = false
    }

    private let state = Mutex(State())

    /// Calls `expire` soon after `deadline` unless removed first.
    func add(_ deadline: ContinuousClock.Instant, _ expire: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            state.next += 1
            state.entries[state.next] = (deadline, expire)
            defer { state.running = true }
            return (state.next, !state.running)
        }
        if start { Task.detached { await self.loop() } }
        return id
    }

    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    private func loop() async {
        while true {
            try? await Task.sleep(for: .milliseconds(50))
            let now = ContinuousClock.now
            let (expired, done) = state.withLock { state -> ([@Sendable () -> Void], Bool) in
                let due = state.entries.filter { $0.value.deadline <= now }
                for id in due.keys { state.entries[id] = nil }
                if state.entries.isEmpty { state.running = false }
                return (due.values.map(\.expire), state.entries.isEmpty)
            }
            for expire in expired { expire() }
            if done { return }
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
