import ArgumentParser
import Foundation
import RelayAdminAPI
import RelayCore

struct Destinations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See destinations, and pause or resume them (admin API).",
        discussion: "An operator's pause holds across restarts and routes reloads until resumed; the destination's deliveries wait, they do not die.",
        subcommands: [List.self, Pause.self, Resume.self]
    )

    static func rows(_ destinations: [DestinationBody]) -> [[String]] {
        [["NAME", "STATE", "PENDING", "IN FLIGHT", "DEAD", "SUCCEEDED", "RATE LIMIT", "5M ATTEMPTS", "5M OK", "5M P99"]] + destinations.map { d in
            [
                d.name, d.state, String(d.pending), String(d.inFlight), String(d.dead), String(d.succeeded),
                d.ratePerSecond.map { String(format: "%g/s (waited %d times)", $0, d.rateLimited) } ?? "-", String(d.attempts5m),
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

    static func act(_ action: String, _ name: String, _ options: AdminOptions) throws {
        let path = "/admin/destinations/\(AdminClient.percentEncode(name).replacingOccurrences(of: "/", with: "%2F"))/\(action)"
        let (destination, json) = try AdminClient(options, command: "destinations \(action)").request(DestinationBody.self, path, body: [])
        if options.json {
            print(JSONWriter.serialize(json))
            return
        }
        print("\(destination.name): \(destination.state) (\(destination.pending) pending, \(destination.inFlight) in flight, \(destination.dead) dead)")
    }
}
