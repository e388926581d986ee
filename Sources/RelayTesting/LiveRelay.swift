import Foundation
import Logging
import RelayCore
import RelayJournal
import RelayPostgres
import RelayForwarder
import RelayServer
import Synchronization

/// An in-process relay on `127.0.0.1:0` with its journal in a temp directory, for tests that
/// cross the HTTP boundary. `stop()` cancels it and waits for the journal to close.
public final class LiveRelay: Sendable {
    public let server: RelayServer
    public let directory: TemporaryDirectory
    private let task: Task<Void, any Error>

    public init(
        routes: String, journal: ((String) -> JournalConfiguration)? = nil,
        scheduler: DeliveryScheduler.Configuration = DeliveryScheduler.Configuration(), clock: any RelayClock = SystemClock(), timer: any Clock<Duration> = ContinuousClock(),
        environment: [String: String] = [:], adminToken: String? = nil, idleTimeout: Duration = .seconds(60), bodyTimeout: Duration = .seconds(60),
        retentionMillis: Int64 = 30 * 86_400_000, store: RelayServerConfiguration.Store = .journal, logger: Logger = LiveRelay.defaultLogger()
    ) async throws {
        let directory = try TemporaryDirectory()
        self.directory = directory
        let configPath = try directory.write("routes.json", routes)
        let config = try RelayConfig.parse(Array(routes.utf8), file: "routes.json", environment: environment)
        let journalDirectory = directory.path + "/data/journal"
        let server = try RelayServer(
            configuration: RelayServerConfiguration(
                configPath: configPath, dataDirectory: directory.path + "/data",
                listen: .init(host: "127.0.0.1", port: 0), adminListen: .init(host: "127.0.0.1", port: 0),
                journal: journal?(journalDirectory) ?? JournalConfiguration(directory: journalDirectory),
                scheduler: scheduler, adminToken: adminToken, idleTimeout: idleTimeout, bodyTimeout: bodyTimeout, retentionMillis: retentionMillis,
                store: store
            ),
            config: config, clock: clock, timer: timer, logger: logger
        )
        self.server = server
        let task = Task { try await server.run(handleSignals: false) }
        self.task = task
        // A store that cannot start (PostgreSQL unreachable) ends `run` before anything listens.
        let ended = Mutex<Result<Void, any Error>?>(nil)
        Task { let result = await task.result; ended.withLock { $0 = result } }
        while server.ingestPort == nil || server.adminPort == nil {
            if case .failure(let error)? = ended.withLock({ $0 }) {
                directory.remove()
                throw error
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Silent unless `RELAY_TEST_LOG` names a level (e.g. `debug`), then to stderr.
    public static func defaultLogger() -> Logger {
        guard let level = ProcessInfo.processInfo.environment["RELAY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) else {
            return Logger(label: "live-relay", factory: { _ in SwiftLogNoOpLogHandler() })
        }
        var logger = Logger(label: "live-relay", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = level
        return logger
    }

    public var ingestPort: Int { server.ingestPort ?? 0 }
    /// The routes file the relay was started with (rewrite it, then reload).
    public var configPath: String { directory.path + "/routes.json" }
    public var adminPort: Int { server.adminPort ?? 0 }

    /// An admin request, with the bearer token when one is given; the answer's JSON (nil if none).
    public func admin(_ path: String, method: String = "GET", token: String? = nil, body: [UInt8] = []) async throws -> (status: Int, json: JSONValue?) {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if !body.isEmpty { headers.append(("Content-Type", "application/json")) }
        let response = try await TestHTTPClient.send(port: adminPort, method: method, path: path, headers: headers, body: body)
        return (response.status, try? JSONParser.parse(response.body))
    }

    /// `GET /metrics`: the Prometheus text (empty if the answer was not a 200).
    public func metrics(token: String? = nil) async throws -> String {
        let headers = token.map { [("Authorization", "Bearer \($0)")] } ?? []
        let response = try await TestHTTPClient.send(port: adminPort, path: "/metrics", headers: headers)
        return response.status == 200 ? String(decoding: response.body, as: UTF8.self) : ""
    }

    /// POSTs `body` to `/webhooks/{source}`.
    public func post(_ source: String, body: [UInt8], headers: [(String, String)] = [("Content-Type", "application/json")]) async throws -> TestHTTPClient.Response {
        try await TestHTTPClient.send(port: ingestPort, method: "POST", path: "/webhooks/\(source)", headers: headers, body: body)
    }

    /// Every record of `type` in the journal, decoded, in order.
    public func stored<Record>(_ type: JournalRecordType, as decode: ([UInt8]) throws -> Record) throws -> [Record] {
        guard let journal = server.journal else { throw PostgresStoreError("this relay keeps its events in PostgreSQL, not a journal") }
        let reader = journal.reader()
        var records: [Record] = []
        while let record = try reader.next() {
            if record.type == type { records.append(try decode(record.payload)) }
        }
        return records
    }

    /// Every routing decision in the journal, in order.
    public func storedDecisions() throws -> [RoutingDecision] { try stored(.routingDecision, as: RoutingDecision.init(decoding:)) }

    /// Every delivery outcome in the journal, in order.
    public func storedDeliveries() throws -> [DeliveryRecord] { try stored(.deliveryAttempt, as: DeliveryRecord.init(decoding:)) }

    /// The delivery records once there are at least `count` (outcomes are journaled just after
    /// each answer, so a test that saw the request may look a moment too early), or after 30 s
    /// (callers then check the count).
    public func storedDeliveries(atLeast count: Int) async throws -> [DeliveryRecord] {
        var records = try storedDeliveries()
        _ = try await eventually(timeout: .seconds(30)) {
            records = try storedDeliveries()
            return records.count >= count
        }
        return records
    }

    /// Every event in the journal, in order.
    public func storedEvents() throws -> [Event] { try stored(.event, as: Event.init(decoding:)) }

    /// Stops the relay; its PostgreSQL schema is dropped unless `keepSchema` (another relay of
    /// the test still uses it).
    public func stop(keepSchema: Bool = false) async {
        task.cancel()
        _ = try? await task.value
        if !keepSchema, let postgres = server.postgres { await dropPostgresSchema(url: postgres.url, schema: postgres.schema) }
        directory.remove()
    }
}

/// A logger that drops everything (tests that do not look at logs).
public func makeTestLogger() -> Logger {
    Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// Drops a test's PostgreSQL schema (with a pool of its own: the relay's has stopped).
public func dropPostgresSchema(url: PostgresURL, schema: String) async {
    guard let store = try? PostgresStore(url: url, schema: schema, maxConnections: 2, logger: makeTestLogger()) else { return }
    let running = Task { await store.run() }
    _ = try? await store.dropSchema()
    running.cancel()
    await running.value
}
