import Hummingbird
import RelayAdminAPI
import Logging
import NIOCore
import RelayCore
import RelayJournal
import RelayPostgres
import RelayForwarder
import ServiceLifecycle
import UnixSignals
import Synchronization

/// The relay process: journal, ingest listener and admin listener in one service group, so
/// SIGTERM/SIGINT stop the listeners first (finishing in-flight requests), then the journal.
public final class RelayServer: Sendable {
    public let configuration: RelayServerConfiguration
    /// The journal, its ingest store (with the de-duplication index), its delivery store and
    /// retention: nil on PostgreSQL.
    public let journal: Journal?
    public let ingestStore: JournalIngestStore?
    public let deliveryStore: JournalDeliveryStore?
    /// Deletes expired journal segments (nil with `--retention 0`, and on PostgreSQL).
    public let retention: JournalRetention?
    /// The PostgreSQL store and its delivery store: nil on the journal.
    public let postgres: PostgresStore?
    public let postgresDeliveries: PostgresDeliveryStore?
    public let pipeline: IngestPipeline
    /// Sends deliveries: libcurl unless a test injects another transport.
    public let engine: CurlEngine?
    public let scheduler: DeliveryScheduler
    /// The delivery engine, as the admin API and metrics use it.
    public var deliveries: any DeliveryEngine { scheduler }
    /// Counters, histograms and gauges served at `GET /metrics`.
    public let metrics: RelayMetrics
    /// Stored events, for the admin API.
    public let events: any EventStore
    /// The threads blocking reads run on.
    public let io: ThreadPoolIO
    private let logger: Logger
    private let ports = Mutex<(ingest: Int?, admin: Int?)>((nil, nil))
    private let ready = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let replayIDs = EventIDGenerator(clock: SystemClock())
    /// The console's minute counts: the database's (every instance) or this process's.
    private let activity: any ActivitySource
    /// Reconciliation with the providers' APIs (sources with `reconcile`).
    let reconciliation: ReconcileRunner

    /// A new replay id, `rpl_` and a time-ordered suffix.
    public func newReplayID() -> String { "rpl_" + replayIDs.next().dropFirst(4) }

    /// Serializes reloads, so a SIGHUP and an admin reload cannot install an older file last.
    private let reloading = Mutex(())

