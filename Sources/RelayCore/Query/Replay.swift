/// One (event, destination) a replay sends: a compact reference, the body is read back when sent.
public struct ReplayItem: Sendable {
    public var event: EventReference
    public var eventID: String
    public var destination: String
    /// Its place in the replay (set when the replay starts; a store records progress by it).
    public var position: Int
    /// Attempts made before (a replay taken over from a stopped instance goes on counting).
    public var attempts: Int
    /// The event's ordering key for `destination` (`ordering`): a replay sends a key's items one
    /// at a time, in receive order. Nil: not ordered.
    public var orderingKey: String?

    public init(event: EventReference, eventID: String, destination: String, position: Int = 0, attempts: Int = 0, orderingKey: String? = nil) {
        self.orderingKey = orderingKey
        self.event = event
        self.eventID = eventID
        self.destination = destination
        self.position = position
        self.attempts = attempts
    }

    public var eventSequence: UInt64 { event.sequence }
}

/// `POST /admin/replay`: which events, to which destinations, how fast.
public struct ReplayRequest: Sendable {
    public enum Routing: String, Sendable {
        /// Route each event again with the rules in force now (or the `config` of a backtest).
        case current
        /// Send to the destinations recorded when the event arrived.
        case original
    }

    public enum DestinationsMode: String, Sendable {
        /// Send only to `destinations` (with a delivery-state filter: only those of them in that state).
        case only
        /// Send to the routed destinations and to `destinations` as well.
        case add
    }

    public var filter = EventFilter()
    public var destinations: [String] = []
    public var destinationsMode = DestinationsMode.only
    public var routing = Routing.current
    public var dryRun = false
    /// Deliveries started per second at most; nil for as fast as `concurrency` allows.
    public var ratePerSecond: Double?
    /// Replay deliveries in flight at once (its own lane: live deliveries keep their own slots).
    public var concurrency = 8
    /// A routes file to route with instead of the one in force (dry runs only: a backtest).
    public var config: RelayConfig?

    public init() {}

    static let filterKeys: Set<String> = ["id", "source", "provider", "type", "status", "product", "since", "until", "delivery_state"]

    /// Parses the request body; every problem names its field.
    public init(json body: [UInt8], now: Timestamp) throws(FilterError) {
        let root: JSONValue
        do {
            root = try JSONParser.parse(body)
        } catch {
            throw FilterError("body", "not JSON: \(error)")
        }
        guard let fields = root.objectValue else { throw FilterError("body", "must be a JSON object") }
        // A replay of everything by accident is the one mistake this API must not make easy.
        guard fields.contains(where: { $0.key == "filter" }) else {
            throw FilterError("filter", "is required and must select something; to replay everything after a time, use since")
        }
        for (key, value) in fields {
            switch key {
            case "filter":
                guard let filter = value.objectValue else { throw FilterError("filter", "must be an object") }
                var query: [(name: String, value: String)] = []
                for (name, item) in filter {
                    guard Self.filterKeys.contains(name) else {
                        throw FilterError("filter.\(name)", "unknown filter (known: \(Self.filterKeys.sorted().joined(separator: ", ")))")
                    }
                    let values = item.arrayValue ?? [item]
                    for entry in values {
                        guard let text = entry.stringValue else { throw FilterError("filter.\(name)", "must be a string or a list of strings") }
                        query.append((name, text))
                    }
                }
                do {
                    self.filter = try EventFilter(query: query, now: now)
                } catch {
                    throw FilterError("filter.\(error.parameter)", error.message)
                }
                // Empty values (an unset shell variable) parse to nothing: that must not mean everything.
                if self.filter == EventFilter() { throw FilterError("filter", "must select something; to replay everything after a time, use since") }
            case "destinations":
                guard let list = value.arrayValue, let names = Optional(list.compactMap(\.stringValue)), names.count == list.count else {
                    throw FilterError("destinations", "must be a list of destination names")
                }
                destinations = names
            case "destinations_mode":
                guard let mode = value.stringValue.flatMap(DestinationsMode.init(rawValue:)) else { throw FilterError("destinations_mode", "must be only or add") }
                destinationsMode = mode
            case "routing":
                guard let routing = value.stringValue.flatMap(Routing.init(rawValue:)) else { throw FilterError("routing", "must be current or original") }
                self.routing = routing
            case "dry_run":
                guard let flag = value.boolValue else { throw FilterError("dry_run", "must be true or false") }
                dryRun = flag
            case "rate_per_s":
                if case .null = value { continue }
                guard let rate = value.doubleValue, rate >= 0.001, rate <= 1_000_000 else { throw FilterError("rate_per_s", "must be a number from 0.001 to 1000000") }
                ratePerSecond = rate
            case "concurrency":
                guard let count = value.doubleValue, count >= 1, count <= 256, count == count.rounded() else { throw FilterError("concurrency", "must be a whole number from 1 to 256") }
                concurrency = Int(count)
            case "config":
                do {
                    config = try RelayConfig.parse(Array(JSONWriter.serialize(value).utf8), file: "config", environment: [:], lenientSecrets: true)
                } catch let error as ConfigError {
                    throw FilterError("config", error.issues.map(\.description).joined(separator: "; "))
                } catch {
                    throw FilterError("config", "\(error)")
                }
            default:
                throw FilterError(key, "unknown field (known: filter, destinations, destinations_mode, routing, dry_run, rate_per_s, concurrency, config)")
            }
        }
        if !dryRun && config != nil { throw FilterError("config", "routing with another routes file is for dry runs (backtests) only; deploy it first") }
        if config != nil && routing == .original { throw FilterError("config", "a backtest routes events with the given file, so it cannot use routing \"original\"") }
    }

