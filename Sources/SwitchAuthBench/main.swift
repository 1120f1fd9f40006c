import ArgumentParser

struct SwitchAuthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchauth-bench",
        abstract: "SwitchAuth benchmarks: the load FreeSWITCH puts on it, side by side with the machine's limits.",
        subcommands: [Compare.self, Reliability.self, ConsoleScale.self, LedgerBench.self, BulkChanges.self], defaultSubcommand: Compare.self)
}

SwitchAuthBench.main()
