import ServiceLifecycle
import UnixSignals

/// SIGHUP reloads routes.json, like `POST /admin/routes/reload`.
struct ReloadOnHangup: Service {
    let server: RelayServer

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                server.reload()
            }
        }
    }
}
