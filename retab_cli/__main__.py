from retab_cli.app import main

main()
