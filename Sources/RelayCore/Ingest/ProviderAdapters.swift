/// An event as an adapter extracted it, before the relay assigns its id.
public struct NormalizedEvent: Sendable, Equatable {
    public var type: String
    public var status: String
    public var products: [String]
    public var orderID: String
    public var providerEventID: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(type: String = "", status: String = "", products: [String] = [], orderID: String = "", providerEventID: String = "", headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.type = type
        self.status = status
        self.products = products
        self.orderID = orderID
        self.providerEventID = providerEventID
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: NormalizedEvent, rhs: NormalizedEvent) -> Bool {
        lhs.type == rhs.type && lhs.status == rhs.status && lhs.products == rhs.products && lhs.orderID == rhs.orderID
            && lhs.providerEventID == rhs.providerEventID && lhs.body == rhs.body
            && lhs.headers.elementsEqual(rhs.headers, by: { $0.name == $1.name && $0.value == $1.value })
    }

    func event(id: String, source: SourceConfig, receivedAt: Timestamp) -> Event {
        Event(
            id: id, source: source.name, provider: source.provider.rawValue, type: type, status: status,
            products: products, orderID: orderID, providerEventID: providerEventID, receivedAt: receivedAt,
            headers: headers, body: body
        )
    }
}

/// One event of a batch the adapter could not accept, and why. Never holds the event's body.
public struct RejectedEvent: Sendable, Equatable {
    /// Its position in the request's batch.
    public var index: Int
    /// The provider's event id, when the event had one.
    public var providerEventID: String?
    /// What is wrong, e.g. `events[3] has no type`.
    public var reason: String

    public init(index: Int, providerEventID: String?, reason: String) {
        (self.index, self.providerEventID, self.reason) = (index, providerEventID, reason)
    }
}

/// What an adapter made of one request: the events it accepts, in request order, and the
/// events of a batch it could not (only FastSpring acknowledges part of a batch).
public struct NormalizedBatch: Sendable, Equatable {
    public var events: [NormalizedEvent] = []
    public var rejected: [RejectedEvent] = []

    public init(events: [NormalizedEvent] = [], rejected: [RejectedEvent] = []) {
        (self.events, self.rejected) = (events, rejected)
    }
}

/// Dispatches a request to its source's provider adapter.
public enum ProviderAdapters {
    /// Headers kept with every stored event, besides the provider's own signature headers.
    static let keptHeaderNames = ["content-type", "user-agent"]

    /// Verifies, splits and normalizes one request. Pure: bytes, headers, config and clock in,
    /// events or an `IngestError` (401 / 400) out. `verifySignatures: false` is for tools that
    /// show what a payload would become (`relay routes test`), never for ingest.
    /// Strict: a batch with any event the adapter cannot accept is an error, naming the first
    /// (for tools and tests; ingest takes the good events with `split`).
    public static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], now: Timestamp, verifySignatures: Bool = true) throws(IngestError) -> [NormalizedEvent] {
        let batch = try split(source: source, headers: headers, body: body, now: now, verifySignatures: verifySignatures)
        if let first = batch.rejected.first {
            var error = IngestError(.badRequest, first.reason)
            error.rejected = batch.rejected
            throw error
        }
        return batch.events
    }

    /// Verifies, splits and normalizes one request, keeping the acceptable events of a batch
    /// beside the rejected ones. Throws when the request as a whole is refused (a bad signature,
    /// a body that is not a batch, a batch with no acceptable event).
    public static func split(source: SourceConfig, headers: HeaderList, body: [UInt8], now: Timestamp, verifySignatures: Bool = true) throws(IngestError) -> NormalizedBatch {
        switch source.provider {
        case .runa: NormalizedBatch(events: try RunaAdapter.normalize(source: source, headers: headers, body: body, now: now, verify: verifySignatures))
        case .fastspring: try FastSpringAdapter.normalize(source: source, headers: headers, body: body, verify: verifySignatures)
        case .generic: NormalizedBatch(events: try GenericAdapter.normalize(source: source, headers: headers, body: body, now: now, verify: verifySignatures))
        }
    }

    static func keptHeaders(_ headers: HeaderList, extra: [String]) -> [(name: String, value: String)] {
        var kept: [(name: String, value: String)] = []
        for name in keptHeaderNames + extra {
            if let value = headers[name] { kept.append((name.lowercased(), value)) }
        }
        return kept
    }

    static func parseJSON(_ body: [UInt8], provider: String) throws(IngestError) -> JSONValue {
        do {
            return try JSONParser.parse(body)
        } catch {
            throw IngestError(.badRequest, "\(provider) body is not valid JSON: \(error)")
        }
    }
}
