/// The compiled routes of one config version. Pure: an event in, a decision out.
public struct RoutingTable: Sendable {
    /// Identifies the config that decided: the first 12 hex digits of the file's SHA-256.
    public let version: String
    public let routes: [Route]
    private let compiled: [CompiledRoute]

    public init(version: String, routes: [Route]) {
        self.version = version
        self.routes = routes
        self.compiled = routes.map(CompiledRoute.init)
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
        return RoutingDecision(eventID: event.id, configVersion: version, routes: matched, destinations: destinations)
    }
}

/// Where one event went, and which config decided: a `.routingDecision` journal record, so a
/// replay can use the original routing as well as the current one.
public struct RoutingDecision: Sendable, Equatable {
    public var eventID: String
    public var configVersion: String
    public var routes: [String]
    public var destinations: [String]

    /// An event no route matched: recorded, visible and replayable, never dropped.
    public var isUnrouted: Bool { destinations.isEmpty }

    public init(eventID: String, configVersion: String, routes: [String], destinations: [String]) {
        self.eventID = eventID
        self.configVersion = configVersion
        self.routes = routes
        self.destinations = destinations
    }

    static let encodingVersion: UInt8 = 1

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + routes.count * 16 + destinations.count * 16)
        writer.write(Self.encodingVersion)
        writer.write(eventID)
        writer.write(configVersion)
        writer.write(routes)
        writer.write(destinations)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws {
        var reader = ByteReader(payload)
        let version: UInt8 = try reader.read()
        guard version == Self.encodingVersion else { throw ByteReader.Error(description: "unknown routing decision version \(version)") }
        eventID = try reader.readString()
        configVersion = try reader.readString()
        routes = try reader.readStrings()
        destinations = try reader.readStrings()
    }

}
