import Decisions
import Foundation
import Postgres

/// One migration file: `NNNN_name.sql` in the migrations directory.
public struct MigrationFile: Sendable, Equatable {
    public var version: String
    public var name: String
    public var sql: String
    /// SHA-256 of the file's bytes.
    public var checksum: String
}

public struct MigrationState: Sendable, Equatable {
    public enum Status: String, Sendable { case applied, pending, edited, missing }
    public var version: String
    public var name: String
    public var status: Status
    public var appliedAt: String?
}

public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case directoryNotFound(String)
    case badFileName(String)
    case duplicateVersion(String)
    case edited(version: String, name: String)

    public var description: String {
        switch self {
        case .directoryNotFound(let d): return "migrations directory not found: \(d)"
        case .badFileName(let f): return "migration file name must be NNNN_name.sql: \(f)"
        case .duplicateVersion(let v): return "two migration files share version \(v)"
        case .edited(let v, let n):
            return "migration \(v)_\(n) was edited after it was applied (checksum differs); refusing to run. Restore the file and add a new migration instead."
        }
    }
}

/// Applies `migrations/*.sql` in order, each in its own transaction, recording version and checksum
/// in `schema_migrations`. Refuses to run when an applied file was edited. Re-running is a no-op.
/// Concurrent runs (two instances starting) serialize on an advisory lock.
public struct Migrator {
    public let files: [MigrationFile]

    public init(directory: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw MigrationError.directoryNotFound(directory)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        var files: [MigrationFile] = []
        for fileName in names {
            let stem = fileName.dropLast(4)
            let parts = stem.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count >= 4, parts[0].allSatisfy(\.isNumber) else {
                throw MigrationError.badFileName(fileName)
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(fileName))
            let bytes = [UInt8](data)
            if files.contains(where: { $0.version == String(parts[0]) }) { throw MigrationError.duplicateVersion(String(parts[0])) }
            files.append(MigrationFile(version: String(parts[0]), name: String(parts[1]),
                                       sql: String(decoding: bytes, as: UTF8.self), checksum: Hashing.sha256Hex(bytes: bytes)))
        }
        self.files = files
    }

    /// The migrations directory: `$SWITCHAUTH_MIGRATIONS`, `./migrations`, next to the executable
    /// (`../share/switchauth/migrations`), or the source tree this binary was built from.
    public static func defaultDirectory() -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["SWITCHAUTH_MIGRATIONS"], !env.isEmpty { return env }
        if fm.fileExists(atPath: "migrations/0001_schema.sql") { return "migrations" }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        let installed = exe.appendingPathComponent("../share/switchauth/migrations").standardized.path
        if fm.fileExists(atPath: installed) { return installed }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../migrations").standardized.path
    }

    static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    static let lockKey = "7215532001"

    private func applied(_ db: Connection) throws -> [String: (name: String, checksum: String, at: String)] {
        let r = try db.execute("SELECT version, name, checksum, applied_at::text FROM schema_migrations ORDER BY version")
        var out: [String: (String, String, String)] = [:]
        for i in 0..<r.rowCount {
            out[try r.decode(i, 0)] = (try r.decode(i, 1), try r.decode(i, 2), try r.decode(i, 3))
        }
        return out
    }

    public func status(_ db: Connection) throws -> [MigrationState] {
        try db.executeScript(Self.createTable)
        let done = try applied(db)
        var out: [MigrationState] = []
        for f in files {
            if let a = done[f.version] {
                out.append(MigrationState(version: f.version, name: f.name, status: a.checksum == f.checksum ? .applied : .edited, appliedAt: a.at))
            } else {
                out.append(MigrationState(version: f.version, name: f.name, status: .pending, appliedAt: nil))
            }
        }
        for (version, a) in done where !files.contains(where: { $0.version == version }) {
            out.append(MigrationState(version: version, name: a.name, status: .missing, appliedAt: a.at))
        }
        return out.sorted { $0.version < $1.version }
    }

    /// Applies pending migrations; returns the ones applied (empty when up to date).
    @discardableResult
    public func migrate(_ db: Connection) throws -> [MigrationFile] {
        try db.executeScript(Self.createTable)
        try db.execute("SELECT pg_advisory_lock($1::bigint)", [Self.lockKey])
        defer { _ = try? db.execute("SELECT pg_advisory_unlock($1::bigint)", [Self.lockKey]) }
        let done = try applied(db)
        for f in files {
            if let a = done[f.version], a.checksum != f.checksum {
                throw MigrationError.edited(version: f.version, name: f.name)
            }
        }
        var ran: [MigrationFile] = []
        for f in files where done[f.version] == nil {
            try db.transaction { tx in
                try tx.executeScript(f.sql)
                try tx.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               [f.version, f.name, f.checksum])
            }
            ran.append(f)
        }
        return ran
    }
}
