import ArgumentParser
import Foundation
import Postgres
import Store
import SystemCalls

// MARK: import

/// CSV import of domains, accounts, IP settings and devices in one transaction: all or nothing.
/// A bulk load (Store's `BulkImport`): the file is read as a stream, checked line by line, staged
/// with one COPY and inserted with one statement per table.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import domains, accounts, IP settings and devices from CSV, all or nothing.",
        discussion: """
            The first line names the columns; each later line is one record, chosen by the 'record'
            column. Columns a record does not use may be empty or absent.
              record=domain   name [, alias]          (alias adds an alias to domain 'name')
              record=account  account, name [, kind, billing, balance, credit_limit, max_channels]
              record=ip       account, name, ip [, prefix, strip]
              record=device   account, username, domain, password [, caller_id_name, caller_id_number]
            A device's domain may be a domain or one of its aliases, defined on an earlier line or
            already in the database; the same holds for the accounts that IP settings and devices name.
            Example:
              record,account,name,ip,prefix,username,domain,password
              domain,,voip.example.com,,,,,
              account,1001,PBX1,,,,,
              ip,1001,PBX1,203.0.113.10,91,,,
              device,1001,,,,1001,voip.example.com,s3cret-pass
            Any error names its line and leaves the database unchanged. Passwords are hashed on import
            and never sent to the database. On a terminal, progress is shown on standard error.
            """)

    @OptionGroup var options: DatabaseOptions
    @Argument(help: "CSV file (- for standard input).") var file: String

    func run() throws {
        let started = Date()
        let reader: CSVReader
        var totalBytes: Int?
        if file == "-" {
            if let input = Console.input {
                var bytes: [UInt8] = []
                while let line = input.next() { bytes += line.utf8; bytes.append(UInt8(ascii: "\n")) }
                reader = CSVReader(bytes: bytes)
            } else {
                reader = CSVReader(fileDescriptor: 0)
            }
        } else {
            let fd: Int32
            do {
                fd = try Syscall.call("open(\(file))") { open(file, O_RDONLY | O_CLOEXEC) }
            } catch {
                throw CLIError("cannot read \(file): \(error)")
            }
            var st = stat()
            if Syscall.bestEffort("fstat(\(file))", { fstat(fd, &st) }) == nil, (st.st_mode & S_IFMT) == S_IFREG { totalBytes = Int(st.st_size) }
            reader = CSVReader(fileDescriptor: fd, closeWhenDone: true)
        }
        let header: CSVReader.Row?
        do {
            header = try reader.next()
        } catch let e as CSVReader.ParseError {
            throw CLIError("line \(e.line): \(e.message)")
        }
        guard let header else { throw CLIError("empty file") }
        let columns = header.fields.map { BulkImport.Field(column: $0.trimmingCharacters(in: .whitespaces).lowercased()) }
        guard columns.contains(.record) else { throw CLIError("line 1: no 'record' column") }

        // One statement may insert a million rows: the statement deadline is an hour, not 30 s.
        let (db, wait) = try options.connectForChanges(queryTimeoutMilliseconds: 3_600_000)
        let progress = ImportProgress(enabled: !options.json && Console.capture == nil && isatty(2) == 1, totalBytes: totalBytes)
        defer { progress.finish() }
        let counts: BulkImport.Counts
        do {
            counts = try db.transaction { tx in
                let importer = try BulkImport(db: tx) { event in
                    switch event {
                    case .sent(let rows): progress.sent = rows
                    case .stage(let name): progress.stage(name)
                    }
                }
                return try importer.run { add in
                    var values = [String?](repeating: nil, count: BulkImport.Field.allCases.count)
                    var parsed = 0
                    while true {
                        guard let row = try reader.next() else { break }
                        if row.fields.allSatisfy(\.isEmpty) { continue }
                        guard row.fields.count <= columns.count else { throw BulkImport.LineError(line: row.line, "more fields than columns") }
                        for i in values.indices { values[i] = nil }
                        for (i, f) in row.fields.enumerated() {
                            if let c = columns[i] { values[c.rawValue] = f }
                        }
                        // libpq and PostgreSQL's text cannot carry NUL (Connection.execute refuses it too).
                        if row.fields.contains(where: { $0.utf8.contains(0) }) { throw BulkImport.LineError(line: row.line, "a field contains a NUL byte") }
                        try add(row.line, values)
                        parsed += 1
                        if parsed & 1023 == 0 { progress.parsed(parsed, bytes: reader.bytesConsumed) }
                    }
                    progress.parsed(parsed, bytes: reader.bytesConsumed, force: true)
                }
            }
        } catch let e as BulkImport.LineError {
            throw CLIError("\(e.description); nothing was imported")
        } catch let e as PostgresError {
            throw CLIError("\(e.isConstraintViolation ? "refused by the database: \(e.message)" : e.debugDescription); nothing was imported")
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        // In force everywhere when the command returns, as for every other change (admin()).
        if let wait { waitUntilEveryCopyHolds(db, stalenessMilliseconds: wait) }
        let summary = "\(counts.domain) domain, \(counts.account) account, \(counts.ip) ip, \(counts.device) device"
        Output.done("imported \(summary) in \(String(format: "%.1f", seconds)) s", json: options.json, fields: [
            "domain": String(counts.domain), "account": String(counts.account), "ip": String(counts.ip),
            "device": String(counts.device), "seconds": String(format: "%.3f", seconds),
        ])
    }

}

