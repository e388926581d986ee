import RelayCore
/// An error from the journal: what failed, where, and the OS error behind it.
///
/// A struct over a private enum, so new codes can be added without breaking callers.
public struct JournalError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: Hashable, Sendable {
            case io, corrupt, overloaded, closed, unavailable, recordTooLarge, invalidArgument
        }

        let base: Base

        /// A system call on a journal file failed (write, fdatasync, open, …).
        public static let io = Code(base: .io)
        /// A record or segment header failed its checksum or framing somewhere other than the tail.
        public static let corrupt = Code(base: .corrupt)
        /// Too many bytes are waiting to be written; retry shortly.
        public static let overloaded = Code(base: .overloaded)
        /// The journal has been closed.
        public static let closed = Code(base: .closed)
        /// An earlier failure left the journal unable to write until it is reopened.
        public static let unavailable = Code(base: .unavailable)
        /// One record is larger than the journal's record limit.
        public static let recordTooLarge = Code(base: .recordTooLarge)
        /// The caller asked for something that does not exist (a sequence past the end, …).
        public static let invalidArgument = Code(base: .invalidArgument)

        public var description: String { "\(base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// What failed and what to do about it.
    public var message: String
    /// The path involved, if any.
    public var path: String?
    /// The `errno` of a failed system call, if any.
    public var errno: Int32?

    public init(_ code: Code, _ message: String, path: String? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.errno = errno
    }

    public var description: String {
        var text = message
        if let path { text += " (\(path))" }
        if let errno { text += ": \(String(cString: strerror(errno)))" }
        return text
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
