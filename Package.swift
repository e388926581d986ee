// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Linux (glibc) only: the journal, the test helpers and the C shims call glibc directly
// (fdatasync, malloc_trim, Glibc-qualified socket calls), and nothing is built or tested on
// another platform, so no other platform is declared.
let package = Package(
    name: "relay",
    products: [
        .executable(name: "relay", targets: ["relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .target(
            name: "CCurlShim",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        .target(name: "CRelayCRC"),
        .target(name: "CRelayMemory"),
        .target(
            name: "RelayCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayAdminAPI",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayJournal",
            dependencies: [
                "RelayCore",
                "CRelayCRC",
                "CRelayMemory",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayPostgres",
            dependencies: [
                "RelayCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayForwarder",
            dependencies: [
                "RelayCore",
                "CCurlShim",
                "CRelayMemory",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayServer",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                "RelayAdminAPI",
                "RelayCore",
                "RelayJournal",
                "RelayPostgres",
                "RelayForwarder",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The web console: plain files, compiled into the binary as byte arrays (no build step).
            resources: ["index.html", "style.css", "app.js", "api.js", "ui.js", "operations.js", "events.js", "replay.js"].map { .embedInCode("Console/" + $0) },
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RelayTesting",
            dependencies: [
                "RelayCore",
                "RelayJournal",
                "RelayPostgres",
                "RelayForwarder",
                "RelayServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "relay",
            dependencies: [
                "RelayAdminAPI",
                "RelayCore",
                "RelayJournal",
                "RelayPostgres",
                "RelayForwarder",
                "RelayServer",
                "CCurlShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // scripts/bench's reference for durable ingest (raw SwiftNIO, group commit): a benchmark
        // target, never part of the relay binary.
        .executableTarget(
            name: "IngestReference",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/IngestReference",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayCoreTests",
            dependencies: ["RelayCore", "RelayJournal", "RelayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayPostgresTests",
            dependencies: ["RelayCore", "RelayPostgres", "RelayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayJournalTests",
            dependencies: ["RelayCore", "RelayJournal", "RelayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayForwarderTests",
            dependencies: ["RelayCore", "RelayJournal", "RelayForwarder", "RelayServer", "RelayTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RelayServerTests",
            dependencies: [
                "RelayAdminAPI", "RelayCore", "RelayJournal", "RelayServer", "RelayTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