/// A one-line progress display on standard error (only when it is a terminal): rows parsed and
/// sent, rows/s, and an ETA from the bytes read; redrawn at most 10 times a second.
final class ImportProgress {
    let enabled: Bool
    let totalBytes: Int?
    let start = MonotonicClock.now()
    var lastDraw: UInt64 = 0
    var drew = false
    var sent = 0
    var rows = 0
    var bytes = 0
    var stageName = "reading"

    init(enabled: Bool, totalBytes: Int?) {
        self.enabled = enabled
        self.totalBytes = totalBytes
    }

    func parsed(_ rows: Int, bytes: Int, force: Bool = false) {
        self.rows = rows
        self.bytes = bytes
        draw(force: force)
    }

    func stage(_ name: String) {
        stageName = name
        draw(force: true)
    }

    private func draw(force: Bool) {
        guard enabled else { return }
        let now = MonotonicClock.now()
        guard force || now - lastDraw >= 100_000_000 else { return }
        lastDraw = now
        let elapsed = Double(now - start) / 1e9
        let rate = elapsed > 0 ? Double(rows) / elapsed : 0
        var text = "\(stageName): \(rows) rows parsed, \(sent) devices sent, \(Int(rate)) rows/s"
        if stageName == "reading", let totalBytes, totalBytes > 0, bytes > 0 {
            let fraction = min(1, Double(bytes) / Double(totalBytes))
            text += String(format: ", %d%%, ETA %.0f s", Int(fraction * 100), elapsed * (1 - fraction) / fraction)
        } else {
            text += String(format: ", %.1f s", elapsed)
        }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        drew = true
    }

    func finish() {
        guard enabled, drew else { return }
        FileHandle.standardError.write(Data("\n".utf8))
        drew = false
    }
}

/// RFC 4180 CSV, read as a stream of bytes: quoted fields with doubled quotes and embedded commas,
/// newlines and carriage returns; CRLF or LF line ends (a carriage return outside quotes is
/// dropped). A row's `line` is the physical line it starts on. Fields must be UTF-8.
public final class CSVReader {
    public struct Row: Equatable, Sendable {
        public var line: Int
        public var fields: [String]
        public init(line: Int, fields: [String]) {
            self.line = line
            self.fields = fields
        }
    }

    /// A malformed file, naming its line: the import's own line error.
    public typealias ParseError = BulkImport.LineError