    /// Loads the config and opens (recovering) the journal, or sets up the PostgreSQL store
    /// (which connects and migrates in `run()`). Throws `ConfigError`, `JournalError` or
    /// `PostgresURLError`. `clock` is the wall time events and attempts are stamped with; the
    /// delivery timers sleep on `timer` (a test may move both by hand).
    public init(
        configuration: RelayServerConfiguration, config: RelayConfig, clock: any RelayClock = SystemClock(), timer: any Clock<Duration> = ContinuousClock(),
        logger: Logger
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        let metrics = RelayMetrics(clock: clock)
        self.metrics = metrics
        self.io = ThreadPoolIO()
        let engine = try CurlEngine(logger: logger)
        self.engine = engine
        let settings = configuration.scheduler
        let deliveryStore: any DeliveryStore
        let ingest: any IngestStore
        switch configuration.store {
        case .journal:
            var journalConfiguration = configuration.journal
            journalConfiguration.commitObserver = { metrics.journalCommitted(records: $0, duration: $1) }
            let journal = try Journal.open(journalConfiguration, logger: logger)
            self.journal = journal
            self.events = JournalEventStore(journal: journal, io: io)
            // A provider retry is recognised for 7 days, never longer than events are kept.
            var deduplication = DeduplicationIndex.Configuration()
            if configuration.retentionMillis > 0 { deduplication.windowMillis = min(deduplication.windowMillis, configuration.retentionMillis) }
            let ingestStore = JournalIngestStore(journal: journal, deduplication: DeduplicationIndex(configuration: deduplication), logger: logger)
            self.ingestStore = ingestStore
            ingest = ingestStore
            let retention = configuration.retentionMillis > 0 ? JournalRetention(journal: journal, retentionMillis: configuration.retentionMillis, logger: logger) : nil
            self.retention = retention
            // One pass over the journal (after the last checkpoint) rebuilds deliveries and the
            // de-duplication index, before either listener starts.
            let journalDeliveries = try JournalDeliveryStore(
                journal: journal, destinations: config.destinations,
                configuration: JournalDeliveryStore.Configuration(
                    window: settings.windowPerDestination, breaker: settings.breaker, checkpointEveryRecords: settings.checkpointEveryRecords,
                    checkpointInterval: settings.checkpointInterval, retentionInterval: settings.retentionInterval
                ),
                checkpoints: CheckpointStore(directory: configuration.journal.directory), participants: [ingestStore.deduplication], io: io, retention: retention,
                pauses: OperatorPauses(directory: configuration.journal.directory),
                clock: clock, logger: logger
            )
            self.deliveryStore = journalDeliveries
            deliveryStore = journalDeliveries
            (postgres, postgresDeliveries) = (nil, nil)
        case .postgres(let url, let schema):
            let store = try PostgresStore(url: url, schema: schema, logger: logger)
            // Retention of 0 keeps every day; the pass still makes the coming days' partitions
            // and expires de-duplication keys.
            let deliveries = PostgresDeliveryStore(
                store: store, breaker: settings.breaker, retention: PostgresRetention(store: store, retentionMillis: configuration.retentionMillis),
                maintenanceInterval: settings.retentionInterval, clock: clock
            )
            (postgres, postgresDeliveries) = (store, deliveries)
            (journal, ingestStore, self.deliveryStore, retention) = (nil, nil, nil, nil)
            events = store
            ingest = store
            deliveryStore = deliveries
        }
        activity = postgres.map { PostgresActivity(store: $0, fallback: metrics.activity, clock: clock) } ?? metrics.activity
        let pipeline = IngestPipeline(config: config, store: ingest, clock: clock)
        self.pipeline = pipeline
        let reconciler = ProviderReconciler(client: CurlProviderAPIClient(engine: engine), pipeline: pipeline, clock: clock)
        reconciliation = ReconcileRunner(reconciler: reconciler, config: { pipeline.currentConfig }, metrics: metrics, logger: logger, clock: clock)
        self.scheduler = DeliveryScheduler(
            store: deliveryStore, transport: engine, destinations: config.destinations, configuration: settings,
            clock: clock, timer: timer, observer: metrics,
            enricher: RunaOrderEnricher(runa: reconciler.runa, config: { pipeline.currentConfig }), logger: logger
        )
    }

    /// The bound ingest port (useful with port 0), once listening.
    public var ingestPort: Int? { ports.withLock { $0.ingest } }
    /// The bound admin port, once listening.
    public var adminPort: Int? { ports.withLock { $0.admin } }

    /// Waits until both listeners are bound.
    public func waitUntilListening() async {
        await withCheckedContinuation { continuation in
            let done = ports.withLock { $0.ingest != nil && $0.admin != nil }
            if done { continuation.resume(); return }
            ready.withLock { $0.append(continuation) }
            // Re-check in case both ports were set between the two locks.
            if ports.withLock({ $0.ingest != nil && $0.admin != nil }) { resumeWaiters() }
        }
    }

