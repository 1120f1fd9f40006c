import SwitchAuthCLI

SwitchAuthCommand.main()
