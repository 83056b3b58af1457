from spectare.cli import main

main()
