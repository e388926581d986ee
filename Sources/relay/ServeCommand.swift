import Foundation
import ArgumentParser
import CCurlShim
import Logging
import RelayCore
import RelayJournal
import RelayPostgres
import RelayForwarder
import RelayServer
import NIOCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the relay: ingest, journal, routing and forwarding.")

    @Option(help: "The routes file.")
    var config: String = "routes.json"

    @Option(help: "The data directory (the journal lives in DATA/journal).")
    var data: String = "./data"

    @Option(help: "Ingest listener, HOST:PORT (the one providers reach).")
    var listen = RelayServerConfiguration.Address(host: "127.0.0.1", port: 8080)

    @Option(help: "Admin listener, HOST:PORT (never expose it publicly).")
    var adminListen = RelayServerConfiguration.Address(host: "127.0.0.1", port: 8081)

    @Option(help: "Pending deliveries kept in memory per destination; the rest wait in the journal.")
    var deliveryWindow: Int = 10_000

    @Option(help: "Save a start-up checkpoint after this many new journal records (and every 10 minutes with any new record, and at shutdown).")
    var checkpointRecords: Int = 200_000

    @Option(help: "Close a client connection that sends nothing of a request for this many seconds (slow or stalled clients, idle keep-alive).")
    var idleTimeout: Int = 60

    @Option(help: "An ingest request's whole body must arrive within this many seconds, else 408 (a client dribbling its body).")
    var bodyTimeout: Int = 60

    @Option(help: "Delete journal segments whose events are all older than this (30d, 72h, …) once nothing in them is unfinished; 0 keeps everything.")
    var retention: String = "30d"

    @Option(help: ArgumentHelp(
        "Keep events, deliveries and replays in this PostgreSQL database instead of the journal, shared by every instance given the same URL: postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=disable|prefer|require|verify-full (also RELAY_STORE).",
        valueName: "url"
    ))
    var store: String?

    @Option(help: "With --store: the schema the tables live in (several relays may share one database).")
    var storeSchema: String = "relay"

    @Option(help: "Event-loop threads for the ingest and admin listeners and the database connections (default: one per core). Several instances on one machine: give each its share of the cores.")
    var eventLoops: Int?

    @OptionGroup var logging: LoggingOptions

    /// `--retention` in milliseconds (0 keeps everything), or nil if malformed.
    static func retentionMillis(_ text: String) -> Int64? {
        text == "0" ? 0 : Duration.parseMilliseconds(text)
    }

    func validate() throws {
        guard (1...3600).contains(bodyTimeout) else { throw ValidationError("--body-timeout: must be 1…3600 seconds, not \(bodyTimeout)") }
        guard (1...3600).contains(idleTimeout) else { throw ValidationError("--idle-timeout: must be 1…3600 seconds, not \(idleTimeout)") }
        guard checkpointRecords >= 1 else { throw ValidationError("--checkpoint-records: must be at least 1, not \(checkpointRecords)") }
        if let eventLoops, !(1...256).contains(eventLoops) { throw ValidationError("--event-loops: must be 1…256, not \(eventLoops)") }
        guard deliveryWindow >= 2 else { throw ValidationError("--delivery-window: must be at least 2, not \(deliveryWindow)") }
    }

    func run() async throws {
        // Before anything starts the shared event loops: their count is fixed at first use.
        if let eventLoops { NIOSingletons.groupLoopCountSuggestion = eventLoops }
        exitWithParentIfAsked()
        let logger = try logging.bootstrap(label: "relay")
        let curl = ccurl_global_init()
        guard curl == 0 else { throw fail("libcurl failed to initialise (code \(curl))") }
        guard let retentionMillis = Self.retentionMillis(retention) else {
            throw fail("serve: --retention: invalid duration \"\(retention)\" (a whole number with ms, s, m, h or d, e.g. 30d; 0 keeps everything)", code: 2)
        }
        var storeChoice = RelayServerConfiguration.Store.journal
        if let text = store ?? ProcessInfo.processInfo.environment["RELAY_STORE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do {
                storeChoice = .postgres(try PostgresURL(text), schema: storeSchema)
            } catch {
                throw fail("serve: --store: \(error)", code: 2)
            }
        }
        let relayConfig = try loadConfig(config)
        let server: RelayServer
        do {
            server = try RelayServer(
                configuration: RelayServerConfiguration(
                    configPath: config, dataDirectory: data, listen: listen, adminListen: adminListen,
                    scheduler: DeliveryScheduler.Configuration(windowPerDestination: deliveryWindow, checkpointEveryRecords: checkpointRecords),
                    adminToken: ProcessInfo.processInfo.environment["RELAY_ADMIN_TOKEN"],
                    idleTimeout: .seconds(idleTimeout), bodyTimeout: .seconds(bodyTimeout), retentionMillis: retentionMillis, store: storeChoice
                ),
                config: relayConfig,
                logger: logger
            )
        } catch let error as ServerConfigurationError {
            throw fail("serve: \(error)")
        } catch {
            throw fail("cannot open the journal in \(data)/journal: \(error)")
        }
        logger.info("relay starting", metadata: [
            "version": "\(RelayVersion.string)", "sources": "\(relayConfig.sources.keys.sorted().joined(separator: ","))",
            "store": "\(server.postgres.map { "\($0.url)" } ?? "journal")",
            "last_sequence": "\(server.journal.map { String($0.durable.lastSequence) } ?? "-")",
        ])
        try await server.run()
        logger.info("relay stopped")
    }
}

struct Sink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a small downstream that answers every request and logs it.")

    @Option(help: "HOST:PORT to listen on.")
    var listen = RelayServerConfiguration.Address(host: "127.0.0.1", port: 9001)

    @Option(help: "Status to answer (default 204).")
    var status: Int = 204

    @Option(help: "Fraction of requests answered 503 instead, 0…1.")
    var failRate: Double = 0

    @Option(help: "Delay before each answer, in milliseconds.")
    var delayMs: Int = 0

    @Option(help: "Append one JSON line per request to this file.")
    var log: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (100...599).contains(status) else { throw ValidationError("--status: must be an HTTP status 100…599, not \(status)") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate: must be between 0 and 1, not \(failRate)") }
        guard delayMs >= 0 else { throw ValidationError("--delay-ms: must not be negative") }
    }

    func run() async throws {
        exitWithParentIfAsked()
        let logger = try logging.bootstrap(label: "relay-sink")
        let sink: SinkServer
        do {
            sink = try SinkServer(
                configuration: .init(listen: listen, status: status, failRate: failRate, delayMilliseconds: delayMs, logPath: log),
                logger: logger
            )
        } catch {
            throw fail("sink: \(error)")
        }
        try await sink.run()
    }
}