    private let fd: Int32
    private let closeWhenDone: Bool
    private var source: [UInt8]       // in-memory input (fd < 0)
    private var sourceOffset = 0
    private let chunkSize: Int
    private var buffer: [UInt8]
    private var position = 0
    private var end = 0
    private var finished = false
    /// Bytes handed to the parser so far.
    public private(set) var bytesConsumed = 0

    private var line = 1
    private var rowLine = 1
    private var inQuotes = false
    private var quoteClosed = false    // a quote ended a quoted part; a second one right after is a literal quote
    private var field: [UInt8] = []
    private var fields: [String] = []

    public init(fileDescriptor: Int32, closeWhenDone: Bool = false, chunkSize: Int = 1 << 20) {
        fd = fileDescriptor
        self.closeWhenDone = closeWhenDone
        source = []
        self.chunkSize = chunkSize
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    /// Reads `bytes`, `chunkSize` at a time (tests use small chunks to cross every boundary).
    public init(bytes: [UInt8], chunkSize: Int = 1 << 20) {
        fd = -1
        closeWhenDone = false
        source = bytes
        self.chunkSize = max(1, chunkSize)
        buffer = [UInt8](repeating: 0, count: max(1, chunkSize))
    }

    deinit {
        if closeWhenDone && fd >= 0 { Syscall.close(fd) }
    }

    /// All rows at once (tests, small files).
    public static func parse(_ text: String, chunkSize: Int = 1 << 20) throws -> [Row] {
        let r = CSVReader(bytes: Array(text.utf8), chunkSize: chunkSize)
        var rows: [Row] = []
        while let row = try r.next() { rows.append(row) }
        return rows
    }

    private func refill() throws -> Bool {
        position = 0
        end = 0
        if fd < 0 {
            let n = min(chunkSize, source.count - sourceOffset)
            guard n > 0 else { return false }
            buffer.withUnsafeMutableBufferPointer { b in
                source.withUnsafeBufferPointer { s in
                    b.baseAddress!.update(from: s.baseAddress! + sourceOffset, count: n)
                }
            }
            sourceOffset += n
            end = n
            return true
        }
        let n: Int
        do {
            n = try buffer.withUnsafeMutableBytes { b in try Syscall.size("read") { Foundation.read(fd, b.baseAddress, chunkSize) } }
        } catch {
            throw ParseError(line: line, "\(error)")
        }
        if n > 0 { end = n; return true }
        return false
    }

    private func takeField() throws {
        if field.isEmpty {
            fields.append("")
        } else {
            guard let s = field.withUnsafeBufferPointer({ String(validating: $0, as: UTF8.self) }) else {
                throw ParseError(line: rowLine, "not valid UTF-8")
            }
            fields.append(s)
            field.removeAll(keepingCapacity: true)
        }
    }

    private func takeRow() -> Row {
        let row = Row(line: rowLine, fields: fields)
        fields.removeAll(keepingCapacity: true)
        return row
    }

    /// The next row, or nil at the end of the input.
    public func next() throws -> Row? {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        while !finished {
            if position == end {
                if try !refill() {
                    finished = true
                    break
                }
            }
            var row: Row?
            try buffer.withUnsafeBufferPointer { buf in
                var i = position
                defer {
                    bytesConsumed += i - position
                    position = i
                }
                while i < end {
                    let c = buf[i]
                    i += 1
                    if quoteClosed {
                        quoteClosed = false
                        if c == quote { field.append(quote); inQuotes = true; continue }
                    }
                    if inQuotes {
                        if c == quote {
                            inQuotes = false
                            quoteClosed = true
                        } else {
                            if c == lf { line += 1 }
                            field.append(c)
                        }
                        continue
                    }
                    switch c {
                    case quote: inQuotes = true
                    case comma: try takeField()
                    case cr: continue
                    case lf:
                        try takeField()
                        row = takeRow()
                        line += 1
                        rowLine = line
                        return
                    default: field.append(c)
                    }
                }
            }
            if let row { return row }
        }
        if inQuotes { throw ParseError(line: rowLine, "unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty {
            try takeField()
            return takeRow()
        }
        return nil
    }
}
