import CoreMetrics
import Prometheus
import RelayCore
import RelayJournal
import RelayForwarder
import Synchronization

/// The relay's metrics, in a Prometheus registry of their own (so several relays in one test
/// process never share one), recorded through swift-metrics and served at `GET /metrics`.
///
/// Counters and histograms move as things happen; the per-destination gauges (pending, dead,
/// breaker, paused by a 410 or by an operator) and replay progress are read from the scheduler when scraped. Label values
/// come from routes.json (sources, destinations) or from verified events (type), never from
/// an unauthenticated request: an unknown source is counted as `(unknown)`.
public final class RelayMetrics: DeliveryObserver {
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[MetricKey: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[MetricKey: CoreMetrics.Timer]>([:])
    private let batchSizes: Recorder
    private let commitTime: CoreMetrics.Timer
    /// Minute-by-minute counts for the console (`GET /admin/activity`, `GET /admin/destinations`).
    public let activity: ActivityLog
    /// The last 1,000 events of provider batches the relay did not accept (`GET /admin/rejections`).
    public let rejections = RejectionLog(capacity: 1_000)
    private let clock: any RelayClock

    public init(clock: any RelayClock = SystemClock()) {
        self.clock = clock
        activity = ActivityLog(clock: clock)
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["relay_journal_commit_records"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory.durationHistogramBuckets["relay_journal_commit_seconds"] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        self.factory = factory
        batchSizes = Recorder(label: "relay_journal_commit_records", dimensions: [], aggregate: true, factory: factory)
        commitTime = CoreMetrics.Timer(label: "relay_journal_commit_seconds", dimensions: [], factory: factory)
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        Self.cached(counters, name, labels) { CoreMetrics.Counter(label: name, dimensions: labels, factory: factory) }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        Self.cached(timers, name, labels) { CoreMetrics.Timer(label: name, dimensions: labels, factory: factory) }
    }

    /// A metric's name and label values: hashed as they are, with no string built per lookup
    /// (the ingested-events counter is looked up for every event).
    private struct MetricKey: Hashable {
        var name: String
        var labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            var flat: [String] = []
            flat.reserveCapacity(labels.count * 2)
            for (label, value) in labels {
                flat.append(label)
                flat.append(value)
            }
            self.labels = flat
        }
    }

    /// One metric object per name and labels, made once (the registry's own lookup is slower).
    private static func cached<Metric>(_ cache: borrowing Mutex<[MetricKey: Metric]>, _ name: String, _ labels: [(String, String)], make: () -> Metric) -> Metric {
        let key = MetricKey(name, labels)
        return cache.withLock { cache in
            if let known = cache[key] { return known }
            let made = make()
            cache[key] = made
            return made
        }
    }

    // MARK: - Ingest and journal

    func ingested(_ result: IngestResult, source: SourceConfig) {
        activity.stored(result.routed.count)
        for (event, _) in result.routed {
            counter("relay_events_ingested_total", [("source", source.name), ("provider", event.provider), ("type", event.type)]).increment()
        }
        if result.duplicates > 0 {
            counter("relay_ingest_duplicates_total", [("source", source.name)]).increment(by: Int64(result.duplicates))
        }
    }

    func rejected(source: String?, reason: String) {
        counter("relay_ingest_rejections_total", [("source", source ?? "(unknown)"), ("reason", reason)]).increment()
    }

    /// Events of a batch the adapter did not accept. Within a batch whose other events were
    /// stored they count as `bad_event` each; a request refused whole is counted once, by
    /// `rejected(source:reason:)`, as `bad_request`. Both go to the rejection log.
    func rejectedEvents(_ events: [RejectedEvent], source: SourceConfig, batchAccepted: Bool) {
        guard !events.isEmpty else { return }
        if batchAccepted {
            counter("relay_ingest_rejections_total", [("source", source.name), ("reason", "bad_event")]).increment(by: Int64(events.count))
        }
        let now = clock.now()
        rejections.record(events.map { RejectionEntry(time: now, source: source.name, provider: source.provider.rawValue, event: $0, batchAccepted: batchAccepted) })
    }

    /// A reconciliation pass that succeeded: counted, its recovered events counted, its time kept.
    func reconciled(source: String, report: ReconcileReport, at time: Timestamp) {
        counter("relay_reconcile_runs_total", [("source", source), ("result", "success")]).increment()
        counter("relay_reconcile_recovered_total", [("source", source)]).increment(by: Int64(report.stored))
        registry.makeGauge(name: "relay_reconcile_last_success_timestamp", labels: [("source", source)]).set(to: Double(time.milliseconds) / 1000)
    }

    func reconcileFailed(source: String) {
        counter("relay_reconcile_runs_total", [("source", source), ("result", "failure")]).increment()
    }

    /// For `JournalConfiguration.commitObserver`.
    public func journalCommitted(records: Int, duration: Duration) {
        batchSizes.record(records)
        commitTime.recordNanoseconds(Self.nanoseconds(duration))
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    // MARK: - Deliveries

    public func attempted(destination: String, outcome: DeliveryRecord.Outcome, duration: Duration, replay: Bool) {
        let name: String = switch outcome {
        case .succeeded: "succeeded"
        case .retry: "retry"
        case .dead: "dead"
        }
        if replay {
            counter("relay_replay_deliveries_total", [("destination", destination), ("outcome", name)]).increment()
        } else {
            counter("relay_deliveries_total", [("destination", destination), ("outcome", name)]).increment()
        }
        timer("relay_delivery_attempt_seconds", [("destination", destination)])
            .recordNanoseconds(Self.nanoseconds(duration))
        activity.attempted(destination: destination, outcome: outcome, millis: Int(Self.nanoseconds(duration) / 1_000_000))
    }

    /// The Prometheus text, after reading the scheduler's gauges.
    func render(engine: any DeliveryEngine, heldSegments: Int, heldPartitions: Int? = nil) async -> [UInt8] {
        registry.makeGauge(name: "relay_journal_segments_held").set(to: Double(heldSegments))
        // On PostgreSQL: days past the retention kept because something in them is unfinished.
        if let heldPartitions { registry.makeGauge(name: "relay_store_days_held").set(to: Double(heldPartitions)) }
        let lanes = await engine.laneStatuses()
        for (destination, lane) in lanes {
            let labels = [("destination", destination)]
            registry.makeGauge(name: "relay_deliveries_pending", labels: labels).set(to: Double(lane.pending))
            registry.makeGauge(name: "relay_deliveries_in_flight", labels: labels).set(to: Double(lane.inFlight))
            registry.makeGauge(name: "relay_deliveries_dead", labels: labels).set(to: Double(lane.dead))
            registry.makeGauge(name: "relay_destination_breaker_open", labels: labels).set(to: lane.breakerOpen ? 1.0 : 0.0)
            registry.makeGauge(name: "relay_destination_paused", labels: labels).set(to: lane.paused ? 1.0 : 0.0)
            registry.makeGauge(name: "relay_destination_operator_paused", labels: labels).set(to: lane.operatorPaused ? 1.0 : 0.0)
            // A running count kept by the store (across instances on PostgreSQL), read when scraped.
            registry.makeGauge(name: "relay_destination_rate_limited_total", labels: labels).set(to: Double(lane.rateLimited))
            // Ordering keys held by a dead delivery (on_dead: hold) until an operator retries or skips it.
            registry.makeGauge(name: "relay_destination_keys_blocked", labels: labels).set(to: Double(lane.keysBlocked))
        }
        let replays = await engine.replaySummary()
        registry.makeGauge(name: "relay_replays_running").set(to: Double(replays.running))
        registry.makeGauge(name: "relay_replay_deliveries_remaining").set(to: Double(replays.remaining))
        return registry.emitToBuffer()
    }
}
