import Foundation
import Locking

/// Where the CLI writes its output and reads standard input. Normally the process's own; tests
/// bind a buffer and input lines for the task, so commands can be run in-process and in parallel.
public enum Console {
    @TaskLocal public static var capture: OutputBuffer?
    @TaskLocal public static var input: InputLines?

    static func out(_ line: String) {
        if let capture { capture.append(line + "\n") } else { print(line) }
    }

    static func readLine() -> String? {
        if let input { return input.next() }
        return Swift.readLine(strippingNewline: true)
    }

    /// Whether standard input is a terminal (never, when input is bound).
    static var inputIsTerminal: Bool { input == nil && isatty(0) != 0 }
}

public final class OutputBuffer: Sendable {
    private let text = Locked("")
    public init() {}
    func append(_ s: String) { text.withLock { $0 += s } }
    public var value: String { text.withLock { $0 } }
}

public final class InputLines: Sendable {
    private let lines: Locked<[String]>
    public init(_ lines: [String]) { self.lines = Locked(lines) }
    func next() -> String? { lines.withLock { $0.isEmpty ? nil : $0.removeFirst() } }
}
