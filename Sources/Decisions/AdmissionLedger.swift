/// The call controls of every switch held in one instance's memory (migration 0015): the slots of
/// the calls up, the calls admitted in the last second per limited subject and the fraud counts of
/// the current windows. `admit` decides a call exactly as `switchauth_admit_call` (0009) does in
/// the database, against the same values; what it changes is kept until `takeChanges` hands it to
/// the writer that makes the database the ledger's copy. Pure: time is a parameter.
public struct AdmissionLedger: Sendable {
    /// A call's slot: what `call_slots` holds of it.
    public struct Slot: Sendable, Equatable {
        public var accountID: Int64
        public var coreUUID: String
        public var destination: String
        /// Microseconds since the epoch.
        public var reservedAt: Int64

        public init(accountID: Int64, coreUUID: String, destination: String, reservedAt: Int64) {
            self.accountID = accountID
            self.coreUUID = coreUUID
            self.destination = destination
            self.reservedAt = reservedAt
        }
    }

    /// What a CPS window counts: `cps_windows.subject` ('a:<account id>', 'i:<ip setting id>').
    public enum Subject: Hashable, Sendable {
        case account(Int64)
        case ipSetting(Int64)

        public var text: String {
            switch self {
            case .account(let id): return "a:\(id)"
            case .ipSetting(let id): return "i:\(id)"
            }
        }

        public init?(text: String) {
            guard text.count > 2, let id = Int64(text.dropFirst(2)) else { return nil }
            if text.hasPrefix("a:") { self = .account(id) } else if text.hasPrefix("i:") { self = .ipSetting(id) } else { return nil }
        }
    }

    /// A windowed fraud count: its threshold and the window's start (µs since the epoch).
    public struct CountKey: Hashable, Sendable {
        public var thresholdID: Int64
        public var windowStart: Int64

        public init(thresholdID: Int64, windowStart: Int64) {
            self.thresholdID = thresholdID
            self.windowStart = windowStart
        }
    }

    /// A call's verdict and its fraud thresholds as counted (including it): the ledger's answer,
    /// and the database's (`CallSlots.Admission`).
    public struct Answer: Sendable, Equatable {
        public var verdict: AdmissionVerdict
        public var measurements: [FraudMeasurement]

        public init(verdict: AdmissionVerdict, measurements: [FraudMeasurement]) {
            self.verdict = verdict
            self.measurements = measurements
        }
    }

    /// What changed since the last `takeChanges`: the database's copy is brought up to date with it
    /// (migration 0017): new slots and the releases of slots never in `call_slots` go to the
    /// journal, slots up for `rowAfter` become rows, and rows of released slots go.
    public struct Changes: Sendable, Equatable {
        /// Slots reserved and still held, for the journal (a call that ended before the write never
        /// reaches it).
        public var reservedSlots: [CallKey: Slot] = [:]
        /// Slots released that `call_slots` has (or may have): rows to delete.
        public var released: Set<CallKey> = []
        /// Slots released that only the journal has: journal releases.
        public var forgotten: Set<CallKey> = []
        /// Slots up for `rowAfter` (or all, before a reconciliation): rows to insert.
        public var rows: [CallKey: Slot] = [:]
        /// Fraud counts added per window.
        public var counts: [CountKey: Int] = [:]

        public var isEmpty: Bool { reservedSlots.isEmpty && released.isEmpty && forgotten.isEmpty && rows.isEmpty && counts.isEmpty }
        public var size: Int { reservedSlots.count + released.count + forgotten.count + rows.count + counts.count }
        public init() {}
    }

    /// How long a call is up before its slot becomes a row of `call_slots` (until then it is an
    /// entry of the journal: most calls never become one).
    public static let rowAfter: Int64 = 5 * second
    /// A journal row can go once every slot it reserved is this old (`rowAfter`, and a second for
    /// the order the event loops' clocks put slots in).
    public static let journalKept: Int64 = rowAfter + second

