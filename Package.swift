// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "SwitchAuth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchauth", targets: ["switchauth"]),
        .executable(name: "switchauth-bench", targets: ["SwitchAuthBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // 1.11: LogHandler.log(event:) (KeyValueLogHandler implements it).
        .package(url: "https://github.com/apple/swift-log", from: "1.11.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // libpq as a system library (Debian: libpq-dev).
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        // Blocking libpq wrapper: one owner per PGconn / PGresult. Knows nothing of SIP.
        .target(name: "Postgres", dependencies: ["CLibPQ", "SystemCalls"], swiftSettings: strict),
        // The one door of every C call to the kernel: EINTR retried, failures as values naming the
        // call, a bug's errno stops the process; files replaced durably.
        .target(name: "SystemCalls", swiftSettings: strict),
        // Sockets, pure HTTP/1.1 parser with limits, form decoding, event loops. Knows nothing of FreeSWITCH.
        .target(name: "CSystemShims"),
        // A pthread-mutex-guarded value (ThreadSanitizer sees pthread mutexes).
        .target(name: "Locking", dependencies: ["SystemCalls", "CSystemShims"], swiftSettings: strict),
        // application/x-www-form-urlencoded: eager decoding and the lazy form mod_xml_curl lookups read. Pure (no I/O).
        .target(name: "FormEncoding", dependencies: ["CByteScan"], swiftSettings: strict),
        // A form body's separators and escapes as bitmaps (AVX2 or SSE2): the form index's one pass.
        .target(name: "CByteScan"),
        .target(name: "HTTPServer", dependencies: ["CSystemShims", "SystemCalls", "Locking", "FormEncoding"], swiftSettings: strict),
        // Pure decisions: no I/O. Requests and database facts in, decisions out.
        .target(name: "Decisions", dependencies: ["FormEncoding", "ByteBuffers", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strict),
        // Pure rendering of FreeSWITCH XML documents through one escaping writer.
        .target(name: "FreeSWITCHXML", dependencies: ["Decisions", "ByteBuffers"], swiftSettings: strict),
        // A growable byte buffer for the documents and log lines of the request path.
        .target(name: "ByteBuffers", swiftSettings: strict),
        // One type per SQL statement over the wrapper; the migrations runner.
        .target(name: "Store", dependencies: ["Postgres", "Decisions"], swiftSettings: strict),
        // The log line format (keys in order, values escaped) and its writer thread.
        .target(name: "LogLines", dependencies: ["Locking", "SystemCalls", "ByteBuffers", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        // Pure: a lookup as classified, its facts, its outcome, and the FactsSource protocol.
        .target(name: "Lookups", dependencies: ["Decisions", "LogLines"], swiftSettings: strict),
        // Wiring: request -> facts -> decision -> XML; configuration; event-socket push.
        .target(
            name: "SwitchAuthService",
            dependencies: [
                "HTTPServer", "Decisions", "FreeSWITCHXML", "Store", "Postgres", "Locking", "CSystemShims", "SystemCalls", "LogLines", "Lookups",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "switchauth",
            dependencies: [
                "SwitchAuthCLI",
            ],
            swiftSettings: strict
        ),
        // The CLI: serve, migrate, demo and the operators' commands. A library so tests can drive it.
        .target(
            name: "SwitchAuthCLI",
            dependencies: [
                "SwitchAuthService", "Store", "Postgres", "Decisions", "FreeSWITCHXML", "Locking", "HTTPServer", "SystemCalls", "LogLines", "Lookups",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Load generator, dataset generator and the comparison with nginx and pgbench.
        .executableTarget(
            name: "SwitchAuthBench",
            dependencies: [
                "Postgres", "Store", "Decisions", "Locking", "HTTPServer", "SystemCalls",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // libFuzzer target (Tests/fuzz/run.sh builds it with -sanitize=fuzzer); a corpus replay driver otherwise.
        .executableTarget(
            name: "SwitchAuthFuzz",
            dependencies: ["HTTPServer", "Decisions", "FreeSWITCHXML", "Store", "SwitchAuthService", "Lookups", .product(name: "Logging", package: "swift-log")],
            path: "Tests/fuzz/SwitchAuthFuzz",
            swiftSettings: strict
        ),
        // Test helpers shared by the test targets: the captured FreeSWITCH requests (read by path)
        // and a raw HTTP client over TCPSocket. Depends on the HTTP server module only.
        .target(name: "TestSupport", dependencies: ["HTTPServer"], path: "Tests/TestSupport", swiftSettings: strict),
        // The throwaway PostgreSQL of the test targets that need one: a cluster, a migrated
        // template, a fresh copy per test.
        .target(name: "DatabaseTestSupport", dependencies: ["Postgres", "Store", "Locking"], path: "Tests/DatabaseTestSupport", swiftSettings: strict),
        // One test target per module. Those that need PostgreSQL start the throwaway cluster of
        // DatabaseTestSupport; SwitchAuthTests is the service's (the request path, the copy, pushes,
        // faults) with the end-to-end replays of the captured requests (its Fixtures/).
        .testTarget(name: "SystemCallsTests", dependencies: ["SystemCalls"], swiftSettings: strict),
        .testTarget(name: "LockingTests", dependencies: ["Locking"], swiftSettings: strict),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "Locking", "SystemCalls", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "DecisionsTests", dependencies: ["Decisions", "FormEncoding", "HTTPServer", "Store"], swiftSettings: strict),
        .testTarget(name: "FreeSWITCHXMLTests", dependencies: ["FreeSWITCHXML", "Decisions", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "DatabaseTestSupport"], swiftSettings: strict),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Postgres", "Decisions", "TestSupport", "DatabaseTestSupport"], swiftSettings: strict),
        // `cli(...)`: a switchauth command run in-process with its output captured.
        .target(name: "CLITestSupport", dependencies: ["SwitchAuthCLI", "Postgres"], path: "Tests/CLITestSupport", swiftSettings: strict),
        .testTarget(
            name: "CLITests",
            dependencies: ["SwitchAuthCLI", "SwitchAuthService", "Store", "Postgres", "Decisions", "TestSupport", "DatabaseTestSupport", "CLITestSupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchAuthTests",
            dependencies: ["SwitchAuthService", "HTTPServer", "Decisions", "FreeSWITCHXML", "Store", "Postgres", "Locking", "SystemCalls",
                           "LogLines", "Lookups", "TestSupport", "DatabaseTestSupport", "CLITestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
    ]
)

// The operators' console (`switchauth console`): its library, its test target, and the CLI's
// dependency on it. Appended here rather than written into the lists above, so that changes to
// those lists merge without touching these lines.
package.targets += [
    // Its own listener, JSON API, HTML screens, operators, sessions; reads and writes through Store.
    .target(
        name: "AdminConsole",
        dependencies: [
            "HTTPServer", "Store", "Postgres", "Decisions", "FreeSWITCHXML", "Locking", "SwitchAuthService", "SystemCalls", "Lookups",
            .product(name: "_CryptoExtras", package: "swift-crypto"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: strict
    ),
    .testTarget(
        name: "AdminConsoleTests",
        dependencies: ["AdminConsole", "HTTPServer", "Store", "Postgres", "SwitchAuthCLI", "Locking", "SystemCalls", "DatabaseTestSupport", "CLITestSupport"],
        swiftSettings: strict
    ),
]
for target in package.targets where target.name == "SwitchAuthCLI" {
    target.dependencies.append("AdminConsole")
}
