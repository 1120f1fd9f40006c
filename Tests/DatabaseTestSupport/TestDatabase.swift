import Foundation
import Postgres
import Store
import Locking
import Synchronization

/// The suite's PostgreSQL: a throwaway cluster started on first use (or the server named by
/// `SWITCHAUTH_TEST_DATABASE_URL`), a template database migrated once, and a fresh copy of it for
/// every test that asks. The cluster is stopped when the test process exits, also on a crash
/// (TemporaryCluster's watchdog).
public final class TestDatabase: Sendable {
    public static let shared = TestDatabase()

    private struct State: Sendable {
        var cluster: TemporaryCluster?
        var base: ConnectionConfig?
        var counter = 0
        var error: String?
    }
    private let state = Locked(State())

    static let templateName = "switchauth_template"

    /// The throwaway cluster (nil when an external server is used).
    public var cluster: TemporaryCluster? { _ = try? base(); return state.withLock { $0.cluster } }

    private func base() throws -> ConnectionConfig {
        try state.withLock { s in
            if let b = s.base { return b }
            if let e = s.error { throw TestDatabaseError(description: e) }
            do {
                let base: ConnectionConfig
                if let url = ProcessInfo.processInfo.environment["SWITCHAUTH_TEST_DATABASE_URL"], !url.isEmpty {
                    base = .url(url)
                } else {
                    let cluster = try TemporaryCluster()
                    s.cluster = cluster
                    base = cluster.config(database: "postgres")
                    atexit { TestDatabase.shared.state.withLock { $0.cluster }?.stop() }
                }
                let admin = try Connection(Self.patient(base))
                try admin.executeScript("DROP DATABASE IF EXISTS \(Self.templateName)")
                try admin.executeScript("CREATE DATABASE \(Self.templateName)")
                let template = try Connection(Self.patient(base.with(database: Self.templateName)))
                try Migrator(directory: Self.migrationsDirectory).migrate(template)
                template.close()
                s.base = base
                return base
            } catch {
                s.error = "\(error)"
                throw error
            }
        }
    }

    /// The harness's own statements (CREATE DATABASE copies serialize on the template's lock and
    /// wait behind each other when the whole suite runs in parallel): a deadline of a minute.
    public static func patient(_ config: ConnectionConfig) -> ConnectionConfig {
        var c = config
        c.queryTimeoutMilliseconds = 60_000
        return c
    }

    public static var migrationsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../migrations").standardized.path
    }

    /// A new database copied from the migrated template.
    public func freshDatabase() throws -> ConnectionConfig {
        let base = try base()
        let name: String = state.withLock { s in
            s.counter += 1
            return "t_\(getpid())_\(s.counter)"
        }
        let admin = try Connection(Self.patient(base))
        // Copies from one template serialize on the template's lock; FILE_COPY is fastest without fsync.
        try admin.executeScript("CREATE DATABASE \(name) TEMPLATE \(Self.templateName) STRATEGY FILE_COPY")
        return base.with(database: name)
    }

    /// An empty database (no migrations applied).
    public func emptyDatabase() throws -> ConnectionConfig {
        let base = try base()
        let name: String = state.withLock { s in
            s.counter += 1
            return "e_\(getpid())_\(s.counter)"
        }
        try Connection(Self.patient(base)).executeScript("CREATE DATABASE \(name)")
        return base.with(database: name)
    }
}

public struct TestDatabaseError: Error, CustomStringConvertible {
    public var description: String
}

/// Test fixtures: the captured FreeSWITCH requests.