    /// A ring of admission times, oldest first.
    struct Window: Sendable {
        var times: [Int64] = []
        var head = 0

        var count: Int { times.count - head }

        mutating func prune(after cutoff: Int64) {
            while head < times.count, times[head] <= cutoff { head += 1 }
            if head > 64 && head * 2 > times.count {
                times.removeFirst(head)
                head = 0
            }
        }

        mutating func append(_ t: Int64) {
            // Times from the same clock only grow; a clock stepped back keeps the order anyway.
            if let last = times.last, t < last {
                times.insert(t, at: times[head...].firstIndex { $0 > t } ?? times.count)
            } else {
                times.append(t)
            }
        }

        var live: ArraySlice<Int64> { times[head...] }
    }

    public static let second: Int64 = 1_000_000

    /// A slot in the slab, chained to the other slots of its account (indices into `entries`, -1:
    /// none). An account's calls are counted and walked without a set of its own (a set per
    /// account was allocated at its first call and freed at its last: most accounts have one).
    struct Entry: Sendable {
        var id: CallKey
        var slot: Slot
        /// Its row is in `call_slots` (else it is only in the journal, or not written yet).
        var written: Bool
        var previous: Int32 = -1
        var next: Int32 = -1
    }

    /// An account's chain of slots and its length.
    struct AccountCalls: Sendable {
        var head: Int32 = -1
        var count = 0

        /// Makes `i` the head; returns the head before.
        mutating func push(_ i: Int32) -> Int32 {
            defer { head = i; count += 1 }
            return head
        }
    }

    private var entries: [Entry] = []
    /// Entries free for the next slot.
    private var vacant: [Int32] = []
    /// Where each call's slot is (by Unique-ID).
    private var index: [CallKey: Int32] = [:]
    private var accounts: [Int64: AccountCalls] = [:]
    /// The slots without a row, in the order they were reserved (their times), oldest from `rowsHead`.
    private var withoutRow: [(key: CallKey, at: Int64)] = []
    private var rowsHead = 0
    /// Slots whose row a failed write did not make: made at the next.
    private var rowsAgain: [CallKey] = []

    /// The calls up, by Unique-ID (built on demand: tests, a reconciliation).
    public var slots: [String: Slot] {
        var out: [String: Slot] = [:]
        out.reserveCapacity(index.count)
        for (id, i) in index { out[id.text] = entries[Int(i)].slot }
        return out
    }

    /// How many calls are up.
    public var slotCount: Int { index.count }

    private var windows: [Subject: Window] = [:]
    private var counts: [CountKey: Int] = [:]
    private var pending = Changes()
    /// Until then (µs), the calls of a CPS-limited subject are refused: the windows of the instance
    /// that held the admissions before were lost with it.
    public private(set) var cpsUnknownUntil: Int64

    /// The ledger as the database's tables hold it (slots, the CPS windows, the fraud counts of the
    /// current windows).
    public init(slots: [String: Slot] = [:], windows: [Subject: [Int64]] = [:], counts: [CountKey: Int] = [:], cpsUnknownUntil: Int64 = 0) {
        self.cpsUnknownUntil = cpsUnknownUntil
        self.counts = counts
        for (subject, times) in windows { self.windows[subject] = Window(times: times.sorted()) }
        for (id, slot) in slots { insert(CallKey(id), slot, written: true) }
    }

    /// A slot for a call that holds none (the caller checked).
    private mutating func insert(_ id: CallKey, _ slot: Slot, written: Bool) {
        let i: Int32
        if let free = vacant.popLast() {
            i = free
            entries[Int(i)] = Entry(id: id, slot: slot, written: written)
        } else {
            i = Int32(entries.count)
            entries.append(Entry(id: id, slot: slot, written: written))
        }
        index[id] = i
        let head = accounts[slot.accountID, default: AccountCalls()].push(i)
        entries[Int(i)].next = head
        if head >= 0 { entries[Int(head)].previous = i }
    }

