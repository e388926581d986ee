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

/// Dispatches a request to its source's provider adapter.
public enum ProviderAdapters {
    /// Headers kept with every stored event, besides the provider's own signature headers.
    static let keptHeaderNames = ["content-type", "user-agent"]

    /// Verifies, splits and normalizes one request. Pure: bytes, headers, config and clock in,
    /// events or an `IngestError` (401 / 400) out. `verifySignatures: false` is for tools that
    /// show what a payload would become (`relay routes test`), never for ingest.
    public static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], now: Timestamp, verifySignatures: Bool = true) throws(IngestError) -> [NormalizedEvent] {
        switch source.provider {
        case .runa: try RunaAdapter.normalize(source: source, headers: headers, body: body, now: now, verify: verifySignatures)
        case .fastspring: try FastSpringAdapter.normalize(source: source, headers: headers, body: body, verify: verifySignatures)
        case .generic: try GenericAdapter.normalize(source: source, headers: headers, body: body, now: now, verify: verifySignatures)
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
