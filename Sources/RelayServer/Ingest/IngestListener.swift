import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The public listener (`POST /webhooks/{source}`, `GET /healthz`) on SwiftNIO channel handlers
/// of the relay's own (`IngestConnectionHandler`): a request goes from its last body byte through
/// the pipeline to the store and its answer is written when the commit completes, all on the
/// connection's event loop, never through the concurrency pool. On graceful shutdown it stops
/// accepting, lets each connection finish the answers it owes, then returns.
struct IngestListener: Service {
    var host: String
    var port: Int
    var handling: IngestHandling
    var idleTimeout: Duration
    var backlog: Int32 = 1024
    /// Called with the bound port once listening.
    var onBound: @Sendable (Int) -> Void
    var logger: Logger

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let quiesce = ServerQuiescingHelper(group: group)
        let (handling, idle) = (handling, TimeAmount(idleTimeout))
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 80 * 1024
        limits.maxHeaderListSize = 80 * 1024
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                    try channel.pipeline.syncOperations.addHandler(IngestConnectionHandler(handling: handling, idleTimeout: idle))
                }
            }
            .bind(host: host, port: port).get()
        let port = channel.localAddress?.port ?? 0
        logger.info("ingest listening", metadata: ["port": "\(port)"])
        onBound(port)
        let stopped = group.next().makePromise(of: Void.self)
        let stop: @Sendable () -> Void = { quiesce.initiateShutdown(promise: stopped) }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await stopped.futureResult.get()
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
    }
}