    private mutating func remove(_ id: CallKey) -> Entry? {
        guard let i = index.removeValue(forKey: id) else { return nil }
        let e = entries[Int(i)]
        if e.previous >= 0 { entries[Int(e.previous)].next = e.next }
        if e.next >= 0 { entries[Int(e.next)].previous = e.previous }
        if var calls = accounts[e.slot.accountID] {
            if calls.head == i { calls.head = e.next }
            calls.count -= 1
            accounts[e.slot.accountID] = calls.count > 0 ? calls : nil
        }
        // The strings go now, not when the entry is reused.
        entries[Int(i)] = Entry(id: .uuid(0, 0), slot: Slot(accountID: 0, coreUUID: "", destination: "", reservedAt: 0), written: false)
        vacant.append(i)
        return e
    }

    /// The calls an account has up.
    public func inUse(account: Int64) -> Int { accounts[account]?.count ?? 0 }

    /// The calls an account has up to destinations starting with `prefix`.
    func callsUp(account: Int64, prefix: String) -> Int {
        var n = 0
        var i = accounts[account]?.head ?? -1
        while i >= 0 {
            if entries[Int(i)].slot.destination.hasPrefix(prefix) { n += 1 }
            i = entries[Int(i)].next
        }
        return n
    }

    /// Admits one call against every limit that applies and counts it for its fraud thresholds
    /// (`now`: µs since the epoch), as `switchauth_admit_call` does: a call already holding its slot
    /// is `alreadyHeld` and counted for nothing; a refused call takes no slot and spends no CPS
    /// allowance, but is an attempt all the same. `key`: the call's `CallKey`, when the caller made
    /// it already (outside a lock).
    public mutating func admit(_ a: CallAdmission, now t: Int64, key: CallKey? = nil) -> Answer {
        let key = key ?? CallKey(a.uniqueID)
        if index[key] != nil { return Answer(verdict: .alreadyHeld, measurements: []) }
        var verdict: AdmissionVerdict?
        let cutoff = t - Self.second
        let accountSubject = Subject.account(a.accountID)
        let ipSubject = a.ipSettingID.map(Subject.ipSetting)
        if t < cpsUnknownUntil, a.accountCPS > 0 || (ipSubject != nil && a.ipSettingCPS > 0) {
            verdict = .cpsLimit(ipSetting: a.accountCPS == 0)
        }
        if verdict == nil, a.accountCPS > 0 {
            windows[accountSubject, default: Window()].prune(after: cutoff)
            if windows[accountSubject]!.count >= a.accountCPS { verdict = .cpsLimit(ipSetting: false) }
        }
        if verdict == nil, let ipSubject, a.ipSettingCPS > 0 {
            windows[ipSubject, default: Window()].prune(after: cutoff)
            if windows[ipSubject]!.count >= a.ipSettingCPS { verdict = .cpsLimit(ipSetting: true) }
        }
        var inUse = 0
        if verdict == nil, a.maxChannels > 0 || a.trackChannels {
            inUse = self.inUse(account: a.accountID)
            if a.maxChannels > 0, inUse >= a.maxChannels {
                verdict = .channelLimit(inUse: inUse)
            } else {
                let slot = Slot(accountID: a.accountID, coreUUID: a.coreUUID, destination: a.destination, reservedAt: t)
                insert(key, slot, written: false)
                withoutRow.append((key, t))
                pending.reservedSlots[key] = slot
                inUse += 1
            }
        }
        let admitted = verdict == nil
        if admitted {
            verdict = .admitted(inUse: inUse)
            if a.accountCPS > 0 { windows[accountSubject]!.append(t) }
            if let ipSubject, a.ipSettingCPS > 0 { windows[ipSubject]!.append(t) }
        }
        var measurements: [FraudMeasurement] = []
        for th in a.fraudThresholds.sorted(by: { $0.id < $1.id }) where a.destination.hasPrefix(th.prefix) {
            let window: Int64, value: Int
            switch th.metric {
            case .concurrentCalls:
                window = t - Self.floorMod(t, Self.second)
                value = callsUp(account: a.accountID, prefix: th.prefix)
            case .callsPerMinute where !admitted:
                continue
            case .callsPerMinute, .attemptsPerDay:
                let length = th.metric == .callsPerMinute ? 60 * Self.second : 86_400 * Self.second
                window = t - Self.floorMod(t, length)
                let key = CountKey(thresholdID: th.id, windowStart: window)
                counts[key, default: 0] += 1
                pending.counts[key, default: 0] += 1
                value = counts[key]!
            }
            measurements.append(FraudMeasurement(thresholdID: th.id, value: value, windowMilliseconds: Self.floorDiv(window, 1000)))
        }
        return Answer(verdict: verdict!, measurements: measurements)
    }

