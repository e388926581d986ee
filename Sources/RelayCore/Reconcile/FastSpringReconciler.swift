/// What one reconciliation pass found and did.
public struct ReconcileReport: Sendable, Equatable {
    public var source: String
    public var dryRun: Bool
    /// Unprocessed events the provider listed in the window.
    public var providerHas: Int
    /// Of those, events the relay already had (a webhook came after all, or an earlier pass
    /// stored them but could not mark them). Unknown (nil) in a dry run, which stores nothing.
    public var relayHad: Int?
    /// Events stored by this pass.
    public var stored: Int
    /// Events marked processed at the provider (only after they were durable).
    public var marked: Int
    /// Events the adapter could not accept (no id or type): neither stored nor marked.
    public var rejected: Int
    /// The provider event ids this pass stored.
    public var storedIDs: [String]
    /// The provider event ids listed (a dry run's answer).
    public var listedIDs: [String]
    /// The API pages read.
    public var pages: Int

    public init(source: String, dryRun: Bool) {
        (self.source, self.dryRun) = (source, dryRun)
        (providerHas, relayHad, stored, marked, rejected, storedIDs, listedIDs, pages) = (0, dryRun ? nil : 0, 0, 0, 0, [], [], 0)
    }
}

/// Why a pass failed: one line, never a credential. `retryAfterMillis` when the provider said
/// when to come back (429 with `Retry-After`).
public struct ReconcileFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var retryAfterMillis: Int64?
    public init(_ message: String, retryAfterMillis: Int64? = nil) { (self.message, self.retryAfterMillis) = (message, retryAfterMillis) }
    public var description: String { message }
}

/// One reconciliation pass against FastSpring's events API: list the unprocessed events of the
/// window (`GET /events/unprocessed?begin=…&end=…`, 25 per page with `more`), store each
/// the relay does not have exactly as if it had been pushed, and only once it is durable mark it
/// processed (`POST /events/{id}` with `{"processed":true}`). An event already stored is marked
/// too: a pass cut between storing and marking is finished by the next one, which finds it
/// stored (a duplicate) and marks it. Marked events leave the unprocessed list, so the pass reads
/// the first page again until the provider has no more (at most `maxPages`).
public struct FastSpringReconciler: Sendable {
    public static let maxPages = 40
    public let client: any ProviderAPIClient
    public let pipeline: IngestPipeline
    public let clock: any RelayClock

    public init(client: any ProviderAPIClient, pipeline: IngestPipeline, clock: any RelayClock = SystemClock()) {
        (self.client, self.pipeline, self.clock) = (client, pipeline, clock)
    }

    /// Runs a pass for `source` over the last `sinceMillis` (default: its `lookback`).
    public func run(source: SourceConfig, sinceMillis: Int64? = nil, dryRun: Bool = false) async throws(ReconcileFailure) -> ReconcileReport {
        guard let config = source.reconcile else { throw ReconcileFailure("source \(JSONWriter.quote(source.name)) has no reconcile block") }
        let api = ProviderAPICall(client: client, config: config, provider: "FastSpring")
        var report = ReconcileReport(source: source.name, dryRun: dryRun)
        let window = min(sinceMillis ?? config.lookbackMillis, ReconcileConfig.maximumLookback)
        let end = clock.now().milliseconds
        var seen: Set<String> = []
        var page = 1
        while report.pages < Self.maxPages {
            var query = "begin=\(end - window)&end=\(end)"
            if dryRun && page > 1 { query += "&page=\(page)" }
            let listing = try await list(api, query: query)
            report.pages += 1
            let fresh = listing.events.filter { event in
                guard let id = event["id"]?.stringValue else { return true }
                return !seen.contains(id)
            }
            if fresh.isEmpty { break }
            for event in fresh {
                if let id = event["id"]?.stringValue { seen.insert(id); report.listedIDs.append(id) }
            }
            report.providerHas += fresh.count
            if !dryRun {
                try await store(fresh, source: source, api: api, into: &report)
            }
            guard listing.more else { break }
            page += 1
        }
        return report
    }

    private func store(_ events: [JSONValue], source: SourceConfig, api: ProviderAPICall, into report: inout ReconcileReport) async throws(ReconcileFailure) {
        let result: IngestResult
        do {
            result = try await pipeline.ingestRecovered(source: source, events: events)
        } catch {
            // Nothing listed is marked: the provider keeps them for the next pass.
            if !error.rejected.isEmpty {
                report.rejected += error.rejected.count
                return
            }
            throw ReconcileFailure("the store could not take the recovered events: \(error.message)")
        }
        report.rejected += result.rejected.count
        report.stored += result.accepted
        report.relayHad = (report.relayHad ?? 0) + result.duplicates
        let storedIDs = Set(result.routed.map(\.event.providerEventID))
        report.storedIDs += result.providerEventIDs.filter { storedIDs.contains($0) }
        // Durable now (the store answered): mark each one processed.
        for id in result.providerEventIDs {
            _ = try await api.send(method: "POST", path: "/events/" + PercentEncoding.pathSegment(id), body: Array(#"{"processed":true}"#.utf8))
            report.marked += 1
        }
    }

    struct Listing {
        var events: [JSONValue]
        var more: Bool
    }

    private func list(_ api: ProviderAPICall, query: String) async throws(ReconcileFailure) -> Listing {
        let json = try api.json(try await api.send(method: "GET", path: "/events/unprocessed?" + query), "GET /events/unprocessed")
        guard json["result"]?.stringValue == "success" else {
            let detail = json["error"].map { JSONWriter.serialize($0) } ?? "no result \"success\""
            throw ReconcileFailure("GET /events/unprocessed: FastSpring answered an error: \(detail.prefix(300))")
        }
        guard let events = json["events"]?.arrayValue else { throw ReconcileFailure("GET /events/unprocessed: the answer has no events array") }
        return Listing(events: events, more: json["more"]?.boolValue ?? false)
    }
}
