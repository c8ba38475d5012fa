// swift-tools-version:6.0
import PackageDescription

/// What every executable in Services/ depends on.
let serviceDependencies: [Target.Dependency] = [
    "EsteiraCore",
    "EsteiraService",
    .product(name: "ArgumentParser", package: "swift-argument-parser"),
    .product(name: "Logging", package: "swift-log"),
]

/// Every Swift target is compiled in the Swift 5 language mode with complete concurrency
/// checking as warnings: the C wrappers hold non-Sendable handles confined to one thread.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
]

func service(_ name: String, dependencies extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: serviceDependencies + extra,
        path: "Services/\(name)",
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
            dependencies: [
                "AMQP", "Postgres", "HTTPClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Shared/EsteiraCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EsteiraService",
            dependencies: [
                "EsteiraCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/EsteiraService",
            swiftSettings: swiftSettings
        ),

        // Executables.
        service("api", dependencies: [.product(name: "HTTPTypes", package: "swift-http-types"),
                                      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        service("processor", dependencies: ["HTTPClient", "AMQP", "Postgres",
                                            .product(name: "Hummingbird", package: "hummingbird"),
                                            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        service("scheduler", dependencies: ["AMQP", "Postgres",
                                            .product(name: "Hummingbird", package: "hummingbird"),
                                            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),

        // Benchmarks.
        .executableTarget(name: "AMQPBench", dependencies: ["AMQP"], path: "bench/AMQPBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "JobsBench", dependencies: ["EsteiraCore", "AMQP", "Postgres"], path: "bench/JobsBench",
                          swiftSettings: swiftSettings),
        .executableTarget(name: "LeadsBench", dependencies: ["EsteiraCore", "AMQP", "Postgres"], path: "bench/LeadsBench",
                          swiftSettings: swiftSettings),

        // Tests. Integration tests read their servers from ESTEIRA_TEST_* variables (make test sets them).
        .target(
            name: "StandIns",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/StandIns",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP"], path: "Tests/AMQPTests", swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"], path: "Tests/PostgresTests",
                    swiftSettings: swiftSettings),
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "StandIns"], path: "Tests/HTTPClientTests",
                    swiftSettings: swiftSettings),
        .testTarget(name: "EsteiraCoreTests", dependencies: ["EsteiraCore", "AMQP"], path: "Tests/EsteiraCoreTests",
                    swiftSettings: swiftSettings),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "EsteiraService", "EsteiraCore", "AMQP", "Postgres", "HTTPClient", "StandIns",
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tests/ServiceTests",
            swiftSettings: swiftSettings
        ),
    ]
)
