import ArgumentParser
import Foundation
import RelayAdminAPI
import RelayCore

/// `relay reconcile`: one reconciliation pass now, through the running relay's admin API.
struct Reconcile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a source's provider API for events the relay missed, store them and mark them processed (one pass, now).",
        discussion: "The source needs a \"reconcile\" block in the routes file. --dry-run lists what the provider holds unprocessed and stores and marks nothing."
    )

    @Option(help: "The source (with a reconcile block).") var source: String
    @Option(help: "How far back, e.g. 24h (default: the source's lookback; at most 30d).") var since: String?
    @Flag(help: "List only: store nothing, mark nothing.") var dryRun = false
    @OptionGroup var options: AdminOptions

    func run() throws {
        if let since, case .failure(let problem) = ReconcileConfig.since(since) { throw fail("reconcile: --since: \(problem.message)") }
        var members: [(key: String, value: JSONValue)] = [("source", .string(source)), ("dry_run", .bool(dryRun))]
        if let since { members.append(("since", .string(since))) }
        let body = Array(JSONWriter.serialize(.object(members)).utf8)
        let (answer, json) = try AdminClient(options, command: "reconcile").request(ReconcileAnswerBody.self, "/admin/reconcile", body: body)
        if options.json {
            print(JSONWriter.serialize(json))
            return
        }
        if answer.dryRun {
            print("\(answer.source): the provider lists \(answer.providerHas) event\(answer.providerHas == 1 ? "" : "s") to reconcile (dry run: nothing stored or marked)")
            for id in answer.listedIDs { print("  \(id)") }
            return
        }
        print("\(answer.source): the provider listed \(answer.providerHas), the relay already had \(answer.relayHad ?? 0), stored \(answer.stored), marked \(answer.marked) processed"
            + (answer.rejected > 0 ? ", \(answer.rejected) rejected (no id or type: neither stored nor marked)" : ""))
        for id in answer.storedIDs { print("  stored \(id)") }
    }
}
