import ArgumentParser
import Foundation
import RelayAdminAPI
import RelayCore

/// The SPEC §3 filters, shared by `relay events list` and `relay replay`.
struct FilterOptions: ParsableArguments {
    @Option(help: "Only events from this source (repeatable).") var source: [String] = []
    @Option(help: "Only this provider: runa, fastspring, generic (repeatable).") var provider: [String] = []
    @Option(help: "Only these event types, glob (repeatable), e.g. 'order.*'.") var type: [String] = []
    @Option(help: "Only this status (repeatable), e.g. FAILED.") var status: [String] = []
    @Option(help: "Only events with a product matching this glob (repeatable).") var product: [String] = []
    @Option(help: "Received at or after: RFC 3339 or relative (15m, 2h, 7d).") var since: String?
    @Option(help: "Received before: RFC 3339 or relative.") var until: String?
    @Option(help: "Overall delivery state: pending, succeeded or dead.") var deliveryState: String?
    @Option(help: "Only this event id (repeatable).") var id: [String] = []

    var query: [(name: String, value: String)] {
        var items: [(String, String)] = []
        for value in source { items.append(("source", value)) }
        for value in provider { items.append(("provider", value)) }
        for value in type { items.append(("type", value)) }
        for value in status { items.append(("status", value)) }
        for value in product { items.append(("product", value)) }
        if let since { items.append(("since", since)) }
        if let until { items.append(("until", until)) }
        if let deliveryState { items.append(("delivery_state", deliveryState)) }
        for value in id { items.append(("id", value)) }
        return items
    }

    /// Checks the filters here, so a typo fails before anything is asked of the relay.
    func validated(command: String) throws -> [(name: String, value: String)] {
        do {
            _ = try EventFilter(query: query, now: SystemClock().now())
        } catch {
            throw fail("\(command): --\(error.parameter.replacingOccurrences(of: "_", with: "-")): \(error.message)")
        }
        return query
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Browse the events a running relay stored (admin API).", subcommands: [List.self, Show.self, Rejected.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List events, newest first.")

        @OptionGroup var filters: FilterOptions
        @Option(help: "Events per page (1…1000).") var limit: Int = 50
        @Option(help: "Continue after a previous page (its next cursor).") var cursor: String?
        @OptionGroup var options: AdminOptions

        func run() throws {
            var query = try filters.validated(command: "events list")
            guard (1...1000).contains(limit) else { throw fail("events list: --limit: must be from 1 to 1000, not \(limit)") }
            query.append(("limit", String(limit)))
            if let cursor { query.append(("cursor", cursor)) }
            let path = "/admin/events?" + query.map { "\($0.name)=\(PercentEncoding.queryValue($0.value))" }.joined(separator: "&")
            let (page, json) = try AdminClient(options, command: "events list").request(EventPageBody.self, path)
            if options.json {
                print(JSONWriter.serialize(json))
                return
            }
            var rows = [["ID", "RECEIVED", "SOURCE", "TYPE", "STATUS", "DELIVERY", "DESTINATIONS"]]
            for event in page.events {
                rows.append([
                    event.id, event.receivedAt, event.source, event.type, event.status, event.deliveryState ?? "unrouted",
                    event.deliveries.map { "\($0.destination):\($0.state)" }.joined(separator: " "),
                ])
            }
            printTable(rows)
            print("\(page.events.count) event\(page.events.count == 1 ? "" : "s")" + (page.nextCursor.map { "; next page: --cursor \($0)" } ?? ""))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event: fields, raw body, routing decision, deliveries with every attempt.")

        @Argument(help: "The event id (evt_…).") var id: String
        @OptionGroup var options: AdminOptions

        func run() throws {
            let (detail, json) = try AdminClient(options, command: "events show").request(EventDetailBody.self, "/admin/events/" + PercentEncoding.queryValue(id))
            if options.json {
                print(JSONWriter.serialize(json))
                return
            }
            let event = detail.summary
            var rows: [[String]] = [
                ["id", event.id], ["received_at", event.receivedAt], ["source", event.source], ["provider", event.provider], ["type", event.type],
                ["status", event.status], ["order_id", event.orderID], ["provider_event_id", event.providerEventID],
                ["products", event.products.joined(separator: ", ")], ["delivery_state", event.deliveryState ?? "unrouted"],
            ]
            if let routing = detail.routing {
                rows.append(["routes", routing.routes.joined(separator: ", ")])
                rows.append(["config_version", routing.configVersion])
            }
            printTable(rows)
            print("\ndeliveries:")
            printTable([["DESTINATION", "STATE"]] + event.deliveries.map { [$0.destination, $0.state] })
            print("\nattempts:")
            printTable([["DESTINATION", "#", "TIME", "OUTCOME", "STATUS", "MS", "NEXT", "ERROR"]] + detail.attempts.map {
                [$0.destination, String($0.attempt), $0.time, $0.outcome, String($0.status), String($0.durationMs), $0.nextDue ?? "-", $0.error]
            })
            print("\nbody (\(detail.bodyEncoding)):\n\(detail.body)")
        }
    }
}

extension Events {
    struct Rejected: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Events of provider batches the relay did not accept, newest first (the last 1,000 since it started).",
            discussion: "A FastSpring batch with some malformed events is stored without them and answered 202 with the ids it stored; FastSpring sends the others again. Nothing of a rejected event's body is kept."
        )

        @Option(help: "Only this source's.") var source: String?
        @Option(help: "At most this many (1…1000).") var limit: Int = 100
        @OptionGroup var options: AdminOptions

        func run() throws {
            guard (1...1000).contains(limit) else { throw fail("events rejected: --limit: must be from 1 to 1000, not \(limit)") }
            var query = [("limit", String(limit))]
            if let source { query.append(("source", source)) }
            let path = "/admin/rejections?" + query.map { "\($0.0)=\(PercentEncoding.queryValue($0.1))" }.joined(separator: "&")
            let (list, json) = try AdminClient(options, command: "events rejected").request(RejectionListBody.self, path)
            if options.json {
                print(JSONWriter.serialize(json))
                return
            }
            printTable([["TIME", "SOURCE", "BATCH", "INDEX", "EVENT ID", "REASON"]] + list.rejections.map {
                [$0.time, $0.source, $0.batch, String($0.index), $0.eventID ?? "-", $0.reason]
            })
            print("\(list.rejections.count) listed, \(list.total) rejected since the relay started")
        }
    }
}

/// Prints rows as left-aligned columns.
func printTable(_ rows: [[String]]) {
    guard let columns = rows.map(\.count).max() else { return }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    for row in rows {
        let cells = row.enumerated().map { index, cell in index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) }
        print(cells.joined(separator: "  "))
    }
}