    /// The destinations one matched event is sent to.
    public func targets(for match: StoredEventMatch) -> [String] {
        var routed = routing == .original ? (match.decision?.destinations ?? []) : match.prepared.destinations
        if let wanted = filter.deliveryState {
            // Only the deliveries in the wanted state (a dead one, not its succeeded siblings).
            let inState = Set(match.deliveries.filter { $0.state == wanted }.map(\.destination))
            routed = routed.filter { inState.contains($0) }
            if destinationsMode == .only && !destinations.isEmpty { return destinations.filter { inState.contains($0) } }
        } else if destinationsMode == .only && !destinations.isEmpty {
            return destinations
        }
        var result = routed
        if destinationsMode == .add { for name in destinations where !result.contains(name) { result.append(name) } }
        return result
    }
}

/// What a replay selected: the deliveries (oldest event first) and the counts a dry run shows.
public struct ReplayPlan: Sendable {
    public var items: [ReplayItem] = []
    public var matchedEvents = 0
    public var perDestination: [String: Int] = [:]
    /// The first few events (oldest first) and where each goes.
    public var sample: [(id: String, destinations: [String])] = []
    /// A backtest (a dry run with another routes file): what it changes against the
    /// destinations recorded when each event arrived.
    public var backtest: Backtest?

    public struct Backtest: Sendable, Equatable {
        /// Events whose destinations would change.
        public var changedEvents = 0
        /// Per destination, events it would newly get / no longer get.
        public var added: [String: Int] = [:]
        public var removed: [String: Int] = [:]
        /// The newest changed events (at most `Backtest.limit`), newest first.
        public var changes: [Change] = []
        public static let limit = 100

        public struct Change: Sendable, Equatable {
            public var id: String
            public var before: [String]
            public var after: [String]
            public var added: [String] { after.filter { !before.contains($0) } }
            public var removed: [String] { before.filter { !after.contains($0) } }
        }

        mutating func record(id: String, before: [String], after: [String]) {
            let change = Change(id: id, before: before, after: after)
            guard !change.added.isEmpty || !change.removed.isEmpty else { return }
            changedEvents += 1
            for name in change.added { added[name, default: 0] += 1 }
            for name in change.removed { removed[name, default: 0] += 1 }
            if changes.count < Self.limit { changes.append(change) }
        }
    }

    /// Selects from `store` every event matching the request up to `through` (the store's mark
    /// when the replay was asked for, so events arriving meanwhile are not part of it). Keeps only
    /// compact references, about 60 bytes per delivery.
    public static func make(_ request: ReplayRequest, store: any EventStore, routing: RoutingTable, through: UInt64, keepItems: Bool) async throws -> ReplayPlan {
        var plan = ReplayPlan()
        let table = request.config?.routing ?? routing
        let routesAgain = request.routing == .current
        // Ordering keys come from the destinations in force (a replay to an ordered destination
        // goes out in receive order per key), whichever routing chose the destinations.
        let ordering = routing
        let prepare: @Sendable (Event) -> PreparedRouting = { event in
            PreparedRouting(destinations: routesAgain ? table.decide(event).destinations : [], orderingKeys: ordering.orderingKeys(event))
        }
        // The scan goes newest first; a dry run keeps only the last (oldest) few for its sample.
        var newestFirst: [(reference: EventReference, id: String, targets: [String], keys: [String: String])] = []
        if request.config != nil { plan.backtest = Backtest() }
        for try await match in store.matches(filter: request.filter, through: through, prepare: prepare) {
            let targets = request.targets(for: match)
            // What the file routes the event to (not the replay's destination choices).
            plan.backtest?.record(id: match.id, before: match.decision?.destinations ?? [], after: match.prepared.destinations)
            plan.matchedEvents += 1
            for target in targets { plan.perDestination[target, default: 0] += 1 }
            if !keepItems && newestFirst.count == 10 { newestFirst.removeFirst() }
            newestFirst.append((match.reference, match.id, targets, match.prepared.orderingKeys))
        }
        for match in newestFirst.reversed() {
            if plan.sample.count < 10 { plan.sample.append((match.id, match.targets)) }
            guard keepItems else { continue }
            for target in match.targets {
                plan.items.append(ReplayItem(event: match.reference, eventID: match.id, destination: target, orderingKey: match.keys[target]))
            }
        }
        return plan
    }
}
