import Foundation
import HTTPServer
@testable import SwitchAuthService
import SystemCalls
import Testing

/// The hangup listener's framing of mod_event_socket (PROTOCOL.md §8) on a real socket: whole
/// messages however the bytes arrive, hundreds in one read, and the two headers it needs read out
/// of an event of a switch's size.
@Suite("event socket framing")
struct ESLStreamTests {
    static func pair() throws -> (client: TCPSocket, server: TCPSocket, listener: TCPSocket) {
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 1)
        let client = try TCPSocket.connect(host: "127.0.0.1", port: listener.localPort)
        for _ in 0..<200 {
            if let accepted = try listener.accept() {
                try accepted.socket.setBlocking(true)
                return (client, accepted.socket, listener)
            }
            Syscall.sleep(nanoseconds: 5_000_000)
        }
        throw ESLStream.Failure("no connection")
    }

    /// A CHANNEL_HANGUP as a switch sends it: some 150 headers, percent-encoded values.
    static func hangup(_ id: String) -> String {
        let body = (0..<150).map { "variable_x\($0): v%20\($0)" }.joined(separator: "\n")
            + "\nEvent-Name: CHANNEL_HANGUP\nUnique-ID: \(id)\nCaller-Destination-Number: %2B4930\n\n"
        return "Content-Length: \(body.utf8.count)\nContent-Type: text/event-plain\n\n" + body
    }

    @Test func manyMessagesInOneReadAndOneAcrossReads() throws {
        let (client, server, listener) = try Self.pair()
        defer { client.close(); server.close(); listener.close() }
        var stream = ESLStream(socket: client)
        let ids = (0..<300).map { String(format: "%08x-0000-4000-8000-000000000000", $0) }
        try server.sendAll(ids.map(Self.hangup).joined())
        for id in ids {
            let m = try #require(try stream.next(timeoutMilliseconds: 2_000))
            #expect(m.headers["Content-Type"] == "text/event-plain")
            #expect(m.eventHeader("Event-Name") == "CHANNEL_HANGUP")
            #expect(m.eventHeader("Unique-ID") == id)
        }
        // Split anywhere, even inside "\n\n" and the Content-Length: taken once whole.
        let text = Array((Self.hangup("last") + "Content-Type: api/response\nContent-Length: 3\n\n+OK").utf8)
        for cut in [5, 17, 40, 1_000, text.count - 60, text.count - 2] {
            var got: [ESLStream.Message] = []
            try server.sendAll(Array(text[..<cut]))
            while let m = try stream.next(timeoutMilliseconds: 50) { got.append(m) }
            #expect(got.count == (cut > text.count - 52 ? 1 : 0), "what was whole at \(cut) is taken, nothing more")
            try server.sendAll(Array(text[cut...]))
            while got.count < 2, let m = try stream.next(timeoutMilliseconds: 2_000) { got.append(m) }
            try #require(got.count == 2)
            #expect(got[0].eventHeader("Unique-ID") == "last")
            #expect(got[0].eventHeader("Caller-Destination-Number") == "+4930")
            #expect(got[0].eventHeader("variable_x7") == "v 7")
            #expect(got[0].eventHeader("Unique") == nil, "a prefix of a name is not the name")
            #expect(got[0].eventHeader("variable_x0") == "v 0", "the body's first line")
            #expect(got[0].eventHeader("ariable_x0") == nil, "a line's tail is not a name")
            #expect(got[1].headers["Content-Type"] == "api/response")
            #expect(got[1].body == "+OK")
        }
    }

    /// The framing headers, read as bytes: blanks around a value (and a CR before the newline) are
    /// not part of it, a colon inside a value is, a line without a colon is skipped.
    @Test func framingHeadersAsTheSwitchWritesThem() throws {
        let (client, server, listener) = try Self.pair()
        defer { client.close(); server.close(); listener.close() }
        var stream = ESLStream(socket: client)
        try server.sendAll("Content-Type:\tcommand/reply \r\nReply-Text: +OK accepted: yes\nno colon here\nX-Empty:\n\n"
            + "Content-Type: api/response\nContent-Length:  2\n\nok")
        let reply = try #require(try stream.next(timeoutMilliseconds: 2_000))
        #expect(reply.headers == ["Content-Type": "command/reply", "Reply-Text": "+OK accepted: yes", "X-Empty": ""])
        #expect(reply.bodyBytes.isEmpty)
        let api = try #require(try stream.next(timeoutMilliseconds: 2_000))
        #expect(api.headers["Content-Type"] == "api/response")
        #expect(api.body == "ok")
        #expect(api.eventHeader("ok") == nil)
        let last = ESLStream.Message(headers: [:], bodyBytes: Array("A: 1\nUnique-ID:  tail \r".utf8))
        #expect(last.eventHeader("Unique-ID") == "tail", "a last line without its newline")
        #expect(ESLStream.Message(headers: [:], bodyBytes: []).eventHeader("A") == nil)
    }
}
