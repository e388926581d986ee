/// A normalized event: one provider event, with the fields routing and filtering use, and its
/// exact bytes. Stored as an `.event` journal record.
public struct Event: Sendable, Equatable {
    /// Relay-assigned, unique, time-ordered (`evt_…`).
    public var id: String
    /// The source name from `routes.json` (the `{source}` of `POST /webhooks/{source}`).
    public var source: String
    /// `runa`, `fastspring` or `generic`.
    public var provider: String
    public var type: String
    public var status: String
    public var products: [String]
    public var orderID: String
    /// The provider's own id for the event: the de-duplication key.
    public var providerEventID: String
    public var receivedAt: Timestamp
    /// Request headers kept with the event (content type, provider signature headers).
    public var headers: [(name: String, value: String)]
    /// The event's exact bytes as received (for a batch, this event's slice of the body).
    public var body: [UInt8]

    public init(
        id: String, source: String, provider: String, type: String = "", status: String = "",
        products: [String] = [], orderID: String = "", providerEventID: String = "",
        receivedAt: Timestamp, headers: [(name: String, value: String)] = [], body: [UInt8]
    ) {
        self.id = id
        self.source = source
        self.provider = provider
        self.type = type
        self.status = status
        self.products = products
        self.orderID = orderID
        self.providerEventID = providerEventID
        self.receivedAt = receivedAt
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: Event, rhs: Event) -> Bool {
        lhs.id == rhs.id && lhs.source == rhs.source && lhs.provider == rhs.provider && lhs.type == rhs.type
            && lhs.status == rhs.status && lhs.products == rhs.products && lhs.orderID == rhs.orderID
            && lhs.providerEventID == rhs.providerEventID && lhs.receivedAt == rhs.receivedAt
            && lhs.headers.elementsEqual(rhs.headers, by: { $0.name == $1.name && $0.value == $1.value })
            && lhs.body == rhs.body
    }
}

extension Event {
    static let encodingVersion: UInt8 = 1

    /// The journal payload of this event.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: body.count + 256)
        writer.write(Self.encodingVersion)
        writer.write(id)
        writer.write(source)
        writer.write(provider)
        writer.write(type)
        writer.write(status)
        writer.write(products)
        writer.write(orderID)
        writer.write(providerEventID)
        writer.write(receivedAt.milliseconds)
        writer.write(UInt32(headers.count))
        for header in headers {
            writer.write(header.name)
            writer.write(header.value)
        }
        writer.write(bytes: body)
        return writer.bytes
    }

    /// A reader of an `.event` record payload, past its version byte (checked).
    static func payloadReader(_ payload: [UInt8]) throws -> ByteReader {
        var reader = ByteReader(payload)
        let version: UInt8 = try reader.read()
        guard version == encodingVersion else {
            throw ByteReader.Error(description: "unknown event encoding version \(version)")
        }
        return reader
    }

    /// Decodes an `.event` record payload.
    public init(decoding payload: [UInt8]) throws {
        var reader = try Self.payloadReader(payload)
        id = try reader.readString()
        source = try reader.readString()
        provider = try reader.readString()
        type = try reader.readString()
        status = try reader.readString()
        products = try reader.readStrings()
        orderID = try reader.readString()
        providerEventID = try reader.readString()
        receivedAt = Timestamp(milliseconds: try reader.read())
        let headerCount = Int(try reader.read(UInt32.self))
        guard headerCount <= payload.count else { throw ByteReader.Error(description: "bad header count") }
        headers = []
        for _ in 0..<headerCount {
            headers.append((try reader.readString(), try reader.readString()))
        }
        body = try reader.readBytes()
    }

}

/// The fields of an event record that following the journal needs (delivery bookkeeping and
/// de-duplication keys), decoded without the headers and body: start-up reads a million of
/// these, and the delivery scheduler one per ingested event.
public struct EventHeader: Sendable, Equatable {
    public var id: String
    public var source: String
    public var providerEventID: String
    public var receivedAt: Timestamp

    public init(id: String, source: String, providerEventID: String, receivedAt: Timestamp) {
        self.id = id
        self.source = source
        self.providerEventID = providerEventID
        self.receivedAt = receivedAt
    }

    public init(_ event: Event) {
        self.init(id: event.id, source: event.source, providerEventID: event.providerEventID, receivedAt: event.receivedAt)
    }

    /// Decodes the leading fields of an `.event` record payload (see `Event.encoded()`).
    public init(decoding payload: [UInt8]) throws {
        var reader = try Event.payloadReader(payload)
        id = try reader.readString()
        source = try reader.readString()
        try reader.skipField()  // provider
        try reader.skipField()  // type
        try reader.skipField()  // status
        try reader.skipStrings()  // products
        try reader.skipField()  // order id
        providerEventID = try reader.readString()
        receivedAt = Timestamp(milliseconds: try reader.read())
    }
}
