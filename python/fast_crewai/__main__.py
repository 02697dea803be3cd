from fast_crewai.cli import main

main()
