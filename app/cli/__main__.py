"""`python -m app.cli`, as the tests and scripts run the command."""

from app.cli import main

main()
