import ArgumentParser
import Foundation
import RelayAdminAPI
import RelayCore

struct Destinations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See destinations, and pause or resume them (admin API).",
        discussion: "An operator's pause holds across restarts and routes reloads until resumed; the destination's deliveries wait, they do not die.",
        subcommands: [List.self, Pause.self, Resume.self, Held.self, Skip.self, Retry.self]
    )

    static func rows(_ destinations: [DestinationBody]) -> [[String]] {
        [["NAME", "STATE", "PENDING", "IN FLIGHT", "DEAD", "SUCCEEDED", "RATE LIMIT", "ORDERING", "HELD KEYS", "5M ATTEMPTS", "5M OK", "5M P99"]] + destinations.map { d -> [String] in
            let rate: String = d.ratePerSecond.map { String(format: "%g/s (waited %d times)", $0, d.rateLimited) } ?? "-"
            let ordering: String = d.ordering.map { "by \($0.key), on dead: \($0.onDead)" } ?? "-"
            let held: String = d.ordering == nil ? "-" : String(d.keysBlocked)
            return [
                d.name, d.state, String(d.pending), String(d.inFlight), String(d.dead), String(d.succeeded), rate, ordering, held, String(d.attempts5m),
                d.successRate5m.map { String(format: "%.1f%%", $0 * 100) } ?? "-", d.p99Ms5m.map { "\($0) ms" } ?? "-",
            ]
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every destination: state, pending, in flight, dead, and the last 5 minutes.")

        @OptionGroup var options: AdminOptions

        func run() throws {
            let (list, json) = try AdminClient(options, command: "destinations list").request(DestinationListBody.self, "/admin/destinations")
            if options.json {
                print(JSONWriter.serialize(json))
                return
            }
            printTable(Destinations.rows(list.destinations))
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a destination until it is resumed: its deliveries wait.")

        @Argument(help: "The destination's name in routes.json.") var name: String
        @OptionGroup var options: AdminOptions

        func run() throws { try Destinations.act("pause", name, options) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a destination an operator paused.")

        @Argument(help: "The destination's name in routes.json.") var name: String
        @OptionGroup var options: AdminOptions

        func run() throws { try Destinations.act("resume", name, options) }
    }

    struct Held: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The ordering keys a dead delivery holds (on_dead: hold), with the delivery to retry or skip.",
            discussion: "`relay destinations retry DELIVERY` sends it again (the key moves on once it succeeds); `relay destinations skip DELIVERY` leaves it dead and lets the key move on."
        )

        @Argument(help: "Only this destination.") var name: String?
        @OptionGroup var options: AdminOptions

        func run() throws {
            let (list, json) = try AdminClient(options, command: "destinations held").request(DestinationListBody.self, "/admin/destinations")
            let chosen = list.destinations.filter { name == nil || $0.name == name }
            if let name, chosen.isEmpty { throw fail("destinations held: no destination \(JSONWriter.quote(name))") }
            if options.json {
                print(JSONWriter.serialize(json))
                return
            }
            var rows = [["DESTINATION", "KEY", "DELIVERY", "DEAD SINCE", "WAITING"]]
            for destination in chosen {
                for held in destination.heldKeys { rows.append([destination.name, held.key, held.delivery, held.since, String(held.waiting)]) }
                if destination.keysBlocked > destination.heldKeys.count {
                    rows.append([destination.name, "… \(destination.keysBlocked - destination.heldKeys.count) more", "", "", ""])
                }
            }
            printTable(rows)
        }
    }

    struct Skip: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Skip a dead delivery that holds its ordering key: it stays dead, the key's next deliveries go out.")

        @Argument(help: "The delivery: EVENT_ID:DESTINATION (see `relay destinations held`).") var delivery: String
        @OptionGroup var options: AdminOptions

        func run() throws {
            let (answer, json) = try AdminClient(options, command: "destinations skip").request(SkipAnswerBody.self, Destinations.deliveryPath(delivery, "skip"), body: [])
            print(options.json ? JSONWriter.serialize(json) : "\(answer.delivery): skipped; key \(JSONWriter.quote(answer.key)) moves on")
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a delivery again now (a one-delivery replay); a held key moves on once it succeeds.")

        @Argument(help: "The delivery: EVENT_ID:DESTINATION.") var delivery: String
        @OptionGroup var options: AdminOptions

        func run() throws {
            let (answer, json) = try AdminClient(options, command: "destinations retry").request(RetryAnswerBody.self, Destinations.deliveryPath(delivery, "retry"), body: [])
            print(options.json ? JSONWriter.serialize(json) : "\(answer.delivery): sent again as replay \(answer.replayID)")
        }
    }

    static func deliveryPath(_ delivery: String, _ action: String) -> String {
        "/admin/deliveries/\(PercentEncoding.pathSegment(delivery))/\(action)"
    }

    static func act(_ action: String, _ name: String, _ options: AdminOptions) throws {
        let path = "/admin/destinations/\(PercentEncoding.pathSegment(name))/\(action)"
        let (destination, json) = try AdminClient(options, command: "destinations \(action)").request(DestinationBody.self, path, body: [])
        if options.json {
            print(JSONWriter.serialize(json))
            return
        }
        print("\(destination.name): \(destination.state) (\(destination.pending) pending, \(destination.inFlight) in flight, \(destination.dead) dead)")
    }
}
