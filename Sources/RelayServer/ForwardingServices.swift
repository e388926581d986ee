import Logging
import RelayCore
import RelayForwarder
import ServiceLifecycle

/// Keeps the curl engine running; on shutdown (after the scheduler above it has drained) it
/// releases every handle.
struct CurlEngineService: Service {
    let engine: CurlEngine

    func run() async throws {
        try? await gracefulShutdown()
        await engine.shutdown()
    }
}

/// Runs the delivery scheduler; on shutdown it stops taking new work and finishes (bounded)
/// the attempts in flight.
struct SchedulerService: Service {
    let scheduler: any DeliveryEngine
    let logger: Logger

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await scheduler.run()
        } onGracefulShutdown: {
            Task { await scheduler.stop() }
        }
    }
}
