import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// wrk (Debian's) as the closed-loop generator: the bodies are made by `RequestShapes` exactly as
/// for our own generator, written into a Lua script that picks one at random per request. With
/// `close` every request carries `Connection: close` and wrk opens a new connection per request,
/// as mod_xml_curl does. A `response` hook counts answers whose body lacks `expect` (wrong answers:
/// e.g. a valid digest answered without its user).
struct Wrk {
    struct Result {
        var requests: Int
        var seconds: Double
        var perSecond: Double
        var p50: Double
        var p99: Double
        var max: Double
        var non2xx: Int
        var socketErrors: Int
        var wrong: Int
        /// Answers whose status was 503 (shed) — counted by the Lua hook.
        var shed: Int

        /// Several rounds of one measurement as one: the median round's rate and latencies, the
        /// highest maximum, and every round's requests, errors and wrong answers summed.
        static func median(_ rounds: [Result]) -> Result {
            precondition(!rounds.isEmpty)
            func mid(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            return Result(requests: rounds.reduce(0) { $0 + $1.requests }, seconds: rounds.reduce(0) { $0 + $1.seconds },
                          perSecond: mid(rounds.map(\.perSecond)), p50: mid(rounds.map(\.p50)), p99: mid(rounds.map(\.p99)),
                          max: rounds.map(\.max).max()!, non2xx: rounds.reduce(0) { $0 + $1.non2xx },
                          socketErrors: rounds.reduce(0) { $0 + $1.socketErrors }, wrong: rounds.reduce(0) { $0 + $1.wrong },
                          shed: rounds.reduce(0) { $0 + $1.shed })
        }
    }