    private func resumeWaiters() {
        let waiters = ready.withLock { waiters in
            defer { waiters = [] }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func bound(ingest: Int? = nil, admin: Int? = nil) {
        let both = ports.withLock { ports in
            if let ingest { ports.ingest = ingest }
            if let admin { ports.admin = admin }
            return ports.ingest != nil && ports.admin != nil
        }
        if both { resumeWaiters() }
    }

    /// Reloads routes.json from `configuration.configPath`. An invalid file is rejected with its
    /// errors and the rules in force stay; a valid one takes effect for requests that start after.
    @discardableResult
    public func reload() -> Result<RelayConfig, ConfigError> {
        reloading.withLock { _ in reloadLocked() }
    }

    private func reloadLocked() -> Result<RelayConfig, ConfigError> {
        do {
            let config = try RelayConfig.load(path: configuration.configPath)
            pipeline.update(config)
            let deliveries = self.deliveries
            Task { await deliveries.updateDestinations(config.destinations) }
            logger.info("routes reloaded", metadata: [
                "version": "\(config.version)", "sources": "\(config.sources.count)",
                "destinations": "\(config.destinations.count)", "routes": "\(config.routing.routes.count)",
            ])
            return .success(config)
        } catch let error as ConfigError {
            logger.error("routes reload rejected; the previous rules stay in force", metadata: [
                "version": "\(pipeline.currentConfig.version)", "errors": "\(error.issues.count)",
            ])
            for issue in error.issues { logger.error("\(issue.description)") }
            return .failure(error)
        } catch {
            let failure = ConfigError(issues: [ConfigIssue(file: configuration.configPath, path: "", message: "\(error)")])
            return .failure(failure)
        }
    }

    /// The services to run, in start order (they stop in reverse).
    public func services() -> [any Service] {
        let ingest = IngestListener(
            host: configuration.listen.host, port: configuration.listen.port,
            handling: IngestHandling(pipeline: pipeline, metrics: metrics, logger: logger, bodyDeadline: configuration.bodyTimeout),
            idleTimeout: configuration.idleTimeout,
            onBound: { [self] port in self.bound(ingest: port) },
            logger: logger
        )
        let adminRouter = Router(context: BasicRequestContext.self)
        adminRouter.add(middleware: JSONNotFoundMiddleware())
        if let token = configuration.adminToken { adminRouter.add(middleware: BearerTokenMiddleware(token: token)) }
        let (metrics, deliveries, retention, journal, pipeline, events) = (self.metrics, self.deliveries, self.retention, self.journal, self.pipeline, self.events)
        AdminRoutes(
            events: events, deliveries: deliveries, config: { pipeline.currentConfig }, reload: { [self] in self.reload() },
            newReplayID: { [self] in self.newReplayID() },
            metrics: { [postgresDeliveries] in
                await metrics.render(engine: deliveries, heldSegments: retention?.heldSegments ?? 0, heldPartitions: postgresDeliveries?.retention?.heldDays)
            },
            journalEnd: {
                // On PostgreSQL: the last event's sequence, and no segment.
                guard let durable = journal?.durable else { return JournalBody(lastSequence: (try? await events.mark()) ?? 0, segment: 0, offset: 0) }
                return JournalBody(lastSequence: durable.lastSequence, segment: durable.end.segment, offset: durable.end.offset)
            },
            activity: activity,
            rejections: metrics.rejections,
            reconciliation: reconciliation
        ).register(on: adminRouter)
        ConsoleRoutes.register(on: adminRouter)
        let admin = Application(
            router: adminRouter,
            server: .http1(configuration: .init(additionalChannelHandlers: [CloseAfterResponseHandler()], idleTimeout: TimeAmount(configuration.idleTimeout))),
            configuration: ApplicationConfiguration(address: .hostname(configuration.adminListen.host, port: configuration.adminListen.port), serverName: nil),
            onServerRunning: { [self] channel in
                self.bound(admin: channel.localAddress?.port)
                logger.info("admin listening", metadata: ["port": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: logger
        )
        var services: [any Service] = journal.map { [JournalService(journal: $0)] } ?? []
        if let engine { services.append(CurlEngineService(engine: engine)) }
        services += [SchedulerService(scheduler: scheduler, logger: logger), ReloadOnHangup(server: self), ingest, admin, ReconcileService(runner: reconciliation)]
        return services
    }

    /// Runs until SIGTERM/SIGINT (or cancellation), then drains and returns. On PostgreSQL the
    /// connection pool runs first and the schema is migrated before either listener starts;
    /// the pool stops last.
    public func run(handleSignals: Bool = true) async throws {
        guard let postgres else { return try await runServices(handleSignals: handleSignals) }
        let pool = Task { await postgres.run() }
        do {
            try await postgres.prepare(limit: configuration.storeTimeout)
            await scheduler.updateDestinations(pipeline.currentConfig.destinations)
            logger.info("PostgreSQL store ready", metadata: ["store": "\(postgres.url)", "schema": "\(postgres.schema)"])
            try await runServices(handleSignals: handleSignals)
        } catch {
            pool.cancel()
            await pool.value
            // The services never ran: stop what init started (the curl thread, the I/O pool).
            await engine?.shutdown()
            await io.shutdown()
            throw error
        }
        pool.cancel()
        await pool.value
    }

    private func runServices(handleSignals: Bool) async throws {
        let group = ServiceGroup(
            services: services(),
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger
        )
        do {
            try await group.run()
        } catch {
            await io.shutdown()
            throw error
        }
        await io.shutdown()
    }
}
