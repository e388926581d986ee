import Foundation
import Glibc
import RelayCore

/// The destinations an operator paused, saved beside the journal in one small file
/// (`paused-destinations`, a JSON array of names) that is replaced atomically: written to a
/// temporary file, synced, renamed over the old one, directory synced. It is not a journal
/// record, so retention and checkpoints never touch it.
public struct OperatorPauses: Sendable {
    public let path: String

    public init(directory: String) {
        path = directory + "/paused-destinations"
    }

    /// The saved names; none if the file does not exist. Blocking (reads a file).
    public func load() throws -> Set<String> {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else { throw OperatorPauseError("cannot read \(path)") }
        guard let names = (try? JSONParser.parse(Array(data)))?.arrayValue else { throw OperatorPauseError("\(path): not a JSON array of destination names") }
        return Set(names.compactMap(\.stringValue))
    }

    /// Replaces the saved names. Blocking (writes and syncs): call it off the cooperative pool.
    public func save(_ names: Set<String>) throws {
        let text = JSONWriter.serialize(.array(names.sorted().map(JSONValue.string))) + "\n"
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OperatorPauseError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let result = bytes.withUnsafeBytes { raw in raw.baseAddress.map { write(fd, $0 + done, raw.count - done) } ?? 0 }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw OperatorPauseError("cannot write \(temporary): \(reason)")
            }
            done += result
        }
        if let problem = replaceAtomically(fd: fd, temporary: temporary, path: path) { throw OperatorPauseError(problem) }
    }
}

/// The pause file could not be read or saved.
public struct OperatorPauseError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
