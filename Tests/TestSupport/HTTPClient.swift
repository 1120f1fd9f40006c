import Foundation
import HTTPServer
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client for server tests: sends exact bytes, reads exact responses.
public final class RawClient {
    public let socket: TCPSocket
    private var timeoutMilliseconds = 10_000

    /// `source`: a local address to connect from (any 127.0.0.0/8 address works on loopback), so
    /// tests can be a client other than 127.0.0.1.
    public init(port: UInt16, host: String = "127.0.0.1", source: String? = nil) throws {
        socket = try TCPSocket.connect(host: host, port: port, timeoutMilliseconds: 5_000, from: source)
    }

    /// Everything the server sends until it closes (or the receive timeout).
    public func readAll() -> [UInt8] {
        var out = buffer
        buffer = []
        while let chunk = try? socket.receive(timeoutMilliseconds: timeoutMilliseconds), !chunk.isEmpty {
            out += chunk
        }
        return out
    }

    public func setReceiveTimeout(milliseconds: Int) {
        timeoutMilliseconds = milliseconds
    }

    public func send(_ bytes: [UInt8]) {
        // A server that closed mid-request is what some tests provoke: their reads say so.
        try? socket.sendAll(bytes, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func send(_ s: String) { send(Array(s.utf8)) }

    private var buffer: [UInt8] = []

    /// Reads one response (status, headers, Content-Length body). nil on EOF/timeout before a full response.
    public func readResponse() -> TestResponse? {
        while true {
            if let r = TestResponse.parse(&buffer) { return r }
            guard let chunk = try? socket.receive(timeoutMilliseconds: timeoutMilliseconds), !chunk.isEmpty else { return nil }
            buffer += chunk
        }
    }

    /// True when the server closed the connection (EOF or reset) within the receive timeout.
    public func isClosedByPeer() -> Bool {
        while true {
            do {
                if try socket.receive(timeoutMilliseconds: timeoutMilliseconds).isEmpty { return true }
            } catch {
                return error.errno == ECONNRESET
            }
        }
    }

    public enum PeerEnd: Equatable { case finished, reset, stillOpen }

    /// How the stream ends after what was read: a FIN, a reset, or nothing within the timeout.
    /// Bytes still arriving are read and dropped.
    public func peerEnd() -> PeerEnd {
        while true {
            do {
                if try socket.receive(timeoutMilliseconds: timeoutMilliseconds).isEmpty { return .finished }
            } catch {
                return error.errno == ECONNRESET ? .reset : .stillOpen
            }
        }
    }

    public func setReceiveTimeout(seconds: Int) {
        timeoutMilliseconds = seconds * 1000
    }
}

public struct TestHTTPError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

public struct TestResponse {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }

    public static func parse(_ buffer: inout [UInt8]) -> TestResponse? {
        guard let end = (0..<max(0, buffer.count - 3)).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }) else { return nil }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            if let c = l.firstIndex(of: ":") { headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces) }
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard buffer.count >= end + 4 + length else { return nil }
        let body = Array(buffer[(end + 4)..<(end + 4 + length)])
        buffer.removeFirst(end + 4 + length)
        return TestResponse(status: status, headers: headers, body: body)
    }
}

/// One request on a new connection, as mod_xml_curl does.
public func exchange(_ port: UInt16, _ bytes: [UInt8], source: String? = nil) throws -> TestResponse {
    let c = try RawClient(port: port, source: source)
    c.send(bytes)
    guard let r = c.readResponse() else { throw TestHTTPError(description: "no response") }
    return r
}
