import Foundation
import Locking
import Postgres
import Store

/// This target's PostgreSQL: a throwaway cluster (or `SWITCHAUTH_TEST_DATABASE_URL`), a template
/// migrated once, a fresh copy per test (the same scheme as SwitchAuthTests' TestDatabase).
final class ConsoleTestDatabase: Sendable {
    static let shared = ConsoleTestDatabase()

    private struct State: Sendable {
        var cluster: TemporaryCluster?
        var base: ConnectionConfig?
        var counter = 0
        var error: String?
    }
    private let state = Locked(State())
    static let templateName = "console_template"

    private func base() throws -> ConnectionConfig {
        try state.withLock { s in
            if let b = s.base { return b }
            if let e = s.error { throw ConsoleTestError(description: e) }
            do {
                let base: ConnectionConfig
                if let url = ProcessInfo.processInfo.environment["SWITCHAUTH_TEST_DATABASE_URL"], !url.isEmpty {
                    base = .url(url)
                } else {
                    let cluster = try TemporaryCluster()
                    s.cluster = cluster
                    base = cluster.config(database: "postgres")
                    atexit { ConsoleTestDatabase.shared.state.withLock { $0.cluster }?.stop() }
                }
                let admin = try Connection(base)
                try admin.executeScript("DROP DATABASE IF EXISTS \(Self.templateName)")
                try admin.executeScript("CREATE DATABASE \(Self.templateName)")
                let template = try Connection(base.with(database: Self.templateName))
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

    static var migrationsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../migrations").standardized.path
    }

    func freshDatabase() throws -> ConnectionConfig {
        let base = try base()
        let name: String = state.withLock { s in
            s.counter += 1
            return "c_\(getpid())_\(s.counter)"
        }
        try Connection(base).executeScript("CREATE DATABASE \(name) TEMPLATE \(Self.templateName) STRATEGY FILE_COPY")
        return base.with(database: name)
    }
}

struct ConsoleTestError: Error, CustomStringConvertible {
    var description: String
}
