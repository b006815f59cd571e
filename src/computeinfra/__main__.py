from computeinfra.cli import main

main()
