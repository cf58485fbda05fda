from paxosd.cli.main import main

main()
