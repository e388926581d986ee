import Foundation
import RelayCore

/// The provider fixtures (copied from shared/fixtures into Tests/Fixtures) and their vectors.
public enum Fixtures {
    /// `Tests/Fixtures` of this package.
    public static var directory: String {
        (packageRoot() ?? ".") + "/Tests/Fixtures"
    }

    /// The exact bytes of a fixture file.
    public static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
    }

    public static let runaSecret = "whsec_cmVsYXktZml4dHVyZS1zdml4LWtleS0wMDAx"
    public static let fastSpringSecret = "fs-relay-fixture-secret"

    /// Runa vectors: file, svix-id, svix-timestamp, svix-signature.
    public static let runaVectors: [(file: String, id: String, timestamp: Int64, signature: String)] = [
        ("runa-order-completed.json", "msg_2uR7xKq9TbW3mZc1VnLp5YaHe4D", 1_741_944_073, "v1,PMONOWbWAdTF+/HXHwpPXmKxbJfmNVBaMOOHZZ9dits="),
        ("runa-order-failed.json", "msg_2uR8bFd2Gj6Hk9Mn3Pq7Rt1Vw5X", 1_741_944_391, "v1,RKVffXNbaW7/nF5Cj27diZORFiDPKPSTK0IdpF2d90o="),
    ]

    /// FastSpring vectors: file, X-FS-Signature.
    public static let fastSpringVectors: [(file: String, signature: String)] = [
        ("fastspring-order-completed.json", "a9CfqiQGIxsP1HA2vnGetBKKcuOpb2jrYwY9QW6G8Mc="),
        ("fastspring-batch.json", "mu6AIfkDwHn7oqmQXDY1nR0Dla4VXO34pb72AHa2s8M="),
    ]

    /// Headers for a Runa request signed like the fixtures.
    public static func runaHeaders(id: String, timestamp: Int64, signature: String) -> HeaderList {
        ["content-type": "application/json", "svix-id": id, "svix-timestamp": String(timestamp), "svix-signature": signature]
    }

    /// Signs `body` the way Svix does, with `secret` (whsec_…).
    public static func svixSignature(secret: String, id: String, timestamp: Int64, body: [UInt8]) -> String {
        let key = Signatures.standardWebhooksKey(secret) ?? []
        return "v1," + Signatures.base64Encode(Signatures.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + body))
    }

    /// Signs `body` the way FastSpring does.
    public static func fastSpringSignature(secret: String, body: [UInt8]) -> String {
        Signatures.base64Encode(Signatures.hmacSHA256(key: Array(secret.utf8), message: body))
    }
}
