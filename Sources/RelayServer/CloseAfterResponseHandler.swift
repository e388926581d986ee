import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes the connection after a response that was written before its request had been read to
/// the end, and says so with `Connection: close`.
///
/// Hummingbird keeps a connection open unless the *request* asked to close it: after a handler
/// answers early (404 for an unknown source, 413 for a body over the limit, 408 for a body that
/// trickles in too slowly, 401 from the admin token check) it goes on reading and discarding the
/// rest of the body. A client dribbling that body a byte at a time would then hold the connection
/// indefinitely, and one that reuses the connection would see its next request swallowed as
/// leftover body. Responses go out in request order, so response n answered early exactly when
/// fewer than n request ends have been read.
final class CloseAfterResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var requestsRead = 0
    private var responsesStarted = 0
    private var closeAfterEnd = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { requestsRead += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            responsesStarted += 1
            closeAfterEnd = requestsRead < responsesStarted
            if closeAfterEnd {
                head.headerFields[.connection] = "close"
                return context.write(wrapOutboundOut(.head(head)), promise: promise)
            }
        case .end where closeAfterEnd:
            closeAfterEnd = false
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }
}
