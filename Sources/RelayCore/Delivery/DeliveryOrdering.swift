/// A destination's per-key ordering (`"ordering": {"key": …, "on_dead": …}`): for each value of
/// the key, deliveries go out one at a time in the order the relay received their events; the
/// next waits until the one before has succeeded or died. Events with no value at the key are
/// not ordered.
public struct DeliveryOrdering: Sendable, Equatable {
    /// Where an event's key comes from.
    public enum Key: Sendable, Equatable, CustomStringConvertible {
        /// A normalized field: `order_id`, `source` or `type`.
        case orderID
        case source
        case type
        /// A JSON Pointer into the event's payload (no `*`: one value per event).
        case pointer(JSONPointer)

        public var description: String {
            switch self {
            case .orderID: "order_id"
            case .source: "source"
            case .type: "type"
            case .pointer(let pointer): pointer.description
            }
        }

        /// Parses the config's `key`; nil with the reason when it is neither a known field nor a
        /// JSON Pointer that reaches one value.
        public static func parse(_ text: String) -> Result<Key, KeyError> {
            switch text {
            case "order_id": return .success(.orderID)
            case "source": return .success(.source)
            case "type": return .success(.type)
            default: break
            }
            guard text.hasPrefix("/"), let pointer = JSONPointer(text) else {
                return .failure(KeyError(message: "must be order_id, source, type or a JSON Pointer such as /data/account, not \(JSONWriter.quote(text))"))
            }
            if pointer.tokens.contains(.any) {
                return .failure(KeyError(message: "\(JSONWriter.quote(text)) has a *, which reaches many values; an ordering key needs one"))
            }
            return .success(.pointer(pointer))
        }

        /// Whether reading the key needs the event's payload.
        public var needsPayload: Bool {
            if case .pointer = self { true } else { false }
        }
    }

    public struct KeyError: Error, Sendable {
        public var message: String
    }

    /// What a dead delivery does to its key.
    public enum OnDead: String, Sendable, Equatable {
        /// The key moves on to its next delivery.
        case `continue`
        /// The key stays blocked until an operator retries (and it succeeds) or skips it.
        case hold
    }

    public var key: Key
    public var onDead: OnDead

    public init(key: Key, onDead: OnDead = .continue) {
        self.key = key
        self.onDead = onDead
    }

    /// Keys longer than this are replaced by their SHA-256 (keys are kept per pending delivery).
    static let maxKeyBytes = 200

    /// The event's key, nil when it has none (an empty or missing value, or a payload that is
    /// not JSON): such an event is not ordered. `payload` is the parsed body, when the caller has it.
    public func key(of event: Event, payload: JSONValue?) -> String? {
        let value: String
        switch key {
        case .orderID: value = event.orderID
        case .source: value = event.source
        case .type: value = event.type
        case .pointer(let pointer):
            guard let document = payload ?? (try? JSONParser.parse(event.body)) else { return nil }
            value = pointer.values(in: document).first?.scalarText ?? ""
        }
        if value.isEmpty { return nil }
        return value.utf8.count > Self.maxKeyBytes ? "sha256:" + Digest.sha256Hex(Array(value.utf8)) : value
    }

    static let allowedKeys: Set<String> = ["key", "on_dead"]

    static func parse(_ value: JSONValue, _ path: String, _ reader: inout ConfigReader) -> DeliveryOrdering? {
        guard reader.object(value, path, allowed: allowedKeys) != nil else { return nil }
        var ordering: DeliveryOrdering?
        if let text = reader.string(value["key"], "\(path).key") {
            switch Key.parse(text) {
            case .success(let key): ordering = DeliveryOrdering(key: key)
            case .failure(let error): reader.fail("\(path).key", error.message)
            }
        } else if value["key"] == nil {
            reader.fail("\(path).key", "is required (order_id, source, type or a JSON Pointer into the payload)")
        }
        if let text = reader.string(value["on_dead"], "\(path).on_dead") {
            if let onDead = OnDead(rawValue: text) {
                ordering?.onDead = onDead
            } else {
                reader.fail("\(path).on_dead", "must be continue or hold, not \(JSONWriter.quote(text))")
            }
        }
        return ordering
    }
}

/// A key an `on_dead: hold` destination keeps blocked: the dead delivery that holds it.
public struct HeldKey: Sendable, Equatable {
    public var key: String
    public var eventID: String
    public var event: EventReference
    /// When the delivery died.
    public var since: Timestamp
    /// Deliveries of the key waiting behind it (that the store knows of).
    public var waiting: Int

    public init(key: String, eventID: String, event: EventReference, since: Timestamp, waiting: Int = 0) {
        (self.key, self.eventID, self.event, self.since, self.waiting) = (key, eventID, event, since, waiting)
    }
}
