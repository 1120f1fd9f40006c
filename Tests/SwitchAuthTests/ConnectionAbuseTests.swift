import Decisions
import Foundation
import HTTPServer
import TestSupport
import Locking
import Synchronization
import SwitchAuthService
import Testing

/// Issue 13 items 3, 4 and 5: what a client can do to the server with connections alone.
@Suite("connection abuse")
struct ConnectionAbuseTests {
    static let acl = "GET /fs?hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf HTTP/1.1\r\nHost: x\r\n\r\n"

    /// Item 3: CRLFs between keep-alive requests are not activity; the idle timeout still cuts the connection.
    @Test func strayCRLFsDoNotResetTheIdleTimeout() throws {
        let (s, _) = try ServerTests.service { $0.server.idleTimeoutMilliseconds = 600 }
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        c.send(Self.acl)
        #expect(c.readResponse()?.status == 200)
        let stop = Atomic<Bool>(false)
        let socket = c.socket
        let sender = Thread {
            // "\r\n" every 100 ms for up to 4 s (an attacker holding the slot).
            for _ in 0..<40 where !stop.load(ordering: .relaxed) {
                try? socket.sendAll("\r\n")
                usleep(100_000)
            }
        }
        sender.start()
        let started = Date()
        c.setReceiveTimeout(seconds: 6)
        #expect(c.isClosedByPeer())
        let held = Date().timeIntervalSince(started)
        stop.store(true, ordering: .relaxed)
        #expect(held < 1.5, "held open \(held) s by CRLFs (idle timeout 0.6 s)")
    }

    /// Item 3: a stray CRLF does not start the request deadline; the request that comes later gets its own.
    @Test func strayCRLFDoesNotStartTheRequestDeadline() throws {
        let (s, _) = try ServerTests.service {
            $0.server.idleTimeoutMilliseconds = 5_000
            $0.server.requestTimeoutMilliseconds = 500
        }
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        c.send(Self.acl)
        #expect(c.readResponse()?.status == 200)
        c.send("\r\n")
        Thread.sleep(forTimeInterval: 0.8)
        let bytes = Array(Self.acl.utf8)
        c.send(Array(bytes[0..<20]))
        Thread.sleep(forTimeInterval: 0.1)
        c.send(Array(bytes[20...]))
        let r = c.readResponse()
        #expect(r?.status == 200, "the request after a CRLF and a pause was dropped")
    }

    /// Item 4: HEAD gets the headers only (two on one connection parse as two responses).
    @Test func headIsAnsweredWithoutABody() throws {
        let (s, _) = try ServerTests.service()
        defer { s.stop() }
        let c = try RawClient(port: s.port)
        c.setReceiveTimeout(seconds: 3)
        c.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let text = String(decoding: c.readAll(), as: UTF8.self)
        let responses = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(responses.count == 3, "\(text)")
        let parts = Array(responses)
        guard parts.count == 3 else { return }
        #expect(parts[0].hasPrefix("200 ") && parts[0].hasSuffix("\r\n\r\n"), "HEAD /healthz carries no body: \(parts[0])")
        #expect(parts[0].contains("Content-Length: 3\r\n"), "the length GET would have")
        #expect(parts[1].hasPrefix("404 ") && parts[1].hasSuffix("\r\n\r\n"), "HEAD of a 404 carries no body: \(parts[1])")
        #expect(parts[2].hasPrefix("200 ") && parts[2].hasSuffix("\r\n\r\nok\n"))
    }

    /// Item 5: with allow_clients set, a disallowed peer is closed at accept, without an answer and
    /// without holding a slot; the allowed client keeps getting answers while it floods.
    @Test func disallowedPeersAreRefusedAtAcceptAndDoNotTakeSlots() throws {
        let (s, _) = try ServerTests.service {
            $0.allowClients = [IPNetwork("127.0.0.1/32")!]
            $0.server.maxConnections = 16
        }
        defer { s.stop() }
        // Held connections from a disallowed address: each is closed at once, with nothing sent.
        var held: [RawClient] = []
        for _ in 0..<16 { held.append(try RawClient(port: s.port, source: "127.0.0.5")) }
        let started = Date()
        for h in held {
            h.setReceiveTimeout(seconds: 3)
            #expect(h.readAll().isEmpty, "no answer to a disallowed peer")
        }
        #expect(Date().timeIntervalSince(started) < 1, "closed at accept, not at a deadline")

        // A flood that keeps reconnecting (up to 64 held at once) while the allowed client asks.
        let stop = Atomic<Bool>(false)
        let port = s.port
        let attempts = Atomic<Int>(0)
        let flood = Thread {
            var open: [RawClient] = []
            while !stop.load(ordering: .relaxed) {
                if let c = try? RawClient(port: port, source: "127.0.0.5") { open.append(c); attempts.add(1, ordering: .relaxed) }
                if open.count >= 64 { open.removeFirst(32) }
                usleep(200) // bounded: about 4,000 connections a second at most
            }
        }
        flood.start()
        var ok = 0
        var failures: [String: Int] = [:]
        let total = 200
        for _ in 0..<total {
            do {
                let r = try exchange(s.port, Array(Self.acl.utf8))
                if r.status == 200 { ok += 1 } else { failures["status \(r.status)", default: 0] += 1 }
            } catch {
                failures["\(error)", default: 0] += 1
            }
        }
        if !failures.isEmpty { print("allowed client's failures: \(failures)") }
        stop.store(true, ordering: .relaxed)
        print("allowed client while a disallowed one floods (\(attempts.load(ordering: .relaxed)) connections): \(ok)/\(total) answered 200")
        #expect(ok == total)
        #expect(s.service.server.counters.rejectedNotAllowed.load(ordering: .relaxed) >= 16)
    }
}
