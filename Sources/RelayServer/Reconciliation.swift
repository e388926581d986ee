import Logging
import RelayCore
import RelayForwarder
import ServiceLifecycle
import Synchronization

/// The providers' APIs through the relay's libcurl engine (TLS, connection reuse, timeouts).
struct CurlProviderAPIClient: ProviderAPIClient {
    let engine: CurlEngine
    /// An API page of 25 events is a few hundred KiB at most; anything larger is cut and fails to parse.
    static let maxResponseBody = 8 << 20

    func send(_ request: ProviderAPIRequest) async -> Result<ProviderAPIResponse, ProviderAPIFailure> {
        let outbound = OutboundRequest(
            method: request.method == "GET" ? .get : .post, url: request.url, headers: request.headers, body: request.body,
            timeoutMillis: request.timeoutMillis, connectTimeoutMillis: min(request.timeoutMillis, 10_000), maxResponseBody: Self.maxResponseBody
        )
        switch await engine.send(outbound) {
        case .success(let response): return .success(ProviderAPIResponse(status: response.status, headers: response.headers, body: response.body))
        case .failure(let failure): return .failure(ProviderAPIFailure(message: "\(failure.kind.rawValue): \(failure.message)"))
        }
    }
}

/// Runs the reconciliation passes: each source with a `reconcile` block every `every` (the
/// first pass right after start, since missed events are what a restart is likely to leave),
/// and on demand (`POST /admin/reconcile`). One pass per source at a time. A failed pass is
/// logged once per run of failures (and when the reason changes), counted, and tried again at
/// the next interval, later after repeated failures (2×, 4×, up to 8× the interval, or the
/// provider's `Retry-After` if longer); it never touches ingest or delivery.
actor ReconcileRunner {
    struct SourceState {
        var nextDue: Int64 = 0
        var failures = 0
        var lastError: String?
        /// The provider's `Retry-After` from the last failed pass, if it gave one.
        var retryAfterMillis: Int64?
    }

    enum PassError: Error {
        case running
        case failed(ReconcileFailure)
    }

    private let reconciler: ProviderReconciler
    private let config: @Sendable () -> RelayConfig
    private let metrics: RelayMetrics
    private let logger: Logger
    private let clock: any RelayClock
    private var states: [String: SourceState] = [:]
    private var running: Set<String> = []

    init(reconciler: ProviderReconciler, config: @escaping @Sendable () -> RelayConfig, metrics: RelayMetrics, logger: Logger, clock: any RelayClock) {
        (self.reconciler, self.config, self.metrics, self.logger, self.clock) = (reconciler, config, metrics, logger, clock)
    }

    /// One pass now for `source`; `.running` if one is under way.
    func pass(_ source: SourceConfig, sinceMillis: Int64? = nil, dryRun: Bool = false) async throws(PassError) -> ReconcileReport {
        guard running.insert(source.name).inserted else { throw .running }
        defer { running.remove(source.name) }
        do {
            let report = try await reconciler.run(source: source, sinceMillis: sinceMillis, dryRun: dryRun)
            succeeded(source, report)
            return report
        } catch {
            failed(source, error)
            throw .failed(error)
        }
    }

    /// The scheduled passes that are due, one after another.
    func runDue() async {
        let now = clock.now().milliseconds
        for source in config().sources.values.sorted(by: { $0.name < $1.name }) {
            guard let reconcile = source.reconcile, (states[source.name]?.nextDue ?? 0) <= now, !running.contains(source.name) else { continue }
            _ = try? await pass(source)
            if Task.isCancelled { return }
            var state = states[source.name, default: SourceState()]
            let factor = Int64(1) << Int64(min(max(state.failures - 1, 0), 3))
            let delay = max(reconcile.everyMillis * (state.failures > 0 ? factor : 1), state.retryAfterMillis ?? 0)
            state.nextDue = clock.now().milliseconds + delay
            states[source.name] = state
        }
    }

    private func succeeded(_ source: SourceConfig, _ report: ReconcileReport) {
        metrics.reconciled(source: source.name, report: report, at: clock.now())
        var state = states[source.name, default: SourceState()]
        if state.failures > 0 {
            logger.info("reconcile recovered", metadata: ["source": "\(source.name)", "after_failures": "\(state.failures)"])
        }
        (state.failures, state.lastError, state.retryAfterMillis) = (0, nil, nil)
        states[source.name] = state
        if report.stored > 0 || report.rejected > 0 {
            logger.info("reconcile stored missed events", metadata: [
                "source": "\(source.name)", "provider_has": "\(report.providerHas)", "stored": "\(report.stored)", "marked": "\(report.marked)", "rejected": "\(report.rejected)",
            ])
        }
    }

    private func failed(_ source: SourceConfig, _ error: ReconcileFailure) {
        metrics.reconcileFailed(source: source.name)
        var state = states[source.name, default: SourceState()]
        state.failures += 1
        state.retryAfterMillis = error.retryAfterMillis
        if state.failures == 1 || state.lastError != error.message {
            logger.warning("reconcile failed", metadata: ["source": "\(source.name)", "error": "\(error.message)", "failures": "\(state.failures)"])
        }
        state.lastError = error.message
        states[source.name] = state
    }
}

/// Ticks the runner once a second until shutdown.
struct ReconcileService: Service {
    let runner: ReconcileRunner

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await runner.runDue()
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// `enrich: runa-order`: the Runa order of the event being sent, fetched with its source's
/// `reconcile` credentials, as `{{order.…}}`. Orders in a final state do not change, so they are
/// cached (the last 1,000); others are fetched each time. An event from a source with no Runa
/// API (another provider, no `reconcile`, no order id) gets no `order`.
final class RunaOrderEnricher: DeliveryEnricher {
    static let cacheLimit = 1_000
    private let runa: RunaReconciler
    private let config: @Sendable () -> RelayConfig
    private let cache = Mutex<(orders: [String: JSONValue], order: [String])>(([:], []))

    init(runa: RunaReconciler, config: @escaping @Sendable () -> RelayConfig) {
        (self.runa, self.config) = (runa, config)
    }

    func values(for event: Event, _ enrichment: DestinationConfig.Enrichment) async -> Result<[String: JSONValue], TransportFailure> {
        guard let source = config().sources[event.source], source.provider == .runa, let reconcile = source.reconcile, !event.orderID.isEmpty else {
            return .success([:])
        }
        let key = event.source + "\u{0}" + event.orderID
        if let cached = cache.withLock({ $0.orders[key] }) { return .success(["order": cached]) }
        do {
            let order = try await runa.order(event.orderID, config: reconcile)
            if let status = order["status"]?.stringValue, status == "COMPLETED" || status == "FAILED" {
                cache.withLock { cache in
                    if cache.orders.updateValue(order, forKey: key) == nil { cache.order.append(key) }
                    while cache.order.count > Self.cacheLimit { cache.orders[cache.order.removeFirst()] = nil }
                }
            }
            return .success(["order": order])
        } catch {
            return .failure(TransportFailure(kind: .other, message: "enrich runa-order: \(error.message)"))
        }
    }
}
