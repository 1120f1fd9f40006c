import Foundation
import HTTPServer
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// A minimal FreeSWITCH event-socket (mod_event_socket) client: connect, `auth`, `api` commands,
/// `exit`. Framing per freeswitch-conf/PROTOCOL.md §8: header lines ending in a blank line (bare LF), then
/// Content-Length bytes of body. Every read and write has a deadline.
public struct EventSocketClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    let endpoint: EventSocketEndpoint
    let timeoutMilliseconds: Int

    public init(endpoint: EventSocketEndpoint, timeoutMilliseconds: Int = 2_000) {
        self.endpoint = endpoint
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Runs `api` commands in one session; returns each command's reply body.
    public func api(_ commands: [String]) throws -> [String] {
        let socket: TCPSocket
        do {
            socket = try TCPSocket.connect(host: endpoint.host, port: endpoint.port, timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            throw Failure(description: "\(endpoint): \(error)")
        }
        defer { socket.close() }
        var reader = Reader(socket: socket, timeout: timeoutMilliseconds)
        let greeting = try reader.message()
        guard greeting.headers["Content-Type"] == "auth/request" else {
            throw Failure(description: "\(endpoint): unexpected greeting \(greeting.headers["Content-Type"] ?? "none")")
        }
        try send(socket, "auth \(endpoint.password)\n\n")
        let auth = try reader.message()
        guard auth.headers["Reply-Text"]?.hasPrefix("+OK") == true else {
            throw Failure(description: "\(endpoint): authentication refused")
        }
        var replies: [String] = []
        for command in commands {
            try send(socket, "api \(command)\n\n")
            var reply = try reader.message()
            // Skip anything that is not the api response (no events are subscribed, but be lenient).
            while reply.headers["Content-Type"] != "api/response" {
                if reply.headers["Content-Type"] == "text/disconnect-notice" { throw Failure(description: "\(endpoint): disconnected") }
                reply = try reader.message()
            }
            if reply.body.hasPrefix("-ERR") {
                throw Failure(description: "\(endpoint): \(command.split(separator: " ").first ?? ""): \(reply.body.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            replies.append(reply.body)
        }
        try? send(socket, "exit\n\n")
        return replies
    }

    private func send(_ socket: TCPSocket, _ text: String) throws {
        do {
            try socket.sendAll(text, timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            throw Failure(description: "\(endpoint): \(error)")
        }
    }

    struct Message {
        var headers: [String: String]
        var body: String
    }

    struct Reader {
        let socket: TCPSocket
        let timeout: Int
        var buffer: [UInt8] = []

        mutating func fill(_ deadline: UInt64) throws {
            let now = MonotonicClock.now()
            guard now < deadline else { throw Failure(description: "read timed out") }
            let chunk: [UInt8]
            do {
                chunk = try socket.receive(max: 4096, timeoutMilliseconds: Int((deadline - now) / 1_000_000) + 1)
            } catch {
                throw Failure(description: "\(error)")
            }
            if chunk.isEmpty { throw Failure(description: "connection closed") }
            buffer.append(contentsOf: chunk)
        }

        mutating func message() throws -> Message {
            let deadline = MonotonicClock.now() + UInt64(timeout) * 1_000_000
            var end: Int?
            while end == nil {
                if let i = (0..<max(0, buffer.count - 1)).first(where: { buffer[$0] == 10 && buffer[$0 + 1] == 10 }) {
                    end = i
                } else {
                    guard buffer.count < 1 << 20 else { throw Failure(description: "header too large") }
                    try fill(deadline)
                }
            }
            let headerText = String(decoding: buffer[0..<end!], as: UTF8.self)
            buffer.removeFirst(end! + 2)
            var headers: [String: String] = [:]
            for line in headerText.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            var body = ""
            if let length = headers["Content-Length"].flatMap({ Int($0) }), length > 0 {
                guard length < 1 << 24 else { throw Failure(description: "body too large") }
                while buffer.count < length { try fill(deadline) }
                body = String(decoding: buffer[0..<length], as: UTF8.self)
                buffer.removeFirst(length)
            }
            return Message(headers: headers, body: body)
        }
    }
}