    static var path: String? {
        ["/usr/bin/wrk", "/usr/local/bin/wrk"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let port: UInt16
    let urlPath: String
    let directory: String

    /// Runs wrk for `seconds` with `connections` connections on 2 threads. `uniqueID`: a string of
    /// the bodies (a channel's Unique-ID) replaced in every request by one of its own, as every call
    /// FreeSWITCH sends has its own channel.
    func run(bodies: [String], close: Bool, connections: Int = 32, seconds: Double, expect: String? = nil,
             uniqueID: String? = nil) throws -> Result {
        guard let wrk = Self.path else { throw BenchError("wrk not installed (apt-get install wrk)") }
        let script = try writeScript(bodies: bodies, close: close, expect: expect, uniqueID: uniqueID)
        let log = "\(directory)/wrk-\(UUID().uuidString).out"
        let p = try ChildProcess(wrk, ["-t2", "-c\(connections)", "-d\(max(1, Int(seconds)))s", "--latency", "-s", script,
                                       "http://127.0.0.1:\(port)\(urlPath)"], log: log)
        _ = p.wait()
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return try Self.parse(out)
    }

    /// The Lua script of a run (see `run`), written into `directory`; its path.
    func writeScript(bodies: [String], close: Bool, expect: String? = nil, uniqueID: String? = nil) throws -> String {
        let script = "\(directory)/wrk-\(UUID().uuidString).lua"
        var lua = "local bodies = {\n"
        for b in bodies {
            lua += "  \"" + b.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\",\n"
        }
        lua += "}\n"
        lua += """
            local threads = {}
            wrong = 0
            shed = 0
            local expect = \(expect.map { "[[" + $0 + "]]" } ?? "nil")
            local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["User-Agent"] = "freeswitch-xml/1.0", ["Authorization"] = "\(RequestShapes.authorization)"\(close ? ", [\"Connection\"] = \"close\"" : "") }
            local token = \(uniqueID.map { "\"" + $0 + "\"" } ?? "nil")
            -- Each body split once around the Unique-ID: a request joins three strings (a pattern
            -- substitution over the 5 KB body per request made wrk the bottleneck of the row).
            local before, after = {}, {}
            if token ~= nil then
              for i, b in ipairs(bodies) do
                local s, e = string.find(b, token, 1, true)
                if s == nil then before[i], after[i] = b, "" else before[i], after[i] = string.sub(b, 1, s - 1), string.sub(b, e + 1) end
              end
            end
            -- A call's Unique-ID: the second and millisecond it was made (so that IDs sort by age
            -- and the benchmark's hangup feed finds the old ones through the primary key instead
            -- of scanning every slot), the thread, a salt for the run and a counter.
            local ffi = require("ffi")
            ffi.cdef[[
              typedef struct { long tv_sec; long tv_usec; } bench_timeval;
              int gettimeofday(bench_timeval *tv, void *tz);
            ]]
            local tv = ffi.new("bench_timeval")
            local n, salt = 0, 0
            tid = 0
            function setup(thread) table.insert(threads, thread); thread:set("tid", #threads) end
            function init(args) salt = math.random(0, 0xfff) end
            function request()
              local i = math.random(#bodies)
              local b = bodies[i]
              if token ~= nil then
                n = n + 1
                ffi.C.gettimeofday(tv, nil)
                b = before[i] .. string.format("%08x-%04x-4%03x-8%03x-%012x", tonumber(tv.tv_sec), math.floor(tonumber(tv.tv_usec) / 1000), salt, tid, n) .. after[i]
              end
              return wrk.format("POST", "\(urlPath)", headers, b)
            end
            function response(status, hdrs, body)
              if status == 503 then shed = shed + 1 end
              if expect ~= nil and status == 200 and not string.find(body, expect, 1, true) then wrong = wrong + 1 end
            end
            function done(summary, latency, requests)
              local w, s = 0, 0
              for _, t in ipairs(threads) do w = w + t:get("wrong"); s = s + t:get("shed") end
              io.write(string.format("WRONG %d\\nSHED %d\\n", w, s))
            end

            """
        try lua.write(toFile: script, atomically: true, encoding: .utf8)
        return script
    }

    /// wrk's report: "N requests in Xs", "Requests/sec:", the latency distribution, errors.
    static func parse(_ out: String) throws -> Result {
        func ms(_ s: Substring) -> Double {
            let t = s.trimmingCharacters(in: .whitespaces)
            if t.hasSuffix("us") { return (Double(t.dropLast(2)) ?? .nan) / 1000 }
            if t.hasSuffix("ms") { return Double(t.dropLast(2)) ?? .nan }
            if t.hasSuffix("s") { return (Double(t.dropLast(1)) ?? .nan) * 1000 }
            return .nan
        }
        var r = Result(requests: 0, seconds: 0, perSecond: 0, p50: .nan, p99: .nan, max: .nan, non2xx: 0, socketErrors: 0, wrong: 0, shed: 0)
        for raw in out.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("Requests/sec:"), f.count > 1 { r.perSecond = Double(f[1]) ?? 0 }
            else if line.contains("requests in"), let n = Int(f[0]) {
                r.requests = n
                if f.count > 3 { r.seconds = ms(f[3].dropLast(f[3].hasSuffix(",") ? 1 : 0)) / 1000 }
            }
            else if line.hasPrefix("50%"), f.count > 1 { r.p50 = ms(f[1]) }
            else if line.hasPrefix("99%"), f.count > 1 { r.p99 = ms(f[1]) }
            else if line.hasPrefix("Latency"), f.count > 3 { r.max = ms(f[3]) }
            else if line.hasPrefix("Non-2xx or 3xx responses:"), let n = f.last.flatMap({ Int($0) }) { r.non2xx = n }
            else if line.hasPrefix("Socket errors:") {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                r.socketErrors = line.split(separator: ",").compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
            }
            else if line.hasPrefix("WRONG "), let n = Int(f[1]) { r.wrong = n }
            else if line.hasPrefix("SHED "), let n = Int(f[1]) { r.shed = n }
        }
        guard r.requests > 0 else { throw BenchError("wrk produced no result:\n\(out)") }
        return r
    }
}

/// CPU seconds (user + system) of a process from /proc.
func cpuSeconds(of pid: pid_t) -> Double {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return 0 }
    let fields = s[s.index(after: close)...].split(separator: " ")
    let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Open descriptors of a process.
func descriptorCount(of pid: pid_t) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
}
