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
    static let keptHeaders = ["content-type", "user-agent"]

    public static func normalize(source: SourceConfig, headers: HeaderList, body: [UInt8], receivedAt: Timestamp, clock: any RelayClock) throws(IngestError) -> [NormalizedEvent] {
        switch source.provider {
        case .generic, .runa, .fastspring:
            var kept: [(name: String, value: String)] = []
            for name in keptHeaders { if let value = headers[name] { kept.append((name, value)) } }
            return [NormalizedEvent(headers: kept, body: body)]
        }
    }
}
