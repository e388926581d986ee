import Logging
import RelayCore
@testable import RelayServer
import RelayTesting
import Synchronization
import Testing

/// README "Reconciliation": a failing provider API is tried again at the next interval, then
/// later after repeated failures (2×, 4×, 8×), never sooner than its Retry-After; a success
/// brings the interval back. Pure scheduling, on a manual clock, with a fake API client.
@Suite struct ReconcileScheduleTests {
    final class ScriptedAPI: ProviderAPIClient {
        let answers = Mutex<[ProviderAPIResponse]>([])
        let calls = Atomic<Int>(0)
        func send(_ request: ProviderAPIRequest) async -> Result<ProviderAPIResponse, ProviderAPIFailure> {
            calls.add(1, ordering: .relaxed)
            return .success(answers.withLock { $0.isEmpty ? ProviderAPIResponse(status: 503) : $0.removeFirst() })
        }
    }

    @Test func failuresBackOffAndASuccessRestoresTheInterval() async throws {
        let manual = ManualClock(start: Timestamp(seconds: 1_800_000_000))
        let clock = manual.wall
        let config = try RelayConfig.parse(Array(#"""
        { "sources": { "fs": { "provider": "fastspring", "secret": "s", "reconcile": { "url": "http://127.0.0.1:9", "username": "u", "password": "p", "every": "10s" } } } }
        """#.utf8), file: "routes.json", environment: [:])
        let api = ScriptedAPI()
        let pipeline = IngestPipeline(config: config, store: MemoryStore(), clock: clock)
        let runner = ReconcileRunner(
            reconciler: ProviderReconciler(client: api, pipeline: pipeline, clock: clock), config: { config }, metrics: RelayMetrics(clock: clock),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), clock: clock
        )
        /// Ticks once a second of relay time for `seconds`; returns the offsets (s) at which a pass called the API.
        func run(for seconds: Int) async -> [Int] {
            var passes: [Int] = []
            for second in 0..<seconds {
                let before = api.calls.load(ordering: .relaxed)
                await runner.runDue()
                if api.calls.load(ordering: .relaxed) > before { passes.append(second) }
                manual.advance(by: .seconds(1))
            }
            return passes
        }
        // Failing (503): at once, then 10 s, 20 s, 40 s, 80 s, 80 s later.
        #expect(await run(for: 231) == [0, 10, 30, 70, 150, 230])
        // A 429 asking for 300 s: not before then (the backoff alone would say 80 s).
        api.answers.withLock { $0 = [ProviderAPIResponse(status: 429, headers: [("Retry-After", "300")])] }
        // (The next pass is due 80 s after the one at 230, at 310: offset 79 of this run; its 429
        // puts the one after at 310 + 300 = 610, offset 379.)
        let afterRateLimit = await run(for: 400)
        #expect(afterRateLimit == [79, 379], "\(afterRateLimit)")
        // A success: back to every 10 s.
        let empty = ProviderAPIResponse(status: 200, body: Array(#"{"action":"events.get","result":"success","events":[],"more":false}"#.utf8))
        api.answers.withLock { $0 = Array(repeating: empty, count: 10) }
        let healthy = await run(for: 600)
        // Due at 610 + 80 = 690 (offset 59 of this run, which starts at 631), then every 10 s.
        #expect(Array(healthy.prefix(4)) == [59, 69, 79, 89], "\(healthy)")
    }
}
