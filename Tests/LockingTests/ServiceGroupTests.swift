import Locking
import Testing

@Suite struct ServiceGroupTests {
    final class Log: Sendable {
        let events = Locked<[String]>([])
        func add(_ e: String) { events.withLock { $0.append(e) } }
        var all: [String] { events.withLock { $0 } }
    }
    struct Refused: Error {}

    func part(_ name: String, _ log: Log, fails: Bool = false) -> (name: String, part: any Lifecycle) {
        (name, LifecyclePart(start: {
            log.add("start \(name)")
            if fails { throw Refused() }
        }, stop: { log.add("stop \(name)") }))
    }

    @Test func stopsInTheReverseOrderOfStartOnce() throws {
        let log = Log()
        let group = ServiceGroup([part("pool", log), part("feed", log), part("server", log)])
        try group.start()
        group.stop()
        group.stop()
        #expect(log.all == ["start pool", "start feed", "start server", "stop server", "stop feed", "stop pool"])
    }

    @Test func aPartThatFailsStopsItselfAndThoseBefore() {
        let log = Log()
        let group = ServiceGroup([part("pool", log), part("feed", log), part("server", log, fails: true), part("watcher", log)])
        #expect(throws: Refused.self) { try group.start() }
        group.stop()
        #expect(log.all == ["start pool", "start feed", "start server", "stop server", "stop feed", "stop pool"])
    }

    @Test func stopBeforeStartStopsNothingAndStartAfterStopStartsNothing() throws {
        let log = Log()
        let group = ServiceGroup([part("pool", log)])
        group.stop()
        try group.start()
        #expect(log.all.isEmpty)
    }
}
