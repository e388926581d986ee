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
    /// The provider's event ids of every event in `ids`, in the same order.
    public var providerEventIDs: [String] = []
    /// Events of the batch the adapter could not accept (FastSpring: not acknowledged, so the
    /// provider sends them again).
    public var rejected: [RejectedEvent] = []

    /// FastSpring's partial acknowledgement: the provider event ids of the events stored now or
    /// before, one per line; the events not listed are retried by FastSpring.
    public var acknowledgedList: String {
        providerEventIDs.map { $0 + "\n" }.joined()
    }

    /// `{"accepted":N,"duplicates":M,"ids":[...]}`.
    public var json: String {
        var out = "{\"accepted\":"
        out.reserveCapacity(48 + ids.reduce(0) { $0 + $1.utf8.count + 3 })
        out += String(accepted)
        out += ",\"duplicates\":"
        out += String(duplicates)
        out += ",\"ids\":"
        out += JSONWriter.array(ids)
        out += "}"
        return out
    }
}

/// Turns one provider request into durable events: adapter (verify, split, normalize), routing,
/// then one call to the ingest store for all of the request's events. Pure of HTTP and of the
/// store: the server only translates requests and `IngestError`s.
public final class IngestPipeline: Sendable {
    private let config: Mutex<RelayConfig>
    private let store: any IngestStore
    private let ids: EventIDGenerator
    private let clock: any RelayClock

    public init(config: RelayConfig, store: any IngestStore, clock: any RelayClock = SystemClock()) {
        self.config = Mutex(config)
        self.store = store
        self.clock = clock
        self.ids = EventIDGenerator(clock: clock)
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
        let (candidates, rejected) = try prepare(source: source, routing: routing, headers: headers, body: body)
        return try await stored(candidates, rejected: rejected)
    }

    /// Like `ingest(source:routing:headers:body:)`, without `async`: `completion` runs once, on
    /// the store's thread after the commit (or at once when the request is refused before it),
    /// so a server can answer on the connection's own thread with no hop through the
    /// concurrency pool.
    public func ingest(
        source: SourceConfig, routing: RoutingTable, headers: HeaderList, body: [UInt8],
        completion: @escaping @Sendable (Result<IngestResult, IngestError>) -> Void
    ) {
        let candidates: [IngestCandidate], rejected: [RejectedEvent]
        do {
            (candidates, rejected) = try prepare(source: source, routing: routing, headers: headers, body: body)
        } catch {
            return completion(.failure(error))
        }
        store.store(candidates) { outcomes in
            completion(outcomes.map { Self.result(candidates, $0, rejected: rejected) })
        }
    }

    /// Stores `candidates`: the answer, with the batch's `rejected` events.
    private func stored(_ candidates: [IngestCandidate], rejected: [RejectedEvent]) async throws(IngestError) -> IngestResult {
        Self.result(candidates, try await store.store(candidates), rejected: rejected)
    }

    /// Each normalized event with a fresh relay id and its routing decision.
    private func candidates(_ events: [NormalizedEvent], source: SourceConfig, routing: RoutingTable, receivedAt: Timestamp) -> [IngestCandidate] {
        events.map { item in
            let event = item.event(id: ids.next(), source: source, receivedAt: receivedAt)
            return IngestCandidate(event: event, decision: routing.decide(event))
        }
    }

    /// Checks the size, verifies and normalizes the body, and routes each event: the
    /// candidates for the store, with fresh relay ids, and the events of a batch the adapter
    /// could not accept.
    public func prepare(source: SourceConfig, routing: RoutingTable, headers: HeaderList, body: [UInt8]) throws(IngestError) -> (candidates: [IngestCandidate], rejected: [RejectedEvent]) {
        guard body.count <= source.maxBodyBytes else {
            throw IngestError(.tooLarge, "body of \(body.count) bytes exceeds the limit of \(source.maxBodyBytes) bytes for source \(source.name)")
        }
        let receivedAt = clock.now()
        let batch = try ProviderAdapters.split(source: source, headers: headers, body: body, now: receivedAt)
        return (candidates(batch.events, source: source, routing: routing, receivedAt: receivedAt), batch.rejected)
    }

    /// The header a recovered event carries: how it reached the relay (`received_via`).
    public static let receivedViaHeader = "x-relay-received-via"

    /// Events recovered from the provider's own API (reconciliation), stored as if they had
    /// been pushed: the same adapter and the same de-duplication by provider event id, with the
    /// routing of the config in force. There is no signature to check (the relay fetched them
    /// itself, with its API credentials); each carries `x-relay-received-via: reconcile`.
    public func ingestRecovered(source: SourceConfig, events: [JSONValue]) async throws(IngestError) -> IngestResult {
        let routing = config.withLock { $0.routing }
        let receivedAt = clock.now()
        var batch = NormalizedBatch()
        switch source.provider {
        case .fastspring:
            // One batch, as FastSpring would have pushed them.
            let body = Array(JSONWriter.serialize(.object([(key: "events", value: .array(events))])).utf8)
            batch = try ProviderAdapters.split(source: source, headers: HeaderList(), body: body, now: receivedAt, verifySignatures: false)
        case .runa, .generic:
            // Runa pushes one order per request: each recovered order is one body.
            for (index, event) in events.enumerated() {
                let body = Array(JSONWriter.serialize(event).utf8)
                do {
                    batch.events += try ProviderAdapters.split(source: source, headers: HeaderList(), body: body, now: receivedAt, verifySignatures: false).events
                } catch {
                    batch.rejected.append(RejectedEvent(index: index, providerEventID: event["id"]?.scalarText, reason: error.message))
                }
            }
        }
        let recovered = batch.events.map { item in
            var item = item
            item.headers.append((name: Self.receivedViaHeader, value: "reconcile"))
            return item
        }
        return try await stored(candidates(recovered, source: source, routing: routing, receivedAt: receivedAt), rejected: batch.rejected)
    }

    /// The answer to a request whose candidates the store took with `outcomes`.
    public static func result(_ candidates: [IngestCandidate], _ outcomes: [IngestOutcome], rejected: [RejectedEvent] = []) -> IngestResult {
        var result = IngestResult(accepted: 0, duplicates: 0, ids: [])
        result.rejected = rejected
        result.ids.reserveCapacity(outcomes.count)
        result.providerEventIDs.reserveCapacity(outcomes.count)
        for (candidate, outcome) in zip(candidates, outcomes) {
            result.ids.append(outcome.id)
            result.providerEventIDs.append(candidate.event.providerEventID)
            switch outcome {
            case .stored:
                result.accepted += 1
                result.routed.append((candidate.event, candidate.decision))
            case .duplicate:
                result.duplicates += 1
            }
        }
        return result
    }
}
