import Foundation
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
        let fd = try connectSocket()
        defer { close(fd) }
        var reader = Reader(fd: fd, timeout: timeoutMilliseconds)
        let greeting = try reader.message()
        guard greeting.headers["Content-Type"] == "auth/request" else {
            throw Failure(description: "\(endpoint): unexpected greeting \(greeting.headers["Content-Type"] ?? "none")")
        }
        try send(fd, "auth \(endpoint.password)\n\n")
        let auth = try reader.message()
        guard auth.headers["Reply-Text"]?.hasPrefix("+OK") == true else {
            throw Failure(description: "\(endpoint): authentication refused")
        }
        var replies: [String] = []
        for command in commands {
            try send(fd, "api \(command)\n\n")
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
        try? send(fd, "exit\n\n")
        return replies
    }

    private func connectSocket() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &result)
        guard rc == 0, let first = result else {
            throw Failure(description: "\(endpoint): cannot resolve host")
        }
        defer { freeaddrinfo(result) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if fd < 0 { continue }
            if Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 || errno == EINPROGRESS {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, Int32(timeoutMilliseconds)) == 1 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    if err == 0 { return fd }
                    lastError = String(cString: strerror(err))
                } else {
                    lastError = "connect timed out"
                }
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw Failure(description: "\(endpoint): \(lastError)")
    }

    private func send(_ fd: Int32, _ text: String) throws {
        var bytes = Array(text.utf8)[...]
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { bytes = bytes.dropFirst(n); continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                let now = DispatchTime.now().uptimeNanoseconds
                guard now < deadline else { throw Failure(description: "\(endpoint): write timed out") }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, Int32((deadline - now) / 1_000_000 + 1))
                continue
            }
            throw Failure(description: "\(endpoint): write failed")
        }
    }

    struct Message {
        var headers: [String: String]
        var body: String
    }

    struct Reader {
        let fd: Int32
        let timeout: Int
        var buffer: [UInt8] = []

        mutating func fill(_ deadline: UInt64) throws {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { buffer.append(contentsOf: chunk[0..<n]); return }
                if n == 0 { throw Failure(description: "connection closed") }
                if errno != EAGAIN && errno != EINTR { throw Failure(description: "read failed") }
                let now = DispatchTime.now().uptimeNanoseconds
                guard now < deadline else { throw Failure(description: "read timed out") }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, Int32((deadline - now) / 1_000_000 + 1))
            }
        }

        mutating func message() throws -> Message {
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout) * 1_000_000
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
