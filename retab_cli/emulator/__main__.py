"""`python -m retab_cli.emulator`: the emulator command without the root app."""

from retab_cli.emulator.cli import main

main()
