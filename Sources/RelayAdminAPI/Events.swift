/// The admin API's request and response bodies, shared by the server (which encodes them), the
/// CLI and the console (which decode them), and described by `AdminOpenAPI.document`. Field names
/// are the wire's (snake_case); a value that may be absent is sent as `null`, never left out,
/// unless the field itself is optional in the document.

/// One (destination, state) of an event's deliveries.
public struct DeliveryStateItem: Codable, Sendable, Equatable {
    public var destination: String
    /// `pending`, `succeeded` or `dead`.
    public var state: String

    public init(destination: String, state: String) {
        self.destination = destination
        self.state = state
    }
}

/// An event as `GET /admin/events` lists it.
public struct EventSummaryBody: Codable, Sendable, Equatable {
    public var id: String
    public var sequence: UInt64
    public var source: String
    public var provider: String
    public var type: String
    public var status: String
    public var products: [String]
    public var orderID: String
    public var providerEventID: String
    /// RFC 3339.
    public var receivedAt: String
    /// Dead if any delivery is dead, else pending if any is pending, else succeeded; null when
    /// the event was routed nowhere.
    public var deliveryState: String?
    public var deliveries: [DeliveryStateItem]
    /// How the event reached the relay: `webhook` (pushed by the provider) or `reconcile`
    /// (recovered from the provider's API).
    public var receivedVia: String = "webhook"

    public init(
        id: String, sequence: UInt64, source: String, provider: String, type: String, status: String, products: [String], orderID: String,
        providerEventID: String, receivedAt: String, deliveryState: String?, deliveries: [DeliveryStateItem]
    ) {
        (self.id, self.sequence, self.source, self.provider, self.type, self.status) = (id, sequence, source, provider, type, status)
        (self.products, self.orderID, self.providerEventID, self.receivedAt) = (products, orderID, providerEventID, receivedAt)
        (self.deliveryState, self.deliveries) = (deliveryState, deliveries)
    }

    enum CodingKeys: String, CodingKey {
        case id, sequence, source, provider, type, status, products, deliveries
        case orderID = "order_id", providerEventID = "provider_event_id", receivedAt = "received_at", deliveryState = "delivery_state"
        case receivedVia = "received_via"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(source, forKey: .source)
        try container.encode(provider, forKey: .provider)
        try container.encode(type, forKey: .type)
        try container.encode(status, forKey: .status)
        try container.encode(products, forKey: .products)
        try container.encode(orderID, forKey: .orderID)
        try container.encode(providerEventID, forKey: .providerEventID)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(deliveryState, forKey: .deliveryState)
        try container.encode(deliveries, forKey: .deliveries)
        try container.encode(receivedVia, forKey: .receivedVia)
    }
}

/// `GET /admin/events`: a page, newest first.
public struct EventPageBody: Codable, Sendable, Equatable {
    public var events: [EventSummaryBody]
    /// Pass as `cursor` for the next page; null on the last one.
    public var nextCursor: String?

