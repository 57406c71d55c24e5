from segjob.cli import main

main()
