/// The compiled routes of one config version. Pure: an event in, a decision out.
public struct RoutingTable: Sendable {
    /// Identifies the config that decided: the first 12 hex digits of the file's SHA-256.
    public let version: String
    public let routes: [Route]
    private let compiled: [CompiledRoute]
    /// The ordered destinations (`ordering`): a decision records each one's key for the event.
    public private(set) var orderings: [String: DeliveryOrdering] = [:]

    public init(version: String, routes: [Route]) {
        self.version = version
        self.routes = routes
        self.compiled = routes.map(CompiledRoute.init)
    }

    /// This table, recording the ordering keys of `destinations` that have an `ordering`.
    public func ordering(_ destinations: [String: DestinationConfig]) -> RoutingTable {
        var table = self
        table.orderings = destinations.compactMapValues(\.ordering)
        return table
    }

    /// The event's ordering key for each ordered destination among `destinations` (all
    /// ordered destinations when nil) that it has one for. `payload` is the parsed body if the
    /// caller has it (parsed here at most once otherwise).
    public func orderingKeys(_ event: Event, for destinations: [String]? = nil, payload: JSONValue? = nil) -> [String: String] {
        guard !orderings.isEmpty else { return [:] }
        var document = payload
        var parsed = payload != nil
        var keys: [String: String] = [:]
        for name in destinations ?? orderings.keys.sorted() {
            guard let ordering = orderings[name] else { continue }
            if ordering.key.needsPayload && !parsed {
                document = try? JSONParser.parse(event.body)
                parsed = true
            }
            if ordering.key.needsPayload && document == nil { continue }
            if let key = ordering.key(of: event, payload: document) { keys[name] = key }
        }
        return keys
    }

    /// Which routes match `event` and the destinations they send it to (each once, in order of
    /// first mention). The payload is parsed at most once, only if a `where` condition needs it.
    public func decide(_ event: Event) -> RoutingDecision {
        let input = MatchInput(event)
        var payload: JSONValue?
        var parsedPayload = false
        var matched: [String] = []
        var destinations: [String] = []
        for route in compiled where route.matchesFields(input) {
            if !route.conditions.isEmpty {
                if !parsedPayload {
                    payload = try? JSONParser.parse(event.body)
                    parsedPayload = true
                }
                // A payload that is not JSON satisfies no condition.
                guard let document = payload, route.conditions.allSatisfy({ $0.holds(in: document) }) else { continue }
            }
            matched.append(route.name)
            for destination in route.destinations where !destinations.contains(destination) {
                destinations.append(destination)
            }
        }
        var decision = RoutingDecision(eventID: event.id, configVersion: version, routes: matched, destinations: destinations)
        decision.orderingKeys = orderingKeys(event, for: destinations, payload: payload)
        return decision
    }
}

/// Where one event went, and which config decided: a `.routingDecision` journal record, so a
/// replay can use the original routing as well as the current one.
public struct RoutingDecision: Sendable, Equatable {
    public var eventID: String
    public var configVersion: String
    public var routes: [String]
    public var destinations: [String]
    /// The event's ordering key per ordered destination it goes to (`ordering` in force when it
    /// was routed); a destination without one here does not order this event.
    public var orderingKeys: [String: String] = [:]

    /// An event no route matched: recorded, visible and replayable, never dropped.
    public var isUnrouted: Bool { destinations.isEmpty }

    public init(eventID: String, configVersion: String, routes: [String], destinations: [String]) {
        self.eventID = eventID
        self.configVersion = configVersion
        self.routes = routes
        self.destinations = destinations
    }

    /// Version 2 appends the ordering keys (only written when there are any, so a decision
    /// without them reads back in any version).
    static let encodingVersion: UInt8 = 2

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + routes.count * 16 + destinations.count * 16)
        writer.write(orderingKeys.isEmpty ? 1 : Self.encodingVersion)
        writer.write(eventID)
        writer.write(configVersion)
        writer.write(routes)
        writer.write(destinations)
        if !orderingKeys.isEmpty {
            let sorted = orderingKeys.sorted { $0.key < $1.key }
            writer.write(sorted.map(\.key))
            writer.write(sorted.map(\.value))
        }
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws {
        var reader = ByteReader(payload)
        let version: UInt8 = try reader.read()
        guard version == 1 || version == Self.encodingVersion else { throw ByteReader.Error(description: "unknown routing decision version \(version)") }
        eventID = try reader.readString()
        configVersion = try reader.readString()
        routes = try reader.readStrings()
        destinations = try reader.readStrings()
        if version >= 2 {
            let names = try reader.readStrings()
            let values = try reader.readStrings()
            guard names.count == values.count else { throw ByteReader.Error(description: "routing decision: ordering keys and values differ in count") }
            orderingKeys = Dictionary(zip(names, values), uniquingKeysWith: { first, _ in first })
        }
    }

}
