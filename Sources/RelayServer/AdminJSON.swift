import RelayCore
import RelayForwarder

/// The admin API's JSON shapes for events and deliveries.
enum AdminJSON {
    static func summary(_ summary: EventSummary) -> String {
        let event = summary.event
        let deliveries = summary.deliveries.map { "{\"destination\":\(JSONWriter.quote($0.destination)),\"state\":\"\($0.state.rawValue)\"}" }
        return "{\"id\":\(JSONWriter.quote(event.id)),\"sequence\":\(summary.sequence),\"source\":\(JSONWriter.quote(event.source)),"
            + "\"provider\":\(JSONWriter.quote(event.provider)),\"type\":\(JSONWriter.quote(event.type)),\"status\":\(JSONWriter.quote(event.status)),"
            + "\"products\":\(JSONWriter.array(event.products)),\"order_id\":\(JSONWriter.quote(event.orderID)),"
            + "\"provider_event_id\":\(JSONWriter.quote(event.providerEventID)),\"received_at\":\(JSONWriter.quote(event.receivedAt.rfc3339)),"
            + "\"delivery_state\":\(summary.deliveryState.map { "\"\($0.rawValue)\"" } ?? "null"),"
            + "\"deliveries\":[\(deliveries.joined(separator: ","))]}"
    }

    static func page(_ page: EventPage) -> String {
        "{\"events\":[\(page.events.map(summary).joined(separator: ","))],\"next_cursor\":\(page.nextCursor.map(JSONWriter.quote) ?? "null")}"
    }

    static func detail(_ detail: EventDetail) -> String {
        let event = detail.summary.event
        var fields = summary(detail.summary)
        fields.removeLast()  // reopen the object
        let headers = event.headers.map { "{\"name\":\(JSONWriter.quote($0.name)),\"value\":\(JSONWriter.quote($0.value))}" }
        let body: String
        if let text = String(validating: event.body, as: UTF8.self) {
            body = "\"body_encoding\":\"utf8\",\"body\":\(JSONWriter.quote(text))"
        } else {
            body = "\"body_encoding\":\"base64\",\"body\":\(JSONWriter.quote(Signatures.base64Encode(event.body)))"
        }
        let routing = detail.summary.decision.map {
            "{\"config_version\":\(JSONWriter.quote($0.configVersion)),\"routes\":\(JSONWriter.array($0.routes)),\"destinations\":\(JSONWriter.array($0.destinations))}"
        } ?? "null"
        fields += ",\"headers\":[\(headers.joined(separator: ","))],\(body),\"routing\":\(routing),"
            + "\"attempts\":[\(detail.attempts.map(attempt).joined(separator: ","))]}"
        return fields
    }

    static func attempt(_ record: DeliveryRecord) -> String {
        let outcome: String = switch record.outcome {
        case .succeeded: "succeeded"
        case .retry: "retry"
        case .dead: "dead"
        }
        return "{\"destination\":\(JSONWriter.quote(record.destination)),\"attempt\":\(record.attempt),\"time\":\(JSONWriter.quote(record.time.rfc3339)),"
            + "\"outcome\":\"\(outcome)\",\"status\":\(record.status),\"error\":\(JSONWriter.quote(record.error)),\"duration_ms\":\(record.durationMillis),"
            + "\"next_due\":\(record.nextDue.map { JSONWriter.quote($0.rfc3339) } ?? "null"),\"paused_destination\":\(record.pausedDestination)}"
    }

    static func delivery(_ delivery: DeliveryListing) -> String {
        "{\"id\":\(JSONWriter.quote(delivery.eventID + ":" + delivery.destination)),\"event_id\":\(JSONWriter.quote(delivery.eventID)),\"sequence\":\(delivery.event.sequence),"
            + "\"destination\":\(JSONWriter.quote(delivery.destination)),\"state\":\"\(delivery.state.rawValue)\",\"received_at\":\(JSONWriter.quote(delivery.receivedAt.rfc3339))}"
    }

    static func deliveries(_ page: DeliveryPage) -> String {
        "{\"deliveries\":[\(page.deliveries.map(delivery).joined(separator: ","))],\"next_cursor\":\(page.nextCursor.map(JSONWriter.quote) ?? "null")}"
    }

    static func replay(_ status: ReplayStatus) -> String {
        "{\"replay_id\":\(JSONWriter.quote(status.id)),\"state\":\"\(status.running ? "running" : "finished")\",\"matched_events\":\(status.matchedEvents),"
            + "\"deliveries\":\(status.deliveries),\"started\":\(status.started),\"succeeded\":\(status.succeeded),\"dead\":\(status.dead),"
            + "\"skipped\":\(status.skipped),\"retrying\":\(status.retrying),\"in_flight\":\(status.inFlight),\"attempts\":\(status.attempts),"
            + "\"started_at\":\(JSONWriter.quote(status.startedAt.rfc3339)),\"finished_at\":\(status.finishedAt.map { JSONWriter.quote($0.rfc3339) } ?? "null")}"
    }
}
