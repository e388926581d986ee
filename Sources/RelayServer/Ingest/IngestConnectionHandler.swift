import NIOCore
import NIOHTTP1
import RelayCore

/// One ingest connection, served on its event loop with no hop through the concurrency pool:
/// NIO's HTTP/1 parser in front, this handler behind it, writing each answer's bytes itself.
///
/// - `POST /webhooks/{source}` (a trailing slash allowed) reads the body under the source's
///   limit, and the pipeline (adapter, de-duplication, routing) runs here on the event loop; the
///   store's completion comes back to this loop and the answer is written then.
/// - `GET /healthz` answers `{"status":"ok"}`; anything else is a JSON `404`.
/// - Pipelined requests are answered in request order; reading pauses while 16 answers are
///   outstanding.
/// - An answer given before its request was read to the end of the current read (unknown source,
///   body over the limit, body past its deadline) says `Connection: close` and closes, rather
///   than read a body it refused.
/// - A connection that sends nothing for the idle timeout, with no answer outstanding, is
///   closed; one the parser refuses gets `400` and is closed.
final class IngestConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How many answers may be outstanding before the connection stops reading.
    static let maxOutstanding = 16

    /// One request's answer, waiting for the answers before it.
    private struct Slot {
        var answer: IngestAnswer?
        /// Answered before its request's end was read: whether it closes the connection is
        /// decided at the end of the current read (the end may still be in it).
        var awaitingEnd = false
        /// Close after this answer, saying so with `Connection: close`.
        var close = false
        /// The request asked to close (`Connection: close`): close after the answer.
        var closeRequested = false
        /// The parser refused the request: `400` with no body, then close.
        var malformed = false
    }

    /// The request whose body is being read.
    private struct Reading {
        var source: SourceConfig
        var routing: RoutingTable
        var headers: HTTPHeaders
        var body: [UInt8]
        /// The whole body must have arrived by then (checked by the connection's one timer).
        var deadline: NIODeadline
    }

    private let handling: IngestHandling
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var reading: Reading?
    /// The current request was answered early; its remaining parts are dropped.
    private var answeredEarly = false
    private var slots = CircularBuffer<Slot>(initialCapacity: 4)
    /// The number of the request `slots.first` answers (the last slot is the current request's).
    private var firstSlot = 0
    /// No further request is taken (an answer that closes is on its way).
    private var refusing = false
    private var closed = false
    private var heldRead = false
    private var quiescing = false
    private var lastRead = NIODeadline.now()
    private var inReadBurst = false
    /// The connection's one timer, for its idle timeout and the body deadline of the request
    /// being read (no timer per request), and when it fires.
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    private var date = HTTPDate()

    /// The slot of the request being read or answered: the last one.
    private var current: Slot {
        get { slots[offset: slots.count - 1] }
        set { slots[offset: slots.count - 1] = newValue }
    }

    init(handling: IngestHandling, idleTimeout: TimeAmount) {
        self.handling = handling
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armTimer(at: NIODeadline.now() + idleTimeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        lastRead = .now()
        armTimer(at: lastRead + idleTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    // MARK: - Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // One clock read per read burst: when the connection was last active.
        if !inReadBurst {
            inReadBurst = true
            lastRead = .now()
        }
        guard !refusing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            begin(head, context: context)
        case .body(let chunk):
            guard reading != nil else { return }  // answered early: the rest is dropped
            if let source = reading?.source, (reading?.body.count ?? 0) + chunk.readableBytes > source.maxBodyBytes {
                answerEarly(handling.tooLarge(source))
                return
            }
            reading?.body.append(contentsOf: chunk.readableBytesView)
        case .end:
            if answeredEarly {
                answeredEarly = false
                current.awaitingEnd = false
                flush()
            } else if let request = reading {
                reading = nil
                store(request, slot: firstSlot + slots.count - 1, context: context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        // An answer given before its request's end arrived (in this read or before): close.
        if answeredEarly, !slots.isEmpty, current.awaitingEnd {
            current.awaitingEnd = false
            current.close = true
            refusing = true
            answeredEarly = false
            flush()
        }
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var slot = Slot()
        slot.closeRequested = head.headers.first(name: "connection")?.lowercased() == "close"
        slots.append(slot)
        let uri = head.uri
        let path = uri.firstIndex(of: "?").map { uri[..<$0] } ?? Substring(uri)
        if path == "/healthz" {
            return answerEarly(head.method == .GET ? .healthy : Self.notFound(head))
        }
        guard head.method == .POST, let name = Self.webhookSource(path) else {
            return answerEarly(Self.notFound(head))
        }
        switch handling.source(named: name) {
        case .refused(let answer):
            answerEarly(answer)
        case .found(let source, let routing):
            let length = head.headers.first(name: "content-length").flatMap { Int($0) }
            if let length, length > source.maxBodyBytes { return answerEarly(handling.tooLarge(source)) }
            var body: [UInt8] = []
            body.reserveCapacity(length ?? 0)
            // From the start of the read the head came in (no clock read per request).
            let deadline = lastRead + TimeAmount(handling.bodyDeadline)
            reading = Reading(source: source, routing: routing, headers: head.headers, body: body, deadline: deadline)
            armTimer(at: deadline)
        }
    }

    /// The current request's answer, decided before its end was read.
    private func answerEarly(_ answer: IngestAnswer) {
        reading = nil
        answeredEarly = true
        current.answer = answer
        current.awaitingEnd = true
    }

    private func bodyDeadlinePassed(_ request: Reading) {
        reading = nil
        current.answer = handling.bodyTimedOut(request.source)
        current.close = true
        refusing = true
        flush()
    }

    private func store(_ request: Reading, slot: Int, context: ChannelHandlerContext) {
        var headers = HeaderList()
        var skippedHost = false
        for (name, value) in request.headers {
            // As HTTP types carried them before: names in lower case, the first Host left out
            // (it became the request's authority).
            let lowered = name.lowercased()
            if !skippedHost && lowered == "host" {
                skippedHost = true
                continue
            }
            headers.append(name: lowered, value: value)
        }
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let source = request.source
        handling.ingest(source: source, routing: request.routing, headers: headers, body: request.body) { result in
            // On the store's thread: only the hop back to this connection's loop happens here.
            if loop.inEventLoop {
                handler.value.stored(result, source: source, slot: slot)
            } else {
                loop.execute { handler.value.stored(result, source: source, slot: slot) }
            }
        }
    }

    private func stored(_ result: Result<IngestResult, IngestError>, source: SourceConfig, slot: Int) {
        let answer = handling.answer(result, source: source)
        let index = slot - firstSlot
        guard !closed, index >= 0, index < slots.count else { return }
        slots[offset: index].answer = answer
        flush()
    }

    // MARK: - Answers

    /// Writes every answer that is due, in request order.
    private func flush() {
        guard let context, !closed else { return }
        var wrote = false
        while let first = slots.first, first.answer != nil || first.malformed, !first.awaitingEnd {
            slots.removeFirst()
            firstSlot += 1
            if first.malformed {
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(staticString: IngestAnswer.malformed)), promise: nil)
                return close(context)
            }
            guard let answer = first.answer else { continue }
            var buffer = context.channel.allocator.buffer(capacity: 160 + answer.body.utf8.count)
            answer.encode(into: &buffer, date: date.now(), close: first.close)
            context.write(wrapOutboundOut(buffer), promise: nil)
            wrote = true
            if first.close || first.closeRequested {
                context.flush()
                return close(context)
            }
        }
        if wrote { context.flush() }
        if quiescing && isIdle { return close(context) }
        if heldRead && slots.count < Self.maxOutstanding {
            heldRead = false
            context.read()
        }
    }

    private var isIdle: Bool { slots.isEmpty && reading == nil && !answeredEarly }

    func read(context: ChannelHandlerContext) {
        if slots.count >= Self.maxOutstanding || refusing {
            heldRead = true
        } else {
            context.read()
        }
    }

    // MARK: - Errors, idle connections and shutdown

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !closed else { return }
        guard error is HTTPParserError else { return close(context) }
        // The request being read (or a new one) is answered with 400 after the answers before it.
        if reading != nil || answeredEarly {
            reading = nil
            answeredEarly = false
            if current.answer == nil { current.malformed = true }
            current.awaitingEnd = false
            current.close = true
        } else {
            var slot = Slot()
            slot.malformed = true
            slots.append(slot)
        }
        refusing = true
        flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if isIdle { close(context) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Makes the timer fire by `deadline` (it may fire earlier; it checks what is due).
    private func armTimer(at deadline: NIODeadline) {
        guard let context, !closed, timer == nil || deadline < timerDeadline else { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDue()
        }
    }

    /// A body past its deadline is answered `408`; a connection that sent nothing for the idle
    /// timeout and waits for no answer is closed.
    private func timerDue() {
        guard let context, !closed else { return }
        let now = NIODeadline.now()
        if let request = reading, request.deadline <= now { bodyDeadlinePassed(request) }
        guard !closed else { return }
        let idleAt = lastRead + idleTimeout
        if slots.isEmpty && idleAt <= now { return close(context) }
        // Waiting on a commit counts as activity: look again a little later.
        var next = max(idleAt, now + .milliseconds(100))
        if let request = reading { next = min(next, request.deadline) }
        armTimer(at: next)
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closed else { return }
        stop()
        context.close(promise: nil)
    }

    private func stop() {
        closed = true
        refusing = true
        reading = nil
        timer?.cancel()
        timer = nil
        slots.removeAll()
    }

    // MARK: - Paths

    /// `NAME` of `/webhooks/NAME` or `/webhooks/NAME/`, as sent (not percent-decoded).
    static func webhookSource(_ path: Substring) -> Substring? {
        let prefix = "/webhooks/"
        guard path.hasPrefix(prefix) else { return nil }
        var name = path.dropFirst(prefix.count)
        if name.hasSuffix("/") { name = name.dropLast() }
        guard !name.isEmpty, !name.contains("/") else { return nil }
        return name
    }

    /// A route the listener does not have: `404` (with no body for `HEAD`).
    static func notFound(_ head: HTTPRequestHead) -> IngestAnswer {
        var answer = IngestAnswer.notFound
        answer.omitBody = head.method == .HEAD
        return answer
    }
}
