import ArgumentParser
import Foundation
import RelayCore

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check routes.json and see where payloads would go.", subcommands: [Check.self, Test.self, Bench.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a routes file; exit 1 with every error as FILE: path: message.")

        @Option(help: "The routes file.")
        var config: String = "routes.json"

        func run() throws {
            let loaded = try loadConfig(config)
            print("\(config): ok, version \(loaded.version): \(loaded.sources.count) sources, \(loaded.destinations.count) destinations, \(loaded.routing.routes.count) routes")
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the normalized event(s) a payload becomes and the routes and destinations each would go to.",
            discussion: "Signatures are not checked and nothing is stored; environment variables the file names need not be set."
        )

        @Option(help: "The routes file.")
        var config: String = "routes.json"

        @Option(help: "The source the payload arrives at (a key of sources).")
        var source: String

        @Option(name: .customLong("header"), help: "A request header, 'Name: value' (repeatable).")
        var headers: [String] = []

        @Flag(help: "Machine-readable output.")
        var json = false

        @Argument(help: "The payload file (the raw request body).")
        var payload: String

        func run() throws {
            let loaded = try loadConfig(config, lenientSecrets: true)
            var list = HeaderList()
            for header in headers {
                guard let colon = header.firstIndex(of: ":") else { throw fail("routes test: --header \(JSONWriter.quote(header)): expected 'Name: value'") }
                list.append(name: header[..<colon].trimmingCharacters(in: .whitespaces), value: header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            let outcomes = try routePayload(command: "routes test", config: loaded, source: source, headers: list, payload: payload)
            print(json ? RouteTester.json(outcomes, config: loaded, source: source) : RouteTester.text(outcomes, config: loaded, source: source))
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Measure routing speed: route a payload's events through the file's routes many times (for scripts/bench).")

        @Option(help: "The routes file.")
        var config: String = "routes.json"

        @Option(help: "The source the payload arrives at.")
        var source: String

        @Option(help: "How many times to route each event.")
        var iterations: Int = 100_000

        @Argument(help: "The payload file.")
        var payload: String

        func run() throws {
            let loaded = try loadConfig(config, lenientSecrets: true)
            let outcomes = try routePayload(command: "routes bench", config: loaded, source: source, headers: HeaderList(), payload: payload)
            guard !outcomes.isEmpty else { throw fail("routes bench: the payload has no events") }
            var matched = 0
            let start = DispatchTime.now().uptimeNanoseconds
            for i in 0..<iterations {
                matched &+= loaded.routing.decide(outcomes[i % outcomes.count].event).routes.count
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let rate = Double(iterations) / seconds
            print("routes=\(loaded.routing.routes.count) events=\(iterations) seconds=\(String(format: "%.3f", seconds)) events_per_s=\(Int(rate)) us_per_event=\(String(format: "%.2f", 1e6 / rate)) matches=\(matched)")
        }
    }
}
