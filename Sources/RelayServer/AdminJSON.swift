import RelayAdminAPI
import RelayCore

/// The admin API's bodies made from the store's and the engine's values.
enum AdminJSON {
    static func summary(_ summary: EventSummary) -> EventSummaryBody {
        let event = summary.event
        var body = EventSummaryBody(
            id: event.id, sequence: summary.sequence, source: event.source, provider: event.provider, type: event.type, status: event.status,
            products: event.products, orderID: event.orderID, providerEventID: event.providerEventID, receivedAt: event.receivedAt.rfc3339,
            deliveryState: summary.deliveryState?.rawValue,
            deliveries: summary.deliveries.map { DeliveryStateItem(destination: $0.destination, state: $0.state.rawValue) }
        )
        if event.headers.contains(where: { $0.name == IngestPipeline.receivedViaHeader && $0.value == "reconcile" }) { body.receivedVia = "reconcile" }
        return body
    }

    static func page(_ page: EventPage) -> EventPageBody {
        EventPageBody(events: page.events.map(summary), nextCursor: page.nextCursor)
    }

    static func detail(_ detail: EventDetail) -> EventDetailBody {
        let event = detail.summary.event
        let text = String(validating: event.body, as: UTF8.self)
        return EventDetailBody(
            summary: summary(detail.summary),
            headers: event.headers.map { HeaderBody(name: $0.name, value: $0.value) },
            body: text ?? Signatures.base64Encode(event.body), bodyEncoding: text == nil ? "base64" : "utf8",
            routing: detail.summary.decision.map { RoutingBody(configVersion: $0.configVersion, routes: $0.routes, destinations: $0.destinations) },
            attempts: detail.attempts.map(attempt)
        )
    }

    static func attempt(_ record: DeliveryRecord) -> AttemptBody {
        let outcome: String = switch record.outcome {
        case .succeeded: "succeeded"
        case .retry: "retry"
        case .dead: "dead"
        }
        return AttemptBody(
            destination: record.destination, attempt: record.attempt, time: record.time.rfc3339, outcome: outcome, status: record.status,
            error: record.error, durationMs: record.durationMillis, nextDue: record.nextDue?.rfc3339, pausedDestination: record.pausedDestination
        )
    }

    static func deliveries(_ page: DeliveryPage) -> DeliveryPageBody {
        DeliveryPageBody(
            deliveries: page.deliveries.map {
                DeliveryBody(id: $0.eventID + ":" + $0.destination, eventID: $0.eventID, sequence: $0.event.sequence, destination: $0.destination, state: $0.state.rawValue, receivedAt: $0.receivedAt.rfc3339)
            },
            nextCursor: page.nextCursor
        )
    }

    static func replay(_ status: ReplayStatus) -> ReplayStatusBody {
        ReplayStatusBody(
            replayID: status.id, state: status.running ? "running" : "finished", matchedEvents: status.matchedEvents, deliveries: status.deliveries,
            started: status.started, succeeded: status.succeeded, dead: status.dead, skipped: status.skipped, retrying: status.retrying,
            inFlight: status.inFlight, attempts: status.attempts, startedAt: status.startedAt.rfc3339, finishedAt: status.finishedAt?.rfc3339
        )
    }

    static func routes(_ config: RelayConfig) -> RoutesBody {
        RoutesBody(version: config.version, sources: config.sources.keys.sorted(), destinations: config.destinations.keys.sorted(), routes: config.routing.routes.map(\.name))
    }
}
