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
/// window (`GET /events/unprocessed?days=N` or `begin`/`end`, 25 per page with `more`), store each
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
        var report = ReconcileReport(source: source.name, dryRun: dryRun)
        let window = min(sinceMillis ?? config.lookbackMillis, ReconcileConfig.maximumLookback)
        let end = clock.now().milliseconds
        var seen: Set<String> = []
        var page = 1
        while report.pages < Self.maxPages {
            var query = "begin=\(end - window)&end=\(end)"
            if dryRun && page > 1 { query += "&page=\(page)" }
            let listing = try await list(config, query: query)
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
                try await store(fresh, source: source, config: config, into: &report)
            }
            guard listing.more else { break }
            page += 1
        }
        return report
    }

    private func store(_ events: [JSONValue], source: SourceConfig, config: ReconcileConfig, into report: inout ReconcileReport) async throws(ReconcileFailure) {
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
            try await mark(id, config)
            report.marked += 1
        }
    }

    struct Listing {
        var events: [JSONValue]
        var more: Bool
    }

    private func list(_ config: ReconcileConfig, query: String) async throws(ReconcileFailure) -> Listing {
        let response = try await call(config, method: "GET", path: "/events/unprocessed?" + query)
        let json: JSONValue
        do {
            json = try JSONParser.parse(response.body)
        } catch {
            throw ReconcileFailure("GET /events/unprocessed: the answer is not JSON (\(error))")
        }
        guard json["result"]?.stringValue == "success" else {
            let detail = json["error"].map { JSONWriter.serialize($0) } ?? "no result \"success\""
            throw ReconcileFailure("GET /events/unprocessed: FastSpring answered an error: \(detail.prefix(300))")
        }
        guard let events = json["events"]?.arrayValue else { throw ReconcileFailure("GET /events/unprocessed: the answer has no events array") }
        return Listing(events: events, more: json["more"]?.boolValue ?? false)
    }

    private func mark(_ id: String, _ config: ReconcileConfig) async throws(ReconcileFailure) {
        _ = try await call(config, method: "POST", path: "/events/" + Self.pathSegment(id), body: Array(#"{"processed":true}"#.utf8))
    }

    private func call(_ config: ReconcileConfig, method: String, path: String, body: [UInt8] = []) async throws(ReconcileFailure) -> ProviderAPIResponse {
        try await ProviderAPICall(client: client, config: config, provider: "FastSpring").send(method: method, path: path, body: body)
    }

    /// An id as one URL path segment (FastSpring ids are URL-safe base64; anything else is escaped).
    static func pathSegment(_ id: String) -> String {
        var out = ""
        for byte in id.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == "." || c == "~") {
                out.append(c)
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
