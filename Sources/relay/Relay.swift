import ArgumentParser
import CCurlShim
import RelayCore
import RelayJournal

/// The relay's version.
enum RelayVersion {
    static let string = "0.1.0"
}

@main
struct Relay: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "relay",
            abstract: "A durable webhook relay: receive, journal, route, forward and replay provider webhooks.",
            version: "relay \(RelayVersion.string)\n\(String(cString: ccurl_version()))",
            subcommands: [Serve.self, Routes.self, Events.self, Replay.self, Reconcile.self, Destinations.self, JournalTools.self, StoreTools.self, Sink.self]
        )
    }
}
