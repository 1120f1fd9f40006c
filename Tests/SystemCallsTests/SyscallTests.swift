import Foundation
import Testing
@testable import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SyscallTests {
    @Test func interruptedCallsAreRetried() throws {
        var calls = 0
        let r = try Syscall.call("test") { () -> Int32 in
            calls += 1
            if calls < 4 { errno = EINTR; return -1 }
            return 7
        }
        #expect(r == 7)
        #expect(calls == 4)
    }

    @Test func aFailureNamesTheCallAndErrno() {
        do {
            try Syscall.call("open(/nowhere)") { () -> Int32 in errno = EACCES; return -1 }
            Issue.record("no error")
        } catch {
            #expect(error == SystemError(call: "open(/nowhere)", errno: EACCES))
            #expect(error.description == "open(/nowhere) failed: Permission denied (errno 13)")
        }
    }

    @Test func wouldBlockIsAValue() throws {
        #expect(try Syscall.nonBlocking("recv") { errno = EAGAIN; return -1 } == nil)
        #expect(try Syscall.nonBlocking("recv") { 5 } == 5)
        #expect(throws: SystemError(call: "recv", errno: ECONNRESET)) {
            try Syscall.nonBlocking("recv") { errno = ECONNRESET; return -1 }
        }
    }

    @Test func bestEffortReturnsTheFailure() {
        #expect(Syscall.bestEffort("shutdown") { errno = ENOTCONN; return -1 } == SystemError(call: "shutdown", errno: ENOTCONN))
        #expect(Syscall.bestEffort("shutdown") { 0 } == nil)
    }

    @Test func aNameIsBuiltOnlyOnFailure() throws {
        var built = 0
        func name() -> String { built += 1; return "x" }
        try Syscall.call(name()) { 0 }
        _ = try Syscall.nonBlocking(name()) { 1 }
        #expect(built == 0)
    }

    @Test func exitCodes() {
        #expect(Syscall.exitCode(0) == 0)
        #expect(Syscall.exitCode(3 << 8) == 3)
        #expect(Syscall.exitCode(9) == 128 + 9)   // killed by SIGKILL
    }

    @Test func writeAllAndSleep() throws {
        var fds: [Int32] = [0, 0]
        try Syscall.call("pipe") { pipe(&fds) }
        defer { Syscall.close(fds[0]) }
        let bytes = [UInt8](repeating: 65, count: 10_000)
        try Syscall.writeAll(fds[1], bytes)
        Syscall.close(fds[1])
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try buffer.withUnsafeMutableBytes { b in try Syscall.size("read") { read(fds[0], b.baseAddress, b.count) } }
            if n == 0 { break }
            got += buffer[0..<n]
        }
        #expect(got == bytes)
        let start = DispatchTime.now().uptimeNanoseconds
        Syscall.sleep(nanoseconds: 20_000_000)
        #expect(DispatchTime.now().uptimeNanoseconds - start >= 20_000_000)
    }
}

@Suite struct DurableFileTests {
    func directory() throws -> String {
        let d = NSTemporaryDirectory() + "durable-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func replacesWholeWithItsMode() throws {
        let d = try directory()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/acl.xml"
        try DurableFile.write(Array("old".utf8), to: path, attributes: .init(mode: 0o644))
        try DurableFile.write(Array("new content".utf8), to: path, attributes: .init(mode: 0o640))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new content")
        #expect(DurableFile.Attributes.of(path)?.mode == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d) == ["acl.xml"])
    }

    @Test func aFailedPrepareLeavesNothing() throws {
        let d = try directory()
        defer { try? FileManager.default.removeItem(atPath: d) }
        #expect(throws: SystemError(call: "open(\(d)/missing/x.tmp)", errno: ENOENT)) {
            try DurableFile.write([1], to: d + "/missing/x", attributes: .init(mode: 0o600))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: d).isEmpty)
    }

    @Test func aFailedCommitLeavesTheDestinationAndNoTemporary() throws {
        let d = try directory()
        defer { try? FileManager.default.removeItem(atPath: d) }
        // A non-empty directory where the file should go: rename fails (EISDIR), nothing changes.
        try FileManager.default.createDirectory(atPath: d + "/target/inside", withIntermediateDirectories: true)
        let prepared = try DurableFile.prepare([1, 2, 3], for: d + "/target", attributes: .init(mode: 0o600))
        #expect(FileManager.default.fileExists(atPath: prepared.temporaryPath))
        #expect(throws: SystemError.self) { try prepared.commit() }
        #expect(!FileManager.default.fileExists(atPath: prepared.temporaryPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: d + "/target") == ["inside"])
    }
}

@Suite struct RandomSecretsTests {
    @Test(arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
    ])
    func base64URLIsRFC4648WithoutPadding(input: String, expected: String) {
        #expect(RandomSecrets.base64URL(Array(input.utf8)) == expected)
    }

    @Test func urlSafeAlphabetAndLengths() {
        #expect(RandomSecrets.base64URL([0xfb, 0xff, 0xbf]) == "-_-_")
        let t = RandomSecrets.token(prefix: "sat_")
        #expect(t.hasPrefix("sat_") && t.count == 4 + 43)
        #expect(t.dropFirst(4).allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(RandomSecrets.token() != RandomSecrets.token())
        let p = RandomSecrets.password()
        #expect(p.count == 20 && !p.contains("0") && !p.contains("O") && !p.contains("l") && !p.contains("1"))
        #expect(RandomSecrets.bytes(16).count == 16)
    }
}
