import Foundation
import Logging
import RelayCore

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object per line on stderr: `time`, `level`, `label`, `message`, then the metadata
/// as string fields (for log shippers). Metadata keys never collide with the four fixed ones:
/// a clashing key gets a `meta_` prefix.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line = "{\"time\":\(JSONWriter.quote(Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)).rfc3339)),"
            + "\"level\":\"\(event.level.rawValue)\",\"label\":\(JSONWriter.quote(label)),\"message\":\(JSONWriter.quote(event.message.description))"
        for key in fields.keys.sorted() {
            let name = ["time", "level", "label", "message"].contains(key) ? "meta_" + key : key
            line += ",\(JSONWriter.quote(name)):\(JSONWriter.quote(fields[key].map { "\($0)" } ?? ""))"
        }
        line += "}\n"
        line.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
    }
}
