// swift-tools-version:6.0
import PackageDescription

/// Every Swift target: the Swift 5 language mode with complete concurrency checking, whose
/// findings are warnings. The C wrappers hold non-Sendable handles that stay on one thread,
/// behind `@unchecked Sendable` owners that say why; moving to the Swift 6 mode means
/// making those claims checkable.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
    .enableExperimentalFeature("StrictConcurrency=complete"),
]

extension Target.Dependency {
    static let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
    static let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
    static let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")
    static let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
    static let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
    static let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
    static let serviceLifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
    static let yams = Target.Dependency.product(name: "Yams", package: "Yams")
}

/// An executable of Services/: the runtime, the list of workloads, and what it imports itself.
func service(_ name: String, dependencies extra: [Target.Dependency] = [], resources: [Resource]? = nil) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["EsteiraCore", "EsteiraService", "Workloads", .argumentParser] + extra,
        path: "Services/\(name)",
        resources: resources,
        swiftSettings: swiftSettings
    )
}

/// A workload module of Shared/: the domain, the runtime, and its migrations and OpenAPI
/// part compiled in.
func workload(_ name: String, dependencies extra: [Target.Dependency] = [], resources: [Resource]) -> Target {
    .target(
        name: name,
        dependencies: ["EsteiraCore", "EsteiraService"] + extra,
        path: "Shared/\(name)",
        resources: resources,
        swiftSettings: swiftSettings
    )
}

