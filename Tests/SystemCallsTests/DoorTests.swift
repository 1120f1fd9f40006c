import Foundation
import Testing

/// Every C call to the kernel goes through `Syscall` (Sources/SystemCalls): nobody else reads errno
/// or retries EINTR, and the calls below appear only inside a door closure (on the line of a
/// `Syscall.` call or the two after it). Methods that share a name with a call (`write(into:)`,
/// `accept(limit:)`) are not calls: only names without such homonyms are matched bare, and
/// close/read/write only with a descriptor as their first argument. Clocks are read through
/// `MonotonicClock` and `WallClock` only.
@Suite struct DoorTests {
    static let raw = try! NSRegularExpression(pattern: #"""
        (?<![\w.])(fsync|rename|unlink|waitpid|fchmod|fchown|chmod|chown|shutdown|setsockopt|getsockopt|getsockname|fcntl|poll|recv|sendto|mkdtemp|kill|usleep|nanosleep|posix_spawn|sa_eventfd|sa_epoll_create|sa_epoll_ctl|sa_epoll_wait|sa_accept|eventfd)\(|(?<![\w.])(close|read|write)\((fd|\w+FD|\w*fd)\b|\b(Glibc|Foundation|Darwin)\.(close|read|write|send|recv|connect|listen|accept|open|poll)\(|(?<![.\w])errno\b(?!\s*:)|clock_gettime\(|DispatchTime\.now\(\)|Date\(\)\.timeIntervalSince1970
        """#)

    @Test func everyKernelCallGoesThroughTheDoor() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources").standardized
        let files = FileManager.default.enumerator(atPath: sources.path)!.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") && !$0.hasPrefix("SystemCalls/") }
        #expect(files.count > 50)
        var outside: [String] = []
        for file in files {
            let lines = try String(contentsOfFile: sources.path + "/" + file, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                let code = String(line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                guard Self.raw.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil else { continue }
                if code.contains("func ") { continue }
                if lines[max(0, i - 2)...i].contains(where: { $0.contains("Syscall.") }) { continue }
                outside.append("\(file):\(i + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(outside.isEmpty, "C calls outside the door:\n\(outside.joined(separator: "\n"))")
    }
}
