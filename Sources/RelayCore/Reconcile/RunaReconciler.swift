import Foundation

/// One reconciliation pass against Runa's orders API: list recent orders (`GET /order`,
/// `X-Api-Key`, newest first, 100 per page, the next page with `after`), back to the window's
/// start, and for each order in a final state (`COMPLETED`, `FAILED`) store an `order.completion`
/// built from the order, exactly like the webhook Runa would have sent (the order object is the
/// body). Its de-duplication key is the order's id and status, the same as a pushed one's, so
/// an order whose webhook did arrive (before or after) is one event. Runa has nothing to mark.
public struct RunaReconciler: Sendable {
    public static let maxPages = 40
    public static let pageSize = 100
    public let client: any ProviderAPIClient
    public let pipeline: IngestPipeline
    public let clock: any RelayClock

    public init(client: any ProviderAPIClient, pipeline: IngestPipeline, clock: any RelayClock = SystemClock()) {
        (self.client, self.pipeline, self.clock) = (client, pipeline, clock)
    }

    public func run(source: SourceConfig, sinceMillis: Int64? = nil, dryRun: Bool = false) async throws(ReconcileFailure) -> ReconcileReport {
        guard let config = source.reconcile else { throw ReconcileFailure("source \(JSONWriter.quote(source.name)) has no reconcile block") }
        let api = ProviderAPICall(client: client, config: config, provider: "Runa")
        var report = ReconcileReport(source: source.name, dryRun: dryRun)
        let start = clock.now().milliseconds - min(sinceMillis ?? config.lookbackMillis, ReconcileConfig.maximumLookback)
        var cursor: String?
        var reachedStart = false
        while report.pages < Self.maxPages && !reachedStart {
            var path = "/order?limit=\(Self.pageSize)"
            if let cursor { path += "&after=" + PercentEncoding.queryValue(cursor) }
            let json = try api.json(try await api.send(method: "GET", path: path), "GET /order")
            report.pages += 1
            guard let items = json["items"]?.arrayValue else { throw ReconcileFailure("GET /order: the answer has no items array") }
            if items.isEmpty { break }
            var final: [JSONValue] = []
            for order in items {
                // An order without a readable created_at is taken as recent: one odd order must
                // not stop every pass (its final status is what matters).
                if let created = order["created_at"]?.stringValue.flatMap(Self.millis), created < start {
                    reachedStart = true  // newest first: the rest are older still
                    break
                }
                if let status = order["status"]?.stringValue, status == "COMPLETED" || status == "FAILED" { final.append(order) }
            }
            report.providerHas += final.count
            report.listedIDs += final.compactMap { $0["id"]?.scalarText }
            if !dryRun && !final.isEmpty {
                let result: IngestResult
                do {
                    result = try await pipeline.ingestRecovered(source: source, events: final)
                } catch {
                    throw ReconcileFailure("the store could not take the recovered orders: \(error.message)")
                }
                report.stored += result.accepted
                report.relayHad = (report.relayHad ?? 0) + result.duplicates
                report.rejected += result.rejected.count
                report.storedIDs += result.routed.map(\.event.orderID)
            }
            guard let next = json["pagination"]?["cursors"]?["after"]?.stringValue, !next.isEmpty, next != cursor else { break }
            cursor = next
        }
        return report
    }

    /// One order in full (`GET /order/{id}`), for a destination's `enrich: runa-order`.
    public func order(_ id: String, config: ReconcileConfig) async throws(ReconcileFailure) -> JSONValue {
        let api = ProviderAPICall(client: client, config: config, provider: "Runa")
        let json = try api.json(try await api.send(method: "GET", path: "/order/" + PercentEncoding.pathSegment(id)), "GET /order/{id}")
        guard json.objectValue != nil, json["id"] != nil else { throw ReconcileFailure("GET /order/{id}: the answer is not an order") }
        return json
    }

    /// ISO 8601 with or without fractional seconds and with `Z` or an offset, in ms.
    public static func millis(_ text: String) -> Int64? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = fractional.date(from: text) ?? plain.date(from: text) else { return nil }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }
}

/// A reconciliation pass with the API of the source's provider.
public struct ProviderReconciler: Sendable {
    public let fastSpring: FastSpringReconciler
    public let runa: RunaReconciler

    public init(client: any ProviderAPIClient, pipeline: IngestPipeline, clock: any RelayClock = SystemClock()) {
        fastSpring = FastSpringReconciler(client: client, pipeline: pipeline, clock: clock)
        runa = RunaReconciler(client: client, pipeline: pipeline, clock: clock)
    }

    public func run(source: SourceConfig, sinceMillis: Int64? = nil, dryRun: Bool = false) async throws(ReconcileFailure) -> ReconcileReport {
        switch source.provider {
        case .fastspring: try await fastSpring.run(source: source, sinceMillis: sinceMillis, dryRun: dryRun)
        case .runa: try await runa.run(source: source, sinceMillis: sinceMillis, dryRun: dryRun)
        case .generic: throw ReconcileFailure("a generic source has no provider API to reconcile with")
        }
    }
}
