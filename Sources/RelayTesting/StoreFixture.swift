import Foundation
import Logging
import RelayCore
import RelayJournal
import RelayPostgres
import RelayServer
import Synchronization

/// A store put under the conformance suite: its ports, and how to dispose of it.
public struct StoreUnderTest: Sendable {
    public let ingest: any IngestStore
    public let events: any EventStore
    public let recorder: any AttemptRecorder
    /// The store's deliveries, already following the store (`run`), closed by `close()`; nil
    /// for a store without its delivery port yet (see `StoreKind.withDeliveries`).
    public let deliveries: (any DeliveryStore)?
    private let dispose: @Sendable () async -> Void

    public init(
        ingest: any IngestStore, events: any EventStore, recorder: any AttemptRecorder, deliveries: (any DeliveryStore)?,
        dispose: @escaping @Sendable () async -> Void
    ) {
        self.ingest = ingest
        self.events = events
        self.recorder = recorder
        self.deliveries = deliveries
        self.dispose = dispose
    }

    public func close() async { await dispose() }
}

/// Every store the conformance suite runs against.
public enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The embedded journal on a temporary directory.
    case journal
    /// The in-memory store.
    case memory
    /// PostgreSQL at `RELAY_TEST_POSTGRES_URL` (scripts/test starts a throwaway cluster), each
    /// store in a schema of its own, dropped at the end. Without the URL it fails: never skipped.
    case postgres

    /// The stores that implement the delivery port.
    public static let withDeliveries: [StoreKind] = allCases

    public var description: String { rawValue }

    /// A new, empty store of this kind; its lanes run `breaker`.
    public func make(breaker: CircuitBreaker.Configuration = .init()) async throws -> StoreUnderTest {
        switch self {
        case .memory:
            let store = MemoryStore(breaker: breaker)
            let following = Task { await store.run(newWork: {}, replaysNeed: ReplayFloor()) }
            return StoreUnderTest(ingest: store, events: store, recorder: store, deliveries: store, dispose: {
                await store.close()
                await following.value
            })
        case .postgres:
            return try await Self.makePostgres(breaker: breaker)
        case .journal:
            let directory = try TemporaryDirectory()
            let logger = Logger(label: "store-under-test", factory: { _ in SwiftLogNoOpLogHandler() })
            let journal = try Journal.open(JournalConfiguration(directory: directory.path + "/journal"), logger: logger)
            let io = ThreadPoolIO(threads: 2)
            let deliveries = try JournalDeliveryStore(
                journal: journal, destinations: [:], configuration: .init(breaker: breaker), io: io, pauses: OperatorPauses(directory: directory.path + "/journal"), logger: logger
            )
            let following = Task { await deliveries.run(newWork: {}, replaysNeed: ReplayFloor()) }
            return StoreUnderTest(
                ingest: JournalIngestStore(journal: journal, logger: logger),
                events: JournalEventStore(journal: journal, io: io),
                recorder: JournalAttemptRecorder(journal: journal),
                deliveries: deliveries,
                dispose: {
                    await deliveries.close()
                    await following.value
                    await journal.close()
                    await io.shutdown()
                    directory.remove()
                }
            )
        }
    }
}

extension StoreKind {
    /// The test cluster's URL, or a clear failure.
    public static func postgresURL() throws -> PostgresURL {
        guard let text = ProcessInfo.processInfo.environment["RELAY_TEST_POSTGRES_URL"], !text.isEmpty else {
            throw PostgresStoreError("RELAY_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL cluster")
        }
        return try PostgresURL(text)
    }

    /// A PostgreSQL store in a new schema, migrated and running.
    static func makePostgres(breaker: CircuitBreaker.Configuration) async throws -> StoreUnderTest {
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let logger = Logger(label: "store-under-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try PostgresStore(url: try postgresURL(), schema: schema, maxConnections: 8, logger: logger)
        let running = Task { await store.run() }
        do {
            try await store.prepare()
        } catch {
            running.cancel()
            await running.value
            throw error
        }
        let deliveries = PostgresDeliveryStore(store: store, breaker: breaker)
        let following = Task { await deliveries.run(newWork: {}, replaysNeed: ReplayFloor()) }
        return StoreUnderTest(ingest: store, events: store, recorder: store, deliveries: deliveries, dispose: {
            await deliveries.close()
            await following.value
            _ = try? await store.dropSchema()
            running.cancel()
            await running.value
        })
    }
}

/// The system clock moved by an offset the test sets: events can be made old without waiting,
/// while the relay's timers keep running in real time.
public final class OffsetClock: RelayClock {
    private let offset: Mutex<Int64>

    public init(milliseconds: Int64 = 0) {
        offset = Mutex(milliseconds)
    }

    public func now() -> Timestamp { Timestamp(milliseconds: SystemClock().now().milliseconds + offset.withLock { $0 }) }

    public func set(milliseconds: Int64) { offset.withLock { $0 = milliseconds } }

    public func advance(milliseconds: Int64) { offset.withLock { $0 += milliseconds } }
}

/// A clock a test sets.
public final class SettableClock: RelayClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func set(_ time: Timestamp) { current.withLock { $0 = time } }
}

/// A small blocking-I/O pool for tests that build a store directly (shut it down at the end).
public final class TestBlockingIO: BlockingIO {
    private let pool = ThreadPoolIO(threads: 2)

    public init() {}

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T { try await pool.run(work) }

    public func submit(_ work: @escaping @Sendable () -> Void) { pool.submit(work) }

    public func shutdown() async { await pool.shutdown() }
}
