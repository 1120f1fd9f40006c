import Foundation
@testable import SwitchAuthService
import Testing

/// The request counters are kept per thread and added up for `/metrics`.
@Suite("metrics")
struct MetricsTests {
    @Test func requestsCountedOnSeveralThreadsAddUp() {
        let metrics = Metrics()
        let done = DispatchGroup()
        for t in 0..<4 {
            done.enter()
            Thread {
                for i in 0..<1_000 {
                    metrics.observe(section: "directory", outcome: t % 2 == 0 ? "ok" : "wrong_password", seconds: i % 2 == 0 ? 0.0002 : 0.003)
                }
                done.leave()
            }.start()
        }
        done.wait()
        metrics.observe(section: "dialplan", outcome: "ok", seconds: 0.5)
        let text = metrics.render(gauges: [])
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"switchauth_requests_total{section="directory",outcome="ok"} 2000"#))
        #expect(lines.contains(#"switchauth_requests_total{section="directory",outcome="wrong_password"} 2000"#))
        #expect(lines.contains(#"switchauth_requests_total{section="dialplan",outcome="ok"} 1"#))
        #expect(lines.contains(#"switchauth_request_duration_seconds_count{section="directory"} 4000"#))
        #expect(lines.contains(#"switchauth_request_duration_seconds_bucket{section="directory",le="0.00025"} 2000"#))
        #expect(lines.contains(#"switchauth_request_duration_seconds_bucket{section="directory",le="0.005"} 4000"#))
        #expect(lines.contains(#"switchauth_request_duration_seconds_count{section="dialplan"} 1"#))
    }
}
