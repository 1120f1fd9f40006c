import Foundation
import Locking
import Testing

@Suite struct WorkerPoolTests {
    final class Log: Sendable {
        let events = Locked<[String]>([])
        func add(_ e: String) { events.withLock { $0.append(e) } }
        var all: [String] { events.withLock { $0 } }
    }

    /// A job: its number, whether it may be taken with others, whether it is stale, and a gate it
    /// waits on before it finishes.
    struct Job: Sendable {
        var n: Int
        var joins = false
        var stale = false
        var gate: DispatchSemaphore? = nil
    }

    func pool(_ log: Log, threads: Int = 2, capacity: Int = 100, batch: Int = 1) -> WorkerPool<Job> {
        let sessions = Locked(0)
        return WorkerPool(name: "test", threads: threads, capacity: capacity, batch: batch,
                          joins: { $0.joins }, isStale: { $0.stale }, skipped: { log.add("skipped \($0.n)") },
                          open: { () -> Int in
                              let id = sessions.withLock { $0 += 1; return $0 }
                              log.add("open \(id)")
                              return id
                          },
                          close: { log.add("close \($0)") },
                          perform: { jobs, _ in
                              log.add("run " + jobs.map { String($0.n) }.joined(separator: ","))
                              for j in jobs { j.gate?.wait() }
                          })
    }

    @Test func eachThreadOwnsOneSessionClosedAtStopAfterTheQueueDrains() {
        let log = Log()
        let p = pool(log, threads: 3)
        p.start()
        for n in 0..<20 { #expect(p.submit(Job(n: n))) }
        p.stop()
        let events = log.all
        #expect(events.filter { $0.hasPrefix("open") }.count == 3)
        #expect(Set(events.filter { $0.hasPrefix("close") }) == ["close 1", "close 2", "close 3"])
        #expect(Set(events.filter { $0.hasPrefix("run") }) == Set((0..<20).map { "run \($0)" }))
        #expect(!p.submit(Job(n: 99)), "a stopped pool refuses")
    }

    @Test func aFullQueueRefusesAtOnce() {
        let log = Log()
        let p = pool(log, threads: 1, capacity: 1)
        p.start()
        let gate = DispatchSemaphore(value: 0)
        #expect(p.submit(Job(n: 0, gate: gate)))
        // The thread takes job 0 and waits at its gate; job 1 fills the queue; job 2 is refused.
        var taken = false
        for _ in 0..<2_000 where !taken {
            taken = log.all.contains("run 0")
            if !taken { usleep(1_000) }
        }
        #expect(taken)
        #expect(p.submit(Job(n: 1)))
        #expect(!p.submit(Job(n: 2)))
        gate.signal()
        p.stop()
        #expect(log.all.contains("run 1"))
    }

    @Test func staleJobsAreSkippedAndJoinedOnesRunTogether() {
        let log = Log()
        let p = pool(log, threads: 1, batch: 3)
        let gate = DispatchSemaphore(value: 0)
        // Queued before the thread starts, so that they are taken as they are queued.
        #expect(p.submit(Job(n: 0, gate: gate)))
        for n in 1...4 { #expect(p.submit(Job(n: n, joins: true))) }
        #expect(p.submit(Job(n: 5, stale: true)))
        #expect(p.submit(Job(n: 6)))
        p.start()
        gate.signal()
        p.stop()
        #expect(log.all.filter { !$0.hasPrefix("open") && !$0.hasPrefix("close") } == ["run 0", "run 1,2,3", "run 4", "skipped 5", "run 6"])
    }
}