    /// Releases the slots of calls that ended. Returns how many there were.
    @discardableResult
    public mutating func release(_ ids: some Sequence<String>) -> Int {
        release(keys: ids.lazy.map { CallKey($0) })
    }

    /// `release` of the calls' keys (made outside a lock).
    @discardableResult
    public mutating func release(keys: some Sequence<CallKey>) -> Int {
        var n = 0
        for id in keys {
            guard let e = remove(id) else { continue }
            n += 1
            // Reserved and released between two writes: the copy never needs to know.
            if pending.reservedSlots.removeValue(forKey: id) != nil { continue }
            if e.written { pending.released.insert(id) } else { pending.forgotten.insert(id) }
        }
        return n
    }

    /// What changed since the last call, for the copy; cleared. `now` (µs since the epoch) decides
    /// which slots have been up for `rowAfter` and become rows; `allRows`: every slot becomes one
    /// (tests, and `switchauth-bench ledger`'s record of what a reconciliation cost before 0018).
    public mutating func takeChanges(now: Int64, allRows: Bool = false) -> Changes {
        var changes = pending
        pending = Changes()
        for key in rowsAgain { row(key, into: &changes.rows) }
        rowsAgain = []
        changes.rows.merge(takeRows(reservedBy: now - Self.rowAfter, now: now)) { a, _ in a }
        if allRows { changes.rows.merge(takeRows(reservedBy: .max, now: now)) { a, _ in a } }
        return changes
    }

    /// The slots reserved by `reservedBy` (µs since the epoch) that have no row yet, now counted as
    /// rows. A slot stamped ahead of `now` (the clock stepped back since) is taken too, so that it
    /// holds no later slot back.
    public mutating func takeRows(reservedBy cutoff: Int64, now: Int64) -> [CallKey: Slot] {
        var rows: [CallKey: Slot] = [:]
        while rowsHead < withoutRow.count {
            let (key, at) = withoutRow[rowsHead]
            guard at <= cutoff || at > now + Self.second else { break }
            rowsHead += 1
            row(key, into: &rows)
        }
        if rowsHead > 1024 && rowsHead * 2 > withoutRow.count {
            withoutRow.removeFirst(rowsHead)
            rowsHead = 0
        }
        return rows
    }

    /// The slot's row is to be made (if it is still up and has none).
    private mutating func row(_ key: CallKey, into rows: inout [CallKey: Slot]) {
        guard let i = index[key], !entries[Int(i)].written else { return }
        entries[Int(i)].written = true
        rows[key] = entries[Int(i)].slot
    }

    /// A reconciliation with a switch as the holder of the admissions judges it in its ledger
    /// (migration 0018), by the rules `switchauth_reconcile_slots` applies to rows: a slot of the
    /// switch's run `core` reserved before `before` (µs since the epoch) whose call the switch no
    /// longer has (`live`); every slot of a run the switch replaced (`stale`); a slot of a run no
    /// listener knows (`known`) once reserved before `unknownBefore`.
    public struct Reconciliation: Sendable {
        public var core: String
        public var before: Int64
        public var live: Set<CallKey>
        public var stale: Set<String>
        public var known: Set<String>
        public var unknownBefore: Int64

