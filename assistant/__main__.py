from assistant.ui.cli import main

main()
