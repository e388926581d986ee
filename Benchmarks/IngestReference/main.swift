// The benchmark's reference for durable ingest: the least a Swift server on this machine can do
// to acknowledge a webhook only once it is on disk. Raw SwiftNIO HTTP/1 (NIO's pipelining
// helper), each request's body handed to one writer thread that appends everything queued,
// calls fdatasync once for the batch (group commit) and completes each request's
// `EventLoopPromise`, which answers on the channel's own event loop. No async, no routing, no
// parsing: `scripts/bench` runs it beside `relay serve` so every run states how close the relay
// is to this machine's limit. Never part of the relay binary.
//
// Usage: IngestReference HOST PORT FILE
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Appends bodies to one file and makes each batch durable with one fdatasync.
final class GroupCommitWriter: Sendable {
    private struct Queue {
        var bodies: [ByteBuffer] = []
        var promises: [EventLoopPromise<Void>] = []
    }
    private let queue = ConditionLock(value: 0)  // 0: nothing queued, 1: work waiting
    private let pending = NIOLockedValueBox(Queue())
    private let fd: Int32

    init(path: String) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        precondition(fd >= 0, "cannot open \(path)")
    }

    func append(_ body: ByteBuffer, promise: EventLoopPromise<Void>) {
        pending.withLockedValue { $0.bodies.append(body); $0.promises.append(promise) }
        queue.lock()
        queue.unlock(withValue: 1)
    }

    func run() {
        while true {
            queue.lock(whenValue: 1)
            queue.unlock(withValue: 0)
            let batch = pending.withLockedValue { queue -> Queue in
                defer { queue = Queue() }
                return queue
            }
            guard !batch.promises.isEmpty else { continue }
            var ok = true
            for body in batch.bodies {
                body.withUnsafeReadableBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if n < 0 { if errno == EINTR { continue }; ok = false; break }
                        offset += n
                    }
                }
            }
            if fdatasync(fd) != 0 { ok = false }
            for promise in batch.promises {
                if ok { promise.succeed(()) } else { promise.fail(ChannelError.ioOnClosedChannel) }
            }
        }
    }
}

/// Reads each request to its end, queues its body and answers 200 once the batch is durable.
final class DurableHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let writer: GroupCommitWriter
    private var body: ByteBuffer?
    private var keepAlive = true
    private static let answer = #"{"accepted":1,"duplicates":0,"ids":["evt_0000000000000000000000"]}"#

    init(writer: GroupCommitWriter) { self.writer = writer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            body = context.channel.allocator.buffer(capacity: 2048)
        case .body(var chunk):
            body?.writeBuffer(&chunk)
        case .end:
            let promise = context.eventLoop.makePromise(of: Void.self)
            writer.append(body ?? ByteBuffer(), promise: promise)
            body = nil
            let keepAlive = self.keepAlive
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenComplete { result in
                let context = bound.value
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                let status: HTTPResponseStatus
                var out: ByteBuffer
                switch result {
                case .success: status = .ok; out = context.channel.allocator.buffer(string: Self.answer)
                case .failure: status = .serviceUnavailable; out = context.channel.allocator.buffer(string: #"{"error":"write failed"}"#)
                }
                headers.add(name: "Content-Length", value: String(out.readableBytes))
                context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(out))), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let port = Int(arguments[2]) else {
    print("usage: IngestReference HOST PORT FILE")
    exit(2)
}
let writer = GroupCommitWriter(path: arguments[3])
let writerThread = NIOThreadPool(numberOfThreads: 1)
writerThread.start()
writerThread.submit { _ in writer.run() }
let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(DurableHandler(writer: writer))
        }
    }
let channel = try bootstrap.bind(host: arguments[1], port: port).wait()
print("IngestReference listening on \(channel.localAddress?.description ?? "?")")
try channel.closeFuture.wait()
