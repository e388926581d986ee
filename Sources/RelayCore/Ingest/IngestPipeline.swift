import Logging
import Synchronization

/// What an accepted ingest request produced.
public struct IngestResult: Sendable, Equatable {
    /// Events newly stored.
    public var accepted: Int
    /// Events the relay already had (provider retries), acknowledged but not stored again.
    public var duplicates: Int
    /// Relay ids of every event in the request, stored now or before, in request order.
    public var ids: [String]

    /// `{"accepted":N,"duplicates":M,"ids":[...]}`.
    public var json: String {
        "{\"accepted\":\(accepted),\"duplicates\":\(duplicates),\"ids\":\(JSONWriter.array(ids))}"
    }
}

/// Turns one provider request into durable events: adapter (verify, split, normalize), then a
/// single journal append for all of the request's events. Pure of HTTP: the server only
/// translates requests and `IngestError`s.
public final class IngestPipeline: Sendable {
    private let sources: Mutex<[String: SourceConfig]>
    private let journal: Journal
    private let ids: EventIDGenerator
    private let clock: any RelayClock
    private let logger: Logger

    public init(sources: [String: SourceConfig], journal: Journal, clock: any RelayClock = SystemClock(), logger: Logger) {
        self.sources = Mutex(sources)
        self.journal = journal
        self.clock = clock
        self.ids = EventIDGenerator(clock: clock)
        self.logger = logger
    }

    /// Replaces the source table (config reload). Requests already past lookup keep the old one.
    public func updateSources(_ newSources: [String: SourceConfig]) {
        sources.withLock { $0 = newSources }
    }

    /// The source named `name`, if configured.
    public func source(named name: String) -> SourceConfig? {
        sources.withLock { $0[name] }
    }

    /// Verifies, normalizes and durably stores the events of one request.
    public func ingest(source: SourceConfig, headers: HeaderList, body: [UInt8]) async throws(IngestError) -> IngestResult {
        guard body.count <= source.maxBodyBytes else {
            throw IngestError(.tooLarge, "body of \(body.count) bytes exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)")
        }
        let receivedAt = clock.now()
        let events = try ProviderAdapters.normalize(source: source, headers: headers, body: body, receivedAt: receivedAt, clock: clock)
            .map { normalized in normalized.event(id: ids.next(), source: source, receivedAt: receivedAt) }
        do {
            _ = try await journal.append(events.map(\.journalEntry))
        } catch let error as JournalError where error.code == .overloaded {
            throw IngestError(.overloaded, "the relay is busy writing; retry shortly")
        } catch {
            logger.error("journal append failed; answering 503", metadata: ["source": "\(source.name)", "error": "\(error)"])
            throw IngestError(.unavailable, "the journal cannot store events right now; nothing was stored, retry later")
        }
        return IngestResult(accepted: events.count, duplicates: 0, ids: events.map(\.id))
    }
}