        public init(core: String, before: Int64, live: Set<CallKey>, stale: Set<String>, known: Set<String>, unknownBefore: Int64) {
            (self.core, self.before, self.live, self.stale, self.known, self.unknownBefore) = (core, before, live, stale, known, unknownBefore)
        }

        public func isGone(_ key: CallKey, _ slot: Slot) -> Bool {
            if slot.coreUUID == core { return slot.reservedAt < before && !live.contains(key) }
            if stale.contains(slot.coreUUID) { return true }
            return !known.contains(slot.coreUUID) && slot.reservedAt < unknownBefore
        }
    }

    /// The slab's length (slots and vacant entries): what `gone(in:)` walks, in parts.
    public var slabCount: Int { entries.count }

    /// Slab entries judged under one hold of the lock in a reconciliation (`switchauth-bench
    /// ledger`: some 0.11 µs an entry; the longest part 0.1-0.4 ms with 10,000-100,000 calls up).
    public static let reconcilePart = 256

    /// The slots in `range` of the slab that `judge` finds gone, for `release(keys:)`. A part at a
    /// time under the lock the event loops admit under (the whole slab is 30,000 slots and more).
    public func gone(in range: Range<Int>, _ judge: Reconciliation) -> [CallKey] {
        var out: [CallKey] = []
        for i in range.clamped(to: 0..<entries.count) where judge.isGone(entries[i].id, entries[i].slot) {
            // A vacant entry (no core, no time) is judged too; the index says it holds no slot.
            if index[entries[i].id] == Int32(i) { out.append(entries[i].id) }
        }
        return out
    }

    /// Changes that could not be written go back, under anything changed since (a slot released
    /// meanwhile stays released; counts add up; a row not made is made at the next write).
    public mutating func restore(_ changes: Changes) {
        for (id, slot) in changes.reservedSlots where index[id] != nil && pending.reservedSlots[id] == nil {
            pending.reservedSlots[id] = slot
        }
        for (id, _) in changes.rows {
            if let i = index[id] {
                entries[Int(i)].written = false
                rowsAgain.append(id)
            } else if pending.released.remove(id) != nil {
                // Released since as a row; its row was never made: a journal release.
                pending.forgotten.insert(id)
            }
        }
        for id in changes.released where index[id] == nil && pending.reservedSlots[id] == nil {
            pending.released.insert(id)
        }
        for id in changes.forgotten where index[id] == nil && pending.reservedSlots[id] == nil {
            pending.forgotten.insert(id)
        }
        for (key, n) in changes.counts { pending.counts[key, default: 0] += n }
    }

    /// Whether changes are waiting to be written.
    public var hasChanges: Bool { !pending.isEmpty }
    public var changeCount: Int { pending.size }

    /// The admission times within the last second of `now` per subject: what `cps_windows` gets
    /// when the admissions go back to the database.
    public mutating func liveWindows(now: Int64) -> [(subject: Subject, times: ArraySlice<Int64>)] {
        var out: [(subject: Subject, times: ArraySlice<Int64>)] = []
        for subject in Array(windows.keys) {
            windows[subject]!.prune(after: now - Self.second)
            if windows[subject]!.count == 0 { windows[subject] = nil } else { out.append((subject, windows[subject]!.live)) }
        }
        return out
    }

    /// Forgets counts of windows that can no longer matter (older than two days, as the database's
    /// housekeeping does). CPS windows are pruned as their subject is admitted again, not here: a
    /// sweep over every subject ran under the lock the event loops admit under (100,000 accounts
    /// with a window each in the benchmark: milliseconds every minute). What a quiet subject keeps
    /// is at most its max_cps times, until the admissions change hands.
    public mutating func prune(now: Int64) {
        counts = counts.filter { $0.key.windowStart >= now - 2 * 86_400 * Self.second }
    }

    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { let r = a % b; return r < 0 ? r + b : r }
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { (a - floorMod(a, b)) / b }
}