let package = Package(
    name: "Esteira",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "api", targets: ["api"]),
        .executable(name: "processor", targets: ["processor"]),
        .executable(name: "scheduler", targets: ["scheduler"]),
        .executable(name: "exporter", targets: ["exporter"]),
        .executable(name: "syncer", targets: ["syncer"]),
        .executable(name: "ingestor", targets: ["ingestor"]),
        .library(name: "EsteiraCore", targets: ["EsteiraCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // C libraries from Debian, each wrapped once.
        .systemLibrary(name: "CRabbitMQ", path: "Shared/CRabbitMQ", pkgConfig: "librabbitmq",
                       providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", path: "Shared/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),

        // Swift over the C libraries.
        .target(name: "AMQP", dependencies: ["CRabbitMQ"], path: "Shared/AMQP", swiftSettings: swiftSettings),
        .target(name: "Postgres", dependencies: ["CLibPQ"], path: "Shared/Postgres", swiftSettings: swiftSettings),
        .target(name: "HTTPClient", dependencies: ["CCurl"], path: "Shared/HTTPClient", swiftSettings: swiftSettings),

        // The domain, and what every executable runs.
        .target(
            name: "EsteiraCore",
            dependencies: ["AMQP", "Postgres", .logging, .metrics, .serviceLifecycle, .yams],
            path: "Shared/EsteiraCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EsteiraService",
            dependencies: ["EsteiraCore", "AMQP", "Postgres", .argumentParser, .hummingbird, .logging, .metrics,
                           .prometheus, .serviceLifecycle],
            path: "Shared/EsteiraService",
            swiftSettings: swiftSettings
        ),

        // The web dashboard's core pages (its plumbing is in EsteiraService, for workloads' pages).
        .target(name: "Dashboard", dependencies: ["EsteiraCore", "EsteiraService", "HTTPClient", "Postgres", .hummingbird],
                path: "Shared/Dashboard", swiftSettings: swiftSettings),

        // Workloads, each a module of its own, and the list of them every executable knows.
        workload("LeadMigrations", dependencies: ["Postgres", .hummingbird, .logging],
                 resources: [.embedInCode("Migrations/0004_lead_migrations.sql"), .embedInCode("Migrations/0100_lead_owners.sql"),
                             .embedInCode("lead-migrations.openapi.json")]),
        workload("Exports", dependencies: ["HTTPClient", "Postgres", .hummingbird, .logging, .metrics],
                 resources: [.embedInCode("Migrations/0200_exports.sql"), .embedInCode("exports.openapi.json")]),
        workload("StoreSyncs", dependencies: ["HTTPClient", "Postgres", .hummingbird, .logging, .metrics],
                 resources: [.embedInCode("Migrations/0300_store_syncs.sql"), .embedInCode("store-syncs.openapi.json")]),
        workload("Messaging", dependencies: ["HTTPClient", "Postgres", .hummingbird, .httpTypes, .logging, .metrics, .serviceLifecycle],
                 resources: [.embedInCode("Migrations/0400_messaging.sql"), .embedInCode("Migrations/0401_messaging_change_log_cost.sql"),
                             .embedInCode("Migrations/0402_messaging_change_log_owner_index.sql"),
                             .embedInCode("Migrations/0403_campaign_fan_out_in_chunks.sql"),
                             .embedInCode("messaging.openapi.json")]),
        workload("Email", dependencies: ["HTTPClient", "Postgres", .hummingbird, .logging, .metrics, .serviceLifecycle],
                 resources: [.embedInCode("Migrations/0500_email.sql"), .embedInCode("email.openapi.json")]),
        .target(name: "Workloads", dependencies: ["EsteiraService", "LeadMigrations", "Exports", "StoreSyncs", "Messaging", "Email"], path: "Shared/Workloads",
                swiftSettings: swiftSettings),

        // Executables.
        service("api", dependencies: ["Dashboard", "Postgres", .hummingbird, .httpTypes, .logging, .serviceLifecycle],
                resources: [.embedInCode("OpenAPI/api.openapi.json")]),
        service("processor", dependencies: ["HTTPClient"]),
        service("exporter", dependencies: ["Exports"]),
        service("syncer", dependencies: ["StoreSyncs"]),
        service("ingestor", dependencies: [.hummingbird]),
        service("scheduler", dependencies: [.hummingbird]),

        // Benchmarks.
        .executableTarget(name: "AMQPBench", dependencies: ["AMQP"], path: "bench/AMQPBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "JobsBench", dependencies: ["EsteiraCore", "AMQP", "Postgres", .logging], path: "bench/JobsBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "LeadsBench", dependencies: ["EsteiraCore", "LeadMigrations", "AMQP", "Postgres", .logging],
                          path: "bench/LeadsBench",
                          swiftSettings: swiftSettings),

        .executableTarget(name: "SyncBench", dependencies: ["StandIns", "HTTPClient"], path: "bench/SyncBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "EmailBench", dependencies: ["StandIns", "HTTPClient", "Postgres"], path: "bench/EmailBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "MessagingBench", dependencies: ["StandIns", "HTTPClient"], path: "bench/MessagingBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "ExportBench", dependencies: ["StandIns", "Postgres", "HTTPClient"], path: "bench/ExportBench",
                          swiftSettings: swiftSettings),

        // Tests. Integration tests read their servers from ESTEIRA_TEST_* variables (make test sets them).
        .target(
            name: "StandIns",
            dependencies: ["Postgres", "HTTPClient", "EsteiraCore", .hummingbird, .httpTypes, .logging, .serviceLifecycle],
            path: "Tests/StandIns",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP"], path: "Tests/AMQPTests", swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"], path: "Tests/PostgresTests",
                    swiftSettings: swiftSettings),
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "StandIns"], path: "Tests/HTTPClientTests",
                    swiftSettings: swiftSettings),
        // Tests that need no server (make test-unit runs them alone).
        .testTarget(name: "UnitTests", dependencies: ["EsteiraCore", "EsteiraService", "Dashboard", "LeadMigrations", "Exports", "Email",
                                                      "AMQP", "HTTPClient", "Postgres", .logging],
                    path: "Tests/UnitTests", swiftSettings: swiftSettings),
        .testTarget(name: "EsteiraCoreTests", dependencies: ["EsteiraCore", "LeadMigrations", "Postgres"], path: "Tests/EsteiraCoreTests",
                    swiftSettings: swiftSettings),
        .testTarget(
            name: "ServiceTests",
            dependencies: ["EsteiraCore", "Exports", "StoreSyncs", "Messaging", "Email", "AMQP", "Postgres", "HTTPClient", "StandIns", .logging, .yams],
            path: "Tests/ServiceTests",
            swiftSettings: swiftSettings
        ),
    ]
)
