import Logging
import Synchronization

/// What an accepted ingest request produced.
public struct IngestResult: Sendable {
    /// Events newly stored.
    public var accepted: Int
    /// Events the relay already had (provider retries), acknowledged but not stored again.
    public var duplicates: Int
    /// Relay ids of every event in the request, stored now or before, in request order.
    public var ids: [String]
    /// The newly stored events with their routing decisions (for the delivery scheduler).
    public var routed: [(event: Event, decision: RoutingDecision)] = []

    /// `{"accepted":N,"duplicates":M,"ids":[...]}`.
    public var json: String {
        "{\"accepted\":\(accepted),\"duplicates\":\(duplicates),\"ids\":\(JSONWriter.array(ids))}"
    }
}

/// Turns one provider request into durable events: adapter (verify, split, normalize), then a
/// single journal append for all of the request's events. Pure of HTTP: the server only
/// translates requests and `IngestError`s.
public final class IngestPipeline: Sendable {
    private let config: Mutex<RelayConfig>
    private let journal: Journal
    private let ids: EventIDGenerator
    private let clock: any RelayClock
    private let logger: Logger
    /// Which provider events are already stored.
    public let deduplication: DeduplicationIndex

    public init(
        config: RelayConfig, journal: Journal, clock: any RelayClock = SystemClock(),
        deduplication: DeduplicationIndex.Configuration = .init(), logger: Logger
    ) {
        self.deduplication = DeduplicationIndex(configuration: deduplication)
        self.config = Mutex(config)
        self.journal = journal
        self.clock = clock
        self.ids = EventIDGenerator(clock: clock)
        self.logger = logger
    }

    /// Replaces sources and routes (config reload). A request in progress keeps the snapshot it
    /// took, so every event is routed by exactly one version.
    public func update(_ newConfig: RelayConfig) {
        config.withLock { $0 = newConfig }
    }

    /// The config in force.
    public var currentConfig: RelayConfig { config.withLock { $0 } }


    /// Verifies, normalizes and durably stores the events of one request. Events the relay
    /// already has (by provider event id) are counted as duplicates and not stored again.
    public func ingest(source: SourceConfig, headers: HeaderList, body: [UInt8]) async throws(IngestError) -> IngestResult {
        try await ingest(source: source, routing: config.withLock { $0.routing }, headers: headers, body: body)
    }

    /// Like `ingest(source:headers:body:)` with the routing table of the same config snapshot
    /// the source was taken from, so one request never mixes two config versions.
    public func ingest(source: SourceConfig, routing: RoutingTable, headers: HeaderList, body: [UInt8]) async throws(IngestError) -> IngestResult {
        guard body.count <= source.maxBodyBytes else {
            throw IngestError(.tooLarge, "body of \(body.count) bytes exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)")
        }
        let receivedAt = clock.now()
        let normalized = try ProviderAdapters.normalize(source: source, headers: headers, body: body, now: receivedAt)
        let plan = await claim(normalized, source: source, now: receivedAt)
        let events = plan.compactMap { step -> Event? in
            if case .store(let event, _) = step { return event }
            return nil
        }
        let claimed = plan.compactMap { step -> DeduplicationIndex.Key? in
            if case .store(_, let key?) = step { return key }
            return nil
        }
        // Each event is followed by its routing decision, in the same group commit.
        let decisions = events.map(routing.decide)
        if !events.isEmpty {
            var entries: [JournalEntry] = []
            entries.reserveCapacity(events.count * 2)
            for (event, decision) in zip(events, decisions) {
                entries.append(event.journalEntry)
                entries.append(decision.journalEntry)
            }
            do {
                _ = try await journal.append(entries)
            } catch let error as JournalError where error.code == .overloaded {
                deduplication.release(claimed)
                throw IngestError(.overloaded, "the relay is busy writing; retry shortly")
            } catch let error as JournalError where error.code == .recordTooLarge {
                deduplication.release(claimed)
                throw IngestError(.tooLarge, "an event is too large to store: \(error.message)")
            } catch {
                deduplication.release(claimed)
                logger.error("journal append failed; answering 503", metadata: ["source": "\(source.name)", "error": "\(error)"])
                throw IngestError(.unavailable, "the journal cannot store events right now; nothing was stored, retry later")
            }
            deduplication.commit(plan.compactMap { step in
                if case .store(let event, let key?) = step { return (key, event.id, event.receivedAt) }
                return nil
            })
        }
        var ids: [String] = []
        var duplicates = 0
        for step in plan {
            switch step {
            case .store(let event, _): ids.append(event.id)
            case .duplicate(let id):
                duplicates += 1
                ids.append(id)
            }
        }
        return IngestResult(accepted: events.count, duplicates: duplicates, ids: ids, routed: Array(zip(events, decisions)))
    }

    enum Step {
        case store(Event, DeduplicationIndex.Key?)
        case duplicate(id: String)
    }

    /// Decides, per event, store or duplicate, claiming the keys of the ones to store. A request
    /// never holds claims while it waits for another's (so two batches cannot deadlock): on a
    /// busy key it releases what it holds, waits, and starts over.
    private func claim(_ normalized: [NormalizedEvent], source: SourceConfig, now: Timestamp) async -> [Step] {
        while true {
            var steps: [Step] = []
            var held: [DeduplicationIndex.Key] = []
            var inRequest: [DeduplicationIndex.Key: String] = [:]
            var busy: DeduplicationIndex.Key?
            for item in normalized {
                let event = item.event(id: ids.next(), source: source, receivedAt: now)
                guard !item.providerEventID.isEmpty else {
                    steps.append(.store(event, nil))
                    continue
                }
                let key = DeduplicationIndex.Key(source: source.name, providerEventID: item.providerEventID)
                if let earlier = inRequest[key] {
                    steps.append(.duplicate(id: earlier))  // the same event twice in one batch
                    continue
                }
                switch deduplication.claim(key, now: now) {
                case .new:
                    held.append(key)
                    inRequest[key] = event.id
                    steps.append(.store(event, key))
                case .duplicate(let id):
                    inRequest[key] = id
                    steps.append(.duplicate(id: id))
                case .busy:
                    busy = key
                }
                if busy != nil { break }
            }
            guard let busy else { return steps }
            deduplication.release(held)
            await deduplication.waitWhilePending(busy)
        }
    }

    /// Rebuilds the de-duplication keys from every event in `reader` (the server does this in
    /// the delivery scheduler's start-up pass instead, from its last checkpoint).
    public func recover(from reader: JournalReader) throws {
        let now = clock.now()
        while let record = try reader.next() {
            guard record.type == .event else { continue }
            deduplication.observe(try EventHeader(decoding: record.payload), now: now)
        }
    }
}