    public init(events: [EventSummaryBody], nextCursor: String?) {
        self.events = events
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case events, nextCursor = "next_cursor"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(events, forKey: .events)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// One request header as received.
public struct HeaderBody: Codable, Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Where an event went, and which config decided.
public struct RoutingBody: Codable, Sendable, Equatable {
    public var configVersion: String
    public var routes: [String]
    public var destinations: [String]

    public init(configVersion: String, routes: [String], destinations: [String]) {
        (self.configVersion, self.routes, self.destinations) = (configVersion, routes, destinations)
    }

    enum CodingKeys: String, CodingKey {
        case routes, destinations, configVersion = "config_version"
    }
}

/// One delivery attempt, replays included.
public struct AttemptBody: Codable, Sendable, Equatable {
    public var destination: String
    public var attempt: Int
    public var time: String
    /// `succeeded`, `retry` or `dead`.
    public var outcome: String
    /// The HTTP status, 0 without a response.
    public var status: Int
    public var error: String
    public var durationMs: Int
    /// RFC 3339, for a retry; else null.
    public var nextDue: String?
    public var pausedDestination: Bool

    public init(destination: String, attempt: Int, time: String, outcome: String, status: Int, error: String, durationMs: Int, nextDue: String?, pausedDestination: Bool) {
        (self.destination, self.attempt, self.time, self.outcome, self.status) = (destination, attempt, time, outcome, status)
        (self.error, self.durationMs, self.nextDue, self.pausedDestination) = (error, durationMs, nextDue, pausedDestination)
    }

    enum CodingKeys: String, CodingKey {
        case destination, attempt, time, outcome, status, error
        case durationMs = "duration_ms", nextDue = "next_due", pausedDestination = "paused_destination"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(destination, forKey: .destination)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(time, forKey: .time)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(status, forKey: .status)
        try container.encode(error, forKey: .error)
        try container.encode(durationMs, forKey: .durationMs)
        try container.encode(nextDue, forKey: .nextDue)
        try container.encode(pausedDestination, forKey: .pausedDestination)
    }
}

/// `GET /admin/events/{id}`: the summary's fields and the event's headers, body, routing and attempts.
public struct EventDetailBody: Codable, Sendable, Equatable {
    public var summary: EventSummaryBody
    public var headers: [HeaderBody]
    /// The bytes as text (`utf8`) or base64 (`base64`, when they are not UTF-8).
    public var body: String
    public var bodyEncoding: String
    /// Null for an event stored without a routing decision.
    public var routing: RoutingBody?
    public var attempts: [AttemptBody]

    public init(summary: EventSummaryBody, headers: [HeaderBody], body: String, bodyEncoding: String, routing: RoutingBody?, attempts: [AttemptBody]) {
        (self.summary, self.headers, self.body, self.bodyEncoding, self.routing, self.attempts) = (summary, headers, body, bodyEncoding, routing, attempts)
    }

    enum CodingKeys: String, CodingKey {
        case headers, body, routing, attempts, bodyEncoding = "body_encoding"
    }

    public init(from decoder: any Decoder) throws {
        summary = try EventSummaryBody(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        headers = try container.decode([HeaderBody].self, forKey: .headers)
        body = try container.decode(String.self, forKey: .body)
        bodyEncoding = try container.decode(String.self, forKey: .bodyEncoding)
        routing = try container.decodeIfPresent(RoutingBody.self, forKey: .routing)
        attempts = try container.decode([AttemptBody].self, forKey: .attempts)
    }

    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(headers, forKey: .headers)
        try container.encode(body, forKey: .body)
        try container.encode(bodyEncoding, forKey: .bodyEncoding)
        try container.encode(routing, forKey: .routing)
        try container.encode(attempts, forKey: .attempts)
    }
}

/// One delivery as `GET /admin/deliveries` lists it.
public struct DeliveryBody: Codable, Sendable, Equatable {
    /// `EVENT_ID:DESTINATION`.
    public var id: String
    public var eventID: String
    public var sequence: UInt64
    public var destination: String
    public var state: String
    public var receivedAt: String

    public init(id: String, eventID: String, sequence: UInt64, destination: String, state: String, receivedAt: String) {
        (self.id, self.eventID, self.sequence, self.destination, self.state, self.receivedAt) = (id, eventID, sequence, destination, state, receivedAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, sequence, destination, state, eventID = "event_id", receivedAt = "received_at"
    }
}

/// `GET /admin/deliveries`: a page, newest event first.
public struct DeliveryPageBody: Codable, Sendable, Equatable {
    public var deliveries: [DeliveryBody]
    public var nextCursor: String?

    public init(deliveries: [DeliveryBody], nextCursor: String?) {
        self.deliveries = deliveries
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case deliveries, nextCursor = "next_cursor"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(deliveries, forKey: .deliveries)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

/// `GET /admin/rejections`: events of provider batches the relay did not accept, newest first
/// (the last 1,000 since this relay started, kept in memory per instance).
public struct RejectionListBody: Codable, Sendable, Equatable {
    public var rejections: [RejectionBody]
    /// Rejected events since this relay started, also those no longer listed.
    public var total: Int

    public init(rejections: [RejectionBody], total: Int) {
        (self.rejections, self.total) = (rejections, total)
    }
}

/// One rejected event: never its body.
public struct RejectionBody: Codable, Sendable, Equatable {
    /// When its request arrived, RFC 3339.
    public var time: String
    public var source: String
    public var provider: String
    /// Its position in the request's batch.
    public var index: Int
    /// The provider's event id, null when it had none.
    public var eventID: String?
    public var reason: String
    /// `partial`: the batch's other events were stored (FastSpring answered 202 without this
    /// one, and sends it again); `refused`: no event of the batch could be accepted (400).
    public var batch: String

    public init(time: String, source: String, provider: String, index: Int, eventID: String?, reason: String, batch: String) {
        (self.time, self.source, self.provider, self.index, self.eventID, self.reason, self.batch) = (time, source, provider, index, eventID, reason, batch)
    }

    enum CodingKeys: String, CodingKey {
        case time, source, provider, index, reason, batch, eventID = "event_id"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(time, forKey: .time)
        try container.encode(source, forKey: .source)
        try container.encode(provider, forKey: .provider)
        try container.encode(index, forKey: .index)
        try container.encode(eventID, forKey: .eventID)
        try container.encode(reason, forKey: .reason)
        try container.encode(batch, forKey: .batch)
    }
}

/// `POST /admin/reconcile`: what one reconciliation pass found and did.
public struct ReconcileAnswerBody: Codable, Sendable, Equatable {
    public var source: String
    public var dryRun: Bool
    /// Unprocessed events the provider listed in the window.
    public var providerHas: Int
    /// Of those, events the relay already had; null in a dry run (it stores nothing).
    public var relayHad: Int?
    public var stored: Int
    /// Events marked processed at the provider (after they were durable).
    public var marked: Int
    /// Events neither stored nor marked (no id or type).
    public var rejected: Int
    /// Provider event ids stored by this pass.
    public var storedIDs: [String]
    /// Provider event ids listed by the provider.
    public var listedIDs: [String]
    public var pages: Int

    public init(source: String, dryRun: Bool, providerHas: Int, relayHad: Int?, stored: Int, marked: Int, rejected: Int, storedIDs: [String], listedIDs: [String], pages: Int) {
        (self.source, self.dryRun, self.providerHas, self.relayHad, self.stored) = (source, dryRun, providerHas, relayHad, stored)
        (self.marked, self.rejected, self.storedIDs, self.listedIDs, self.pages) = (marked, rejected, storedIDs, listedIDs, pages)
    }

    enum CodingKeys: String, CodingKey {
        case source, stored, marked, rejected, pages
        case dryRun = "dry_run", providerHas = "provider_has", relayHad = "relay_had", storedIDs = "stored_ids", listedIDs = "listed_ids"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(source, forKey: .source)
        try container.encode(dryRun, forKey: .dryRun)
        try container.encode(providerHas, forKey: .providerHas)
        try container.encode(relayHad, forKey: .relayHad)
        try container.encode(stored, forKey: .stored)
        try container.encode(marked, forKey: .marked)
        try container.encode(rejected, forKey: .rejected)
        try container.encode(storedIDs, forKey: .storedIDs)
        try container.encode(listedIDs, forKey: .listedIDs)
        try container.encode(pages, forKey: .pages)
    }
}
