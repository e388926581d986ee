import ArgumentParser
import Foundation
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
    static let configuration = CommandConfiguration(abstract: "Browse the events a running relay stored (admin API).", subcommands: [List.self, Show.self])

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
            let path = "/admin/events?" + query.map { "\($0.name)=\(AdminClient.percentEncode($0.value))" }.joined(separator: "&")
            let page = try AdminClient(options, command: "events list").request(path)
            if options.json {
                print(JSONWriter.serialize(page))
                return
            }
            let events = page["events"]?.arrayValue ?? []
            var rows = [["ID", "RECEIVED", "SOURCE", "TYPE", "STATUS", "DELIVERY", "DESTINATIONS"]]
            for event in events {
                let deliveries = (event["deliveries"]?.arrayValue ?? []).map { "\($0["destination"]?.stringValue ?? ""):\($0["state"]?.stringValue ?? "")" }
                rows.append([
                    event["id"]?.stringValue ?? "", event["received_at"]?.stringValue ?? "", event["source"]?.stringValue ?? "",
                    event["type"]?.stringValue ?? "", event["status"]?.stringValue ?? "",
                    event["delivery_state"]?.stringValue ?? "unrouted", deliveries.joined(separator: " "),
                ])
            }
            printTable(rows)
            print("\(events.count) event\(events.count == 1 ? "" : "s")" + (page["next_cursor"]?.stringValue.map { "; next page: --cursor \($0)" } ?? ""))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event: fields, raw body, routing decision, deliveries with every attempt.")

        @Argument(help: "The event id (evt_…).") var id: String
        @OptionGroup var options: AdminOptions

        func run() throws {
            let event = try AdminClient(options, command: "events show").request("/admin/events/" + AdminClient.percentEncode(id))
            if options.json {
                print(JSONWriter.serialize(event))
                return
            }
            func text(_ key: String) -> String { event[key]?.stringValue ?? "" }
            var rows: [[String]] = []
            for key in ["id", "received_at", "source", "provider", "type", "status", "order_id", "provider_event_id"] { rows.append([key, text(key)]) }
            rows.append(["products", (event["products"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")])
            rows.append(["delivery_state", event["delivery_state"]?.stringValue ?? "unrouted"])
            if let routing = event["routing"], routing.objectValue != nil {
                rows.append(["routes", (routing["routes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")])
                rows.append(["config_version", routing["config_version"]?.stringValue ?? ""])
            }
            printTable(rows)
            print("\ndeliveries:")
            var deliveries = [["DESTINATION", "STATE"]]
            for delivery in event["deliveries"]?.arrayValue ?? [] {
                deliveries.append([delivery["destination"]?.stringValue ?? "", delivery["state"]?.stringValue ?? ""])
            }
            printTable(deliveries)
            print("\nattempts:")
            var attempts = [["DESTINATION", "#", "TIME", "OUTCOME", "STATUS", "MS", "NEXT", "ERROR"]]
            for attempt in event["attempts"]?.arrayValue ?? [] {
                attempts.append([
                    attempt["destination"]?.stringValue ?? "", attempt["attempt"].map { JSONWriter.serialize($0) } ?? "",
                    attempt["time"]?.stringValue ?? "", attempt["outcome"]?.stringValue ?? "", attempt["status"].map { JSONWriter.serialize($0) } ?? "",
                    attempt["duration_ms"].map { JSONWriter.serialize($0) } ?? "", attempt["next_due"]?.stringValue ?? "-", attempt["error"]?.stringValue ?? "",
                ])
            }
            printTable(attempts)
            print("\nbody (\(text("body_encoding"))):\n\(text("body"))")
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
