import ArgumentParser
import Foundation
import RelayAdminAPI
import RelayCore

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send stored events again through the running relay (admin API), or show where they would go.",
        discussion: """
            Replays run in their own lane (--concurrency, --rate): live deliveries keep their slots. Each \
            replayed request keeps the event's webhook-id and adds x-relay-replay: 1. With --delivery-state, \
            only the deliveries in that state are sent (replaying dead ones does not resend their succeeded \
            siblings). --dry-run sends nothing; with --config NEW.json it routes with a routes file that is \
            not deployed yet (a backtest).
            """
    )

    @OptionGroup var filters: FilterOptions
    @Option(name: .customLong("destination"), help: "Send only to this destination (repeatable).") var destinations: [String] = []
    @Flag(help: "With --destination: send to the routed destinations and these as well.") var also = false
    @Option(help: "current: route again with the rules in force; original: the destinations recorded then.") var routing: String = "current"
    @Flag(help: "Report what matched and where it would go; send nothing.") var dryRun = false
    @Option(help: "Deliveries started per second at most.") var rate: Double?
    @Option(help: "Replay deliveries in flight at once (1…256).") var concurrency: Int = 8
    @Option(help: "With --dry-run: route with this routes file instead of the one in force.") var config: String?
    @Flag(help: "Wait until the replay has finished and print its outcome (exit 1 if any delivery died).") var wait = false
    @OptionGroup var options: AdminOptions

    func run() throws {
        let query = try filters.validated(command: "replay")
        guard !query.isEmpty else { throw fail("replay: give at least one filter (to replay everything after a time, use --since)") }
        guard ["current", "original"].contains(routing) else { throw fail("replay: --routing: must be current or original, not \(JSONWriter.quote(routing))") }
        if let rate, !(rate > 0) { throw fail("replay: --rate: must be positive") }
        guard (1...256).contains(concurrency) else { throw fail("replay: --concurrency: must be from 1 to 256, not \(concurrency)") }
        if also && destinations.isEmpty { throw fail("replay: --also needs at least one --destination") }
        var fields: [String] = []
        var grouped: [(String, [String])] = []
        for (name, value) in query {
            if let index = grouped.firstIndex(where: { $0.0 == name }) { grouped[index].1.append(value) } else { grouped.append((name, [value])) }
        }
        fields.append("\"filter\":{" + grouped.map { "\(JSONWriter.quote($0.0)):\(JSONWriter.array($0.1))" }.joined(separator: ",") + "}")
        if !destinations.isEmpty { fields.append("\"destinations\":\(JSONWriter.array(destinations))") }
        fields.append("\"destinations_mode\":\"\(also ? "add" : "only")\"")
        fields.append("\"routing\":\"\(routing)\"")
        fields.append("\"dry_run\":\(dryRun)")
        if let rate { fields.append("\"rate_per_s\":\(rate)") }
        fields.append("\"concurrency\":\(concurrency)")
        if let config {
            guard dryRun else { throw fail("replay: --config is for dry runs (backtests) only; deploy the file, then replay") }
            _ = try loadConfig(config, lenientSecrets: true)
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw fail("replay: cannot read \(config)") }
            fields.append("\"config\":\(text)")
        }
        let client = AdminClient(options, command: "replay")
        let (answer, json) = try client.request(ReplayAnswerBody.self, "/admin/replay", body: Array(("{" + fields.joined(separator: ",") + "}").utf8))
        if options.json && !wait {
            print(JSONWriter.serialize(json))
            return
        }
        let matched = answer.matchedEvents
        let counts = answer.deliveries.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let total = counts.reduce(0) { $0 + $1.1 }
        if dryRun {
            print("dry run (routing \(routing)\(config.map { ", routes from \($0)" } ?? "")): \(matched) event\(matched == 1 ? "" : "s") matched, \(total) deliver\(total == 1 ? "y" : "ies"); nothing was sent")
            if !counts.isEmpty { printTable([["DESTINATION", "DELIVERIES"]] + counts.map { [$0.0, String($0.1)] }) }
            let sample = answer.sample ?? []
            if !sample.isEmpty {
                print("sample (oldest first):")
                printTable(sample.map { [$0.id, $0.destinations.joined(separator: ", ")] })
            }
            return
        }
        let id = answer.replayID ?? ""
        print("replay \(id): \(matched) event\(matched == 1 ? "" : "s") matched, \(total) deliver\(total == 1 ? "y" : "ies") scheduled" + (counts.isEmpty ? "" : " (" + counts.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")"))
        guard wait else { return }
        var status: (body: ReplayStatusBody, json: JSONValue)
        while true {
            status = try client.request(ReplayStatusBody.self, "/admin/replays/" + PercentEncoding.queryValue(id))
            if status.body.state == "finished" { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        if options.json {
            print(JSONWriter.serialize(status.json))
        } else {
            let progress = status.body
            print("finished: \(progress.succeeded) succeeded, \(progress.dead) dead, \(progress.skipped) skipped, \(progress.attempts) attempts")
        }
        if status.body.dead > 0 { throw ExitCode(1) }
    }
}
